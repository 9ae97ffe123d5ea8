//! The experiment file as the user writes it. Fields that the validator checks carry
//! their YAML location (`Spanned`), so an impossible value is reported at its line.

use crate::run_config::{Augment, Normalize, Schedule, Warmup};
use crate::settings::{Diagnostics, SlurmSettings};
use serde::Deserialize;
use serde_saphyr::Spanned;
use std::path::PathBuf;
use vocab::{DatasetName, Family, ModelArch, ShortcutOption};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExperimentSpec {
    pub name: Spanned<String>,
    pub dataset: DatasetSpec,
    pub model: ModelSpec,
    pub families: Spanned<Vec<Spanned<Family>>>,
    pub depths: Spanned<Vec<Spanned<usize>>>,
    pub seeds: Spanned<Vec<Spanned<u64>>>,
    /// Runs of the grid not to train, as `family-depth` (e.g. `plain-110`).
    #[serde(default)]
    pub exclude: Option<Spanned<Vec<Spanned<String>>>>,
    pub train: Spanned<TrainSpec>,
    /// Keep each finished run's final weights (`final.safetensors`); not part of any
    /// run's hash, since it does not change the numbers.
    #[serde(default)]
    pub keep_final_weights: bool,
    /// How the report draws this experiment (never part of a run's hash).
    #[serde(default)]
    pub report: Option<ReportSpec>,
    /// `cpu` (the default), `cuda` or `cuda:N`; the command line's `--device` wins. Not
    /// part of a run's hash: the same run on another device is the same experiment.
    #[serde(default)]
    pub device: Option<Spanned<String>>,
    /// Resources of the Slurm job array `degrade slurm` writes (never part of a hash).
    #[serde(default)]
    pub slurm: Option<Spanned<SlurmSettings>>,
    /// Gradient flow, layer responses, lesion study (never part of a hash).
    #[serde(default)]
    pub diagnostics: Option<Diagnostics>,
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
    /// Hold out the last N training images for validation (the paper: 5000).
    #[serde(default)]
    pub validation: Option<Spanned<usize>>,
    #[serde(default)]
    pub normalize: Option<Normalize>,
    #[serde(default)]
    pub augment: Option<Spanned<Augment>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ModelSpec {
    pub arch: ModelArch,
    pub width: Spanned<usize>,
    /// CIFAR-style residual nets: `a` (the paper's, the default) or `b`.
    #[serde(default)]
    pub shortcut: Option<Spanned<ShortcutOption>>,
    /// Start each residual block's last BN gamma at zero, so every block begins as the
    /// identity (Goyal et al. 2017). Plain nets ignore it. Off unless asked for, as in
    /// the paper and in torchvision.
    #[serde(default)]
    pub zero_init_residual: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrainSpec {
    /// The length: `epochs` or `iterations`, exactly one.
    #[serde(default)]
    pub epochs: Option<Spanned<usize>>,
    #[serde(default)]
    pub iterations: Option<Spanned<usize>>,
    pub batch_size: Spanned<usize>,
    pub lr: Spanned<f64>,
    pub momentum: Spanned<f64>,
    pub weight_decay: Spanned<f64>,
    pub schedule: Spanned<Schedule>,
    /// A training loss above this marks the run diverged (default 1000).
    #[serde(default)]
    pub max_loss: Option<Spanned<f64>>,
    #[serde(default)]
    pub warmup: Option<Spanned<WarmupSpec>>,
}

/// `train.warmup` as written: the warm-up, and the depths it applies to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WarmupSpec {
    pub lr: f64,
    #[serde(default)]
    pub until_train_error: Option<f64>,
    #[serde(default)]
    pub iterations: Option<usize>,
    /// Only runs of these depths warm up (the paper: 110); default all.
    #[serde(default)]
    pub depths: Option<Vec<usize>>,
}

impl WarmupSpec {
    pub fn warmup(&self) -> Warmup {
        Warmup {
            lr: self.lr,
            until_train_error: self.until_train_error,
            iterations: self.iterations,
        }
    }
}
