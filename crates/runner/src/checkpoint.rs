//! The training state at the end of an epoch, in one safetensors file written
//! atomically (temporary file, fsync, rename): every variable of the model (weights and
//! BatchNorm running statistics), the momentum buffers, and the epoch and iteration
//! reached. One file, so the parts can never disagree after a crash.

use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::Path;

const MODEL: &str = "model/";
const MOMENTUM: &str = "momentum/";
const PROGRESS: &str = "progress";
const WARMUP: &str = "warmup";
const BUILD: &str = "build";

#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Epochs finished (1-based count).
    pub epoch: usize,
    /// Optimiser steps taken.
    pub iteration: usize,
    pub model: HashMap<String, Tensor>,
    pub momentum: HashMap<String, Tensor>,
    /// The learning-rate warm-up's state (`WarmupState::to_record`); empty in
    /// checkpoints of runs without one, and in those written before it existed.
    pub warmup: Vec<f64>,
    /// The build that wrote it, as JSON bytes in the file; None in checkpoints written
    /// before it was recorded.
    pub build: Option<results::Build>,
}

#[derive(Debug, thiserror::Error)]
#[error("checkpoint {path}: {detail} (delete it to train this run again from the start)")]
pub struct CheckpointError {
    pub path: String,
    pub detail: String,
}

impl Checkpoint {
    pub fn save(&self, path: &Path) -> Result<(), CheckpointError> {
        let fail = |detail: String| CheckpointError {
            path: path.display().to_string(),
            detail,
        };
        let mut all: HashMap<String, Tensor> = HashMap::new();
        for (name, t) in &self.model {
            all.insert(format!("{MODEL}{name}"), t.clone());
        }
        for (name, t) in &self.momentum {
            all.insert(format!("{MOMENTUM}{name}"), t.clone());
        }
        let progress = Tensor::new(&[self.epoch as i64, self.iteration as i64], &Device::Cpu)
            .map_err(|e| fail(e.to_string()))?;
        all.insert(PROGRESS.to_string(), progress);
        if let Some(build) = &self.build {
            let json = serde_json::to_vec(build).map_err(|e| fail(e.to_string()))?;
            let len = json.len();
            let build =
                Tensor::from_vec(json, len, &Device::Cpu).map_err(|e| fail(e.to_string()))?;
            all.insert(BUILD.to_string(), build);
        }
        if !self.warmup.is_empty() {
            let warmup = Tensor::new(self.warmup.as_slice(), &Device::Cpu)
                .map_err(|e| fail(e.to_string()))?;
            all.insert(WARMUP.to_string(), warmup);
        }
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
        let result = candle_core::safetensors::save(&all, &tmp)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                std::fs::File::open(&tmp)
                    .and_then(|f| f.sync_all())
                    .and_then(|()| std::fs::rename(&tmp, path))
                    .and_then(|()| results::sync_dir(path.parent().unwrap_or(Path::new("."))))
                    .map_err(|e| e.to_string())
            });
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(fail)
    }

    pub fn load(path: &Path) -> Result<Self, CheckpointError> {
        let fail = |detail: String| CheckpointError {
            path: path.display().to_string(),
            detail,
        };
        let all =
            candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| fail(e.to_string()))?;
        let progress = all
            .get(PROGRESS)
            .ok_or_else(|| fail("no progress record".into()))?
            .to_dtype(DType::I64)
            .and_then(|t| t.to_vec1::<i64>())
            .map_err(|e| fail(e.to_string()))?;
        let [epoch, iteration] = progress[..] else {
            return Err(fail(format!(
                "progress record {progress:?} is not [epoch, iteration]"
            )));
        };
        if epoch < 1 || iteration < 0 {
            return Err(fail(format!("progress record {progress:?} is impossible")));
        }
        let strip = |prefix: &str| -> HashMap<String, Tensor> {
            all.iter()
                .filter_map(|(k, t)| k.strip_prefix(prefix).map(|n| (n.to_string(), t.clone())))
                .collect()
        };
        Ok(Self {
            epoch: epoch as usize,
            iteration: iteration as usize,
            model: strip(MODEL),
            momentum: strip(MOMENTUM),
            warmup: match all.get(WARMUP) {
                Some(t) => t
                    .to_dtype(DType::F64)
                    .and_then(|t| t.to_vec1::<f64>())
                    .map_err(|e| fail(format!("warm-up record: {e}")))?,
                None => Vec::new(),
            },
            build: match all.get(BUILD) {
                Some(t) => {
                    let bytes = t
                        .to_vec1::<u8>()
                        .map_err(|e| fail(format!("build record: {e}")))?;
                    Some(
                        serde_json::from_slice(&bytes)
                            .map_err(|e| fail(format!("build record: {e}")))?,
                    )
                }
                None => None,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoint.safetensors");
        let t = Tensor::new(&[1.5f32, -2.0], &Device::Cpu).unwrap();
        let ckpt = Checkpoint {
            epoch: 3,
            iteration: 120,
            model: HashMap::from([("a.weight".to_string(), t.clone())]),
            momentum: HashMap::from([("a.weight".to_string(), (&t * 2.0).unwrap())]),
            warmup: vec![-1.0, 0.9, 0.85],
            build: Some(crate::provenance::build()),
        };
        ckpt.save(&path).unwrap();
        let back = Checkpoint::load(&path).unwrap();
        assert_eq!((back.epoch, back.iteration), (3, 120));
        assert_eq!(back.build, ckpt.build);
        assert_eq!(back.warmup, vec![-1.0, 0.9, 0.85]);
        assert_eq!(
            back.model["a.weight"].to_vec1::<f32>().unwrap(),
            vec![1.5, -2.0]
        );
        assert_eq!(
            back.momentum["a.weight"].to_vec1::<f32>().unwrap(),
            vec![3.0, -4.0]
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left"
        );

        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let e = Checkpoint::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("checkpoint.safetensors") && e.contains("delete it"),
            "{e}"
        );
    }
}
