//! Aggregation over seeds with polars: final errors per (family, depth) and mean curves
//! per (family, depth, epoch). Diverged runs are left out of both (they are listed as
//! such); unfinished runs count in the curves but not in the final errors.

use crate::error::ReportError;
use crate::load::RunRecord;
use results::polars::prelude::*;
use results::{metrics_frame, MetricRow, RunState};
use vocab::Family;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MeanStd {
    pub mean: f64,
    /// Sample standard deviation over seeds (0 for one seed).
    pub std: f64,
}

/// Seeds of one (family, depth[, epoch]) reduced to mean and spread.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GroupStat {
    pub family: Family,
    pub depth: usize,
    pub epoch: u32,
    /// Number of seeds in the group.
    pub n: usize,
    pub train_error: MeanStd,
    pub test_error: MeanStd,
    pub wall_s: MeanStd,
}

fn family_of(name: &str) -> Family {
    Family::named(name).unwrap_or(Family::Plain)
}

/// Groups `rows` by `keys` (a subset of family, depth, epoch) and reduces each group.
fn group_stats(rows: &[MetricRow], keys: &[&str]) -> PolarsResult<Vec<GroupStat>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let df = metrics_frame(rows)?;
    let by = df.group_by_stable(keys.iter().copied())?;
    let firsts: Vec<IdxSize> = by.get_groups().iter().map(|g| g.first()).collect();
    let mut out = Vec::new();
    for (group, first) in by.get_groups().iter().zip(firsts) {
        let idx: Vec<IdxSize> = match group {
            GroupsIndicator::Idx((_, members)) => members.iter().copied().collect(),
            GroupsIndicator::Slice([start, len]) => (start..start + len).collect(),
        };
        let stat = |column: &str| -> PolarsResult<MeanStd> {
            let taken = df.column(column)?.take_slice(&idx)?;
            let values = taken.f64()?;
            Ok(MeanStd {
                mean: values.mean().unwrap_or(f64::NAN),
                std: if idx.len() > 1 {
                    values.std(1).unwrap_or(0.0)
                } else {
                    0.0
                },
            })
        };
        let row = &rows[first as usize];
        out.push(GroupStat {
            family: family_of(&row.family),
            depth: row.depth as usize,
            epoch: if keys.contains(&"epoch") {
                row.epoch
            } else {
                0
            },
            n: idx.len(),
            train_error: stat("train_error")?,
            test_error: stat("test_error")?,
            wall_s: stat("wall_s")?,
        });
    }
    out.sort_by_key(|g| (g.family, g.depth, g.epoch));
    Ok(out)
}

fn polars_error(e: PolarsError) -> ReportError {
    ReportError::Aggregate(e.to_string())
}

/// Final errors of the finished (done) runs, per (family, depth); `epoch` is 0.
pub fn final_errors(runs: &[RunRecord]) -> Result<Vec<GroupStat>, ReportError> {
    let last_rows: Vec<MetricRow> = runs
        .iter()
        .filter(|r| r.state == RunState::Done)
        .filter_map(|r| r.rows.last().cloned())
        .collect();
    group_stats(&last_rows, &["family", "depth"]).map_err(polars_error)
}

/// Mean curves per (family, depth, epoch) over the runs that did not diverge.
pub fn epoch_means(runs: &[RunRecord]) -> Result<Vec<GroupStat>, ReportError> {
    let rows: Vec<MetricRow> = runs
        .iter()
        .filter(|r| r.state != RunState::Diverged)
        .flat_map(|r| r.rows.iter().cloned())
        .collect();
    group_stats(&rows, &["family", "depth", "epoch"]).map_err(polars_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(family: &str, depth: u32, seed: u64, epoch: u32, train_error: f64) -> MetricRow {
        MetricRow {
            experiment: "e".into(),
            family: family.into(),
            depth,
            seed,
            config_hash: format!("{family}{depth}{seed}"),
            epoch,
            train_error,
            train_loss: 1.0,
            test_error: train_error + 0.01,
            test_loss: 1.0,
            lr: 0.1,
            wall_s: 10.0 * f64::from(epoch),
            iteration: Some(u64::from(epoch) * 100),
            val_error: None,
            val_loss: None,
        }
    }

    #[test]
    fn group_stats_match_a_direct_computation() {
        let rows = vec![
            row("plain", 64, 0, 1, 0.8),
            row("plain", 64, 1, 1, 0.6),
            row("plain", 64, 2, 1, 0.7),
            row("residual", 4, 0, 1, 0.1),
            row("plain", 4, 0, 1, 0.2),
        ];
        let stats = group_stats(&rows, &["family", "depth"]).unwrap();
        assert_eq!(
            stats
                .iter()
                .map(|g| (g.family, g.depth, g.n))
                .collect::<Vec<_>>(),
            vec![
                (Family::Plain, 4, 1),
                (Family::Plain, 64, 3),
                (Family::Residual, 4, 1)
            ]
        );
        let deep = &stats[1];
        assert!((deep.train_error.mean - 0.7).abs() < 1e-12);
        // Sample std of 0.8, 0.6, 0.7 is 0.1.
        assert!(
            (deep.train_error.std - 0.1).abs() < 1e-12,
            "{:?}",
            deep.train_error
        );
        assert!((deep.test_error.mean - 0.71).abs() < 1e-12);
        assert_eq!(stats[0].train_error.std, 0.0, "one seed has no spread");
    }

    #[test]
    fn per_epoch_groups_keep_epochs_apart() {
        let rows = vec![
            row("plain", 4, 0, 1, 0.5),
            row("plain", 4, 0, 2, 0.3),
            row("plain", 4, 1, 2, 0.1),
        ];
        let stats = group_stats(&rows, &["family", "depth", "epoch"]).unwrap();
        assert_eq!(
            stats.iter().map(|g| (g.epoch, g.n)).collect::<Vec<_>>(),
            vec![(1, 1), (2, 2)]
        );
        assert!((stats[1].train_error.mean - 0.2).abs() < 1e-12);
        assert!(group_stats(&[], &["family"]).unwrap().is_empty());
    }
}
