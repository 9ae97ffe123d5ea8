//! The report's input: every run of the plan, with whatever the results hold for it.

use crate::error::ReportError;
use experiment::{Experiment, RunConfig};
use results::{
    plan, read_gradients, read_lesion, read_metrics, read_responses, GradientRow, LesionRow,
    MetricRow, PlannedRun, ResponseRow, RunDir, RunMeta, RunState,
};
use std::path::Path;

#[derive(Debug, Clone)]
pub struct RunRecord {
    pub config: RunConfig,
    pub dir: RunDir,
    pub state: RunState,
    pub meta: Option<RunMeta>,
    /// Finished epochs, in order (also for runs that diverged or are unfinished).
    pub rows: Vec<MetricRow>,
    /// The diagnostics a done run measured (empty where it measured none).
    pub gradients: Vec<GradientRow>,
    pub responses: Vec<ResponseRow>,
    pub lesion: Vec<LesionRow>,
}

pub fn load_runs(
    experiment: &Experiment,
    results_root: &Path,
) -> Result<Vec<RunRecord>, ReportError> {
    plan(experiment, results_root)
        .into_iter()
        .map(|PlannedRun { config, dir, state }| {
            let meta = dir.read_meta().ok();
            let rows = if dir.metrics_path().is_file() {
                let mut rows = read_metrics(&dir.metrics_path())?;
                rows.sort_by_key(|r| r.epoch);
                rows
            } else {
                Vec::new()
            };
            // Diagnostics only of done runs: an unfinished run's are partial.
            let done = state == RunState::Done;
            let gradients = match done && dir.gradients_path().is_file() {
                true => read_gradients(&dir.gradients_path())?,
                false => Vec::new(),
            };
            let responses = match done && dir.responses_path().is_file() {
                true => read_responses(&dir.responses_path())?,
                false => Vec::new(),
            };
            let lesion = match done && dir.lesion_path().is_file() {
                true => read_lesion(&dir.lesion_path())?,
                false => Vec::new(),
            };
            Ok(RunRecord {
                config,
                dir,
                state,
                meta,
                rows,
                gradients,
                responses,
                lesion,
            })
        })
        .collect()
}
