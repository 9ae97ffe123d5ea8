//! The report's input: every run of the plan, with whatever the results hold for it.

use crate::error::ReportError;
use experiment::{Experiment, RunConfig};
use results::{plan, read_metrics, MetricRow, PlannedRun, RunDir, RunMeta, RunState};
use std::path::Path;

#[derive(Debug, Clone)]
pub struct RunRecord {
    pub config: RunConfig,
    pub dir: RunDir,
    pub state: RunState,
    pub meta: Option<RunMeta>,
    /// Finished epochs, in order (also for runs that diverged or are unfinished).
    pub rows: Vec<MetricRow>,
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
            Ok(RunRecord {
                config,
                dir,
                state,
                meta,
                rows,
            })
        })
        .collect()
}
