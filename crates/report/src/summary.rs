//! Final errors per (family, depth), averaged over seeds.

use crate::load::RunRecord;
use experiment::Family;
use results::RunState;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FinalError {
    pub family: Family,
    pub depth: usize,
    /// Seeds whose run finished (done).
    pub seeds: usize,
    pub train_error_mean: f64,
    pub train_error_std: f64,
    pub test_error_mean: f64,
    pub test_error_std: f64,
    pub wall_s_mean: f64,
}

fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// One entry per (family, depth) with at least one finished run, sorted by family then
/// depth. Sample standard deviation over seeds (0 for a single seed).
pub fn final_errors(runs: &[RunRecord]) -> Vec<FinalError> {
    let mut keys: Vec<(Family, usize)> = runs
        .iter()
        .map(|r| (r.config.family, r.config.depth))
        .collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|(family, depth)| {
            let finals: Vec<_> = runs
                .iter()
                .filter(|r| {
                    r.config.family == family
                        && r.config.depth == depth
                        && r.state == RunState::Done
                })
                .filter_map(|r| r.rows.last())
                .collect();
            if finals.is_empty() {
                return None;
            }
            let (train_error_mean, train_error_std) =
                mean_std(&finals.iter().map(|r| r.train_error).collect::<Vec<_>>());
            let (test_error_mean, test_error_std) =
                mean_std(&finals.iter().map(|r| r.test_error).collect::<Vec<_>>());
            let (wall_s_mean, _) = mean_std(&finals.iter().map(|r| r.wall_s).collect::<Vec<_>>());
            Some(FinalError {
                family,
                depth,
                seeds: finals.len(),
                train_error_mean,
                train_error_std,
                test_error_mean,
                test_error_std,
                wall_s_mean,
            })
        })
        .collect()
}

/// A plain-words comparison of the shallowest and deepest finished nets of a family.
pub fn depth_comparison(finals: &[FinalError], family: Family) -> Option<String> {
    let of_family: Vec<&FinalError> = finals.iter().filter(|f| f.family == family).collect();
    let (shallow, deep) = (of_family.first()?, of_family.last()?);
    if shallow.depth == deep.depth {
        return Some(format!(
            "Only depth {} of the {family} nets has finished: nothing to compare yet.",
            deep.depth
        ));
    }
    let ratio = deep.train_error_mean / shallow.train_error_mean.max(1e-12);
    Some(format!(
        "{family}: final training error {:.2}% at depth {} against {:.2}% at depth {} \
         ({:+.2} points, {ratio:.1}x), over {} and {} seed(s).",
        100.0 * deep.train_error_mean,
        deep.depth,
        100.0 * shallow.train_error_mean,
        shallow.depth,
        100.0 * (deep.train_error_mean - shallow.train_error_mean),
        deep.seeds,
        shallow.seeds,
    ))
}
