//! Helpers shared by the end-to-end tests: a tiny generated dataset and a scratch
//! directory to run the real binary in.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_degrade");

/// Writes a learnable 8x8 dataset: class k lights up row k's pixels, plus noise.
pub fn write_tiny_dataset(dir: &Path, n_train: usize, n_test: usize) {
    for (prefix, n) in [("train", n_train), ("t10k", n_test)] {
        let mut images = Vec::new();
        let mut labels = Vec::new();
        let mut state: u32 = 12345;
        for i in 0..n {
            let label = (i % 8) as u8;
            for r in 0..8 {
                for _ in 0..8 {
                    state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    let noise = ((state >> 16) % 60) as u8;
                    images.push(if r == label as usize {
                        180 + noise
                    } else {
                        noise
                    });
                }
            }
            labels.push(label);
        }
        std::fs::write(
            dir.join(format!("{prefix}-images-idx3-ubyte")),
            data::encode_idx(&[n, 8, 8], &images),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{prefix}-labels-idx1-ubyte")),
            data::encode_idx(&[n], &labels),
        )
        .unwrap();
    }
}

/// Writes the six CIFAR-10 binary files with `per_file` records each: a learnable
/// pattern (class k brightens row 3k of every channel) plus noise.
pub fn write_tiny_cifar(dir: &Path, per_file: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut state: u32 = 777;
    for name in data::CIFAR_FILES {
        let mut bytes = Vec::with_capacity(per_file * data::CIFAR_RECORD_BYTES);
        for i in 0..per_file {
            let label = (i % 10) as u8;
            bytes.push(label);
            for _channel in 0..3 {
                for r in 0..32 {
                    for _ in 0..32 {
                        state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                        let noise = ((state >> 16) % 60) as u8;
                        bytes.push(if r == 3 * label as usize {
                            180 + noise
                        } else {
                            noise
                        });
                    }
                }
            }
        }
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// A CIFAR-style experiment on the tiny CIFAR files, with every data and recipe option.
pub fn cifar_yaml(name: &str) -> String {
    format!(
        "name: {name}
dataset:
  name: cifar10
  validation: 20
  normalize: per-pixel-mean
  augment: {{pad: 4, flip: true}}
model:
  arch: cifar
  width: 2
  shortcut: a
  zero_init_residual: false
families: [plain, residual]
depths: [8]
seeds: [0]
train:
  iterations: 10
  batch_size: 32
  lr: 0.05
  momentum: 0.9
  weight_decay: 0.0001
  schedule:
    step: {{milestones: [6], gamma: 0.1}}
  warmup: {{lr: 0.01, iterations: 2, depths: [8]}}
"
    )
}

pub fn experiment_yaml(name: &str, depths: &str, extra_dataset: &str) -> String {
    experiment_yaml_seeds(name, depths, extra_dataset, "[0]")
}

pub fn experiment_yaml_seeds(name: &str, depths: &str, extra_dataset: &str, seeds: &str) -> String {
    format!(
        "name: {name}
dataset:
  name: fashion-mnist
{extra_dataset}model:
  arch: mlp
  width: 16
  zero_init_residual: true
families: [plain, residual]
depths: {depths}
seeds: {seeds}
train:
  epochs: 2
  batch_size: 32
  lr: 0.05
  momentum: 0.9
  weight_decay: 0.0001
  schedule: cosine
"
    )
}

pub struct Workspace {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
}

impl Workspace {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        std::fs::create_dir_all(root.join("idx")).unwrap();
        write_tiny_dataset(&root.join("idx"), 256, 64);
        write_tiny_cifar(&root.join("cifar"), 20);
        Self { _tmp: tmp, root }
    }

    pub fn write_experiment(&self, text: &str) -> PathBuf {
        let path = self.root.join("exp.yaml");
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn degrade(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .current_dir(&self.root)
            .env_remove("FASHION_MNIST_DIR")
            .env_remove("CIFAR10_DIR")
            .output()
            .unwrap()
    }

    /// `degrade sweep exp.yaml` on the tiny dataset, offline, two workers: not started.
    pub fn sweep_command(&self) -> Command {
        let mut command = Command::new(BIN);
        command
            .args([
                "sweep",
                "exp.yaml",
                "--data-dir",
                "idx",
                "--offline",
                "--jobs",
                "2",
            ])
            .current_dir(&self.root)
            .env_remove("FASHION_MNIST_DIR");
        command
    }

    pub fn sweep(&self) -> Output {
        self.sweep_command().output().unwrap()
    }

    pub fn run_dirs(&self, experiment: &str) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(self.root.join("results").join(experiment))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        dirs.sort();
        dirs
    }
}

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
