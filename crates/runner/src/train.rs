//! One training run, top to bottom: model, optimiser, schedule, epochs, evaluation.

use crate::batches::{batches_per_epoch, epoch_batches, Rows};
use crate::checkpoint::Checkpoint;
use crate::error::TrainError;
use crate::sgd::Sgd;
use crate::warmup::WarmupState;
use candle_core::{DType, Device, Tensor};
use candle_nn::{ModuleT, VarMap};
use experiment::RunConfig;
use models::rng::SeededRng;
use models::{params, seeded_var_builder, Network};
use results::MetricRow;
use std::time::Instant;

/// A training loss above this (chance level on 10 classes is 2.3) means the run has
/// blown up even if it is still finite; `train.max_loss` overrides it.
pub const DIVERGENCE_LOSS: f64 = 1e3;
const EVAL_CHUNK: usize = 1000;

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

/// The training state at the end of an epoch, for checkpointing.
pub struct EpochState<'a> {
    varmap: &'a VarMap,
    sgd: &'a Sgd,
    warmup: &'a WarmupState,
    epoch: usize,
    iteration: usize,
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

impl EpochState<'_> {
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
}

/// What the trainer reports while it works.
pub enum Progress<'a> {
    /// After each mini-batch: 1-based batch, and the epoch's running training error.
    Batch {
        epoch: usize,
        batch: usize,
        batches: usize,
        train_error: f64,
    },
    /// After each epoch, with its metric row and the state to checkpoint.
    Epoch {
        row: &'a MetricRow,
        state: EpochState<'a>,
    },
    /// Each weighted layer's gradient norm (path, norm), before the step of `iteration`
    /// (0: at initialisation), every `gradient_every` iterations.
    Gradients {
        iteration: usize,
        norms: Vec<(String, f64)>,
    },
    /// Training is over: the trained network, for measurements after training.
    Trained { network: &'a Network },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done(Vec<MetricRow>),
    /// The loss became NaN, infinite or larger than `DIVERGENCE_LOSS`; the rows of the
    /// epochs that finished before are kept.
    Diverged {
        rows: Vec<MetricRow>,
        reason: String,
    },
}

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
fn restore(varmap: &VarMap, sgd: &mut Sgd, checkpoint: &Checkpoint) -> Result<(), TrainError> {
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

/// Trains `config` from scratch, or from `resume`; on the CPU the metrics of a resumed
/// run are identical to an uninterrupted one's (wall times aside; GPU kernels need not
/// be deterministic): weights, BatchNorm statistics,
/// momentum and the warm-up's state come from the checkpoint, and the batch order,
/// augmentation and learning rate depend only on the seed, the epoch and the iteration.
///
/// The run lasts `train.epochs` epochs or `train.iterations` steps; an iteration-based
/// run ends inside its last epoch, which is then evaluated and logged like the others.
///
/// With `gradient_every` > 0, reports each weighted layer's gradient norm every that many
/// iterations (`Progress::Gradients`); it reads the gradients the step uses anyway.
/// An error from `on_progress` (a result that could not be written) ends the run there.
pub fn train(
    config: &RunConfig,
    data: &Datasets,
    device: &Device,
    resume: Option<Resume>,
    gradient_every: usize,
    on_progress: &mut dyn FnMut(Progress) -> Result<(), TrainError>,
) -> Result<Outcome, TrainError> {
    let varmap = VarMap::new();
    let net = config.net(data.train.shape);
    let model = models::build(&net, seeded_var_builder(&varmap, config.seed, device))?;
    let layers = if gradient_every > 0 {
        crate::gradient_flow::layer_weights(&net, &varmap)?
    } else {
        Vec::new()
    };
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
    let total_iterations = t.total_iterations(per_epoch);
    let mut sgd = Sgd::new(params::trainable(&varmap), t.momentum, t.weight_decay);
    let mut warmup = WarmupState::new(t.warmup.clone());
    let (mut rows, first_epoch, mut iteration) = match resume {
        Some(Resume { checkpoint, rows }) => {
            restore(&varmap, &mut sgd, &checkpoint).map_err(|e| match e {
                TrainError::Config(why) => TrainError::Config(format!("{}: {why}", config.label())),
                other => other,
            })?;
            if t.warmup.is_some() {
                warmup = WarmupState::from_record(t.warmup.clone(), &checkpoint.warmup)
                    .ok_or_else(|| {
                        TrainError::Config(format!(
                            "{}: the checkpoint's warm-up record {:?} is not valid (delete the checkpoint to train this run again from the start)",
                            config.label(),
                            checkpoint.warmup
                        ))
                    })?;
            }
            check_resume_point(config, &checkpoint, &rows, per_epoch)?;
            (rows, checkpoint.epoch + 1, checkpoint.iteration)
        }
        None => (Vec::new(), 1, 0),
    };
    // Wall time continues from where the interrupted run stopped.
    let wall_before = rows.last().map_or(0.0, |r: &MetricRow| r.wall_s);
    let started = Instant::now();
    let lr_at = |warmup: &WarmupState, iteration: usize| {
        warmup
            .lr(iteration)
            .unwrap_or_else(|| config.lr_at(iteration, per_epoch))
    };

    for epoch in first_epoch..=t.epochs_to_run(per_epoch) {
        let mut batches = epoch_batches(data.train.len(), t.batch_size, config.seed, epoch);
        batches.truncate(total_iterations.saturating_sub(iteration));
        // A metric row stands for steps taken: an epoch without one has nothing to report.
        if batches.is_empty() {
            return Err(TrainError::Config(format!(
                "{}: epoch {epoch} has no batch to train ({} examples, batch size {}, {iteration} of {total_iterations} iterations done)",
                config.label(),
                data.train.len(),
                t.batch_size
            )));
        }
        let mut augment_rng = SeededRng::for_stream(config.seed, &format!("augment/epoch-{epoch}"));
        let epoch_lr = lr_at(&warmup, iteration);
        let (mut seen, mut wrong, mut loss_sum) = (0usize, 0f64, 0f64);
        for (b, indices) in batches.iter().enumerate() {
            let lr = lr_at(&warmup, iteration);
            let augment = config.augment.as_ref().map(|a| (a, &mut augment_rng));
            let (xs, ys) = data.train.batch(indices, device, augment)?;
            let logits = model.forward_t(&xs, true)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &ys)?;
            let loss_value = f64::from(loss.to_scalar::<f32>()?);
            if !loss_value.is_finite() || loss_value > t.max_loss.unwrap_or(DIVERGENCE_LOSS) {
                let reason = format!(
                    "training loss {loss_value} at epoch {epoch}, batch {} (lr {lr:.4})",
                    b + 1
                );
                return Ok(Outcome::Diverged { rows, reason });
            }
            let grads = loss.backward()?;
            if gradient_every > 0 && iteration.is_multiple_of(gradient_every) {
                let norms = crate::gradient_flow::gradient_norms(&grads, &layers)?;
                on_progress(Progress::Gradients {
                    iteration,
                    norms: layers.iter().map(|(n, _)| n.clone()).zip(norms).collect(),
                })?;
            }
            sgd.step(&grads, lr)?;

            let batch_wrong = count_wrong(&logits, &ys)?;
            warmup.observe(iteration, batch_wrong / indices.len() as f64);
            iteration += 1;
            seen += indices.len();
            wrong += batch_wrong;
            loss_sum += loss_value * indices.len() as f64;
            on_progress(Progress::Batch {
                epoch,
                batch: b + 1,
                batches: batches.len(),
                train_error: wrong / seen as f64,
            })?;
        }
        let (test_error, test_loss) = evaluate(&model, &data.test, device)?;
        let validation = data
            .validation
            .as_ref()
            .map(|v| evaluate(&model, v, device))
            .transpose()?;
        let row = MetricRow {
            experiment: config.experiment.clone(),
            family: config.family.to_string(),
            depth: config.depth as u32,
            seed: config.seed,
            config_hash: config.hash(),
            epoch: epoch as u32,
            train_error: wrong / seen as f64,
            train_loss: loss_sum / seen as f64,
            test_error,
            test_loss,
            lr: epoch_lr,
            wall_s: wall_before + started.elapsed().as_secs_f64(),
            iteration: Some(iteration as u64),
            val_error: validation.map(|v| v.0),
            val_loss: validation.map(|v| v.1),
        };
        on_progress(Progress::Epoch {
            row: &row,
            state: EpochState {
                varmap: &varmap,
                sgd: &sgd,
                warmup: &warmup,
                epoch,
                iteration,
            },
        })?;
        rows.push(row);
    }
    on_progress(Progress::Trained { network: &model })?;
    Ok(Outcome::Done(rows))
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

fn count_wrong(logits: &Tensor, labels: &Tensor) -> candle_core::Result<f64> {
    let predicted = logits.argmax(1)?;
    let wrong = predicted.ne(labels)?.to_dtype(DType::F32)?.sum_all()?;
    Ok(f64::from(wrong.to_scalar::<f32>()?))
}

/// Error rate and mean loss over `rows`, BatchNorm in evaluation mode.
pub fn evaluate(
    model: &impl ModuleT,
    rows: &Rows,
    device: &Device,
) -> candle_core::Result<(f64, f64)> {
    let (mut wrong, mut loss_sum) = (0f64, 0f64);
    let all: Vec<usize> = (0..rows.len()).collect();
    for chunk in all.chunks(EVAL_CHUNK) {
        let (xs, ys) = rows.batch(chunk, device, None)?;
        let logits = model.forward_t(&xs, false)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &ys)?;
        loss_sum += f64::from(loss.to_scalar::<f32>()?) * chunk.len() as f64;
        wrong += count_wrong(&logits, &ys)?;
    }
    let n = rows.len().max(1) as f64;
    Ok((wrong / n, loss_sum / n))
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

    #[test]
    fn learns_a_toy_problem_and_reports_every_epoch() {
        let data = toy(512, 256);
        let mut epochs_seen = 0;
        let outcome = train(&config(0.1), &data, &Device::Cpu, None, 0, &mut |p| {
            if let Progress::Epoch { .. } = p {
                epochs_seen += 1
            }
            Ok(())
        })
        .unwrap();
        let Outcome::Done(rows) = outcome else {
            panic!("diverged: {outcome:?}")
        };
        assert_eq!(epochs_seen, 3);
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
        let run =
            || match train(&config(0.1), &data, &Device::Cpu, None, 0, &mut |_| Ok(())).unwrap() {
                Outcome::Done(rows) => rows
                    .into_iter()
                    .map(|r| {
                        (
                            r.train_error.to_bits(),
                            r.train_loss.to_bits(),
                            r.test_loss.to_bits(),
                        )
                    })
                    .collect::<Vec<_>>(),
                other => panic!("{other:?}"),
            };
        assert_eq!(run(), run());
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
        let mut checkpoints = Vec::new();
        let straight = match train(cfg, data, &Device::Cpu, None, 0, &mut |p| {
            if let Progress::Epoch { row, state } = p {
                checkpoints.push((row.clone(), state.checkpoint().unwrap()));
            }
            Ok(())
        })
        .unwrap()
        {
            Outcome::Done(rows) => rows,
            other => panic!("{other:?}"),
        };
        for stop in 1..straight.len() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("checkpoint.safetensors");
            checkpoints[stop - 1].1.save(&path).unwrap();
            let resume = Resume {
                checkpoint: Checkpoint::load(&path).unwrap(),
                rows: checkpoints[..stop].iter().map(|(r, _)| r.clone()).collect(),
            };
            let resumed =
                match train(cfg, data, &Device::Cpu, Some(resume), 0, &mut |_| Ok(())).unwrap() {
                    Outcome::Done(rows) => rows,
                    other => panic!("{other:?}"),
                };
            assert_eq!(
                without_wall_time(&resumed),
                without_wall_time(&straight),
                "stopped after epoch {stop}"
            );
        }
        straight
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
        let Outcome::Done(other_rows) =
            train(&other, &data, &Device::Cpu, None, 0, &mut |_| Ok(())).unwrap()
        else {
            panic!()
        };
        assert_ne!(without_wall_time(&other_rows), without_wall_time(&rows));
    }

    #[test]
    fn gradient_norms_are_reported_every_k_iterations_without_changing_the_run() {
        let data = toy(256, 64);
        let mut logged = Vec::new();
        let with = train(&config(0.1), &data, &Device::Cpu, None, 10, &mut |p| {
            if let Progress::Gradients { iteration, norms } = p {
                assert_eq!(norms.len(), 4, "input, two block layers, classifier");
                // The toy net is zero-initialised: its block gets no gradient at first.
                assert!(norms.iter().all(|(_, n)| n.is_finite() && *n >= 0.0));
                assert!(iteration == 0 || norms.iter().all(|(_, n)| *n > 0.0));
                logged.push(iteration);
            }
            Ok(())
        })
        .unwrap();
        // 8 iterations per epoch, 3 epochs: 0, 10, 20.
        assert_eq!(logged, [0, 10, 20]);
        let without = train(&config(0.1), &data, &Device::Cpu, None, 0, &mut |_| Ok(())).unwrap();
        match (with, without) {
            (Outcome::Done(a), Outcome::Done(b)) => {
                assert_eq!(without_wall_time(&a), without_wall_time(&b))
            }
            other => panic!("{other:?}"),
        }
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
        let mut saved = None;
        train(&config(0.1), &data, &Device::Cpu, None, 0, &mut |p| {
            if let Progress::Epoch { state, .. } = p {
                saved.get_or_insert(state.checkpoint().unwrap());
            }
            Ok(())
        })
        .unwrap();
        let mut deeper = config(0.1);
        deeper.depth = 6;
        let resume = Resume {
            checkpoint: saved.unwrap(),
            rows: Vec::new(),
        };
        let e = train(&deeper, &data, &Device::Cpu, Some(resume), 0, &mut |_| {
            Ok(())
        })
        .err()
        .unwrap();
        assert!(e.to_string().contains("does not fit"), "{e}");
    }

    /// A checkpoint written with 8 batches an epoch, resumed where the training set has
    /// 4 (a smaller dataset directory: not part of the hash). Its epochs would otherwise
    /// run out of iterations and log rows of no step with 0 % training error.
    #[test]
    fn a_checkpoint_from_another_batch_count_is_refused_not_resumed() {
        let cfg = config(0.1);
        let mut saved = None;
        train(&cfg, &toy(256, 64), &Device::Cpu, None, 0, &mut |p| {
            if let Progress::Epoch { row, state } = p {
                saved.get_or_insert((row.clone(), state.checkpoint().unwrap()));
            }
            Ok(())
        })
        .unwrap();
        let (row, checkpoint) = saved.unwrap();
        assert_eq!((checkpoint.epoch, checkpoint.iteration), (1, 8));
        let resume = Resume {
            checkpoint,
            rows: vec![row],
        };
        let e = train(
            &cfg,
            &toy(128, 64),
            &Device::Cpu,
            Some(resume),
            0,
            &mut |_| Ok(()),
        )
        .expect_err("refused");
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
        let e =
            train(&cfg, &toy(64, 16), &Device::Cpu, None, 0, &mut |_| Ok(())).expect_err("no run");
        assert!(e.to_string().contains("too few for one batch"), "{e}");
    }

    /// A report that cannot be kept (a metrics or checkpoint write that failed) stops
    /// the run there: no epoch is trained that could not be saved.
    #[test]
    fn an_error_while_reporting_an_epoch_stops_training_at_once() {
        let mut epochs = 0;
        let e = train(
            &config(0.1),
            &toy(256, 64),
            &Device::Cpu,
            None,
            0,
            &mut |p| {
                if let Progress::Epoch { .. } = p {
                    epochs += 1;
                    return Err(TrainError::Config("disk full".into()));
                }
                Ok(())
            },
        )
        .expect_err("the error comes back");
        assert_eq!(
            (epochs, e.to_string().contains("disk full")),
            (1, true),
            "{e}"
        );
    }

    #[test]
    fn the_divergence_bound_is_configurable() {
        let data = toy(64, 16);
        let mut cfg = config(0.1);
        cfg.train.max_loss = Some(0.01); // below any first-batch loss
        match train(&cfg, &data, &Device::Cpu, None, 0, &mut |_| Ok(())).unwrap() {
            Outcome::Diverged { rows, reason } => {
                assert!(
                    rows.is_empty() && reason.contains("epoch 1, batch 1"),
                    "{reason}"
                )
            }
            other => panic!("expected divergence, got {other:?}"),
        }
    }

    #[test]
    fn a_huge_learning_rate_is_reported_as_divergence() {
        let data = toy(256, 64);
        let mut cfg = config(1e9);
        cfg.family = Family::Plain;
        cfg.zero_init_residual = false;
        match train(&cfg, &data, &Device::Cpu, None, 0, &mut |_| Ok(())).unwrap() {
            Outcome::Diverged { reason, .. } => {
                assert!(reason.contains("training loss"), "{reason}")
            }
            other => panic!("expected divergence, got {other:?}"),
        }
    }
}
