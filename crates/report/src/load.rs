//! The report's input: every run of the plan, with whatever the results hold for it.

use crate::error::ReportError;
use experiment::{Experiment, RunConfig};
use results::{
    read_gradients, read_lesion, read_metrics, read_responses, run_states, GradientRow, LesionRow,
    MetricRow, PlannedRun, ResponseRow, RunDir, RunMeta, RunState,
};
use std::path::Path;

#[derive(Debug, Clone)]
pub struct RunRecord {
    pub config: RunConfig,
    pub dir: RunDir,
    /// `Unreadable` also where the metrics file does not read back: the run's numbers
    /// cannot be shown, and it counts as not done.
    pub state: RunState,
    pub meta: Option<RunMeta>,
    /// Finished epochs, in order (also for runs that diverged or are unfinished).
    pub rows: Vec<MetricRow>,
    /// The diagnostics a done run measured (empty where it measured none).
    pub gradients: Vec<GradientRow>,
    pub responses: Vec<ResponseRow>,
    pub lesion: Vec<LesionRow>,
    /// Which of the run's files do not read back, and what to do: the report renders
    /// without them and says so.
    pub problems: Vec<String>,
}

/// Every run of the plan with what its files hold. A file that does not read back (a
/// disk fault, a truncated copy) is not an error for the whole report: it is noted in
/// its run's `problems`, and that part of the run is left out.
pub fn load_runs(
    experiment: &Experiment,
    results_root: &Path,
) -> Result<Vec<RunRecord>, ReportError> {
    Ok(run_states(experiment, results_root)
        .into_iter()
        .map(|PlannedRun { config, dir, state }| {
            let meta = dir.read_meta().ok();
            let mut problems: Vec<String> = dir.meta_problem().into_iter().collect();
            let mut rows = read_noting(&dir.metrics_path(), true, read_metrics, &mut problems);
            rows.sort_by_key(|r| r.epoch);
            let state = match problems.is_empty() {
                true => state,
                false => RunState::Unreadable,
            };
            // Diagnostics only of done runs: an unfinished run's are partial.
            let done = state == RunState::Done;
            let gradients = read_noting(&dir.gradients_path(), done, read_gradients, &mut problems);
            let responses = read_noting(&dir.responses_path(), done, read_responses, &mut problems);
            let lesion = read_noting(&dir.lesion_path(), done, read_lesion, &mut problems);
            RunRecord {
                config,
                dir,
                state,
                meta,
                rows,
                gradients,
                responses,
                lesion,
                problems,
            }
        })
        .collect())
}

/// The rows of `path` if `wanted` and the file exists; a file that does not read back
/// gives none, with why in `problems`.
fn read_noting<T>(
    path: &Path,
    wanted: bool,
    read: impl Fn(&Path) -> Result<Vec<T>, results::ResultsError>,
    problems: &mut Vec<String>,
) -> Vec<T> {
    if !wanted || !path.is_file() {
        return Vec::new();
    }
    read(path).unwrap_or_else(|e| {
        problems.push(format!(
            "{e} (the report leaves it out; delete the run's directory to train it again)"
        ));
        Vec::new()
    })
}
