//! `degrade slurm`: the job array for the runs not finished yet, submitted on request.

use super::{load, print_lines};
use crate::args::{Locations, SlurmFlags, TrainFlags};
use crate::settings;
use anyhow::Result;

pub fn slurm(
    at: &Locations,
    submit: bool,
    resources: &SlurmFlags,
    train: &TrainFlags,
) -> Result<()> {
    let experiment = load(&at.experiment)?;
    let resources = settings::slurm(resources, &experiment)?;
    let planned = results::run_states(&experiment, &at.results);
    if !planned.iter().any(|p| p.state.wants_training()) {
        eprintln!(
            "{}: all {} runs are finished; nothing to submit",
            experiment.name,
            planned.len()
        );
        return Ok(());
    }
    // Located (and downloaded) once here, not by every task at once.
    let data_dir = settings::dataset(&experiment, train)?;
    let device = settings::device(train, &experiment);
    let Some(job) = runner::slurm::write_job(
        &experiment,
        &at.results,
        &planned,
        resources,
        device,
        &data_dir,
    )?
    else {
        // Not reached: `planned` has a run to train (checked above).
        eprintln!("{}: nothing to submit", experiment.name);
        return Ok(());
    };
    eprintln!(
        "{}: {} pending run(s); job array script {} (its list: {})",
        experiment.name,
        job.tasks,
        job.script.display(),
        job.pending_list.display()
    );
    if submit {
        // "Submitted batch job 123"
        print_lines(&runner::slurm::submit(&job.script)?)?;
    } else {
        eprintln!("submit it with: sbatch {}", job.script.display());
    }
    Ok(())
}
