//! The pending list: the runs of an experiment that were not finished when it was
//! written, one run directory name per line. A cluster job array trains entry I in
//! task I, so the list is fixed when the array is submitted: finishing runs never
//! shifts the other tasks' indices. Each list carries the experiment's name on its
//! first line, so a list cannot be used with another experiment by mistake.

use crate::atomic::write_atomically;
use crate::error::ResultsError;
use crate::layout::PlannedRun;
use std::path::{Path, PathBuf};

const HEADER: &str = "# degrade pending runs of experiment ";

/// `<results>/<experiment>/pending.txt`, where `degrade plan --pending` writes.
pub fn default_pending_path(results_root: &Path, experiment: &str) -> PathBuf {
    results_root.join(experiment).join("pending.txt")
}

/// Writes the unfinished runs of `planned` to `path`; returns how many there are.
pub fn write_pending(
    path: &Path,
    experiment: &str,
    planned: &[PlannedRun],
) -> Result<usize, ResultsError> {
    let names: Vec<String> = planned
        .iter()
        .filter(|p| p.state.wants_training())
        .map(|p| p.config.dir_name())
        .collect();
    let mut text = format!("{HEADER}{experiment}\n");
    for name in &names {
        text.push_str(name);
        text.push('\n');
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| ResultsError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    write_atomically(path, text.as_bytes())?;
    Ok(names.len())
}

/// The run directory names of a pending list written for `experiment`.
pub fn read_pending(path: &Path, experiment: &str) -> Result<Vec<String>, ResultsError> {
    let text = std::fs::read_to_string(path).map_err(|source| ResultsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut lines = text.lines();
    let schema = |message: String| ResultsError::Schema {
        path: path.to_path_buf(),
        message,
    };
    match lines.next().and_then(|l| l.strip_prefix(HEADER)) {
        Some(name) if name == experiment => {}
        Some(name) => {
            return Err(schema(format!(
                "this pending list is for experiment {name:?}, not {experiment:?}"
            )))
        }
        None => {
            return Err(schema(
                "not a pending list written by `degrade plan --pending` or `degrade slurm`".into(),
            ))
        }
    }
    Ok(lines
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_round_trips_and_names_its_experiment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e").join("pending.txt");
        write_pending(&path, "e", &[]).unwrap();
        assert_eq!(read_pending(&path, "e").unwrap(), Vec::<String>::new());
        std::fs::write(
            &path,
            format!("{HEADER}e\nplain-d4-s0-abc\n\nresidual-d4-s0-def\n"),
        )
        .unwrap();
        assert_eq!(
            read_pending(&path, "e").unwrap(),
            ["plain-d4-s0-abc", "residual-d4-s0-def"]
        );
        let e = read_pending(&path, "other").unwrap_err().to_string();
        assert!(e.contains("pending.txt") && e.contains("\"e\""), "{e}");
        std::fs::write(&path, "plain-d4\n").unwrap();
        assert!(read_pending(&path, "e")
            .unwrap_err()
            .to_string()
            .contains("not a pending list"));
    }
}
