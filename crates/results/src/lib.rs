//! What a run leaves on disk, and the only code that reads or writes it:
//!
//! ```text
//! results/<experiment>/<family>-d<depth>-s<seed>-<config hash>/
//!     config.json      the resolved RunConfig
//!     meta.json        provenance and status (RunMeta)
//!     metrics.parquet  one MetricRow per finished epoch
//! ```
//!
//! The trainer writes through this crate, the report reads through it; neither knows
//! the other.

mod atomic;
mod diagnostic_rows;
mod error;
mod layout;
mod meta;
mod metric_row;
mod pending;

pub use atomic::{sync_dir, write_atomically};
pub use diagnostic_rows::{
    read_gradients, read_lesion, read_responses, write_gradients, write_lesion, write_responses,
    GradientRow, LesionRow, ResponseRow, RunKey,
};
pub use error::ResultsError;
pub use layout::{run_states, LockHolder, PlannedRun, RunDir, RunLock, RunState};
pub use meta::{mixed_provenance, now_utc, Build, ResumedFrom, RunMeta, RunStatus};
pub use metric_row::{metrics_frame, read_metrics, write_metrics, MetricRow, METRIC_COLUMNS};
pub use pending::{default_pending_path, read_pending, write_pending};
/// The polars version the results are written with (re-exported for the report).
pub use polars;
