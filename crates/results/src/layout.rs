//! Paths of a run's files and the run's state as read from them.

use crate::atomic::write_atomically;
use crate::error::ResultsError;
use crate::meta::{RunMeta, RunStatus};
use experiment::RunConfig;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// The directory of one run: `<results>/<experiment>/<dir_name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    pub path: PathBuf,
}

/// A run's state as the files on disk tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Missing,
    /// A `running` or `failed` meta: started but not finished; the next sweep retrains it.
    Unfinished(RunStatus),
    Done,
    Diverged,
}

impl RunState {
    /// Finished runs are never trained again (a diverged run would diverge again: the
    /// training is deterministic).
    pub fn is_finished(self) -> bool {
        matches!(self, RunState::Done | RunState::Diverged)
    }

    pub fn label(self) -> &'static str {
        match self {
            RunState::Missing => "missing",
            RunState::Unfinished(RunStatus::Failed) => "failed",
            RunState::Unfinished(_) => "unfinished",
            RunState::Done => "done",
            RunState::Diverged => "diverged",
        }
    }
}

impl RunDir {
    pub fn for_run(results_root: &Path, config: &RunConfig) -> Self {
        Self {
            path: results_root
                .join(&config.experiment)
                .join(config.dir_name()),
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.path.join("config.json")
    }
    pub fn meta_path(&self) -> PathBuf {
        self.path.join("meta.json")
    }
    pub fn metrics_path(&self) -> PathBuf {
        self.path.join("metrics.parquet")
    }

    pub fn create(&self) -> Result<(), ResultsError> {
        std::fs::create_dir_all(&self.path).map_err(|source| ResultsError::Io {
            path: self.path.clone(),
            source,
        })
    }

    pub fn write_config(&self, config: &RunConfig) -> Result<(), ResultsError> {
        write_json(&self.config_path(), config)
    }
    pub fn read_config(&self) -> Result<RunConfig, ResultsError> {
        read_json(&self.config_path())
    }
    pub fn write_meta(&self, meta: &RunMeta) -> Result<(), ResultsError> {
        write_json(&self.meta_path(), meta)
    }
    pub fn read_meta(&self) -> Result<RunMeta, ResultsError> {
        read_json(&self.meta_path())
    }

    /// What the files say. A run counts as done only if its meta says so *and* its
    /// metrics file exists: the trainer writes the metrics before it marks a run done.
    pub fn state(&self) -> RunState {
        if !self.meta_path().exists() {
            return RunState::Missing;
        }
        match self.read_meta() {
            Ok(meta) => match meta.status {
                RunStatus::Done if self.metrics_path().is_file() => RunState::Done,
                RunStatus::Diverged => RunState::Diverged,
                RunStatus::Done => RunState::Unfinished(RunStatus::Failed),
                other => RunState::Unfinished(other),
            },
            // An unreadable meta is not trusted as done.
            Err(_) => RunState::Unfinished(RunStatus::Failed),
        }
    }
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), ResultsError> {
    let json = serde_json::to_vec_pretty(value).map_err(|source| ResultsError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomically(path, &json)
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, ResultsError> {
    let bytes = std::fs::read(path).map_err(|source| ResultsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| ResultsError::Json {
        path: path.to_path_buf(),
        source,
    })
}
