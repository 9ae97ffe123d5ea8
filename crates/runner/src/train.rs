//! One training run, top to bottom: model, optimiser, schedule, epochs, evaluation.

use crate::batches::{epoch_batches, Rows};
use crate::error::TrainError;
use crate::sgd::Sgd;
use candle_core::{DType, Device, Tensor};
use candle_nn::{ModuleT, VarMap};
use experiment::{Family, ModelArch, RunConfig};
use models::{mlp, params, seeded_var_builder, MlpConfig, MlpFamily};
use results::MetricRow;
use std::time::Instant;

/// A training loss above this (chance level on 10 classes is 2.3) means the run has
/// blown up even if it is still finite.
pub const DIVERGENCE_LOSS: f64 = 1e3;
const CLASSES: usize = 10;
const EVAL_CHUNK: usize = 1000;

/// What the trainer reports while it works.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress<'a> {
    /// After each mini-batch: 1-based batch, and the epoch's running training error.
    Batch {
        epoch: usize,
        batch: usize,
        batches: usize,
        train_error: f64,
    },
    /// After each epoch, with its metric row.
    Epoch(&'a MetricRow),
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

pub fn train(
    config: &RunConfig,
    train_rows: &Rows,
    test_rows: &Rows,
    on_progress: &mut dyn FnMut(Progress),
) -> Result<Outcome, TrainError> {
    let device = Device::Cpu;
    let started = Instant::now();
    let varmap = VarMap::new();
    let model = build_model(config, train_rows.dim, &varmap)?;
    let t = &config.train;
    let mut sgd = Sgd::new(params::trainable(&varmap), t.momentum, t.weight_decay);
    let mut rows = Vec::new();
    let mut iteration = 0;

    for epoch in 1..=t.epochs {
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
            if !loss_value.is_finite() || loss_value > DIVERGENCE_LOSS {
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
            wall_s: started.elapsed().as_secs_f64(),
        };
        on_progress(Progress::Epoch(&row));
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
            },
        }
    }

    #[test]
    fn learns_a_toy_problem_and_reports_every_epoch() {
        let (train_rows, test_rows) = (toy_rows(512, 1), toy_rows(256, 2));
        let mut epochs_seen = 0;
        let outcome = train(&config(0.1), &train_rows, &test_rows, &mut |p| {
            if let Progress::Epoch(_) = p {
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
        let run = || match train(&config(0.1), &train_rows, &test_rows, &mut |_| {}).unwrap() {
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

    #[test]
    fn a_huge_learning_rate_is_reported_as_divergence() {
        let (train_rows, test_rows) = (toy_rows(256, 1), toy_rows(64, 2));
        let mut cfg = config(1e9);
        cfg.family = Family::Plain;
        cfg.zero_init_residual = false;
        match train(&cfg, &train_rows, &test_rows, &mut |_| {}).unwrap() {
            Outcome::Diverged { reason, .. } => {
                assert!(reason.contains("training loss"), "{reason}")
            }
            other => panic!("expected divergence, got {other:?}"),
        }
    }
}
