//! Renders `reports/<experiment>/index.html` and `reports/index.html` from the templates
//! in `templates/` (compiled into the binary, so the report needs no files at run time).

use crate::chart::{error_panel, Curve};
use crate::error::ReportError;
use crate::load::RunRecord;
use crate::summary::{depth_comparison, final_errors};
use experiment::{Experiment, Family};
use results::RunState;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

const EXPERIMENT_TEMPLATE: &str = include_str!("../../../templates/experiment.html");
const INDEX_TEMPLATE: &str = include_str!("../../../templates/index.html");
const STYLE: &str = include_str!("../../../templates/style.css");

/// What `reports/<experiment>/summary.json` holds, for the index page.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ExperimentSummary {
    name: String,
    verdict: Vec<String>,
    runs_done: usize,
    runs_total: usize,
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
    wall_s: String,
    hash: String,
    parquet: Option<String>,
    note: String,
}

fn pct(x: f64) -> String {
    format!("{:.2}", 100.0 * x)
}

fn tera_error(template: &str) -> impl Fn(tera::Error) -> ReportError + '_ {
    move |e| ReportError::Template {
        template: template.to_string(),
        detail: format!("{e:?}"),
    }
}

fn write(path: &Path, text: &str) -> Result<(), ReportError> {
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

/// Per-family panels. Curves average the seeds at each epoch that they all reached.
fn panels(runs: &[RunRecord]) -> Result<Vec<Panel>, ReportError> {
    let mut depths: Vec<usize> = runs.iter().map(|r| r.config.depth).collect();
    depths.sort_unstable();
    depths.dedup();
    let max_epoch = runs
        .iter()
        .map(|r| r.config.train.epochs)
        .max()
        .unwrap_or(1) as f64;
    let y_max = runs
        .iter()
        .flat_map(|r| &r.rows)
        .map(|row| row.train_error.max(row.test_error))
        .fold(0.0f64, f64::max);
    let y_max = ((100.0 * y_max / 10.0).ceil() * 10.0).clamp(10.0, 100.0);
    let mut families: Vec<Family> = runs.iter().map(|r| r.config.family).collect();
    families.sort();
    families.dedup();
    families
        .into_iter()
        .map(|family| {
            let curves: Vec<Curve> = depths
                .iter()
                .enumerate()
                .filter_map(|(color, &depth)| {
                    let seeds: Vec<&RunRecord> = runs
                        .iter()
                        .filter(|r| {
                            r.config.family == family
                                && r.config.depth == depth
                                && !r.rows.is_empty()
                        })
                        .collect();
                    let epochs = seeds.iter().map(|r| r.rows.len()).min()?;
                    let mean = |f: fn(&results::MetricRow) -> f64| -> Vec<(f64, f64)> {
                        (0..epochs)
                            .map(|e| {
                                let m = seeds.iter().map(|r| f(&r.rows[e])).sum::<f64>()
                                    / seeds.len() as f64;
                                (seeds[0].rows[e].epoch as f64, 100.0 * m)
                            })
                            .collect()
                    };
                    Some(Curve {
                        label: format!("{family}-{depth}"),
                        color,
                        train: mean(|r| r.train_error),
                        test: mean(|r| r.test_error),
                    })
                })
                .collect();
            Ok(Panel {
                family: family.to_string(),
                svg: error_panel(&format!("{family} nets"), &curves, max_epoch, y_max)?,
            })
        })
        .collect()
}

pub fn render_experiment(
    experiment: &Experiment,
    runs: &[RunRecord],
    reports_root: &Path,
    command: &str,
) -> Result<PathBuf, ReportError> {
    let out_dir = reports_root.join(&experiment.name);
    let out = out_dir.join("index.html");
    let finals = final_errors(runs);
    let verdict: Vec<String> = [Family::Plain, Family::Residual]
        .into_iter()
        .filter_map(|f| depth_comparison(&finals, f))
        .collect();
    let table: Vec<TableRow> = finals
        .iter()
        .map(|f| TableRow {
            family: f.family.to_string(),
            depth: f.depth,
            seeds: f.seeds,
            train_error: if f.seeds > 1 {
                format!("{} ± {}", pct(f.train_error_mean), pct(f.train_error_std))
            } else {
                pct(f.train_error_mean)
            },
            test_error: if f.seeds > 1 {
                format!("{} ± {}", pct(f.test_error_mean), pct(f.test_error_std))
            } else {
                pct(f.test_error_mean)
            },
            wall_s: format!("{:.0}", f.wall_s_mean),
        })
        .collect();
    let run_rows: Vec<RunRow> = runs
        .iter()
        .map(|r| {
            let last = r.rows.last();
            RunRow {
                label: r.config.label(),
                state: r.state.label().to_string(),
                epochs: format!("{}/{}", r.rows.len(), r.config.train.epochs),
                train_error: last.map(|l| pct(l.train_error)).unwrap_or_default(),
                test_error: last.map(|l| pct(l.test_error)).unwrap_or_default(),
                wall_s: r
                    .meta
                    .as_ref()
                    .and_then(|m| m.wall_s)
                    .map(|w| format!("{w:.0}"))
                    .unwrap_or_default(),
                hash: r.config.hash(),
                parquet: r.dir.metrics_path().is_file().then(|| {
                    relative(&out_dir, &r.dir.metrics_path())
                        .display()
                        .to_string()
                }),
                note: r
                    .meta
                    .as_ref()
                    .and_then(|m| m.error.clone())
                    .unwrap_or_default(),
            }
        })
        .collect();
    let runs_done = runs.iter().filter(|r| r.state == RunState::Done).count();
    let provenance: BTreeMap<String, String> = runs
        .iter()
        .filter_map(|r| r.meta.as_ref())
        .next()
        .map(|m| {
            let mut p = BTreeMap::new();
            p.insert(
                "git commit".into(),
                match (&m.git_commit, m.git_dirty) {
                    (Some(c), Some(true)) => format!("{c} (with uncommitted changes)"),
                    (Some(c), _) => c.clone(),
                    _ => "not a git checkout".into(),
                },
            );
            p.insert("host".into(), m.host.clone());
            p.insert("CPU".into(), m.cpu.clone());
            p.insert("threads per run".into(), m.threads.to_string());
            p.insert("data".into(), m.data_dir.clone());
            for (k, v) in &m.versions {
                p.insert(k.clone(), v.clone());
            }
            p
        })
        .unwrap_or_default();

    let mut tera = tera::Tera::new();
    tera.add_raw_template("experiment.html", EXPERIMENT_TEMPLATE)
        .map_err(tera_error("experiment.html"))?;
    let mut ctx = tera::Context::new();
    ctx.insert("name", &experiment.name);
    ctx.insert("style", STYLE);
    ctx.insert("panels", &panels(runs)?);
    ctx.insert("verdict", &verdict);
    ctx.insert("table", &table);
    ctx.insert("runs", &run_rows);
    ctx.insert("runs_done", &runs_done);
    ctx.insert("runs_total", &runs.len());
    ctx.insert("yaml", &experiment.source);
    ctx.insert("yaml_path", &experiment.path.display().to_string());
    ctx.insert("provenance", &provenance);
    ctx.insert("command", command);
    let html = tera
        .render("experiment.html", &ctx)
        .map_err(tera_error("experiment.html"))?;
    write(&out, &html)?;

    let summary = ExperimentSummary {
        name: experiment.name.clone(),
        verdict,
        runs_done,
        runs_total: runs.len(),
    };
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
    use super::relative;
    use std::path::Path;

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
