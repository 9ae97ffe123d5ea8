//! Renders `reports/<experiment>/index.html` and `reports/index.html` from the templates
//! in `templates/` (compiled into the binary, so the report needs no files at run time).

use crate::aggregate::{epoch_means, final_errors, GroupStat};
use crate::chart::{depth_chart, error_panel, Curve, DepthSeries, ErrorAxis, SeedRun};
use crate::error::ReportError;
use crate::load::RunRecord;
use crate::verdict::{verdict, NotDone, Verdict};
use experiment::{Experiment, ReportSettings};
use results::{MetricRow, RunState};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use vocab::Family;

const EXPERIMENT_TEMPLATE: &str = include_str!("../../../templates/experiment.html");
const INDEX_TEMPLATE: &str = include_str!("../../../templates/index.html");
pub(crate) const STYLE: &str = include_str!("../../../templates/style.css");
/// The figures' script: hover values, legend toggles, axes, smoothing, seeds, downloads.
pub(crate) const FIGURE_SCRIPT: &str = include_str!("../../../templates/figures.js");

/// What `reports/<experiment>/summary.json` holds, for the index page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ExperimentSummary {
    name: String,
    headline: String,
    degradation: String,
    runs_done: usize,
    runs_total: usize,
}

impl ExperimentSummary {
    /// An experiment's line in the index (and on a comparison page): its verdict and
    /// how many of its runs are done.
    pub(crate) fn of(experiment: &Experiment, verdict: &Verdict, runs: &[RunRecord]) -> Self {
        ExperimentSummary {
            name: experiment.name.clone(),
            headline: verdict.headline.clone(),
            degradation: serde_json::to_value(verdict.degradation)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            runs_done: runs.iter().filter(|r| r.state == RunState::Done).count(),
            runs_total: runs.len(),
        }
    }
}

#[derive(Serialize)]
struct Panel {
    family: String,
    svg: String,
}

#[derive(Serialize)]
struct TableRow {
    family: String,
    depth: usize,
    seeds: usize,
    train_error: String,
    test_error: String,
    wall_s: String,
}

#[derive(Serialize)]
struct RunRow {
    label: String,
    state: String,
    epochs: String,
    train_error: String,
    test_error: String,
    /// Empty without a validation split.
    val_error: String,
    /// Optimiser steps done (empty in files from before the column existed).
    iterations: String,
    wall_s: String,
    hash: String,
    parquet: Option<String>,
    note: String,
}

fn pct(x: f64) -> String {
    format!("{:.2}", 100.0 * x)
}

fn pct_spread(mean: f64, std: f64, n: usize) -> String {
    if n > 1 {
        format!("{} ± {}", pct(mean), pct(std))
    } else {
        pct(mean)
    }
}

pub(crate) fn tera_error(template: &str) -> impl Fn(tera::Error) -> ReportError + '_ {
    move |e| ReportError::Template {
        template: template.to_string(),
        detail: format!("{e:?}"),
    }
}

pub(crate) fn write(path: &Path, text: &str) -> Result<(), ReportError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| ReportError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    results::write_atomically(path, text.as_bytes()).map_err(ReportError::from)
}

/// `to` relative to the directory `from_dir` (both made absolute first), for links.
fn relative(from_dir: &Path, to: &Path) -> PathBuf {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (from, to) = (abs(from_dir), abs(to));
    let from: Vec<Component> = from.components().collect();
    let to_c: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to_c).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for c in &to_c[common..] {
        out.push(c);
    }
    out
}

/// The error axis: the user's range, or one fitted to the data (in percent).
fn error_axis(settings: &ReportSettings, stats: &[GroupStat]) -> ErrorAxis {
    fitted_axis_of(settings, stats.iter())
}

/// The error axis the settings ask for, fitted to `stats`' mean errors unless they fix
/// its range.
pub(crate) fn fitted_axis_of<'a>(
    settings: &ReportSettings,
    stats: impl Iterator<Item = &'a GroupStat>,
) -> ErrorAxis {
    if let Some((lo, hi)) = settings.y_range {
        return ErrorAxis {
            log: settings.log_y,
            lo,
            hi,
        };
    }
    let values = stats
        .flat_map(|g| [g.train_error.mean, g.test_error.mean])
        .map(|v| 100.0 * v);
    fitted_axis(settings.log_y, values)
}

/// An axis that shows `values` (percent), for any values at all: `0 < lo < hi <= 100` on
/// a log axis (at least one decade), `0 = lo < hi <= 100` on a linear one. Non-finite
/// values are passed over.
fn fitted_axis(log: bool, values: impl Iterator<Item = f64>) -> ErrorAxis {
    let (min, max) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if log {
        // Constant bounds: clamp cannot panic, and `max` is finite.
        let hi = (max * 1.2).clamp(1.0, 100.0);
        ErrorAxis {
            log: true,
            lo: (min * 0.8).max(0.1).min(hi / 10.0),
            hi,
        }
    } else {
        ErrorAxis {
            log: false,
            lo: 0.0,
            hi: ((max / 10.0).ceil() * 10.0).clamp(10.0, 100.0),
        }
    }
}

fn families_of(runs: &[RunRecord]) -> Vec<Family> {
    let mut families: Vec<Family> = runs.iter().map(|r| r.config.family).collect();
    families.sort();
    families.dedup();
    families
}

fn depths_of(runs: &[RunRecord]) -> Vec<usize> {
    let mut depths: Vec<usize> = runs.iter().map(|r| r.config.depth).collect();
    depths.sort_unstable();
    depths.dedup();
    depths
}

/// Figure-6 panels, one per family, from the per-epoch means over seeds, each depth with
/// its seeds' own curves (the runs that did not diverge, as in the means).
fn panels(
    runs: &[RunRecord],
    means: &[GroupStat],
    settings: &ReportSettings,
    axis: ErrorAxis,
) -> Result<Vec<Panel>, ReportError> {
    let depths = depths_of(runs);
    let max_epoch = runs
        .iter()
        .map(|r| r.config.planned_epochs())
        .max()
        .unwrap_or(1) as f64;
    families_of(runs)
        .into_iter()
        .map(|family| {
            let curves: Vec<Curve> = depths
                .iter()
                .enumerate()
                .filter_map(|(color, &depth)| {
                    let points: Vec<&GroupStat> = means
                        .iter()
                        .filter(|g| g.family == family && g.depth == depth)
                        .collect();
                    if points.is_empty() {
                        return None;
                    }
                    let mean = |f: fn(&GroupStat) -> f64| -> Vec<(f64, f64)> {
                        points
                            .iter()
                            .map(|g| (f64::from(g.epoch), 100.0 * f(g)))
                            .collect()
                    };
                    let seeds: Vec<&RunRecord> = runs
                        .iter()
                        .filter(|r| r.config.family == family && r.config.depth == depth)
                        .filter(|r| r.state != RunState::Diverged && !r.rows.is_empty())
                        .collect();
                    let of_run = |r: &RunRecord, f: fn(&MetricRow) -> f64| {
                        r.rows
                            .iter()
                            .map(|row| (f64::from(row.epoch), 100.0 * f(row)))
                            .collect()
                    };
                    // The iterations of an epoch are the same for every seed.
                    let iterations = points
                        .iter()
                        .map(|g| {
                            seeds.iter().find_map(|r| {
                                r.rows.iter().find(|row| row.epoch == g.epoch)?.iteration
                            })
                        })
                        .collect();
                    Some(Curve {
                        label: format!("{family}-{depth}"),
                        color,
                        train: mean(|g| g.train_error.mean),
                        test: mean(|g| g.test_error.mean),
                        iterations,
                        seeds: seeds
                            .iter()
                            .map(|r| SeedRun {
                                label: format!("seed {}", r.config.seed),
                                train: of_run(r, |row| row.train_error),
                                test: of_run(r, |row| row.test_error),
                            })
                            .collect(),
                    })
                })
                .collect();
            Ok(Panel {
                family: family.to_string(),
                svg: error_panel(
                    &format!("{family} nets"),
                    &curves,
                    max_epoch,
                    axis,
                    settings.smoothing,
                )?
                .html(),
            })
        })
        .collect()
}

/// Final error against depth, one series per family (colours: plain red, residual blue).
fn depth_figure(finals: &[GroupStat], axis: ErrorAxis) -> Result<Option<String>, ReportError> {
    let series: Vec<DepthSeries> = [(Family::Plain, 3), (Family::Residual, 0)]
        .into_iter()
        .filter_map(|(family, color)| depth_series(finals, family, family.to_string(), color))
        .collect();
    depth_chart_of(&series, finals.iter(), axis)
}

/// `family`'s final errors against depth (mean and std over seeds, in percent) as a
/// series named `label`; None if `finals` has none of that family.
pub(crate) fn depth_series(
    finals: &[GroupStat],
    family: Family,
    label: String,
    color: usize,
) -> Option<DepthSeries> {
    let groups: Vec<&GroupStat> = finals.iter().filter(|g| g.family == family).collect();
    if groups.is_empty() {
        return None;
    }
    let of = |f: fn(&GroupStat) -> (f64, f64)| -> Vec<(f64, f64, f64)> {
        groups
            .iter()
            .map(|g| {
                let (m, s) = f(g);
                (g.depth as f64, 100.0 * m, 100.0 * s)
            })
            .collect()
    };
    Some(DepthSeries {
        family: label,
        color,
        train: of(|g| (g.train_error.mean, g.train_error.std)),
        test: of(|g| (g.test_error.mean, g.test_error.std)),
    })
}

/// The final-error-against-depth chart of `series` over the depths of `groups`; None
/// without a group.
pub(crate) fn depth_chart_of<'a>(
    series: &[DepthSeries],
    groups: impl Iterator<Item = &'a GroupStat> + Clone,
    axis: ErrorAxis,
) -> Result<Option<String>, ReportError> {
    let depths = groups.map(|g| g.depth);
    let (Some(min), Some(max)) = (depths.clone().min(), depths.max()) else {
        return Ok(None);
    };
    Ok(Some(
        depth_chart(series, (min as f64, max as f64), axis)?.html(),
    ))
}

pub(crate) fn not_done(runs: &[RunRecord]) -> Vec<NotDone> {
    runs.iter()
        .filter(|r| r.state != RunState::Done)
        .map(|r| NotDone {
            family: r.config.family,
            label: r.config.label(),
            state: r.state.label().to_string(),
        })
        .collect()
}

/// What computed the runs, as (what, which) rows in a fixed order: a list, not a map,
/// because the template engine's maps iterate in an order of their own, which made two
/// writes of one report differ.
fn provenance(runs: &[RunRecord]) -> Vec<ProvenanceRow> {
    let Some(m) = runs.iter().filter_map(|r| r.meta.as_ref()).next() else {
        return Vec::new();
    };
    let mut p = BTreeMap::new();
    p.insert(
        "git commit".into(),
        match (&m.git_commit, m.git_dirty) {
            (Some(c), Some(true)) => format!("{c} (with uncommitted changes)"),
            (Some(c), _) => c.clone(),
            _ => "not a git checkout".into(),
        },
    );
    if let Some(build) = &m.build {
        p.insert(
            "kernels".into(),
            format!("v{} on {}", build.kernels, build.cpu_path),
        );
    }
    p.insert("host".into(), m.host.clone());
    p.insert("CPU".into(), m.cpu.clone());
    p.insert("threads per run".into(), m.threads.to_string());
    p.insert("data".into(), m.data_dir.clone());
    for (k, v) in &m.versions {
        p.insert(k.clone(), v.clone());
    }
    p.into_iter()
        .map(|(what, which)| ProvenanceRow { what, which })
        .collect()
}

#[derive(serde::Serialize)]
struct ProvenanceRow {
    what: String,
    which: String,
}

/// Where the runs' numbers come from, when that is more than one build or CPU.
fn provenance_warnings(runs: &[RunRecord]) -> Vec<String> {
    let metas: Vec<(String, results::RunMeta)> = runs
        .iter()
        .filter(|r| r.state.is_finished())
        .filter_map(|r| Some((r.config.label(), r.meta.clone()?)))
        .collect();
    results::mixed_provenance(&metas)
}

fn run_rows(runs: &[RunRecord], out_dir: &Path) -> Vec<RunRow> {
    runs.iter()
        .map(|r| {
            let last = r.rows.last();
            RunRow {
                label: r.config.label(),
                state: r.state.label().to_string(),
                epochs: format!("{}/{}", r.rows.len(), r.config.planned_epochs()),
                train_error: last.map(|l| pct(l.train_error)).unwrap_or_default(),
                test_error: last.map(|l| pct(l.test_error)).unwrap_or_default(),
                val_error: last.and_then(|l| l.val_error).map(pct).unwrap_or_default(),
                iterations: last
                    .and_then(|l| l.iteration)
                    .map(|i| i.to_string())
                    .unwrap_or_default(),
                wall_s: r
                    .meta
                    .as_ref()
                    .and_then(|m| m.wall_s)
                    .map(|w| format!("{w:.0}"))
                    .unwrap_or_default(),
                hash: r.config.hash(),
                parquet: r.dir.metrics_path().is_file().then(|| {
                    relative(out_dir, &r.dir.metrics_path())
                        .display()
                        .to_string()
                }),
                note: match r.problems.is_empty() {
                    false => r.problems.join("; "),
                    true => r
                        .meta
                        .as_ref()
                        .and_then(|m| m.error.clone())
                        .unwrap_or_default(),
                },
            }
        })
        .collect()
}

/// Writes `reports/<experiment>/index.html` (and `summary.json` for the index page).
/// How often a page written while a sweep runs reloads itself, in seconds.
pub const LIVE_REFRESH_S: u32 = 10;

/// Writes `reports_root/<experiment>/index.html` and its summary. `live`: a sweep is
/// still training, and the page says so and reloads itself every `LIVE_REFRESH_S`
/// seconds (the sweep's last write, and `degrade report`'s, are not live).
pub fn render_experiment(
    experiment: &Experiment,
    runs: &[RunRecord],
    reports_root: &Path,
    settings: &ReportSettings,
    command: &str,
    live: bool,
) -> Result<PathBuf, ReportError> {
    let out_dir = reports_root.join(&experiment.name);
    let out = out_dir.join("index.html");
    let finals = final_errors(runs)?;
    let means = epoch_means(runs)?;
    let verdict: Verdict = verdict(&finals, &not_done(runs));
    let axis = error_axis(settings, &means);
    let table: Vec<TableRow> = finals
        .iter()
        .map(|f| TableRow {
            family: f.family.to_string(),
            depth: f.depth,
            seeds: f.n,
            train_error: pct_spread(f.train_error.mean, f.train_error.std, f.n),
            test_error: pct_spread(f.test_error.mean, f.test_error.std, f.n),
            wall_s: format!("{:.0}", f.wall_s.mean),
        })
        .collect();
    let diverged: Vec<String> = runs
        .iter()
        .filter(|r| r.state == RunState::Diverged)
        .map(|r| r.config.label())
        .collect();
    let runs_done = runs.iter().filter(|r| r.state == RunState::Done).count();
    let resolved = runs
        .first()
        .map(|r| serde_json::to_string_pretty(&r.config).expect("a RunConfig serialises"))
        .unwrap_or_default();

    let mut tera = tera::Tera::new();
    tera.add_raw_template("experiment.html", EXPERIMENT_TEMPLATE)
        .map_err(tera_error("experiment.html"))?;
    let mut ctx = tera::Context::new();
    ctx.insert("name", &experiment.name);
    ctx.insert("live", &live);
    ctx.insert("live_refresh_s", &LIVE_REFRESH_S);
    ctx.insert("script", FIGURE_SCRIPT);
    ctx.insert("style", STYLE);
    ctx.insert("verdict", &verdict);
    ctx.insert("panels", &panels(runs, &means, settings, axis)?);
    ctx.insert("depth_chart", &depth_figure(&finals, axis)?);
    ctx.insert("smoothing", &settings.smoothing);
    ctx.insert("diverged", &diverged);
    ctx.insert("table", &table);
    let run_rows = run_rows(runs, &out_dir);
    ctx.insert(
        "has_validation",
        &run_rows.iter().any(|r| !r.val_error.is_empty()),
    );
    ctx.insert("runs", &run_rows);
    ctx.insert("diagnostics", &crate::diagnose::diagnostics_view(runs)?);
    ctx.insert("runs_done", &runs_done);
    ctx.insert("runs_total", &runs.len());
    ctx.insert("yaml", &experiment.source);
    ctx.insert("yaml_path", &experiment.path.display().to_string());
    ctx.insert("resolved", &resolved);
    ctx.insert("provenance", &provenance(runs));
    ctx.insert("provenance_warnings", &provenance_warnings(runs));
    ctx.insert("command", command);
    let html = tera
        .render("experiment.html", &ctx)
        .map_err(tera_error("experiment.html"))?;
    write(&out, &html)?;

    let summary = ExperimentSummary::of(experiment, &verdict, runs);
    let json = serde_json::to_string_pretty(&summary).expect("summary serialises");
    write(&out_dir.join("summary.json"), &json)?;
    Ok(out)
}

/// `reports/index.html`: every experiment that has a report, with its verdict.
pub fn render_index(reports_root: &Path) -> Result<PathBuf, ReportError> {
    let mut experiments: Vec<ExperimentSummary> = std::fs::read_dir(reports_root)
        .map_err(|source| ReportError::Io {
            path: reports_root.to_path_buf(),
            source,
        })?
        .filter_map(Result::ok)
        .filter_map(|entry| std::fs::read(entry.path().join("summary.json")).ok())
        .filter_map(|bytes| serde_json::from_slice(&bytes).ok())
        .collect();
    experiments.sort_by(|a, b| a.name.cmp(&b.name));
    let mut tera = tera::Tera::new();
    tera.add_raw_template("index.html", INDEX_TEMPLATE)
        .map_err(tera_error("index.html"))?;
    let mut ctx = tera::Context::new();
    ctx.insert("experiments", &experiments);
    ctx.insert("style", STYLE);
    let html = tera
        .render("index.html", &ctx)
        .map_err(tera_error("index.html"))?;
    let out = reports_root.join("index.html");
    write(&out, &html)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::{fitted_axis, relative};
    use crate::chart::{depth_chart, error_panel, Curve, DepthSeries};
    use std::path::Path;

    /// Every range of errors in [0, 100] %, on either axis: the fitted axis is a proper
    /// interval holding the data where it can, and both kinds of chart draw on it.
    #[test]
    fn axis_fitting_is_total_and_the_charts_draw_on_every_fitted_axis() {
        let edges = [
            0.0, 1e-9, 0.05, 0.5, 5.0, 12.0, 12.5, 13.0, 40.0, 83.3, 99.9, 100.0,
        ];
        for log in [false, true] {
            for &a in &edges {
                for &b in edges.iter().filter(|&&b| b >= a) {
                    let values = [a, (a + b) / 2.0, b, f64::NAN];
                    let axis = fitted_axis(log, values.into_iter());
                    let case = format!("log {log}, data in [{a}, {b}]: {axis:?}");
                    assert!(axis.lo.is_finite() && axis.hi.is_finite(), "{case}");
                    assert!(axis.lo < axis.hi && axis.hi <= 100.0, "{case}");
                    if log {
                        assert!(axis.lo > 0.0 && axis.hi / axis.lo >= 10.0 - 1e-9, "{case}");
                        assert!(axis.hi >= b.min(100.0 / 1.2) || axis.hi == 100.0, "{case}");
                    } else {
                        assert!(axis.lo == 0.0 && axis.hi >= b, "{case}");
                    }
                    let points = vec![(1.0, a), (2.0, b)];
                    let curve = Curve {
                        label: "d".into(),
                        color: 0,
                        train: points.clone(),
                        test: points,
                        iterations: Vec::new(),
                        seeds: Vec::new(),
                    };
                    error_panel("p", &[curve], 2.0, axis, 0.0).expect(&case);
                    let series = DepthSeries {
                        family: "plain".into(),
                        color: 0,
                        train: vec![(4.0, a, b - a), (16.0, b, 0.0)],
                        test: vec![(4.0, b, 0.0), (16.0, a, b - a)],
                    };
                    depth_chart(&[series], (4.0, 16.0), axis).expect(&case);
                }
            }
            // No data at all.
            let axis = fitted_axis(log, std::iter::empty());
            assert!(axis.lo < axis.hi, "{axis:?}");
        }
    }

    #[test]
    fn relative_links_climb_out_of_the_report_dir() {
        assert_eq!(
            relative(
                Path::new("/a/reports/x"),
                Path::new("/a/results/x/r/metrics.parquet")
            ),
            Path::new("../../results/x/r/metrics.parquet")
        );
    }
}
