//! The resolved configuration of one training run. Everything that changes the numbers
//! a run produces is in here, and nothing else: its hash names the run's directory, so a
//! change of any field means a new run, and an unchanged run is never trained twice.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    Plain,
    Residual,
}

impl Family {
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Plain => "plain",
            Family::Residual => "residual",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetName {
    FashionMnist,
    Mnist,
}

impl DatasetName {
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetName::FashionMnist => "fashion-mnist",
            DatasetName::Mnist => "mnist",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelArch {
    /// Fully connected Linear-BN-ReLU layers on the flattened image.
    Mlp,
}

/// Learning-rate schedule, evaluated per iteration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Schedule {
    Constant,
    /// Cosine annealing from the base lr to zero over all iterations.
    Cosine,
    /// Multiply the lr by `gamma` at the start of each epoch in `milestones` (1-based
    /// epoch numbers, like PyTorch's MultiStepLR stepped once per epoch).
    Step {
        milestones: Vec<usize>,
        gamma: f64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub schedule: Schedule,
    /// Divergence bound on the training loss; None = the trainer's default. Left out of
    /// the JSON when None, so configs from before this field keep their hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_loss: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub experiment: String,
    pub dataset: DatasetName,
    /// Use only the first N training images (None: all of them).
    pub train_limit: Option<usize>,
    /// Use only the first N test images (None: all of them).
    pub test_limit: Option<usize>,
    pub arch: ModelArch,
    pub family: Family,
    pub depth: usize,
    pub width: usize,
    pub zero_init_residual: bool,
    pub seed: u64,
    pub train: TrainConfig,
}

impl RunConfig {
    /// A short, stable hash of the whole config (its canonical JSON, fields in
    /// declaration order). Twelve hex digits: 48 bits, ample for one experiment's runs.
    pub fn hash(&self) -> String {
        let json = serde_json::to_string(self).expect("a RunConfig always serialises");
        let digest = Sha256::digest(json.as_bytes());
        digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
    }

    /// The run's directory name: readable prefix, then the config hash that identifies it.
    pub fn dir_name(&self) -> String {
        format!(
            "{}-d{}-s{}-{}",
            self.family,
            self.depth,
            self.seed,
            self.hash()
        )
    }

    /// Human label used in logs and progress lines.
    pub fn label(&self) -> String {
        format!("{}-{} seed {}", self.family, self.depth, self.seed)
    }

    /// The learning rate at a 0-based global iteration.
    pub fn lr_at(&self, iteration: usize, iterations_per_epoch: usize) -> f64 {
        let t = &self.train;
        match &t.schedule {
            Schedule::Constant => t.lr,
            Schedule::Cosine => {
                let total = (t.epochs * iterations_per_epoch).max(1) as f64;
                let progress = iteration as f64 / total;
                0.5 * t.lr * (1.0 + (std::f64::consts::PI * progress).cos())
            }
            Schedule::Step { milestones, gamma } => {
                let epoch = iteration / iterations_per_epoch.max(1) + 1;
                let passed = milestones.iter().filter(|&&m| epoch >= m).count();
                t.lr * gamma.powi(passed as i32)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(schedule: Schedule) -> RunConfig {
        RunConfig {
            experiment: "t".into(),
            dataset: DatasetName::FashionMnist,
            train_limit: None,
            test_limit: None,
            arch: ModelArch::Mlp,
            family: Family::Plain,
            depth: 4,
            width: 8,
            zero_init_residual: true,
            seed: 0,
            train: TrainConfig {
                epochs: 4,
                batch_size: 2,
                lr: 0.1,
                momentum: 0.9,
                weight_decay: 0.0,
                schedule,
                max_loss: None,
            },
        }
    }

    #[test]
    fn cosine_starts_at_base_and_halves_midway() {
        let c = config(Schedule::Cosine);
        assert!((c.lr_at(0, 10) - 0.1).abs() < 1e-12);
        assert!((c.lr_at(20, 10) - 0.05).abs() < 1e-12);
        assert!(c.lr_at(39, 10) < 0.001);
    }

    #[test]
    fn step_drops_at_milestone_epochs() {
        let c = config(Schedule::Step {
            milestones: vec![2, 4],
            gamma: 0.1,
        });
        assert!((c.lr_at(9, 10) - 0.1).abs() < 1e-12); // epoch 1
        assert!((c.lr_at(10, 10) - 0.01).abs() < 1e-12); // epoch 2
        assert!((c.lr_at(30, 10) - 0.001).abs() < 1e-12); // epoch 4
    }

    #[test]
    fn hash_changes_with_any_field_and_is_stable() {
        let a = config(Schedule::Cosine);
        let mut b = a.clone();
        assert_eq!(a.hash(), b.hash());
        b.seed = 1;
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.hash().len(), 12);
    }
}
