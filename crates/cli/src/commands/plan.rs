//! `degrade plan`: the runs the experiment expands to and which are done; with
//! `--pending`, the list of unfinished ones for `degrade run --index I`.

use super::{load, print_lines, warn_unreadable};
use crate::args::Locations;
use anyhow::Result;

pub fn plan(at: &Locations, write_pending: bool) -> Result<()> {
    let experiment = load(&at.experiment)?;
    let planned = results::run_states(&experiment, &at.results);
    if write_pending {
        let path = results::default_pending_path(&at.results, &experiment.name);
        let n = results::write_pending(&path, &experiment.name, &planned)?;
        eprintln!(
            "pending: {n} run(s) written to {} (train entry I with `degrade run {} --index I`)",
            path.display(),
            experiment.path.display()
        );
    }
    let done = planned.iter().filter(|p| p.state.is_finished()).count();
    warn_unreadable(&planned);
    let finished: Vec<(String, results::RunMeta)> = planned
        .iter()
        .filter(|p| p.state.is_finished())
        .filter_map(|p| Some((p.config.label(), p.dir.read_meta().ok()?)))
        .collect();
    for line in results::mixed_provenance(&finished) {
        eprintln!("note: {line}");
    }
    print_lines(&format!(
        "{}: {} runs, {} finished, {} to train",
        experiment.name,
        planned.len(),
        done,
        planned.iter().filter(|p| p.state.wants_training()).count()
    ))?;
    let lines: Vec<String> = planned
        .iter()
        .map(|p| {
            format!(
                "  {:<10} {:<9} depth {:>4}  seed {:>3}  {}",
                p.state.label(),
                p.config.family.as_str(),
                p.config.depth,
                p.config.seed,
                p.dir.path.display()
            )
        })
        .collect();
    print_lines(&lines.join("\n"))
}
