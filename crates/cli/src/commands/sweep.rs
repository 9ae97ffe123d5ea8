//! `degrade sweep`: train every run that is not finished, then write the report.

use super::report::{report, LiveReport};
use super::{load, warn_unreadable};
use crate::args::{Locations, ReportFlags, TrainFlags};
use crate::settings;
use anyhow::{bail, Context, Result};
use runner::sweep::{interrupt_on_signals, run_sweep, SweepOptions};
use std::time::Duration;

/// The least time between two writes of the live report.
const LIVE_EVERY: Duration = Duration::from_secs(5);

pub fn sweep(
    at: &Locations,
    look: &ReportFlags,
    jobs: Option<usize>,
    train: &TrainFlags,
) -> Result<()> {
    let experiment = load(&at.experiment)?;
    let device = settings::device(train, &experiment);
    // Bad report flags fail before any training, not after it.
    settings::report(look, &experiment)?;
    let jobs = settings::jobs(jobs)?;
    let planned = results::run_states(&experiment, &at.results);
    let todo = planned.iter().filter(|p| p.state.wants_training()).count();
    let finished = planned.iter().filter(|p| p.state.is_finished()).count();
    let unreadable = warn_unreadable(&planned);
    eprintln!(
        "{}: {} runs, {} already finished, {} to train with {} worker(s) on {device}",
        experiment.name,
        planned.len(),
        finished,
        todo,
        jobs
    );
    let mut failed = Vec::new();
    let mut interrupted = Vec::new();
    if todo > 0 {
        settings::fits_in_memory(&experiment, device)?;
        // A device that cannot be opened fails here, once, not in every worker.
        runner::worker::open_device(device).context("--device (or the experiment's `device`)")?;
        let data_dir = settings::dataset(&experiment, train)?;
        let worker_exe =
            std::env::current_exe().context("finding this program to start workers")?;
        let interrupt = interrupt_on_signals()?;
        let options = SweepOptions {
            results_root: at.results.clone(),
            jobs,
            data_dir,
            worker: vec![worker_exe.into_os_string(), "worker".into()],
            keep_final_weights: experiment.keep_final_weights,
            device,
            diagnostics: experiment.diagnostics.clone(),
        };
        let mut live = LiveReport::new(&experiment, at, look, LIVE_EVERY);
        eprintln!(
            "report: {} (rewritten as epochs finish; open it in a browser)",
            live.page().display()
        );
        let summary = run_sweep(&experiment, &options, &interrupt, &mut || live.refresh())?;
        eprintln!(
            "trained {} run(s) in {:.1} s: {} done, {} diverged, {} failed",
            summary.done + summary.diverged.len() + summary.failed.len(),
            summary.wall_s,
            summary.done,
            summary.diverged.len(),
            summary.failed.len()
        );
        if !summary.busy.is_empty() {
            eprintln!(
                "{} run(s) being trained by another process were left to it ({}); the report \
                 shows them once they finish",
                summary.busy.len(),
                summary.busy.join(", ")
            );
        }
        failed = summary.failed;
        interrupted = summary.interrupted;
    }
    let damaged = report(&experiment, at, look)?;
    if !interrupted.is_empty() {
        eprintln!(
            "interrupted: {} run(s) stopped at their last finished epoch ({}); run the same \
             command again to resume them",
            interrupted.len(),
            interrupted.join(", ")
        );
        std::process::exit(130);
    }
    if unreadable > 0 {
        bail!(
            "{unreadable} run(s) were left untouched because their meta.json does not read back (see the warnings above)"
        );
    }
    if damaged > 0 {
        bail!(
            "{damaged} file(s) of the finished results do not read back (see the warnings above); the report shows everything else"
        );
    }
    if !failed.is_empty() {
        let list: Vec<String> = failed
            .iter()
            .map(|(run, why)| format!("  {run}: {why}"))
            .collect();
        bail!(
            "{} run(s) failed (they are retrained by the next sweep; finished runs are kept):\n{}",
            failed.len(),
            list.join("\n")
        );
    }
    Ok(())
}
