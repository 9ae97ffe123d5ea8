//! The process that trains one run directory. The sweep starts one per run, each with
//! one compute thread (two Candle threads in one run are slower than one here, so the
//! cores are better used by runs side by side), and reads its progress as JSON lines.
//! A crash of one run is then only that run's failure, never the sweep's.

use crate::batches::normalise;
use crate::error::TrainError;
use crate::provenance;
use crate::train::{train, Outcome, Progress};
use experiment::{DatasetName, RunConfig};
use results::{now_utc, write_metrics, MetricRow, RunDir, RunMeta, RunStatus};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// One line of a worker's standard output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum WorkerEvent {
    Started {
        epochs: usize,
        batches: usize,
    },
    Batch {
        epoch: usize,
        batch: usize,
        train_error: f64,
    },
    Epoch {
        epoch: usize,
        train_error: f64,
        test_error: f64,
        wall_s: f64,
    },
    Finished {
        status: RunStatus,
        message: Option<String>,
    },
}

/// How often (in batches) a worker reports batch progress.
const BATCH_EVENT_EVERY: usize = 5;

fn emit(event: &WorkerEvent) {
    let mut out = std::io::stdout().lock();
    // The sweep may have gone away (Ctrl-C); training results are on disk regardless.
    let _ = serde_json::to_writer(&mut out, event);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

/// Trains the run in `run_dir` on the dataset in `data_dir`. Writes `metrics.parquet`
/// after every epoch and `meta.json` at the start and the end; marks the run done only
/// after its last metrics are on disk.
pub fn run_worker(run_dir: &Path, data_dir: &Path) -> Result<RunStatus, TrainError> {
    let dir = RunDir {
        path: run_dir.to_path_buf(),
    };
    let config = dir.read_config()?;
    let (git_commit, git_dirty) = provenance::git_state();
    let mut meta = RunMeta {
        config_hash: config.hash(),
        status: RunStatus::Running,
        git_commit,
        git_dirty,
        host: provenance::host(),
        cpu: provenance::cpu_model(),
        threads: candle_core::utils::get_num_threads(),
        versions: provenance::versions(),
        data_dir: data_dir.display().to_string(),
        started_at: now_utc(),
        ended_at: None,
        wall_s: None,
        error: None,
    };
    dir.write_meta(&meta)?;
    let started = Instant::now();
    let result = train_in_dir(&dir, &config, data_dir);
    meta.ended_at = Some(now_utc());
    meta.wall_s = Some(started.elapsed().as_secs_f64());
    let status = match &result {
        Ok(Outcome::Done(_)) => RunStatus::Done,
        Ok(Outcome::Diverged { reason, .. }) => {
            meta.error = Some(reason.clone());
            RunStatus::Diverged
        }
        Err(e) => {
            meta.error = Some(e.to_string());
            RunStatus::Failed
        }
    };
    meta.status = status;
    dir.write_meta(&meta)?;
    emit(&WorkerEvent::Finished {
        status,
        message: meta.error.clone(),
    });
    result.map(|_| status)
}

fn train_in_dir(dir: &RunDir, config: &RunConfig, data_dir: &Path) -> Result<Outcome, TrainError> {
    let source = match config.dataset {
        DatasetName::FashionMnist => &data::DatasetSource::FASHION_MNIST,
        DatasetName::Mnist => &data::DatasetSource::MNIST,
    };
    let splits = data::load_idx_dir(data_dir, source.classes)?;
    let train_set = match config.train_limit {
        Some(n) => splits.train.truncated(n),
        None => splits.train,
    };
    let test_set = match config.test_limit {
        Some(n) => splits.test.truncated(n),
        None => splits.test,
    };
    let (train_rows, test_rows) = normalise(&train_set, &test_set);
    let batches = crate::batches::batches_per_epoch(train_rows.len(), config.train.batch_size);
    emit(&WorkerEvent::Started {
        epochs: config.train.epochs,
        batches,
    });

    let mut rows: Vec<MetricRow> = Vec::new();
    let mut write_error = None;
    let outcome = train(config, &train_rows, &test_rows, &mut |p| match p {
        Progress::Batch {
            epoch,
            batch,
            batches,
            train_error,
        } => {
            if batch % BATCH_EVENT_EVERY == 0 || batch == batches {
                emit(&WorkerEvent::Batch {
                    epoch,
                    batch,
                    train_error,
                });
            }
        }
        Progress::Epoch(row) => {
            rows.push(row.clone());
            // Persist every finished epoch, so a crash loses at most the epoch in flight.
            if let Err(e) = write_metrics(&dir.metrics_path(), &rows) {
                write_error.get_or_insert(e);
            }
            emit(&WorkerEvent::Epoch {
                epoch: row.epoch as usize,
                train_error: row.train_error,
                test_error: row.test_error,
                wall_s: row.wall_s,
            });
        }
    })?;
    if let Some(e) = write_error {
        return Err(e.into());
    }
    Ok(outcome)
}
