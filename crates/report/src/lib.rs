//! The HTML report of an experiment, from its results on disk only: it never trains.
//!
//! `load` gathers each planned run's state and metric rows, `aggregate` reduces them
//! over seeds (polars), `verdict` says what they show, `chart` draws the SVG figures,
//! `page` renders the templates.

mod aggregate;
mod chart;
mod compare;
mod diagnose;
mod error;
mod figure;
mod load;
mod numbers;
mod page;
mod stats;
mod verdict;

pub use aggregate::{epoch_means, final_errors, GroupStat, MeanStd};
pub use compare::{render_comparison, Compared};
pub use diagnose::{diagnostics_view, DiagnosticsView};
pub use error::ReportError;
pub use load::{load_runs, RunRecord};
pub use page::{render_experiment, render_index};
pub use verdict::{verdict, Evidence, NotDone, Verdict};
