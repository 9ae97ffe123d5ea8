//! `degrade report` (and the end of `degrade sweep`): the HTML report from the results
//! on disk. It never trains.

use super::load;
use crate::args::{Locations, ReportFlags};
use crate::settings;
use anyhow::{bail, Result};
use experiment::Experiment;

pub fn report_command(at: &Locations, look: &ReportFlags) -> Result<()> {
    let experiment = load(&at.experiment)?;
    match report(&experiment, at, look)? {
        0 => Ok(()),
        damaged => bail!(
            "{damaged} file(s) of the results do not read back (see the warnings above); the report shows everything else"
        ),
    }
}

/// Writes the report; returns how many of the results' files did not read back (each
/// named in a warning, and left out of the report).
pub fn report(experiment: &Experiment, at: &Locations, look: &ReportFlags) -> Result<usize> {
    let settings = settings::report(look, experiment)?;
    let reports = &look.reports;
    let runs = ::report::load_runs(experiment, &at.results)?;
    let damaged: Vec<String> = runs
        .iter()
        .flat_map(|r| {
            r.problems
                .iter()
                .map(|p| format!("{}: {p}", r.config.label()))
        })
        .collect();
    for problem in &damaged {
        eprintln!("warning: {problem}");
    }
    let command = format!(
        "degrade sweep {} --results {} --reports {}",
        experiment.path.display(),
        at.results.display(),
        reports.display()
    );
    let page = ::report::render_experiment(experiment, &runs, reports, &settings, &command)?;
    let index = ::report::render_index(reports)?;
    eprintln!(
        "report: {} (all experiments: {})",
        page.display(),
        index.display()
    );
    Ok(damaged.len())
}
