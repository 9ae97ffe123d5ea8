//! `degrade run`: one task of a Slurm job array, trained in this process.

use super::load;
use crate::args::{Locations, TrainFlags};
use crate::settings;
use anyhow::{Context, Result};
use runner::array_task::{ArrayTask, TaskOutcome};
use std::path::PathBuf;

pub fn run(
    at: &Locations,
    index: Option<usize>,
    pending: Option<PathBuf>,
    train: &TrainFlags,
) -> Result<()> {
    let experiment = load(&at.experiment)?;
    let index = settings::array_index(index)?;
    let list =
        pending.unwrap_or_else(|| results::default_pending_path(&at.results, &experiment.name));
    let task = ArrayTask {
        experiment: &experiment,
        results_root: &at.results,
        pending_list: &list,
        index,
    };
    // Checked before the dataset is located: a task with nothing to do needs none.
    let run = task.find_run().with_context(|| {
        format!(
            "the pending list (write it with `degrade plan {} --pending` or `degrade slurm`)",
            experiment.path.display()
        )
    })?;
    if run.state.is_finished() {
        eprintln!(
            "{}: already {} ({}); nothing to do",
            run.config.label(),
            run.state.label(),
            run.dir.path.display()
        );
        return Ok(());
    }
    let device = settings::device(train, &experiment);
    settings::fits_in_memory(&experiment, device)?;
    runner::worker::open_device(device).context("--device (or the experiment's `device`)")?;
    let data_dir = settings::dataset(&experiment, train)?;
    match task.train(&run, device, &data_dir)? {
        TaskOutcome::AlreadyFinished { label, state } => {
            eprintln!("{label}: already {state}; nothing to do")
        }
        TaskOutcome::Trained { label, status } => eprintln!("{label}: {}", status.as_str()),
    }
    Ok(())
}
