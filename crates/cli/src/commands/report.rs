//! `degrade report` (and the end of `degrade sweep`): the HTML report from the results
//! on disk. It never trains. While a sweep trains, `LiveReport` rewrites it as epochs
//! finish.

use super::load;
use crate::args::{Locations, ReportFlags, ReportLocations};
use crate::settings;
use ::report::RunRecord;
use ::report::{render_comparison, Compared};
use anyhow::{bail, Result};
use experiment::Experiment;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub fn report_command(at: &ReportLocations, look: &ReportFlags) -> Result<()> {
    let experiments = at
        .experiments
        .iter()
        .map(|path| load(path))
        .collect::<Result<Vec<_>>>()?;
    let runs = experiments
        .iter()
        .map(|e| ::report::load_runs(e, &at.results))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut damaged = 0;
    for (experiment, runs) in experiments.iter().zip(&runs) {
        damaged += report_runs(experiment, runs, &at.results, look)?;
    }
    if let [first, _, ..] = experiments.as_slice() {
        let settings = settings::report(look, first)?;
        let compared: Vec<Compared> = experiments
            .iter()
            .zip(&runs)
            .map(|(experiment, runs)| Compared { experiment, runs })
            .collect();
        let page = render_comparison(&compared, &look.reports, &settings)?;
        eprintln!("comparison: {}", page.display());
    }
    match damaged {
        0 => Ok(()),
        damaged => bail!(
            "{damaged} file(s) of the results do not read back (see the warnings above); the report shows everything else"
        ),
    }
}

/// Writes the report and says where; returns how many of the results' files did not
/// read back (each named in a warning, and left out of the report).
pub fn report(experiment: &Experiment, at: &Locations, look: &ReportFlags) -> Result<usize> {
    let runs = ::report::load_runs(experiment, &at.results)?;
    report_runs(experiment, &runs, &at.results, look)
}

/// `report` of `runs`, the experiment's runs as loaded from `results`.
fn report_runs(
    experiment: &Experiment,
    runs: &[RunRecord],
    results: &Path,
    look: &ReportFlags,
) -> Result<usize> {
    let written = write(experiment, runs, results, look, false)?;
    for problem in &written.problems {
        eprintln!("warning: {problem}");
    }
    eprintln!(
        "report: {} (all experiments: {})",
        written.page.display(),
        written.index.display()
    );
    Ok(written.problems.len())
}

/// What a write of the report produced.
struct Written {
    page: PathBuf,
    index: PathBuf,
    /// The results' files that did not read back.
    problems: Vec<String>,
}

fn write(
    experiment: &Experiment,
    runs: &[RunRecord],
    results: &Path,
    look: &ReportFlags,
    live: bool,
) -> Result<Written> {
    let settings = settings::report(look, experiment)?;
    let reports = &look.reports;
    let problems = runs
        .iter()
        .flat_map(|r| {
            r.problems
                .iter()
                .map(|p| format!("{}: {p}", r.config.label()))
        })
        .collect();
    let command = format!(
        "degrade sweep {} --results {} --reports {}",
        experiment.path.display(),
        results.display(),
        reports.display()
    );
    let page = ::report::render_experiment(experiment, runs, reports, &settings, &command, live)?;
    let index = ::report::render_index(reports)?;
    Ok(Written {
        page,
        index,
        problems,
    })
}

/// The report of a sweep in progress, rewritten from what finished epochs left on disk
/// (every file it writes is replaced atomically, so a reader never sees half of one),
/// at most once per `every`: a report of a large sweep takes a moment to draw. A failed
/// write is a warning, once; the sweep goes on, and its final report is written anyway.
pub struct LiveReport<'a> {
    experiment: &'a Experiment,
    at: &'a Locations,
    look: &'a ReportFlags,
    every: Duration,
    last: Option<Instant>,
    warned: bool,
}

impl<'a> LiveReport<'a> {
    pub fn new(
        experiment: &'a Experiment,
        at: &'a Locations,
        look: &'a ReportFlags,
        every: Duration,
    ) -> Self {
        LiveReport {
            experiment,
            at,
            look,
            every,
            last: None,
            warned: false,
        }
    }

    /// Where the page is.
    pub fn page(&self) -> PathBuf {
        self.look
            .reports
            .join(&self.experiment.name)
            .join("index.html")
    }

    /// Rewrites the report unless it was rewritten less than `every` ago.
    pub fn refresh(&mut self) {
        if self.last.is_some_and(|t| t.elapsed() < self.every) {
            return;
        }
        self.last = Some(Instant::now());
        let written = ::report::load_runs(self.experiment, &self.at.results)
            .map_err(anyhow::Error::from)
            .and_then(|runs| write(self.experiment, &runs, &self.at.results, self.look, true));
        if let Err(e) = written {
            if !std::mem::replace(&mut self.warned, true) {
                eprintln!("warning: the live report could not be written: {e:#}");
            }
        }
    }
}
