//! The experiment file as the user writes it. Fields that the validator checks carry
//! their YAML location (`Spanned`), so an impossible value is reported at its line.

use crate::run_config::{DatasetName, Family, ModelArch, Schedule};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::path::PathBuf;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExperimentSpec {
    pub name: Spanned<String>,
    pub dataset: DatasetSpec,
    pub model: ModelSpec,
    pub families: Spanned<Vec<Spanned<Family>>>,
    pub depths: Spanned<Vec<Spanned<usize>>>,
    pub seeds: Spanned<Vec<Spanned<u64>>>,
    pub train: TrainSpec,
    /// Keep each finished run's final weights (`final.safetensors`); not part of any
    /// run's hash, since it does not change the numbers.
    #[serde(default)]
    pub keep_final_weights: bool,
    /// How the report draws this experiment (never part of a run's hash).
    #[serde(default)]
    pub report: Option<ReportSpec>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportSpec {
    #[serde(default)]
    pub log_y: bool,
    /// Exponential-moving-average weight for the curves, in [0, 1); 0 draws raw values.
    #[serde(default)]
    pub smoothing: Option<Spanned<f64>>,
    /// `[low, high]` of the error axis, in percent.
    #[serde(default)]
    pub y_range: Option<Spanned<Vec<f64>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DatasetSpec {
    pub name: DatasetName,
    /// Where the IDX files are; overrides the search path (not part of the run hash).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    #[serde(default)]
    pub train_limit: Option<Spanned<usize>>,
    #[serde(default)]
    pub test_limit: Option<Spanned<usize>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ModelSpec {
    pub arch: ModelArch,
    pub width: Spanned<usize>,
    /// Start each residual block's last BN gamma at zero, so every block begins as the
    /// identity (Goyal et al. 2017). Plain nets ignore it.
    pub zero_init_residual: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrainSpec {
    pub epochs: Spanned<usize>,
    pub batch_size: Spanned<usize>,
    pub lr: Spanned<f64>,
    pub momentum: Spanned<f64>,
    pub weight_decay: Spanned<f64>,
    pub schedule: Spanned<Schedule>,
    /// A training loss above this marks the run diverged (default 1000).
    #[serde(default)]
    pub max_loss: Option<Spanned<f64>>,
}
