//! The diagnostics section of the report: gradient norm against layer (at
//! initialisation and at the end of training), layer response std against layer (the
//! paper's Figure 7), and test error against deleted block (Veit et al. 2016), plain vs
//! residual, mean over seeds; and what they show, in numbers.

use crate::chart::{layer_chart, LayerSeries};
use crate::error::ReportError;
use crate::load::RunRecord;
use crate::numbers::scientific;
use std::collections::BTreeMap;
use vocab::Family;

#[derive(Debug, Clone, serde::Serialize)]
pub struct DiagnosticsView {
    /// Inline SVG charts, each with its data (`Figure::html`).
    pub charts: Vec<String>,
    /// What they show, one sentence each.
    pub findings: Vec<String>,
}

/// (family, depth) -> index (layer or block) -> values over seeds.
type Grouped = BTreeMap<(Family, usize), BTreeMap<u32, Vec<f64>>>;

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn group(runs: &[RunRecord], rows: impl Fn(&RunRecord) -> Vec<(u32, f64)>) -> Grouped {
    let mut out: Grouped = BTreeMap::new();
    for run in runs {
        for (index, value) in rows(run) {
            out.entry((run.config.family, run.config.depth))
                .or_default()
                .entry(index)
                .or_default()
                .push(value);
        }
    }
    out.retain(|_, v| !v.is_empty());
    out
}

fn series(grouped: &Grouped, depths: &[usize]) -> Vec<LayerSeries> {
    grouped
        .iter()
        .map(|((family, depth), by_index)| LayerSeries {
            label: format!("{family}-{depth}"),
            color: depths.iter().position(|d| d == depth).unwrap_or(0),
            dashed: *family == Family::Residual,
            points: by_index
                .iter()
                .map(|(i, v)| (f64::from(*i), mean(v)))
                .collect(),
        })
        .collect()
}

/// The mean over seeds at `index` for (family, depth).
fn at(grouped: &Grouped, family: Family, depth: usize, index: u32) -> Option<f64> {
    grouped.get(&(family, depth))?.get(&index).map(|v| mean(v))
}

/// The deepest depth measured for both families.
fn deepest_pair(grouped: &Grouped) -> Option<usize> {
    grouped
        .keys()
        .filter(|(f, d)| *f == Family::Plain && grouped.contains_key(&(Family::Residual, *d)))
        .map(|(_, d)| *d)
        .max()
}

fn gradient_finding(grouped: &Grouped, when: &str) -> Option<String> {
    let d = deepest_pair(grouped)?;
    let last = |f| grouped.get(&(f, d)).and_then(|m| m.keys().max().copied());
    let (p1, r1) = (
        at(grouped, Family::Plain, d, 1)?,
        at(grouped, Family::Residual, d, 1)?,
    );
    let (pl, rl) = (
        at(grouped, Family::Plain, d, last(Family::Plain)?)?,
        at(grouped, Family::Residual, d, last(Family::Residual)?)?,
    );
    Some(format!(
        "Gradient flow {when}: the first layer's gradient norm is {} in plain-{d} and {} in \
         residual-{d} (plain/residual = {}); relative to the classifier's it is {} in \
         plain-{d} and {} in residual-{d}.",
        scientific(p1, 3),
        scientific(r1, 3),
        scientific(p1 / r1, 3),
        scientific(p1 / pl, 3),
        scientific(r1 / rl, 3)
    ))
}

/// The diagnostics section, or None if no done run measured any.
pub fn diagnostics_view(runs: &[RunRecord]) -> Result<Option<DiagnosticsView>, ReportError> {
    let mut depths: Vec<usize> = runs.iter().map(|r| r.config.depth).collect();
    depths.sort_unstable();
    depths.dedup();
    let init = group(runs, |r| {
        r.gradients
            .iter()
            .filter(|g| g.iteration == 0)
            .map(|g| (g.layer, g.grad_norm))
            .collect()
    });
    // Each run's last logged iteration: the end of training, as near as it was sampled.
    let end = group(runs, |r| {
        let last = r.gradients.iter().map(|g| g.iteration).max();
        r.gradients
            .iter()
            .filter(|g| Some(g.iteration) == last && g.iteration > 0)
            .map(|g| (g.layer, g.grad_norm))
            .collect()
    });
    let responses = group(runs, |r| {
        r.responses
            .iter()
            .map(|x| (x.layer, x.response_std))
            .collect()
    });
    // Lesion: the rise in test error (percentage points) when one block is deleted.
    let lesion = group(runs, |r| {
        r.lesion
            .iter()
            .map(|l| (l.block, 100.0 * (l.test_error - l.intact_test_error)))
            .collect()
    });
    if init.is_empty() && end.is_empty() && responses.is_empty() && lesion.is_empty() {
        return Ok(None);
    }
    let mut charts = Vec::new();
    let mut findings = Vec::new();
    if !init.is_empty() {
        charts.push(
            layer_chart(
                "gradient norm at initialisation",
                "weighted layer",
                "||dL/dW||",
                true,
                &series(&init, &depths),
            )?
            .html(),
        );
        findings.extend(gradient_finding(&init, "at initialisation"));
    }
    if !end.is_empty() {
        charts.push(
            layer_chart(
                "gradient norm at the end of training",
                "weighted layer",
                "||dL/dW||",
                true,
                &series(&end, &depths),
            )?
            .html(),
        );
        findings.extend(gradient_finding(&end, "at the end of training"));
    }
    if !responses.is_empty() {
        charts.push(
            layer_chart(
                "layer responses after training (Figure 7)",
                "weighted layer",
                "std of BN output",
                true,
                &series(&responses, &depths),
            )?
            .html(),
        );
        if let Some(d) = deepest_pair(&responses) {
            let avg = |f| {
                responses
                    .get(&(f, d))
                    .map(|m| mean(&m.values().map(|v| mean(v)).collect::<Vec<_>>()))
            };
            if let (Some(p), Some(r)) = (avg(Family::Plain), avg(Family::Residual)) {
                findings.push(format!(
                    "Layer responses after training: the mean std over layers is {} in \
                     plain-{d} and {} in residual-{d} (the paper: residual responses are smaller).",
                    scientific(p, 3),
                    scientific(r, 3)
                ));
            }
        }
    }
    if !lesion.is_empty() {
        charts.push(
            layer_chart(
                "lesion: test error rise when one block is deleted",
                "block",
                "test error rise (points)",
                false,
                &series(&lesion, &depths),
            )?
            .html(),
        );
        if let Some(d) = deepest_pair(&lesion) {
            let stats = |f| {
                lesion.get(&(f, d)).map(|m| {
                    let rises: Vec<f64> = m.values().map(|v| mean(v)).collect();
                    (
                        mean(&rises),
                        rises.iter().cloned().fold(f64::MIN, f64::max),
                        rises.len(),
                    )
                })
            };
            if let (Some((pm, px, pn)), Some((rm, rx, rn))) =
                (stats(Family::Plain), stats(Family::Residual))
            {
                findings.push(format!(
                    "Lesion study: deleting one block raises the test error by {rm:.2} points on \
                     average (at most {rx:.2}, {rn} blocks) in residual-{d}, and by {pm:.2} points \
                     on average (at most {px:.2}, {pn} deletable blocks) in plain-{d}."
                ));
            }
        }
    }
    Ok(Some(DiagnosticsView { charts, findings }))
}
