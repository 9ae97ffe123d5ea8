//! Experiment YAML -> validated spec -> resolved run configs (the sweep plan).
//!
//! This crate is the first stage of the one-way data flow
//! `YAML -> run configs -> training -> Parquet -> report`: it knows nothing about
//! tensors, files of results or charts.

mod device;
mod error;
pub mod memory;
mod plan;
mod run_config;
mod settings;
mod spec;
mod validate;

pub use device::ComputeDevice;
pub use error::ExperimentError;
pub use plan::{load_experiment, parse_experiment, Experiment};
pub use run_config::{
    batch_lengths, batches_per_epoch, Augment, Normalize, RunConfig, Schedule, TrainConfig, Warmup,
    MIN_BATCH, WARMUP_WINDOW,
};
pub use settings::{Diagnostics, ReportSettings, SlurmSettings};
pub use validate::depth_problem;
