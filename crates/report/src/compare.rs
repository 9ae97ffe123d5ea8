//! One page for several experiments: their final errors against depth on one chart and
//! the verdict of each, for questions one sweep cannot answer alone (option A against
//! option B, an MLP against the conv nets).

use crate::aggregate::{final_errors, GroupStat};
use crate::chart::DepthSeries;
use crate::error::ReportError;
use crate::load::RunRecord;
use crate::page::{
    depth_chart_of, depth_series, fitted_axis_of, not_done, tera_error, write, ExperimentSummary,
    FIGURE_SCRIPT, STYLE,
};
use crate::verdict::verdict;
use experiment::{Experiment, ReportSettings};
use std::path::{Path, PathBuf};
use vocab::Family;

const TEMPLATE: &str = include_str!("../../../templates/compare.html");

/// One experiment on the page, with its runs as `load_runs` read them.
pub struct Compared<'a> {
    pub experiment: &'a Experiment,
    pub runs: &'a [RunRecord],
}

/// Writes `reports_root/compare/<a>+<b>+.../index.html` for `compared` (two or more
/// experiments, in the order given) and returns its path.
pub fn render_comparison(
    compared: &[Compared],
    reports_root: &Path,
    settings: &ReportSettings,
) -> Result<PathBuf, ReportError> {
    let names: Vec<&str> = compared
        .iter()
        .map(|c| c.experiment.name.as_str())
        .collect();
    let mut rows = Vec::new();
    let mut finals: Vec<(String, Vec<GroupStat>)> = Vec::new();
    for c in compared {
        let f = final_errors(c.runs)?;
        let v = verdict(&f, &not_done(c.runs));
        rows.push(ExperimentSummary::of(c.experiment, &v, c.runs));
        finals.push((c.experiment.name.clone(), f));
    }
    let chart = comparison_chart(&finals, settings)?;
    let title = format!("{}: compared", names.join(" / "));
    let mut tera = tera::Tera::new();
    tera.add_raw_template("compare.html", TEMPLATE)
        .map_err(tera_error("compare.html"))?;
    let mut ctx = tera::Context::new();
    ctx.insert("title", &title);
    ctx.insert("style", STYLE);
    ctx.insert("script", FIGURE_SCRIPT);
    ctx.insert("experiments", &rows);
    ctx.insert("chart", &chart);
    let html = tera
        .render("compare.html", &ctx)
        .map_err(tera_error("compare.html"))?;
    let out = reports_root
        .join("compare")
        .join(names.join("+"))
        .join("index.html");
    write(&out, &html)?;
    Ok(out)
}

/// Each experiment's families as series of their own, two colours per experiment.
fn comparison_chart(
    finals: &[(String, Vec<GroupStat>)],
    settings: &ReportSettings,
) -> Result<Option<String>, ReportError> {
    let all = || finals.iter().flat_map(|(_, f)| f.iter());
    let series: Vec<DepthSeries> = finals
        .iter()
        .enumerate()
        .flat_map(|(i, (name, f))| {
            Family::ALL
                .into_iter()
                .enumerate()
                .filter_map(move |(j, family)| {
                    depth_series(f, family, format!("{name} {family}"), 2 * i + j)
                })
        })
        .collect();
    depth_chart_of(&series, all(), fitted_axis_of(settings, all()))
}
