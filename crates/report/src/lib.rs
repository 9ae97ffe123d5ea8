//! The HTML report of an experiment, from its results on disk only: it never trains.
//!
//! `load` gathers each planned run's state and metric rows, `summary` reduces them to
//! the numbers the page states, `chart` draws the SVG figures, `page` renders the
//! templates.

mod chart;
mod error;
mod load;
mod page;
mod summary;

pub use error::ReportError;
pub use load::{load_runs, RunRecord};
pub use page::{render_experiment, render_index};
pub use summary::{final_errors, FinalError};
