//! Experiment YAML -> validated spec -> resolved run configs (the sweep plan).
//!
//! This crate is the first stage of the one-way data flow
//! `YAML -> run configs -> training -> Parquet -> report`: it knows nothing about
//! tensors, files of results or charts.

mod error;
mod plan;
mod run_config;
mod spec;
mod validate;

pub use error::ExperimentError;
pub use plan::{load_experiment, parse_experiment, Experiment, ReportSettings};
pub use run_config::{DatasetName, Family, ModelArch, RunConfig, Schedule, TrainConfig};
