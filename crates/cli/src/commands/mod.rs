//! One module per subcommand. Each loads what it needs, calls the libraries, and says
//! what happened on the terminal; none holds logic of its own that a test would need.

pub mod arch;
pub mod plan;
pub mod report;
pub mod run;
pub mod slurm;
pub mod sweep;

use anyhow::Result;
use experiment::Experiment;
use std::path::Path;

fn load(path: &Path) -> Result<Experiment> {
    Ok(experiment::load_experiment(path)?)
}

/// Says, for each run whose `meta.json` does not read back, which file and what to do;
/// returns how many there are. Such runs are never trained or counted as finished.
fn warn_unreadable(planned: &[results::PlannedRun]) -> usize {
    let problems: Vec<String> = planned
        .iter()
        .filter_map(|p| Some(format!("{}: {}", p.config.label(), p.dir.meta_problem()?)))
        .collect();
    for problem in &problems {
        eprintln!("warning: {problem}");
    }
    problems.len()
}

/// Prints to stdout; a closed pipe (`degrade plan | head`) ends the output quietly.
fn print_lines(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
