//! Training: one run (`train`), the process that trains one run directory (`worker`),
//! and the sweep that trains every missing run of an experiment (`sweep`).
//! The trainer never draws; it writes Parquet and metadata through `results`.

pub mod allocator;
pub mod array_task;
pub mod augment;
pub mod batches;
pub mod checkpoint;
pub mod diagnostics;
mod error;
pub mod evaluate;
pub mod gradient_flow;
pub mod progress;
pub mod provenance;
pub mod sgd;
pub mod slurm;
pub mod sweep;
#[cfg(test)]
mod test_data;
pub mod train;
pub mod warmup;
pub mod worker;

pub use error::TrainError;
