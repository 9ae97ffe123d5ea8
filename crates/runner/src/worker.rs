//! The process that trains one run directory. The sweep starts one per run, each with
//! one compute thread (two Candle threads in one run are slower than one here, so the
//! cores are better used by runs side by side), and reads its progress as JSON lines.
//! A crash of one run is then only that run's failure, never the sweep's.

use crate::batches::Standardiser;
use crate::checkpoint::Checkpoint;
use crate::error::TrainError;
use crate::provenance;
use crate::train::{Datasets, EpochEnd, Resume, Trainer};
use candle_core::Device;
use experiment::{ComputeDevice, Diagnostics, RunConfig};
use results::{
    now_utc, read_gradients, read_metrics, write_gradients, write_lesion, write_metrics,
    write_responses, GradientRow, MetricRow, ResumedFrom, RunDir, RunKey, RunMeta, RunStatus,
};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use std::time::Instant;

/// One line of a worker's standard output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum WorkerEvent {
    /// `resumed_after`: the epoch of the checkpoint it resumed from (0: from scratch);
    /// `resumed_from_build`: that checkpoint's build, where it is not this one.
    Started {
        epochs: usize,
        batches: usize,
        resumed_after: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resumed_from_build: Option<String>,
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

/// Trains the run in `run_dir` on the dataset in `data_dir`, resuming from its
/// checkpoint if an earlier worker was interrupted. Holds the run's lock throughout.
/// After every epoch writes `metrics.parquet`, then the checkpoint; writes `meta.json` at
/// the start and the end, and marks the run done only after its last metrics are on disk.
/// If another live process holds the run, reports that and returns `Running`. With
/// `keep_final_weights`, a done run's last checkpoint stays as `final.safetensors`.
/// With `diagnostics`, also writes `gradients.parquet` (with the metrics, every epoch)
/// and, after training, `responses.parquet` and `lesion.parquet`, all before the run is
/// marked done.
pub fn run_worker(
    run_dir: &Path,
    data_dir: &Path,
    device: ComputeDevice,
    keep_final_weights: bool,
    diagnostics: &Diagnostics,
) -> Result<RunStatus, TrainError> {
    let dir = RunDir {
        path: run_dir.to_path_buf(),
    };
    let host = provenance::host();
    let _lock = match dir.try_lock(&host)? {
        Ok(lock) => lock,
        Err(holder) => {
            emit(&WorkerEvent::Finished {
                status: RunStatus::Running,
                message: Some(format!("being trained by {holder}")),
            });
            return Ok(RunStatus::Running);
        }
    };
    dir.remove_stale_temporaries();
    if let Some(why) = dir.meta_problem() {
        // Nothing is written: the file may be a finished run's, for the user to restore.
        emit(&WorkerEvent::Finished {
            status: RunStatus::Failed,
            message: Some(why.clone()),
        });
        return Err(TrainError::Config(why));
    }
    if dir.state().is_finished() {
        // Another sweep finished it between our plan and our lock.
        emit(&WorkerEvent::Finished {
            status: RunStatus::Running,
            message: Some("already finished by another process".into()),
        });
        return Ok(RunStatus::Running);
    }
    let config = dir.read_config()?;
    // A run resumed once from another build's checkpoint and interrupted again keeps
    // that record: its next checkpoint is this build's, but its first epochs are not.
    let resumed_before = dir.read_meta().ok().and_then(|m| m.resumed_from);
    let build = provenance::build();
    let mut meta = RunMeta {
        config_hash: config.hash(),
        status: RunStatus::Running,
        git_commit: build.commit.clone(),
        git_dirty: build.dirty,
        host,
        cpu: provenance::cpu_model(),
        threads: candle_core::utils::get_num_threads(),
        device: Some(device.to_string()),
        versions: provenance::versions(),
        data_dir: data_dir.display().to_string(),
        started_at: now_utc(),
        ended_at: None,
        wall_s: None,
        error: None,
        build: Some(build),
        resumed_from: resumed_before,
    };
    dir.write_meta(&meta)?;
    let started = Instant::now();
    let result = open_device(device)
        .and_then(|d| train_in_dir(&dir, &config, data_dir, &d, diagnostics, &mut meta))
        .and_then(|outcome| {
            // A done run's last checkpoint is its final weights: in place before the run
            // is marked done, so that a done run of such an experiment always has them.
            if matches!(outcome, Outcome::Done) && keep_final_weights {
                let io = |source| results::ResultsError::Io {
                    path: dir.path.join("final.safetensors"),
                    source,
                };
                std::fs::rename(dir.checkpoint_path(), dir.path.join("final.safetensors"))
                    .map_err(io)?;
                results::sync_dir(&dir.path).map_err(io)?;
            }
            Ok(outcome)
        });
    meta.ended_at = Some(now_utc());
    meta.wall_s = Some(started.elapsed().as_secs_f64());
    let status = match &result {
        Ok(Outcome::Done) => RunStatus::Done,
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
    // Finished: the checkpoint has served its purpose.
    if matches!(status, RunStatus::Done | RunStatus::Diverged) {
        let _ = std::fs::remove_file(dir.checkpoint_path());
    }
    emit(&WorkerEvent::Finished {
        status,
        message: meta.error.clone(),
    });
    result.map(|_| status)
}

/// How training a run directory ended.
enum Outcome {
    Done,
    /// The metrics of the epochs before it are kept.
    Diverged {
        reason: String,
    },
}

fn train_in_dir(
    dir: &RunDir,
    config: &RunConfig,
    data_dir: &Path,
    device: &Device,
    diagnostics: &Diagnostics,
    meta: &mut RunMeta,
) -> Result<Outcome, TrainError> {
    let data = load_datasets(config, data_dir)?;
    let batches = crate::batches::batches_per_epoch(data.train.len(), config.train.batch_size);
    let resume = resume_point(dir)?;
    // A checkpoint of another build resumes (it is real training, and may be hours of
    // it), but the run then says so: in its meta, for the report and `plan`, and here.
    let other_build = resume.as_ref().and_then(|r| {
        (r.checkpoint.build != meta.build).then(|| ResumedFrom {
            epoch: r.checkpoint.epoch,
            build: r.checkpoint.build.clone(),
        })
    });
    // From scratch, nothing came from another build; resumed, the earliest record holds.
    let resumed_from = match &resume {
        None => None,
        Some(_) => meta.resumed_from.clone().or(other_build.clone()),
    };
    if resumed_from != meta.resumed_from {
        meta.resumed_from = resumed_from;
        dir.write_meta(meta)?;
    }
    emit(&WorkerEvent::Started {
        epochs: config.train.epochs_to_run(batches),
        batches,
        resumed_after: resume.as_ref().map_or(0, |r| r.checkpoint.epoch),
        resumed_from_build: other_build.map(|from| {
            from.build
                .map_or("a build that did not record itself".into(), |b| {
                    b.to_string()
                })
        }),
    });

    let mut rows: Vec<MetricRow> = resume.as_ref().map(|r| r.rows.clone()).unwrap_or_default();
    let key = RunKey {
        experiment: config.experiment.clone(),
        family: config.family.to_string(),
        depth: config.depth as u32,
        seed: config.seed,
        config_hash: config.hash(),
    };
    // Gradient rows of the part already trained (a resumed run logs the rest).
    let mut gradients: Vec<GradientRow> = match &resume {
        Some(r) if dir.gradients_path().exists() => read_gradients(&dir.gradients_path())?
            .into_iter()
            .filter(|g| g.iteration < r.checkpoint.iteration as u64)
            .collect(),
        _ => Vec::new(),
    };
    let mut trainer = Trainer::new(
        config,
        &data,
        device,
        resume.as_ref(),
        diagnostics.gradient_every,
    )?;
    for _ in trainer.remaining_epochs() {
        let epoch = trainer.run_epoch(&mut |b| {
            if b.batch % BATCH_EVENT_EVERY == 0 || b.batch == b.batches {
                emit(&WorkerEvent::Batch {
                    epoch: b.epoch,
                    batch: b.batch,
                    train_error: b.train_error,
                });
            }
        })?;
        gradients.extend(epoch.gradients.into_iter().flat_map(|g| {
            g.norms
                .into_iter()
                .enumerate()
                .map(move |(i, (name, norm))| GradientRow {
                    iteration: g.iteration as u64,
                    layer: i as u32 + 1,
                    name,
                    grad_norm: norm,
                })
        }));
        let row = match epoch.end {
            EpochEnd::Trained(row) => row,
            EpochEnd::Diverged(reason) => return Ok(Outcome::Diverged { reason }),
        };
        // Every finished epoch is on disk before the next starts, so a crash loses at
        // most the epoch in flight: metrics first, then the checkpoint, so that a
        // checkpoint never runs ahead of them.
        rows.push(row.clone());
        write_metrics(&dir.metrics_path(), &rows)?;
        if !gradients.is_empty() {
            write_gradients(&dir.gradients_path(), &key, &gradients)?;
        }
        trainer
            .checkpoint()?
            .save(&dir.checkpoint_path())
            .map_err(|e| TrainError::Config(e.to_string()))?;
        emit(&WorkerEvent::Epoch {
            epoch: row.epoch as usize,
            train_error: row.train_error,
            test_error: row.test_error,
            wall_s: row.wall_s,
        });
    }
    after_training(dir, &key, trainer.network(), &data, device, diagnostics)?;
    Ok(Outcome::Done)
}

/// The Candle device for a choice; CUDA needs a build with the `cuda` feature.
pub fn open_device(device: ComputeDevice) -> Result<Device, TrainError> {
    match device {
        ComputeDevice::Cpu => Ok(Device::Cpu),
        ComputeDevice::Cuda(ordinal) => Device::new_cuda(ordinal).map_err(|e| {
            TrainError::Config(format!(
                "cannot open {device}: {e}{}",
                if cfg!(feature = "cuda") {
                    ""
                } else {
                    " (this build has no CUDA support: rebuild with `--features cuda`)"
                }
            ))
        }),
    }
}

/// The measurements taken of the trained network, written before the run is done.
fn after_training(
    dir: &RunDir,
    key: &RunKey,
    network: &models::Network,
    data: &Datasets,
    device: &Device,
    diagnostics: &Diagnostics,
) -> Result<(), TrainError> {
    if diagnostics.responses {
        let rows = crate::diagnostics::responses(network, &data.test, device)?;
        write_responses(&dir.responses_path(), key, &rows)?;
    }
    if diagnostics.lesion && diagnostics.lesion_images > 0 {
        let rows =
            crate::diagnostics::lesion(network, &data.test, diagnostics.lesion_images, device)?;
        write_lesion(&dir.lesion_path(), key, &rows)?;
    }
    Ok(())
}

/// The run's data: the dataset's files, the validation split held out of the training
/// file, the limits, then normalisation with the training images' statistics.
pub fn load_datasets(config: &RunConfig, data_dir: &Path) -> Result<Datasets, TrainError> {
    let source = data::DatasetSource::named(config.dataset.as_str())
        .ok_or_else(|| TrainError::Config(format!("unknown dataset {}", config.dataset)))?;
    let splits = source.load(data_dir)?;
    let (train_set, validation_set) = match config.validation {
        Some(n) => {
            let available = splits.train.len;
            let (train, validation) = splits.train.split_off_last(n).ok_or_else(|| {
                TrainError::Config(format!(
                    "{}: dataset.validation holds out {n} images, but {} has only {available} training images",
                    config.label(),
                    data_dir.display()
                ))
            })?;
            (train, Some(validation))
        }
        None => (splits.train, None),
    };
    let train_set = match config.train_limit {
        Some(n) => train_set.truncated(n),
        None => train_set,
    };
    let test_set = match config.test_limit {
        Some(n) => splits.test.truncated(n),
        None => splits.test,
    };
    // Every split must hold images of one shape: statistics are per position.
    let shape = |s: &data::ImageSet| (s.channels, s.rows, s.cols);
    for (what, set) in [
        ("test", Some(&test_set)),
        ("validation", validation_set.as_ref()),
    ] {
        if let Some(set) = set.filter(|s| shape(s) != shape(&train_set)) {
            return Err(TrainError::Config(format!(
                "{}: the {what} images in {} are {:?} (channels, rows, cols), the training images {:?}",
                config.label(),
                data_dir.display(),
                shape(set),
                shape(&train_set)
            )));
        }
    }
    let standardiser = Standardiser::fit(&train_set, config.normalize);
    Ok(Datasets {
        train: standardiser.apply(&train_set),
        validation: validation_set.as_ref().map(|v| standardiser.apply(v)),
        test: standardiser.apply(&test_set),
    })
}

/// The checkpoint to resume from and the metric rows up to it, if an earlier worker left
/// one. Rows beyond the checkpoint (an epoch whose checkpoint was not written) are
/// dropped: that epoch is trained again, with the same result.
fn resume_point(dir: &RunDir) -> Result<Option<Resume>, TrainError> {
    let path = dir.checkpoint_path();
    if !path.exists() {
        return Ok(None);
    }
    let checkpoint = Checkpoint::load(&path).map_err(|e| TrainError::Config(e.to_string()))?;
    let mut rows = if dir.metrics_path().exists() {
        read_metrics(&dir.metrics_path())?
    } else {
        Vec::new()
    };
    rows.sort_by_key(|r| r.epoch);
    if rows.len() < checkpoint.epoch
        || rows
            .iter()
            .take(checkpoint.epoch)
            .enumerate()
            .any(|(i, r)| r.epoch as usize != i + 1)
    {
        return Err(TrainError::Config(format!(
            "{}: holds {} epoch rows, but the checkpoint {} is at epoch {} (delete the checkpoint to train this run again from the start)",
            dir.metrics_path().display(),
            rows.len(),
            path.display(),
            checkpoint.epoch
        )));
    }
    rows.truncate(checkpoint.epoch);
    Ok(Some(Resume { checkpoint, rows }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_data::{tiny_dataset, TINY_MLP};

    /// A run directory, with its config, of the tiny experiment's run made two epochs
    /// long (so that a run can stop after the first), beside the tiny dataset.
    fn run_dir(root: &Path) -> (RunConfig, RunDir) {
        tiny_dataset(root);
        let yaml = TINY_MLP.replace("epochs: 1", "epochs: 2");
        let experiment = experiment::parse_experiment(&root.join("exp.yaml"), &yaml).unwrap();
        let config = experiment.runs[0].clone();
        let dir = RunDir::for_run(&root.join("results"), &config);
        dir.create().unwrap();
        dir.write_config(&config).unwrap();
        (config, dir)
    }

    /// The worker on `dir`, with the dataset in `root`, on the CPU, no diagnostics.
    fn work(root: &Path, dir: &RunDir, keep_final_weights: bool) -> Result<RunStatus, TrainError> {
        run_worker(
            &dir.path,
            root,
            ComputeDevice::Cpu,
            keep_final_weights,
            &Diagnostics::off(),
        )
    }

    /// A done run of an experiment that keeps final weights has them: if they cannot be
    /// put in place, the run is not marked done.
    #[test]
    fn a_run_whose_final_weights_cannot_be_kept_is_not_done() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, dir) = run_dir(tmp.path());
        // A directory in the way of the rename.
        std::fs::create_dir_all(dir.path.join("final.safetensors/in-the-way")).unwrap();
        let outcome = work(tmp.path(), &dir, true);
        assert!(outcome.is_err(), "{outcome:?}");
        let meta = dir.read_meta().unwrap();
        assert_eq!(meta.status, RunStatus::Failed);
        assert!(meta.error.unwrap().contains("final.safetensors"));
    }

    /// A metric row that cannot be written stops the run at that epoch: it fails, and
    /// no checkpoint runs ahead of metrics that are not on disk.
    #[test]
    fn a_failed_write_stops_the_run() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, dir) = run_dir(tmp.path());
        std::fs::create_dir_all(dir.metrics_path().join("in-the-way")).unwrap();
        let outcome = work(tmp.path(), &dir, false);
        assert!(outcome.is_err(), "{outcome:?}");
        let meta = dir.read_meta().unwrap();
        assert_eq!(meta.status, RunStatus::Failed);
        assert!(meta.error.unwrap().contains("metrics.parquet"));
        assert!(!dir.checkpoint_path().exists());
    }

    /// A run interrupted under one build and finished under another is done, and says
    /// so: its meta names the checkpoint's build, and the provenance lines show it.
    #[test]
    fn a_resume_from_another_builds_checkpoint_is_recorded() {
        let tmp = tempfile::tempdir().unwrap();
        let (config, dir) = run_dir(tmp.path());
        // What a worker of another build left after epoch 1.
        let data = load_datasets(&config, tmp.path()).unwrap();
        let mut trainer = Trainer::new(&config, &data, &Device::Cpu, None, 0).unwrap();
        let EpochEnd::Trained(row) = trainer.run_epoch(&mut |_| {}).unwrap().end else {
            panic!("diverged")
        };
        let mut checkpoint = trainer.checkpoint().unwrap();
        let older = results::Build {
            commit: Some("0".repeat(40)),
            ..provenance::build()
        };
        checkpoint.build = Some(older.clone());
        checkpoint.save(&dir.checkpoint_path()).unwrap();
        write_metrics(&dir.metrics_path(), std::slice::from_ref(&row)).unwrap();

        let status = work(tmp.path(), &dir, false).unwrap();
        assert_eq!(status, RunStatus::Done);
        let meta = dir.read_meta().unwrap();
        assert_eq!(meta.build, Some(provenance::build()));
        assert_eq!(
            meta.resumed_from,
            Some(ResumedFrom {
                epoch: 1,
                build: Some(older.clone())
            })
        );
        let lines = results::mixed_provenance(&[("plain-4".into(), meta.clone())]).join("\n");
        assert!(lines.contains("plain-4 resumed after epoch 1"), "{lines}");
        assert_eq!(read_metrics(&dir.metrics_path()).unwrap().len(), 2);

        // Interrupted again after epoch 1 of this build, and resumed: the record of the
        // older build's epoch stays.
        checkpoint.build = Some(provenance::build());
        checkpoint.save(&dir.checkpoint_path()).unwrap();
        write_metrics(&dir.metrics_path(), &[row]).unwrap();
        dir.write_meta(&RunMeta {
            status: RunStatus::Running,
            ..meta
        })
        .unwrap();
        let status = work(tmp.path(), &dir, false).unwrap();
        assert_eq!(status, RunStatus::Done);
        assert_eq!(
            dir.read_meta().unwrap().resumed_from.unwrap().build,
            Some(older)
        );
    }
}
