//! One task of a cluster job array (`degrade run --index I`): find entry I of the
//! experiment's pending list, and train that run in this process unless it is finished.
//! The list was fixed when the array was submitted (`results::write_pending`), so a
//! task trains the same run however many others have finished since.

use crate::{provenance, worker, TrainError};
use experiment::{ComputeDevice, Experiment};
use results::{PlannedRun, RunDir, RunStatus};
use std::path::Path;

/// Where a task finds its run, and how it trains it.
pub struct ArrayTask<'a> {
    pub experiment: &'a Experiment,
    pub results_root: &'a Path,
    /// The pending list the array was submitted with.
    pub pending_list: &'a Path,
    pub index: usize,
}

/// What a task did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskOutcome {
    /// The run was finished before the task started (done or diverged): nothing to do.
    AlreadyFinished { label: String, state: &'static str },
    /// The worker trained the run (or found it being trained on this host).
    Trained { label: String, status: RunStatus },
}

impl ArrayTask<'_> {
    /// The planned run of entry `index`, checked: the list is this experiment's, the
    /// entry exists, it is still one of the experiment's runs, and its `meta.json`
    /// (if any) reads back.
    pub fn find_run(&self) -> Result<PlannedRun, TrainError> {
        let names = results::read_pending(self.pending_list, &self.experiment.name)?;
        let list = self.pending_list.display();
        let name = names.get(self.index).ok_or_else(|| {
            TrainError::Config(format!(
                "index {} is past the end of {list} ({} runs)",
                self.index,
                names.len()
            ))
        })?;
        let run = results::run_states(self.experiment, self.results_root)
            .into_iter()
            .find(|p| &p.config.dir_name() == name)
            .ok_or_else(|| {
                TrainError::Config(format!(
                    "{name} (entry {} of {list}) is not a run of {} any more: the experiment \
                     changed after the list was written; write a new one",
                    self.index,
                    self.experiment.path.display()
                ))
            })?;
        if let Some(why) = run.dir.meta_problem() {
            return Err(TrainError::Config(format!("{}: {why}", run.config.label())));
        }
        Ok(run)
    }

    /// Trains `run` (from `find_run`) on `device` with the dataset in `data_dir`, unless
    /// it is finished. A termination signal (Slurm's scancel, time limit or preemption) removes
    /// the run's lock before the process exits, so that a requeued task on another node
    /// can take the run over. A failed run, or one locked by a process on another host,
    /// is an error, so that the task shows as failed rather than skipped forever.
    pub fn train(
        &self,
        run: &PlannedRun,
        device: ComputeDevice,
        data_dir: &Path,
    ) -> Result<TaskOutcome, TrainError> {
        let label = run.config.label();
        if run.state.is_finished() {
            return Ok(TaskOutcome::AlreadyFinished {
                label,
                state: run.state.label(),
            });
        }
        run.dir.prepare(&run.config)?;
        release_lock_on_termination(run.dir.clone())?;
        eprintln!("{label}: training in {}", run.dir.path.display());
        let experiment = self.experiment;
        let status = worker::run_worker(
            &run.dir.path,
            data_dir,
            device,
            experiment.keep_final_weights,
            &experiment.diagnostics,
        )
        .map_err(|e| {
            TrainError::Config(format!(
                "training {label} in {}: {e}",
                run.dir.path.display()
            ))
        })?;
        check_status(&run.dir, &label, status)?;
        Ok(TaskOutcome::Trained { label, status })
    }
}

/// A worker's status as the task's result: `Failed` is an error; `Running` (the worker
/// found the run locked) is one too when the holder is on another host, whose liveness
/// cannot be checked from here.
fn check_status(dir: &RunDir, label: &str, status: RunStatus) -> Result<(), TrainError> {
    match status {
        RunStatus::Failed => Err(TrainError::Config(format!(
            "{label}: failed (see {})",
            dir.meta_path().display()
        ))),
        RunStatus::Running => {
            let host = provenance::host();
            match dir.lock_holder(&host).filter(|h| h.host != host) {
                Some(holder) => Err(TrainError::Config(format!(
                    "{label}: locked by {holder}. If that process is gone (a crashed node), \
                     delete {} and resubmit",
                    dir.lock_path().display()
                ))),
                None => Ok(()),
            }
        }
        RunStatus::Done | RunStatus::Diverged => Ok(()),
    }
}

/// On SIGTERM or SIGINT: removes the run's lock if this process holds it, then exits.
/// Slurm ends a task with SIGTERM and SIGKILL a little later; a lock left behind by a
/// killed task on another node could not be told from a live one. Everything the worker
/// writes is atomic, so stopping anywhere is safe; the run resumes from its last
/// checkpoint.
fn release_lock_on_termination(dir: RunDir) -> Result<(), TrainError> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
        .map_err(|e| TrainError::Config(format!("installing the termination handler: {e}")))?;
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            // Only our own lock: the worker took it in this process.
            dir.release_lock_of(std::process::id());
            eprintln!("stopped by signal {signal}; the run resumes from its last checkpoint");
            std::process::exit(128 + signal);
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_data::{tiny_dataset, TINY_MLP};
    use std::path::PathBuf;

    fn setup(root: &Path) -> (Experiment, PathBuf, PathBuf) {
        tiny_dataset(root);
        let experiment = experiment::parse_experiment(&root.join("exp.yaml"), TINY_MLP).unwrap();
        let results_root = root.join("results");
        let list = results::default_pending_path(&results_root, &experiment.name);
        let planned = results::run_states(&experiment, &results_root);
        results::write_pending(&list, &experiment.name, &planned).unwrap();
        (experiment, results_root, list)
    }

    fn task<'a>(e: &'a Experiment, root: &'a Path, list: &'a Path, index: usize) -> ArrayTask<'a> {
        ArrayTask {
            experiment: e,
            results_root: root,
            pending_list: list,
            index,
        }
    }

    /// Entry I trains the run the list named at I; run again, the task finds it done.
    #[test]
    fn a_task_trains_its_entry_once() {
        let tmp = tempfile::tempdir().unwrap();
        let (experiment, results_root, list) = setup(tmp.path());
        let t = task(&experiment, &results_root, &list, 0);
        let label = experiment.runs[0].label();
        assert_eq!(
            t.train(&t.find_run().unwrap(), ComputeDevice::Cpu, tmp.path())
                .unwrap(),
            TaskOutcome::Trained {
                label: label.clone(),
                status: RunStatus::Done
            }
        );
        let dir = RunDir::for_run(&results_root, &experiment.runs[0]);
        assert!(dir.path.join("metrics.parquet").exists());
        assert_eq!(
            t.train(&t.find_run().unwrap(), ComputeDevice::Cpu, tmp.path())
                .unwrap(),
            TaskOutcome::AlreadyFinished {
                label,
                state: "done"
            }
        );
    }

    /// An index past the list's end names the list and its length; an entry the
    /// experiment no longer has says so; a run whose meta.json does not read back is
    /// refused by name, and the file is left as it was.
    #[test]
    fn a_task_that_cannot_find_its_run_says_why() {
        let tmp = tempfile::tempdir().unwrap();
        let (experiment, results_root, list) = setup(tmp.path());
        let err = task(&experiment, &results_root, &list, 9)
            .find_run()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("index 9 is past the end") && err.contains("(1 runs)"),
            "{err}"
        );

        let changed = TINY_MLP.replace("seeds: [0]", "seeds: [1]");
        let other = experiment::parse_experiment(&tmp.path().join("exp.yaml"), &changed).unwrap();
        let err = task(&other, &results_root, &list, 0)
            .find_run()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("is not a run of") && err.contains("changed"),
            "{err}"
        );

        let dir = RunDir::for_run(&results_root, &experiment.runs[0]);
        dir.prepare(&experiment.runs[0]).unwrap();
        std::fs::write(dir.meta_path(), b"{\"status\": \"do").unwrap();
        let err = task(&experiment, &results_root, &list, 0)
            .find_run()
            .unwrap_err()
            .to_string();
        assert!(err.contains("meta.json"), "{err}");
        assert_eq!(
            std::fs::read(dir.meta_path()).unwrap(),
            b"{\"status\": \"do"
        );
    }
}
