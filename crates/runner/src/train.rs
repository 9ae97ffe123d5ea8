//! One training run, top to bottom. `Trainer::new` builds the network, the optimiser and
//! the schedule (or restores them from a checkpoint); `run_epoch` trains one epoch, step
//! by step, and evaluates it into a metric row; `checkpoint` and `network` hand out what
//! the caller saves and measures. The worker's loop (`worker.rs`) reads:
//!
//! ```text
//! for each remaining epoch: run_epoch -> write its row -> save the checkpoint
//! then: the diagnostics of the trained network
//! ```

use crate::batches::{batches_per_epoch, epoch_batches, Rows};
use crate::checkpoint::Checkpoint;
use crate::error::TrainError;
use crate::evaluate::{count_wrong, evaluate};
use crate::gradient_flow::{gradient_norms, layer_weights};
use crate::sgd::Sgd;
use crate::warmup::WarmupState;
use candle_core::{Device, Tensor, Var};
use candle_nn::{ModuleT, VarMap};
use experiment::RunConfig;
use models::rng::SeededRng;
use models::{params, seeded_var_builder, Network};
use results::MetricRow;
use std::time::Instant;

/// A training loss above this (chance level on 10 classes is 2.3) means the run has
/// blown up even if it is still finite; `train.max_loss` overrides it.
pub const DIVERGENCE_LOSS: f64 = 1e3;

/// The data one run sees, normalised.
#[derive(Debug, Clone)]
pub struct Datasets {
    pub train: Rows,
    /// Held out of the training file, if the run asks for a validation split.
    pub validation: Option<Rows>,
    pub test: Rows,
}

/// Where a resumed run starts: the checkpoint of its last finished epoch and the metric
/// rows of the epochs up to it.
#[derive(Debug, Clone)]
pub struct Resume {
    pub checkpoint: Checkpoint,
    pub rows: Vec<MetricRow>,
}

/// How an epoch ended.
#[derive(Debug, Clone, PartialEq)]
pub enum EpochEnd {
    /// Every batch trained; the epoch's metric row.
    Trained(MetricRow),
    /// The loss became NaN, infinite or larger than the bound (`DIVERGENCE_LOSS`, or
    /// `train.max_loss`): why, with the epoch, batch and learning rate.
    Diverged(String),
}

/// Each weighted layer's gradient norm (path, norm), before the step of `iteration`
/// (0: at initialisation).
#[derive(Debug, Clone, PartialEq)]
pub struct GradientNorms {
    pub iteration: usize,
    pub norms: Vec<(String, f64)>,
}

/// One epoch: how it ended, and the gradient norms measured during it.
#[derive(Debug, Clone, PartialEq)]
pub struct Epoch {
    pub end: EpochEnd,
    pub gradients: Vec<GradientNorms>,
}

/// Where an epoch is, after each of its batches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchProgress {
    pub epoch: usize,
    /// 1-based.
    pub batch: usize,
    pub batches: usize,
    /// The epoch's running training error.
    pub train_error: f64,
}

/// What one step did.
enum Step {
    Trained {
        loss: f64,
        wrong: f64,
        gradients: Option<GradientNorms>,
    },
    Diverged {
        loss: f64,
    },
}

/// One run's training state: the network and its variables, the optimiser, the warm-up,
/// and how far the run has come.
pub struct Trainer<'a> {
    config: &'a RunConfig,
    data: &'a Datasets,
    device: Device,
    varmap: VarMap,
    network: Network,
    sgd: Sgd,
    warmup: WarmupState,
    /// Every weighted layer's weight, when gradient norms are measured.
    gradient_layers: Vec<(String, Var)>,
    gradient_every: usize,
    per_epoch: usize,
    total_iterations: usize,
    /// Epochs finished.
    epoch: usize,
    /// Steps taken.
    iteration: usize,
    /// Wall time of the epochs trained before a resume: a resumed run's clock goes on.
    wall_before: f64,
    started: Instant,
}

impl<'a> Trainer<'a> {
    /// The run `config` on `data` and `device`, from scratch or from `resume`. On the CPU
    /// a resumed run continues exactly as an uninterrupted one (wall times aside; GPU
    /// kernels need not be deterministic): weights, BatchNorm statistics, momentum and
    /// the warm-up's state come from the checkpoint, and the batch order, augmentation
    /// and learning rate depend only on the seed, the epoch and the iteration.
    ///
    /// With `gradient_every` > 0, each weighted layer's gradient norm is measured every
    /// that many iterations, from the gradients the step uses anyway.
    pub fn new(
        config: &'a RunConfig,
        data: &'a Datasets,
        device: &Device,
        resume: Option<&Resume>,
        gradient_every: usize,
    ) -> Result<Self, TrainError> {
        let t = &config.train;
        let per_epoch = batches_per_epoch(data.train.len(), t.batch_size);
        if per_epoch == 0 {
            return Err(TrainError::Config(format!(
                "{}: the training set has {} examples, too few for one batch of {} (a batch needs at least {})",
                config.label(),
                data.train.len(),
                t.batch_size,
                experiment::MIN_BATCH
            )));
        }
        let varmap = VarMap::new();
        let network = build_model(config, data.train.shape, &varmap, device)?;
        let gradient_layers = match gradient_every {
            0 => Vec::new(),
            _ => layer_weights(&config.net(data.train.shape), &varmap)?,
        };
        let sgd = Sgd::new(params::trainable(&varmap), t.momentum, t.weight_decay);
        let mut trainer = Trainer {
            config,
            data,
            device: device.clone(),
            varmap,
            network,
            sgd,
            warmup: WarmupState::new(t.warmup.clone()),
            gradient_layers,
            gradient_every,
            per_epoch,
            total_iterations: t.total_iterations(per_epoch),
            epoch: 0,
            iteration: 0,
            wall_before: 0.0,
            started: Instant::now(),
        };
        if let Some(resume) = resume {
            trainer.restore(resume)?;
        }
        Ok(trainer)
    }

    /// The epochs still to train, in order: `run_epoch` trains the first of them.
    pub fn remaining_epochs(&self) -> std::ops::RangeInclusive<usize> {
        self.epoch + 1..=self.config.train.epochs_to_run(self.per_epoch)
    }

    /// Trains the next epoch and evaluates it; `on_batch` hears after every batch.
    /// A run given in iterations ends inside its last epoch, which is then evaluated
    /// and logged like the others.
    pub fn run_epoch(
        &mut self,
        on_batch: &mut dyn FnMut(BatchProgress),
    ) -> Result<Epoch, TrainError> {
        let epoch = self.epoch + 1;
        let batches = self.batches_of(epoch)?;
        let mut augment_rng =
            SeededRng::for_stream(self.config.seed, &format!("augment/epoch-{epoch}"));
        let epoch_lr = self.lr();
        let mut gradients = Vec::new();
        let (mut seen, mut wrong, mut loss_sum) = (0usize, 0f64, 0f64);
        for (b, indices) in batches.iter().enumerate() {
            let lr = self.lr();
            match self.step(indices, &mut augment_rng, lr)? {
                Step::Diverged { loss } => {
                    let reason = format!(
                        "training loss {loss} at epoch {epoch}, batch {} (lr {lr:.4})",
                        b + 1
                    );
                    return Ok(Epoch {
                        end: EpochEnd::Diverged(reason),
                        gradients,
                    });
                }
                Step::Trained {
                    loss,
                    wrong: batch_wrong,
                    gradients: norms,
                } => {
                    gradients.extend(norms);
                    seen += indices.len();
                    wrong += batch_wrong;
                    loss_sum += loss * indices.len() as f64;
                }
            }
            on_batch(BatchProgress {
                epoch,
                batch: b + 1,
                batches: batches.len(),
                train_error: wrong / seen as f64,
            });
        }
        let (test_error, test_loss) = evaluate(&self.network, &self.data.test, &self.device)?;
        let validation = match &self.data.validation {
            Some(v) => Some(evaluate(&self.network, v, &self.device)?),
            None => None,
        };
        self.epoch = epoch;
        let c = self.config;
        Ok(Epoch {
            end: EpochEnd::Trained(MetricRow {
                experiment: c.experiment.clone(),
                family: c.family.to_string(),
                depth: c.depth as u32,
                seed: c.seed,
                config_hash: c.hash(),
                epoch: epoch as u32,
                train_error: wrong / seen as f64,
                train_loss: loss_sum / seen as f64,
                test_error,
                test_loss,
                lr: epoch_lr,
                wall_s: self.wall_before + self.started.elapsed().as_secs_f64(),
                iteration: Some(self.iteration as u64),
                val_error: validation.map(|v| v.0),
                val_loss: validation.map(|v| v.1),
            }),
            gradients,
        })
    }

    /// One step of SGD on the batch `indices`: forward, loss, backward, update; or,
    /// when the loss has blown up, nothing but the news.
    fn step(
        &mut self,
        indices: &[usize],
        augment_rng: &mut SeededRng,
        lr: f64,
    ) -> Result<Step, TrainError> {
        let augment = self.config.augment.as_ref().map(|a| (a, augment_rng));
        let (xs, ys) = self.data.train.batch(indices, &self.device, augment)?;
        let logits = self.network.forward_t(&xs, true)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &ys)?;
        let loss_value = f64::from(loss.to_scalar::<f32>()?);
        let bound = self.config.train.max_loss.unwrap_or(DIVERGENCE_LOSS);
        if !loss_value.is_finite() || loss_value > bound {
            return Ok(Step::Diverged { loss: loss_value });
        }
        let grads = loss.backward()?;
        let gradients = match self.gradient_every {
            k if k > 0 && self.iteration.is_multiple_of(k) => {
                let norms = gradient_norms(&grads, &self.gradient_layers)?;
                let names = self.gradient_layers.iter().map(|(n, _)| n.clone());
                Some(GradientNorms {
                    iteration: self.iteration,
                    norms: names.zip(norms).collect(),
                })
            }
            _ => None,
        };
        self.sgd.step(&grads, lr)?;
        let wrong = count_wrong(&logits, &ys)?;
        self.warmup
            .observe(self.iteration, wrong / indices.len() as f64);
        self.iteration += 1;
        Ok(Step::Trained {
            loss: loss_value,
            wrong,
            gradients,
        })
    }

    /// The learning rate of the next step: the warm-up's while it lasts, then the
    /// schedule's.
    fn lr(&self) -> f64 {
        self.warmup
            .lr(self.iteration)
            .unwrap_or_else(|| self.config.lr_at(self.iteration, self.per_epoch))
    }

    /// Epoch `epoch`'s batches, cut where the run's iterations end. A metric row stands
    /// for steps taken: an epoch without one has nothing to report, and is an error.
    fn batches_of(&self, epoch: usize) -> Result<Vec<Vec<usize>>, TrainError> {
        let (c, n) = (self.config, self.data.train.len());
        let mut batches = epoch_batches(n, c.train.batch_size, c.seed, epoch);
        batches.truncate(self.total_iterations.saturating_sub(self.iteration));
        if batches.is_empty() {
            return Err(TrainError::Config(format!(
                "{}: epoch {epoch} has no batch to train ({n} examples, batch size {}, {} of {} iterations done)",
                c.label(),
                c.train.batch_size,
                self.iteration,
                self.total_iterations
            )));
        }
        Ok(batches)
    }

    /// The state after the last finished epoch, copied to the CPU, for a later resume.
    pub fn checkpoint(&self) -> candle_core::Result<Checkpoint> {
        let vars = self.varmap.data().lock().expect("varmap lock poisoned");
        let model = vars
            .iter()
            .map(|(name, var)| Ok((name.clone(), snapshot(var.as_tensor())?)))
            .collect::<candle_core::Result<_>>()?;
        let momentum = self
            .sgd
            .buffers()
            .into_iter()
            .map(|(name, b)| Ok((name, snapshot(&b)?)))
            .collect::<candle_core::Result<_>>()?;
        Ok(Checkpoint {
            epoch: self.epoch,
            iteration: self.iteration,
            model,
            momentum,
            warmup: self.warmup.to_record(),
            build: Some(crate::provenance::build()),
        })
    }

    /// The network as trained so far.
    pub fn network(&self) -> &Network {
        &self.network
    }

    /// Puts a checkpoint's weights, momentum and warm-up state in place, after checking
    /// that it fits this run.
    fn restore(&mut self, resume: &Resume) -> Result<(), TrainError> {
        let (config, checkpoint) = (self.config, &resume.checkpoint);
        let labelled = |e: TrainError| match e {
            TrainError::Config(why) => TrainError::Config(format!("{}: {why}", config.label())),
            other => other,
        };
        restore_variables(&self.varmap, &mut self.sgd, checkpoint).map_err(labelled)?;
        if config.train.warmup.is_some() {
            self.warmup = WarmupState::from_record(config.train.warmup.clone(), &checkpoint.warmup)
                .ok_or_else(|| {
                    TrainError::Config(format!(
                        "{}: the checkpoint's warm-up record {:?} is not valid (delete the checkpoint to train this run again from the start)",
                        config.label(),
                        checkpoint.warmup
                    ))
                })?;
        }
        check_resume_point(config, checkpoint, &resume.rows, self.per_epoch)?;
        self.epoch = checkpoint.epoch;
        self.iteration = checkpoint.iteration;
        self.wall_before = resume.rows.last().map_or(0.0, |r| r.wall_s);
        Ok(())
    }
}

/// A deep copy on the CPU (the live tensors keep changing as training goes on, and may
/// be on a GPU).
fn snapshot(t: &Tensor) -> candle_core::Result<Tensor> {
    if t.device().is_cpu() {
        t.copy()
    } else {
        t.to_device(&Device::Cpu)
    }
}

/// The network of `config` on images of `shape`, its parameters in `varmap`.
pub fn build_model(
    config: &RunConfig,
    shape: [usize; 3],
    varmap: &VarMap,
    device: &Device,
) -> Result<Network, TrainError> {
    let vb = seeded_var_builder(varmap, config.seed, device);
    Ok(models::build(&config.net(shape), vb)?)
}

/// Puts a checkpoint's tensors into a freshly built model's variables.
fn restore_variables(
    varmap: &VarMap,
    sgd: &mut Sgd,
    checkpoint: &Checkpoint,
) -> Result<(), TrainError> {
    let vars = varmap.data().lock().expect("varmap lock poisoned");
    let mismatch = |what: String| {
        TrainError::Config(format!(
            "the checkpoint does not fit this run's model: {what}"
        ))
    };
    if vars.len() != checkpoint.model.len() {
        return Err(mismatch(format!(
            "{} tensors, the model has {}",
            checkpoint.model.len(),
            vars.len()
        )));
    }
    for (name, var) in vars.iter() {
        let saved = checkpoint
            .model
            .get(name)
            .ok_or_else(|| mismatch(format!("{name} is missing")))?;
        if saved.shape() != var.shape() {
            return Err(mismatch(format!(
                "{name} has shape {:?}, the model {:?}",
                saved.shape(),
                var.shape()
            )));
        }
        var.set(&saved.to_device(var.device())?)?;
    }
    sgd.restore_buffers(&checkpoint.momentum)?;
    Ok(())
}

/// A checkpoint fits this run only where this run's own iteration arithmetic would have
/// put it: `epoch` whole epochs of `per_epoch` steps (the last one cut at the run's
/// length), and one metric row for each. A checkpoint from another dataset size, batch
/// size or length would otherwise resume at a step count no uninterrupted run reaches.
fn check_resume_point(
    config: &RunConfig,
    checkpoint: &Checkpoint,
    rows: &[MetricRow],
    per_epoch: usize,
) -> Result<(), TrainError> {
    let t = &config.train;
    let epochs = t.epochs_to_run(per_epoch);
    let expected = checkpoint
        .epoch
        .checked_mul(per_epoch)
        .map(|i| i.min(t.total_iterations(per_epoch)));
    let problem = if checkpoint.epoch > epochs {
        Some(format!("this run has only {epochs} epochs"))
    } else if expected != Some(checkpoint.iteration) {
        Some(format!(
            "this run reaches iteration {} there ({per_epoch} batches an epoch)",
            expected.map_or("beyond any count".into(), |i| i.to_string())
        ))
    } else if rows.len() != checkpoint.epoch
        || rows
            .last()
            .and_then(|r| r.iteration)
            .is_some_and(|i| i != checkpoint.iteration as u64)
    {
        Some(format!(
            "the metrics hold {} epoch rows ending at iteration {:?}",
            rows.len(),
            rows.last().and_then(|r| r.iteration)
        ))
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(why) => Err(TrainError::Config(format!(
            "{}: the checkpoint is at epoch {}, iteration {}, but {why} (did the dataset, its directory or the batch size change? delete the checkpoint to train this run again from the start)",
            config.label(),
            checkpoint.epoch,
            checkpoint.iteration
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use experiment::{Schedule, TrainConfig};
    use vocab::{DatasetName, Family, ModelArch, ShortcutOption};

    /// `n` examples of standard-normal features of `shape`, labelled by `label`.
    fn toy_set(n: usize, seed: u64, shape: [usize; 3], label: fn(&[f32]) -> u32) -> Rows {
        let mut rng = models::rng::SeededRng::new(seed);
        let dim = shape.iter().product();
        let mut features = Vec::with_capacity(n * dim);
        let mut labels = Vec::with_capacity(n);
        for _ in 0..n {
            let x: Vec<f32> = (0..dim).map(|_| rng.normal() as f32).collect();
            labels.push(label(&x));
            features.extend(x);
        }
        Rows {
            features,
            labels,
            shape,
        }
    }

    fn argmax(values: impl Iterator<Item = f32>) -> u32 {
        values
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map_or(0, |(i, _)| i as u32)
    }

    /// A learnable toy problem: the label is which of 4 features is largest.
    fn toy_rows(n: usize, seed: u64) -> Rows {
        toy_set(n, seed, [1, 1, 4], |x| argmax(x.iter().copied()))
    }

    fn toy(n_train: usize, n_test: usize) -> Datasets {
        Datasets {
            train: toy_rows(n_train, 1),
            validation: None,
            test: toy_rows(n_test, 2),
        }
    }

    fn config(lr: f64) -> RunConfig {
        RunConfig {
            experiment: "toy".into(),
            dataset: DatasetName::FashionMnist,
            train_limit: None,
            test_limit: None,
            validation: None,
            normalize: None,
            augment: None,
            arch: ModelArch::Mlp,
            family: Family::Residual,
            depth: 4,
            width: 16,
            shortcut: None,
            zero_init_residual: true,
            seed: 5,
            train: TrainConfig {
                epochs: Some(3),
                batch_size: 32,
                lr,
                momentum: 0.9,
                weight_decay: 1e-4,
                schedule: Schedule::Cosine,
                max_loss: None,
                iterations: None,
                warmup: None,
            },
        }
    }

    /// A test's run, trained as the worker trains one: its rows (with those it resumed
    /// after), a checkpoint after each epoch it trained, the gradient norms, and why it
    /// diverged if it did.
    #[derive(Debug)]
    struct Run {
        rows: Vec<MetricRow>,
        checkpoints: Vec<Checkpoint>,
        gradients: Vec<GradientNorms>,
        diverged: Option<String>,
    }

    fn run(
        cfg: &RunConfig,
        data: &Datasets,
        resume: Option<Resume>,
        gradient_every: usize,
    ) -> Result<Run, TrainError> {
        let mut trainer = Trainer::new(cfg, data, &Device::Cpu, resume.as_ref(), gradient_every)?;
        let mut run = Run {
            rows: resume.map(|r| r.rows).unwrap_or_default(),
            checkpoints: Vec::new(),
            gradients: Vec::new(),
            diverged: None,
        };
        for _ in trainer.remaining_epochs() {
            let epoch = trainer.run_epoch(&mut |_| {})?;
            run.gradients.extend(epoch.gradients);
            match epoch.end {
                EpochEnd::Trained(row) => {
                    run.rows.push(row);
                    run.checkpoints.push(trainer.checkpoint()?);
                }
                EpochEnd::Diverged(why) => {
                    run.diverged = Some(why);
                    break;
                }
            }
        }
        Ok(run)
    }

    /// The rows of a run that must not diverge.
    fn rows_of(cfg: &RunConfig, data: &Datasets, resume: Option<Resume>) -> Vec<MetricRow> {
        let run = run(cfg, data, resume, 0).unwrap();
        assert_eq!(run.diverged, None);
        run.rows
    }

    #[test]
    fn learns_a_toy_problem_one_epoch_at_a_time() {
        let data = toy(512, 256);
        let rows = rows_of(&config(0.1), &data, None);
        assert_eq!(
            rows.iter().map(|r| r.epoch).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert!(rows[2].train_error < rows[0].train_error);
        assert!(rows[2].test_error < 0.4, "{:?}", rows[2]);
        assert!(rows.iter().all(|r| (0.0..=1.0).contains(&r.train_error)));
        assert!((rows[0].lr - 0.1).abs() < 1e-12);
    }

    #[test]
    fn same_seed_gives_bit_identical_metrics() {
        let data = toy(256, 64);
        let bits = || {
            rows_of(&config(0.1), &data, None)
                .into_iter()
                .map(|r| {
                    (
                        r.train_error.to_bits(),
                        r.train_loss.to_bits(),
                        r.test_loss.to_bits(),
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(bits(), bits());
    }

    /// The batch observer hears every batch of an epoch in order, and the checkpoint
    /// after an epoch is at that epoch's end.
    #[test]
    fn each_epoch_reports_its_batches_and_ends_at_a_checkpoint() {
        let (cfg, data) = (config(0.1), toy(256, 64));
        let mut trainer = Trainer::new(&cfg, &data, &Device::Cpu, None, 0).unwrap();
        assert_eq!(trainer.remaining_epochs(), 1..=3);
        let mut heard = Vec::new();
        let epoch = trainer
            .run_epoch(&mut |b| heard.push((b.epoch, b.batch, b.batches)))
            .unwrap();
        assert_eq!(heard, (1..=8).map(|b| (1, b, 8)).collect::<Vec<_>>());
        assert!(matches!(epoch.end, EpochEnd::Trained(ref r) if r.epoch == 1));
        let checkpoint = trainer.checkpoint().unwrap();
        assert_eq!((checkpoint.epoch, checkpoint.iteration), (1, 8));
        assert_eq!(trainer.remaining_epochs(), 2..=3);
    }

    fn without_wall_time(rows: &[MetricRow]) -> Vec<MetricRow> {
        rows.iter()
            .cloned()
            .map(|r| MetricRow { wall_s: 0.0, ..r })
            .collect()
    }

    /// Trains `cfg` straight through, then again from every epoch's checkpoint (through
    /// its file, as a killed worker would leave it); all must give the same rows.
    fn assert_resume_is_exact(cfg: &RunConfig, data: &Datasets) -> Vec<MetricRow> {
        let straight = run(cfg, data, None, 0).unwrap();
        assert_eq!(straight.diverged, None);
        for stop in 1..straight.rows.len() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("checkpoint.safetensors");
            straight.checkpoints[stop - 1].save(&path).unwrap();
            let resume = Resume {
                checkpoint: Checkpoint::load(&path).unwrap(),
                rows: straight.rows[..stop].to_vec(),
            };
            let resumed = rows_of(cfg, data, Some(resume));
            assert_eq!(
                without_wall_time(&resumed),
                without_wall_time(&straight.rows),
                "stopped after epoch {stop}"
            );
        }
        straight.rows
    }

    #[test]
    fn resuming_from_any_epoch_gives_the_uninterrupted_metrics() {
        let rows = assert_resume_is_exact(&config(0.1), &toy(256, 64));
        assert_eq!(rows.len(), 3);
    }

    /// Toy images for conv nets: 1x4x4, the label is the quadrant with the largest sum.
    fn toy_images(n: usize, seed: u64) -> Rows {
        toy_set(n, seed, [1, 4, 4], |x| {
            argmax((0..4).map(|q| {
                let (r0, c0) = (2 * (q / 2), 2 * (q % 2));
                (0..4)
                    .map(|k| x[(r0 + k / 2) * 4 + c0 + k % 2])
                    .sum::<f32>()
            }))
        })
    }

    #[test]
    fn a_conv_run_with_every_option_resumes_exactly_and_ends_at_its_iteration_count() {
        // 160 images in batches of 32: 5 per epoch; 13 iterations end inside epoch 3.
        let data = Datasets {
            train: toy_images(160, 1),
            validation: Some(toy_images(40, 3)),
            test: toy_images(48, 2),
        };
        let mut cfg = config(0.05);
        cfg.arch = ModelArch::Cifar;
        cfg.depth = 8;
        cfg.width = 2;
        cfg.shortcut = Some(ShortcutOption::A);
        cfg.zero_init_residual = false;
        cfg.augment = Some(experiment::Augment { pad: 1, flip: true });
        cfg.train.epochs = None;
        cfg.train.iterations = Some(13);
        cfg.train.schedule = Schedule::Step {
            milestones: vec![7],
            gamma: 0.1,
        };
        cfg.train.warmup = Some(experiment::Warmup {
            lr: 0.01,
            until_train_error: None,
            iterations: Some(4),
        });
        let rows = assert_resume_is_exact(&cfg, &data);
        let iterations: Vec<Option<u64>> = rows.iter().map(|r| r.iteration).collect();
        assert_eq!(iterations, [Some(5), Some(10), Some(13)]);
        // Epoch lrs: warm-up (0.01) at iteration 0, 0.05 at 5, 0.005 after milestone 7.
        let lrs: Vec<f64> = rows.iter().map(|r| r.lr).collect();
        for (lr, expected) in lrs.iter().zip([0.01, 0.05, 0.005]) {
            assert!((lr - expected).abs() < 1e-12, "{lrs:?}");
        }
        assert!(rows
            .iter()
            .all(|r| r.val_error.is_some() && r.val_loss.is_some()));
        // Augmentation is drawn from the seed: another seed gives other numbers.
        let mut other = cfg.clone();
        other.seed += 1;
        let other_rows = rows_of(&other, &data, None);
        assert_ne!(without_wall_time(&other_rows), without_wall_time(&rows));
    }

    #[test]
    fn gradient_norms_are_reported_every_k_iterations_without_changing_the_run() {
        let data = toy(256, 64);
        let with = run(&config(0.1), &data, None, 10).unwrap();
        for GradientNorms { iteration, norms } in &with.gradients {
            assert_eq!(norms.len(), 4, "input, two block layers, classifier");
            // The toy net is zero-initialised: its block gets no gradient at first.
            assert!(norms.iter().all(|(_, n)| n.is_finite() && *n >= 0.0));
            assert!(*iteration == 0 || norms.iter().all(|(_, n)| *n > 0.0));
        }
        // 8 iterations per epoch, 3 epochs: 0, 10, 20.
        let logged: Vec<usize> = with.gradients.iter().map(|g| g.iteration).collect();
        assert_eq!(logged, [0, 10, 20]);
        let without = rows_of(&config(0.1), &data, None);
        assert_eq!(without_wall_time(&with.rows), without_wall_time(&without));
    }

    #[test]
    fn an_error_based_warmup_survives_a_resume_mid_warmup() {
        // Threshold 0.5 on a 4-class problem: reached only after some learning, so the
        // warm-up spans an epoch boundary and its window travels in the checkpoint.
        let mut cfg = config(0.1);
        cfg.train.epochs = Some(4);
        cfg.train.warmup = Some(experiment::Warmup {
            lr: 0.02,
            until_train_error: Some(0.5),
            iterations: None,
        });
        let rows = assert_resume_is_exact(&cfg, &toy(256, 64));
        assert!((rows[0].lr - 0.02).abs() < 1e-12);
        assert!(
            rows.iter().any(|r| r.lr > 0.02),
            "the warm-up ended: {rows:?}"
        );
    }

    #[test]
    fn a_checkpoint_of_another_model_is_rejected() {
        let data = toy(64, 16);
        let saved = run(&config(0.1), &data, None, 0)
            .unwrap()
            .checkpoints
            .remove(0);
        let mut deeper = config(0.1);
        deeper.depth = 6;
        let resume = Resume {
            checkpoint: saved,
            rows: Vec::new(),
        };
        let e = run(&deeper, &data, Some(resume), 0).err().unwrap();
        assert!(e.to_string().contains("does not fit"), "{e}");
    }

    /// A checkpoint written with 8 batches an epoch, resumed where the training set has
    /// 4 (a smaller dataset directory: not part of the hash). Its epochs would otherwise
    /// run out of iterations and log rows of no step with 0 % training error.
    #[test]
    fn a_checkpoint_from_another_batch_count_is_refused_not_resumed() {
        let cfg = config(0.1);
        let mut first = run(&cfg, &toy(256, 64), None, 0).unwrap();
        let checkpoint = first.checkpoints.remove(0);
        assert_eq!((checkpoint.epoch, checkpoint.iteration), (1, 8));
        let resume = Resume {
            checkpoint,
            rows: vec![first.rows.remove(0)],
        };
        let e = run(&cfg, &toy(128, 64), Some(resume), 0).expect_err("refused");
        let msg = e.to_string();
        assert!(
            msg.contains("iteration 8") && msg.contains("reaches iteration 4"),
            "{msg}"
        );
    }

    #[test]
    fn a_batch_size_that_trains_nothing_is_an_error_not_a_run() {
        let mut cfg = config(0.1);
        cfg.train.batch_size = 1;
        let e = run(&cfg, &toy(64, 16), None, 0).expect_err("no run");
        assert!(e.to_string().contains("too few for one batch"), "{e}");
    }

    #[test]
    fn the_divergence_bound_is_configurable() {
        let data = toy(64, 16);
        let mut cfg = config(0.1);
        cfg.train.max_loss = Some(0.01); // below any first-batch loss
        let diverged = run(&cfg, &data, None, 0).unwrap();
        let reason = diverged.diverged.expect("divergence");
        assert!(
            diverged.rows.is_empty() && reason.contains("epoch 1, batch 1"),
            "{reason}"
        );
    }

    #[test]
    fn a_huge_learning_rate_is_reported_as_divergence() {
        let data = toy(256, 64);
        let mut cfg = config(1e9);
        cfg.family = Family::Plain;
        cfg.zero_init_residual = false;
        let reason = run(&cfg, &data, None, 0)
            .unwrap()
            .diverged
            .expect("divergence");
        assert!(reason.contains("training loss"), "{reason}");
    }
}
