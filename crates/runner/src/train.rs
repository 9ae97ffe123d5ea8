//! One training run, top to bottom: model, optimiser, schedule, epochs, evaluation.

use crate::batches::{epoch_batches, Rows};
use crate::checkpoint::Checkpoint;
use crate::error::TrainError;
use crate::sgd::Sgd;
use candle_core::{DType, Device, Tensor};
use candle_nn::{ModuleT, VarMap};
use experiment::{Family, ModelArch, RunConfig};
use models::{mlp, params, seeded_var_builder, MlpConfig, MlpFamily};
use results::MetricRow;
use std::time::Instant;

/// A training loss above this (chance level on 10 classes is 2.3) means the run has
/// blown up even if it is still finite; `train.max_loss` overrides it.
pub const DIVERGENCE_LOSS: f64 = 1e3;
const CLASSES: usize = 10;
const EVAL_CHUNK: usize = 1000;

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
    epoch: usize,
    iteration: usize,
}

impl EpochState<'_> {
    /// A deep copy of the state (the live tensors keep changing as training goes on).
    pub fn checkpoint(&self) -> candle_core::Result<Checkpoint> {
        let vars = self.varmap.data().lock().expect("varmap lock poisoned");
        let model = vars
            .iter()
            .map(|(name, var)| Ok((name.clone(), var.as_tensor().copy()?)))
            .collect::<candle_core::Result<_>>()?;
        let momentum = self
            .sgd
            .buffers()
            .into_iter()
            .map(|(name, b)| Ok((name, b.copy()?)))
            .collect::<candle_core::Result<_>>()?;
        Ok(Checkpoint {
            epoch: self.epoch,
            iteration: self.iteration,
            model,
            momentum,
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
    inputs: usize,
    varmap: &VarMap,
) -> Result<impl ModuleT, TrainError> {
    match config.arch {
        ModelArch::Mlp => {
            let cfg = MlpConfig {
                family: match config.family {
                    Family::Plain => MlpFamily::Plain,
                    Family::Residual => MlpFamily::Residual,
                },
                depth: config.depth,
                width: config.width,
                inputs,
                classes: CLASSES,
                zero_init_residual: config.zero_init_residual,
            };
            Ok(mlp(
                &cfg,
                seeded_var_builder(varmap, config.seed, &Device::Cpu),
            )?)
        }
    }
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
        var.set(saved)?;
    }
    sgd.restore_buffers(&checkpoint.momentum)?;
    Ok(())
}

/// Trains `config` from scratch, or from `resume`; the metrics of a resumed run are
/// identical to an uninterrupted one's (wall times aside): weights, BatchNorm statistics
/// and momentum come from the checkpoint, and the batch order and learning rate depend
/// only on the seed, the epoch and the iteration.
pub fn train(
    config: &RunConfig,
    train_rows: &Rows,
    test_rows: &Rows,
    resume: Option<Resume>,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<Outcome, TrainError> {
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let model = build_model(config, train_rows.dim, &varmap)?;
    let t = &config.train;
    let mut sgd = Sgd::new(params::trainable(&varmap), t.momentum, t.weight_decay);
    let (mut rows, first_epoch, mut iteration) = match resume {
        Some(Resume { checkpoint, rows }) => {
            restore(&varmap, &mut sgd, &checkpoint)?;
            (rows, checkpoint.epoch + 1, checkpoint.iteration)
        }
        None => (Vec::new(), 1, 0),
    };
    // Wall time continues from where the interrupted run stopped.
    let wall_before = rows.last().map_or(0.0, |r: &MetricRow| r.wall_s);
    let started = Instant::now();

    for epoch in first_epoch..=t.epochs {
        let batches = epoch_batches(train_rows.len(), t.batch_size, config.seed, epoch);
        if batches.is_empty() {
            return Err(TrainError::Config(format!(
                "{}: the training set has {} examples, too few for one batch",
                config.label(),
                train_rows.len()
            )));
        }
        let epoch_lr = config.lr_at(iteration, batches.len());
        let (mut seen, mut wrong, mut loss_sum) = (0usize, 0f64, 0f64);
        for (b, indices) in batches.iter().enumerate() {
            let lr = config.lr_at(iteration, batches.len());
            let (xs, ys) = train_rows.batch(indices, &device)?;
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
            sgd.step(&grads, lr)?;
            iteration += 1;

            seen += indices.len();
            wrong += count_wrong(&logits, &ys)?;
            loss_sum += loss_value * indices.len() as f64;
            on_progress(Progress::Batch {
                epoch,
                batch: b + 1,
                batches: batches.len(),
                train_error: wrong / seen as f64,
            });
        }
        let (test_error, test_loss) = evaluate(&model, test_rows, &device)?;
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
        };
        on_progress(Progress::Epoch {
            row: &row,
            state: EpochState {
                varmap: &varmap,
                sgd: &sgd,
                epoch,
                iteration,
            },
        });
        rows.push(row);
    }
    Ok(Outcome::Done(rows))
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
        let (xs, ys) = rows.batch(chunk, device)?;
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
    use experiment::{DatasetName, Schedule, TrainConfig};

    /// A learnable toy problem: the label is which of 4 features is largest.
    fn toy_rows(n: usize, seed: u64) -> Rows {
        let mut rng = models::rng::SeededRng::new(seed);
        let mut features = Vec::new();
        let mut labels = Vec::new();
        for _ in 0..n {
            let x: Vec<f32> = (0..4).map(|_| rng.normal() as f32).collect();
            let arg = (0..4).max_by(|&a, &b| x[a].total_cmp(&x[b])).unwrap();
            features.extend(x);
            labels.push(arg as u32);
        }
        Rows {
            features,
            labels,
            dim: 4,
        }
    }

    fn config(lr: f64) -> RunConfig {
        RunConfig {
            experiment: "toy".into(),
            dataset: DatasetName::FashionMnist,
            train_limit: None,
            test_limit: None,
            arch: ModelArch::Mlp,
            family: Family::Residual,
            depth: 4,
            width: 16,
            zero_init_residual: true,
            seed: 5,
            train: TrainConfig {
                epochs: 3,
                batch_size: 32,
                lr,
                momentum: 0.9,
                weight_decay: 1e-4,
                schedule: Schedule::Cosine,
                max_loss: None,
            },
        }
    }

    #[test]
    fn learns_a_toy_problem_and_reports_every_epoch() {
        let (train_rows, test_rows) = (toy_rows(512, 1), toy_rows(256, 2));
        let mut epochs_seen = 0;
        let outcome = train(&config(0.1), &train_rows, &test_rows, None, &mut |p| {
            if let Progress::Epoch { .. } = p {
                epochs_seen += 1
            }
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
        let (train_rows, test_rows) = (toy_rows(256, 1), toy_rows(64, 2));
        let run = || match train(&config(0.1), &train_rows, &test_rows, None, &mut |_| {}).unwrap()
        {
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

    #[test]
    fn resuming_from_any_epoch_gives_the_uninterrupted_metrics() {
        let (train_rows, test_rows) = (toy_rows(256, 1), toy_rows(64, 2));
        let cfg = config(0.1);
        let mut checkpoints = Vec::new();
        let straight = match train(&cfg, &train_rows, &test_rows, None, &mut |p| {
            if let Progress::Epoch { row, state } = p {
                checkpoints.push((row.clone(), state.checkpoint().unwrap()));
            }
        })
        .unwrap()
        {
            Outcome::Done(rows) => rows,
            other => panic!("{other:?}"),
        };
        for stop in 1..cfg.train.epochs {
            // Round-trip the checkpoint through its file, as a killed worker would.
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("checkpoint.safetensors");
            checkpoints[stop - 1].1.save(&path).unwrap();
            let resume = Resume {
                checkpoint: Checkpoint::load(&path).unwrap(),
                rows: checkpoints[..stop].iter().map(|(r, _)| r.clone()).collect(),
            };
            let resumed =
                match train(&cfg, &train_rows, &test_rows, Some(resume), &mut |_| {}).unwrap() {
                    Outcome::Done(rows) => rows,
                    other => panic!("{other:?}"),
                };
            assert_eq!(
                without_wall_time(&resumed),
                without_wall_time(&straight),
                "stopped after epoch {stop}"
            );
        }
    }

    #[test]
    fn a_checkpoint_of_another_model_is_rejected() {
        let (train_rows, test_rows) = (toy_rows(64, 1), toy_rows(16, 2));
        let mut saved = None;
        train(&config(0.1), &train_rows, &test_rows, None, &mut |p| {
            if let Progress::Epoch { state, .. } = p {
                saved.get_or_insert(state.checkpoint().unwrap());
            }
        })
        .unwrap();
        let mut deeper = config(0.1);
        deeper.depth = 6;
        let resume = Resume {
            checkpoint: saved.unwrap(),
            rows: Vec::new(),
        };
        let e = train(&deeper, &train_rows, &test_rows, Some(resume), &mut |_| {})
            .err()
            .unwrap();
        assert!(e.to_string().contains("does not fit"), "{e}");
    }

    #[test]
    fn the_divergence_bound_is_configurable() {
        let (train_rows, test_rows) = (toy_rows(64, 1), toy_rows(16, 2));
        let mut cfg = config(0.1);
        cfg.train.max_loss = Some(0.01); // below any first-batch loss
        match train(&cfg, &train_rows, &test_rows, None, &mut |_| {}).unwrap() {
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
        let (train_rows, test_rows) = (toy_rows(256, 1), toy_rows(64, 2));
        let mut cfg = config(1e9);
        cfg.family = Family::Plain;
        cfg.zero_init_residual = false;
        match train(&cfg, &train_rows, &test_rows, None, &mut |_| {}).unwrap() {
            Outcome::Diverged { reason, .. } => {
                assert!(reason.contains("training loss"), "{reason}")
            }
            other => panic!("expected divergence, got {other:?}"),
        }
    }
}
