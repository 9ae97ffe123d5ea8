//! One row of `metrics.parquet`: a run's numbers after one epoch. Every row carries the
//! run's identity (experiment, family, depth, seed), so the files stand on their own in
//! pandas, duckdb or polars.

use crate::atomic::write_atomically;
use crate::diagnostic_rows::{floats, ints, read_rows, strings};
use crate::error::ResultsError;
use polars::prelude::*;
use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    pub experiment: String,
    pub family: String,
    pub depth: u32,
    pub seed: u64,
    pub config_hash: String,
    /// 1-based.
    pub epoch: u32,
    /// Fractions in [0, 1]; the training numbers are running averages over the
    /// epoch's mini-batches in training mode, like the paper's curves.
    pub train_error: f64,
    pub train_loss: f64,
    /// On the test set with BatchNorm in evaluation mode.
    pub test_error: f64,
    pub test_loss: f64,
    /// Learning rate at the epoch's first iteration.
    pub lr: f64,
    /// Seconds since the run started, at the end of this epoch (evaluation included).
    pub wall_s: f64,
    /// Optimiser steps done at the end of this epoch (the paper's x axis). None in files
    /// written before the column existed.
    pub iteration: Option<u64>,
    /// On the validation split held out of the training file, BatchNorm in evaluation
    /// mode; None when the run has no validation split.
    pub val_error: Option<f64>,
    pub val_loss: Option<f64>,
}

pub const METRIC_COLUMNS: [&str; 15] = [
    "experiment",
    "family",
    "depth",
    "seed",
    "config_hash",
    "epoch",
    "train_error",
    "train_loss",
    "test_error",
    "test_loss",
    "lr",
    "wall_s",
    "iteration",
    "val_error",
    "val_loss",
];

/// Columns a reader does without: files from before they existed lack them.
const OPTIONAL_COLUMNS: [&str; 3] = ["iteration", "val_error", "val_loss"];

/// The rows as a polars frame with the `METRIC_COLUMNS`.
pub fn metrics_frame(rows: &[MetricRow]) -> PolarsResult<DataFrame> {
    let strs = |f: fn(&MetricRow) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
    let floats = |f: fn(&MetricRow) -> f64| rows.iter().map(f).collect::<Vec<f64>>();
    df!(
        "experiment" => strs(|r| &r.experiment),
        "family" => strs(|r| &r.family),
        "depth" => rows.iter().map(|r| r.depth).collect::<Vec<u32>>(),
        "seed" => rows.iter().map(|r| r.seed).collect::<Vec<u64>>(),
        "config_hash" => strs(|r| &r.config_hash),
        "epoch" => rows.iter().map(|r| r.epoch).collect::<Vec<u32>>(),
        "train_error" => floats(|r| r.train_error),
        "train_loss" => floats(|r| r.train_loss),
        "test_error" => floats(|r| r.test_error),
        "test_loss" => floats(|r| r.test_loss),
        "lr" => floats(|r| r.lr),
        "wall_s" => floats(|r| r.wall_s),
        "iteration" => rows.iter().map(|r| r.iteration).collect::<Vec<Option<u64>>>(),
        "val_error" => rows.iter().map(|r| r.val_error).collect::<Vec<Option<f64>>>(),
        "val_loss" => rows.iter().map(|r| r.val_loss).collect::<Vec<Option<f64>>>(),
    )
}

/// Replaces `path` with a Parquet file of `rows`, atomically.
pub fn write_metrics(path: &Path, rows: &[MetricRow]) -> Result<(), ResultsError> {
    let parquet = |source| ResultsError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let mut frame = metrics_frame(rows).map_err(parquet)?;
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes)
        .finish(&mut frame)
        .map_err(parquet)?;
    write_atomically(path, &bytes)
}

/// Reads a `metrics.parquet` written by `write_metrics` (or anything with its columns).
pub fn read_metrics(path: &Path) -> Result<Vec<MetricRow>, ResultsError> {
    read_rows(path, from_frame)
}

fn from_frame(df: &DataFrame) -> PolarsResult<Vec<MetricRow>> {
    let s = |name: &str| strings(df, name);
    let f = |name: &str| floats(df, name);
    let u = |name: &str| ints(df, name);
    let (experiment, family, config_hash) = (s("experiment")?, s("family")?, s("config_hash")?);
    let (depth, seed, epoch) = (u("depth")?, u("seed")?, u("epoch")?);
    let (train_error, train_loss) = (f("train_error")?, f("train_loss")?);
    let (test_error, test_loss, lr, wall_s) =
        (f("test_error")?, f("test_loss")?, f("lr")?, f("wall_s")?);
    let has = |name: &str| df.get_column_names().iter().any(|c| c.as_str() == name);
    debug_assert!(OPTIONAL_COLUMNS.iter().all(|c| METRIC_COLUMNS.contains(c)));
    let optional_f = |name: &str| -> PolarsResult<Vec<Option<f64>>> {
        if !has(name) {
            return Ok(vec![None; df.height()]);
        }
        let col = df.column(name)?.cast(&DataType::Float64)?;
        Ok(col.f64()?.iter().collect())
    };
    let iteration: Vec<Option<u64>> = if has("iteration") {
        let col = df.column("iteration")?.cast(&DataType::UInt64)?;
        col.u64()?.iter().collect()
    } else {
        vec![None; df.height()]
    };
    let (val_error, val_loss) = (optional_f("val_error")?, optional_f("val_loss")?);
    Ok((0..df.height())
        .map(|i| MetricRow {
            experiment: experiment[i].clone(),
            family: family[i].clone(),
            depth: depth[i] as u32,
            seed: seed[i],
            config_hash: config_hash[i].clone(),
            epoch: epoch[i] as u32,
            train_error: train_error[i],
            train_loss: train_loss[i],
            test_error: test_error[i],
            test_loss: test_loss[i],
            lr: lr[i],
            wall_s: wall_s[i],
            iteration: iteration[i],
            val_error: val_error[i],
            val_loss: val_loss[i],
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(epoch: u32) -> MetricRow {
        MetricRow {
            experiment: "e".into(),
            family: "plain".into(),
            depth: 16,
            seed: 3,
            config_hash: "abc".into(),
            epoch,
            train_error: 0.25,
            train_loss: 0.7,
            test_error: 0.3,
            test_loss: 0.8,
            lr: 0.1,
            wall_s: 1.5 * f64::from(epoch),
            iteration: Some(u64::from(epoch) * 10),
            val_error: (epoch > 1).then_some(0.2),
            val_loss: None,
        }
    }

    #[test]
    fn files_from_before_the_optional_columns_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.parquet");
        let mut frame = metrics_frame(&[row(1)]).unwrap();
        for c in OPTIONAL_COLUMNS {
            frame = frame.drop(c).unwrap();
        }
        let mut bytes = Vec::new();
        ParquetWriter::new(&mut bytes).finish(&mut frame).unwrap();
        std::fs::write(&path, bytes).unwrap();
        let read = read_metrics(&path).unwrap();
        assert_eq!(read[0].iteration, None);
        assert_eq!(read[0].val_error, None);
        assert_eq!(read[0].train_error, 0.25);
    }

    #[test]
    fn round_trips_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.parquet");
        let rows = vec![row(1), row(2)];
        write_metrics(&path, &rows).unwrap();
        assert_eq!(read_metrics(&path).unwrap(), rows);
        // Overwriting with more epochs replaces the file.
        write_metrics(&path, &[row(1), row(2), row(3)]).unwrap();
        assert_eq!(read_metrics(&path).unwrap().len(), 3);
    }

    #[test]
    fn corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.parquet");
        std::fs::write(&path, b"not parquet").unwrap();
        let e = read_metrics(&path).unwrap_err().to_string();
        assert!(e.contains("metrics.parquet"), "{e}");
    }
}
