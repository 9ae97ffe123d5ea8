//! The resolved configuration of one training run. Everything that changes the numbers
//! a run produces is in here, and nothing else: its hash names the run's directory, so a
//! change of any field means a new run, and an unchanged run is never trained twice.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use vocab::{DatasetName, Family, ModelArch, NetSpec, ShortcutOption, CLASSES};

/// How pixels become network inputs. All start by scaling bytes to [0, 1]; the
/// statistics come from the training images only (the validation split excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Normalize {
    /// Subtract one mean and divide by one standard deviation over all pixels (the
    /// default).
    Global,
    /// Subtract each channel's mean and divide by its standard deviation.
    PerChannel,
    /// Subtract the mean image, pixel by pixel and channel by channel (the paper).
    PerPixelMean,
}

/// Training-time augmentation, drawn from the run's seed (test images are never
/// augmented).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Augment {
    /// Zero-pad each side by this many pixels, then crop a random window of the
    /// original size (the paper: 4). 0: no cropping.
    #[serde(default)]
    pub pad: usize,
    /// Flip horizontally with probability 1/2 (the paper: yes).
    #[serde(default)]
    pub flip: bool,
}

/// A lower learning rate at the start (the paper's ResNet-110: 0.01 until the training
/// error is below 80 %, about 400 iterations), then the schedule's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Warmup {
    pub lr: f64,
    /// End the warm-up once the mean training error of the last `WARMUP_WINDOW`
    /// mini-batches is below this fraction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_train_error: Option<f64>,
    /// End the warm-up after this many iterations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<usize>,
}

/// Mini-batches whose mean training error decides when an error-based warm-up ends.
pub const WARMUP_WINDOW: usize = 10;

/// Learning-rate schedule, evaluated per iteration. Step milestones count in the unit of
/// the run's length: epochs if `train.epochs` is given, iterations if `train.iterations` is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Schedule {
    Constant,
    /// Cosine annealing from the base lr to zero over all iterations.
    Cosine,
    /// Multiply the lr by `gamma` at each milestone m, once m epochs (or, for a run
    /// given in iterations, m iterations: the paper's 32000 and 48000) are done. This is
    /// PyTorch's `MultiStepLR` stepped once per epoch (or per iteration): with milestone
    /// 2, epochs 1 and 2 train at the base lr and epoch 3 at `gamma` times it.
    Step {
        milestones: Vec<usize>,
        gamma: f64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The run's length: exactly one of `epochs` and `iterations` is set. (An epochs
    /// count serialises as before the field became optional, so old hashes hold.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    pub batch_size: usize,
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub schedule: Schedule,
    /// Divergence bound on the training loss; None = the trainer's default. Left out of
    /// the JSON when None, so configs from before this field keep their hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_loss: Option<f64>,
    /// Length in optimiser steps instead of epochs (the paper: 64000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<Warmup>,
}

/// The smallest mini-batch a step trains on: batch norm needs two examples for a
/// variance.
pub const MIN_BATCH: usize = 2;

/// The lengths of one epoch's mini-batches over `n` examples: `batch_size` each, the last
/// one what remains, dropped if shorter than `MIN_BATCH`. The one rule for how an epoch is
/// cut: the trainer's batches and every count of them come from here.
pub fn batch_lengths(n: usize, batch_size: usize) -> impl Iterator<Item = usize> {
    let size = batch_size.max(1);
    (0..n)
        .step_by(size)
        .map(move |start| (n - start).min(size))
        .filter(|&len| len >= MIN_BATCH)
}

/// How many mini-batches an epoch over `n` examples has.
pub fn batches_per_epoch(n: usize, batch_size: usize) -> usize {
    batch_lengths(n, batch_size).count()
}

impl TrainConfig {
    /// Optimiser steps in the whole run, for a training set cut into `per_epoch` batches.
    pub fn total_iterations(&self, per_epoch: usize) -> usize {
        match (self.iterations, self.epochs) {
            (Some(iterations), _) => iterations,
            (None, epochs) => epochs.unwrap_or(0) * per_epoch,
        }
    }

    /// Epochs to start: an iteration-based run ends inside its last one.
    pub fn epochs_to_run(&self, per_epoch: usize) -> usize {
        match (self.iterations, self.epochs) {
            (Some(iterations), _) => iterations.div_ceil(per_epoch.max(1)),
            (None, epochs) => epochs.unwrap_or(0),
        }
    }

    /// The length as written, for messages: "5 epochs" or "64000 iterations".
    pub fn length_label(&self) -> String {
        match (self.iterations, self.epochs) {
            (Some(i), _) => format!("{i} iterations"),
            (None, e) => format!("{} epochs", e.unwrap_or(0)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    pub experiment: String,
    pub dataset: DatasetName,
    /// Use only the first N training images (None: all of them).
    pub train_limit: Option<usize>,
    /// Use only the first N test images (None: all of them).
    pub test_limit: Option<usize>,
    /// Hold out the last N images of the training file as a validation set (before
    /// `train_limit` applies to the rest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<usize>,
    /// None: `Normalize::Global`, as before the option existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<Normalize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub augment: Option<Augment>,
    pub arch: ModelArch,
    pub family: Family,
    pub depth: usize,
    /// MLP: hidden width. CIFAR-style nets: filters of stage 1 (16 in the paper).
    pub width: usize,
    /// CIFAR-style nets only (None for MLPs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shortcut: Option<ShortcutOption>,
    pub zero_init_residual: bool,
    pub seed: u64,
    pub train: TrainConfig,
}

impl RunConfig {
    /// The network this run trains, on images of `input` (channels, rows, cols): the
    /// shape of the images as loaded, which the tests' small files make smaller than
    /// the dataset's own.
    pub fn net(&self, input: [usize; 3]) -> NetSpec {
        NetSpec {
            arch: self.arch,
            family: self.family,
            depth: self.depth,
            width: self.width,
            input,
            classes: CLASSES,
            shortcut: ShortcutOption::for_net(self.arch, self.family, self.shortcut),
            zero_init_residual: self.zero_init_residual,
        }
    }

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

    /// Epochs the run will start, with the dataset's standard size (for planning and
    /// progress estimates; the trainer counts the batches it actually has).
    pub fn planned_epochs(&self) -> usize {
        let available = self
            .dataset
            .train_size()
            .saturating_sub(self.validation.unwrap_or(0));
        let n = self.train_limit.map_or(available, |l| l.min(available));
        self.train
            .epochs_to_run(batches_per_epoch(n, self.train.batch_size))
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
                let total = t.total_iterations(iterations_per_epoch).max(1) as f64;
                let progress = iteration as f64 / total;
                0.5 * t.lr * (1.0 + (std::f64::consts::PI * progress).cos())
            }
            Schedule::Step { milestones, gamma } => {
                let passed = if t.iterations.is_some() {
                    milestones.iter().filter(|&&m| iteration >= m).count()
                } else {
                    let epochs_done = iteration / iterations_per_epoch.max(1);
                    milestones.iter().filter(|&&m| epochs_done >= m).count()
                };
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
            validation: None,
            normalize: None,
            augment: None,
            arch: ModelArch::Mlp,
            family: Family::Plain,
            depth: 4,
            width: 8,
            shortcut: None,
            zero_init_residual: true,
            seed: 0,
            train: TrainConfig {
                epochs: Some(4),
                batch_size: 2,
                lr: 0.1,
                momentum: 0.9,
                weight_decay: 0.0,
                schedule,
                max_loss: None,
                iterations: None,
                warmup: None,
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
        // PyTorch: `MultiStepLR(opt, [2, 4], 0.1)` with `scheduler.step()` after each
        // epoch gives the epochs (1-based) 0.1, 0.1, 0.01, 0.01, 0.001, ...
        let by_epoch: Vec<f64> = (0..6).map(|e| c.lr_at(e * 10, 10)).collect();
        for (got, want) in by_epoch.iter().zip([0.1, 0.1, 0.01, 0.01, 0.001, 0.001]) {
            assert!((got - want).abs() < 1e-12, "{by_epoch:?}");
        }
        // Within an epoch the lr holds: the last step of epoch 2 is still at 0.1.
        assert!((c.lr_at(19, 10) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn iteration_milestones_drop_after_that_many_steps() {
        let mut c = config(Schedule::Step {
            milestones: vec![32_000, 48_000],
            gamma: 0.1,
        });
        c.train.epochs = None;
        c.train.iterations = Some(64_000);
        // 352 batches per epoch (45k images, batch 128): milestones ignore epochs.
        assert!((c.lr_at(31_999, 352) - 0.1).abs() < 1e-12);
        assert!((c.lr_at(32_000, 352) - 0.01).abs() < 1e-12);
        assert!((c.lr_at(48_000, 352) - 0.001).abs() < 1e-12);
        assert_eq!(c.train.total_iterations(352), 64_000);
        assert_eq!(c.train.epochs_to_run(352), 182);
        let cosine = RunConfig {
            train: TrainConfig {
                schedule: Schedule::Cosine,
                ..c.train.clone()
            },
            ..c
        };
        assert!((cosine.lr_at(32_000, 352) - 0.05).abs() < 1e-12);
    }

    #[test]
    fn a_config_from_before_the_new_options_keeps_its_hash() {
        // The JSON of an MLP run as the first release wrote it: optional fields added since
        // must not change its hash, or every finished run would train again.
        let old = r#"{"experiment":"t","dataset":"fashion-mnist","train_limit":null,"test_limit":null,"arch":"mlp","family":"plain","depth":4,"width":8,"zero_init_residual":true,"seed":0,"train":{"epochs":4,"batch_size":2,"lr":0.1,"momentum":0.9,"weight_decay":0.0,"schedule":"cosine"}}"#;
        let c = config(Schedule::Cosine);
        assert_eq!(serde_json::to_string(&c).unwrap(), old);
        let parsed: RunConfig = serde_json::from_str(old).unwrap();
        assert_eq!(parsed, c);
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
