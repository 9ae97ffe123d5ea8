//! The diagnostics' Parquet files, beside `metrics.parquet` in a run's directory:
//! - `gradients.parquet`: each weighted layer's gradient norm every K iterations;
//! - `responses.parquet`: each layer's response std on a fixed batch, after training;
//! - `lesion.parquet`: test error with each block deleted, after training.
//!
//! Like the metric rows, every row carries the run's identity, so the files stand alone.

use crate::atomic::write_atomically;
use crate::error::ResultsError;
use polars::prelude::*;
use std::path::Path;

/// The identity columns of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunKey {
    pub experiment: String,
    pub family: String,
    pub depth: u32,
    pub seed: u64,
    pub config_hash: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct GradientRow {
    /// Optimiser steps done before this gradient (0: at initialisation).
    pub iteration: u64,
    /// 1-based weighted layer, in forward order (the classifier is the last).
    pub layer: u32,
    /// The layer's parameter path.
    pub name: String,
    pub grad_norm: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResponseRow {
    /// 1-based weighted layer, in forward order (the classifier has no response).
    pub layer: u32,
    pub name: String,
    /// Standard deviation of the layer's output after BN, before ReLU or addition.
    pub response_std: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LesionRow {
    /// 0-based block, in forward order.
    pub block: u32,
    pub name: String,
    /// Test error (fraction) with this block deleted.
    pub test_error: f64,
    /// Test error of the intact net on the same images.
    pub intact_test_error: f64,
}

fn key_columns(key: &RunKey, n: usize) -> Vec<Column> {
    vec![
        Column::new("experiment".into(), vec![key.experiment.as_str(); n]),
        Column::new("family".into(), vec![key.family.as_str(); n]),
        Column::new("depth".into(), vec![key.depth; n]),
        Column::new("seed".into(), vec![key.seed; n]),
        Column::new("config_hash".into(), vec![key.config_hash.as_str(); n]),
    ]
}

fn write_frame(
    path: &Path,
    mut columns: Vec<Column>,
    key: &RunKey,
    n: usize,
) -> Result<(), ResultsError> {
    let parquet = |source| ResultsError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let mut all = key_columns(key, n);
    all.append(&mut columns);
    let mut frame = DataFrame::new(n, all).map_err(parquet)?;
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes)
        .finish(&mut frame)
        .map_err(parquet)?;
    write_atomically(path, &bytes)
}

fn read_frame(path: &Path) -> Result<DataFrame, ResultsError> {
    let file = std::fs::File::open(path).map_err(|source| ResultsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    ParquetReader::new(file)
        .finish()
        .map_err(|source| ResultsError::Parquet {
            path: path.to_path_buf(),
            source,
        })
}

fn schema(path: &Path) -> impl Fn(PolarsError) -> ResultsError + '_ {
    move |e| ResultsError::Schema {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

pub(crate) fn strings(df: &DataFrame, name: &str) -> PolarsResult<Vec<String>> {
    Ok(df
        .column(name)?
        .str()?
        .iter()
        .map(|v| v.unwrap_or_default().to_string())
        .collect())
}

pub(crate) fn floats(df: &DataFrame, name: &str) -> PolarsResult<Vec<f64>> {
    let col = df.column(name)?.cast(&DataType::Float64)?;
    Ok(col.f64()?.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
}

pub(crate) fn ints(df: &DataFrame, name: &str) -> PolarsResult<Vec<u64>> {
    let col = df.column(name)?.cast(&DataType::UInt64)?;
    Ok(col.u64()?.iter().map(|v| v.unwrap_or(0)).collect())
}

/// Reads `path` and turns its frame into rows; a frame without the expected columns is
/// a schema error naming the file.
pub(crate) fn read_rows<T>(
    path: &Path,
    rows: impl FnOnce(&DataFrame) -> PolarsResult<Vec<T>>,
) -> Result<Vec<T>, ResultsError> {
    rows(&read_frame(path)?).map_err(schema(path))
}

pub fn write_gradients(
    path: &Path,
    key: &RunKey,
    rows: &[GradientRow],
) -> Result<(), ResultsError> {
    let columns = vec![
        Column::new(
            "iteration".into(),
            rows.iter().map(|r| r.iteration).collect::<Vec<_>>(),
        ),
        Column::new(
            "layer".into(),
            rows.iter().map(|r| r.layer).collect::<Vec<_>>(),
        ),
        Column::new(
            "name".into(),
            rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "grad_norm".into(),
            rows.iter().map(|r| r.grad_norm).collect::<Vec<_>>(),
        ),
    ];
    write_frame(path, columns, key, rows.len())
}

pub fn read_gradients(path: &Path) -> Result<Vec<GradientRow>, ResultsError> {
    read_rows(path, |df| {
        let (it, layer, name, norm) = (
            ints(df, "iteration")?,
            ints(df, "layer")?,
            strings(df, "name")?,
            floats(df, "grad_norm")?,
        );
        Ok((0..df.height())
            .map(|i| GradientRow {
                iteration: it[i],
                layer: layer[i] as u32,
                name: name[i].clone(),
                grad_norm: norm[i],
            })
            .collect())
    })
}

pub fn write_responses(
    path: &Path,
    key: &RunKey,
    rows: &[ResponseRow],
) -> Result<(), ResultsError> {
    let columns = vec![
        Column::new(
            "layer".into(),
            rows.iter().map(|r| r.layer).collect::<Vec<_>>(),
        ),
        Column::new(
            "name".into(),
            rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "response_std".into(),
            rows.iter().map(|r| r.response_std).collect::<Vec<_>>(),
        ),
    ];
    write_frame(path, columns, key, rows.len())
}

pub fn read_responses(path: &Path) -> Result<Vec<ResponseRow>, ResultsError> {
    read_rows(path, |df| {
        let (layer, name, std) = (
            ints(df, "layer")?,
            strings(df, "name")?,
            floats(df, "response_std")?,
        );
        Ok((0..df.height())
            .map(|i| ResponseRow {
                layer: layer[i] as u32,
                name: name[i].clone(),
                response_std: std[i],
            })
            .collect())
    })
}

pub fn write_lesion(path: &Path, key: &RunKey, rows: &[LesionRow]) -> Result<(), ResultsError> {
    let columns = vec![
        Column::new(
            "block".into(),
            rows.iter().map(|r| r.block).collect::<Vec<_>>(),
        ),
        Column::new(
            "name".into(),
            rows.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "test_error".into(),
            rows.iter().map(|r| r.test_error).collect::<Vec<_>>(),
        ),
        Column::new(
            "intact_test_error".into(),
            rows.iter().map(|r| r.intact_test_error).collect::<Vec<_>>(),
        ),
    ];
    write_frame(path, columns, key, rows.len())
}

pub fn read_lesion(path: &Path) -> Result<Vec<LesionRow>, ResultsError> {
    read_rows(path, |df| {
        let (block, name, err, intact) = (
            ints(df, "block")?,
            strings(df, "name")?,
            floats(df, "test_error")?,
            floats(df, "intact_test_error")?,
        );
        Ok((0..df.height())
            .map(|i| LesionRow {
                block: block[i] as u32,
                name: name[i].clone(),
                test_error: err[i],
                intact_test_error: intact[i],
            })
            .collect())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> RunKey {
        RunKey {
            experiment: "e".into(),
            family: "plain".into(),
            depth: 8,
            seed: 1,
            config_hash: "abc".into(),
        }
    }

    #[test]
    fn every_diagnostic_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let g = vec![
            GradientRow {
                iteration: 0,
                layer: 1,
                name: "input".into(),
                grad_norm: 0.5,
            },
            GradientRow {
                iteration: 50,
                layer: 2,
                name: "blocks.0.first".into(),
                grad_norm: 1e-3,
            },
        ];
        let p = dir.path().join("gradients.parquet");
        write_gradients(&p, &key(), &g).unwrap();
        assert_eq!(read_gradients(&p).unwrap(), g);
        let r = vec![ResponseRow {
            layer: 1,
            name: "stem".into(),
            response_std: 0.7,
        }];
        let p = dir.path().join("responses.parquet");
        write_responses(&p, &key(), &r).unwrap();
        assert_eq!(read_responses(&p).unwrap(), r);
        let l = vec![LesionRow {
            block: 3,
            name: "stages.1.0".into(),
            test_error: 0.4,
            intact_test_error: 0.1,
        }];
        let p = dir.path().join("lesion.parquet");
        write_lesion(&p, &key(), &l).unwrap();
        assert_eq!(read_lesion(&p).unwrap(), l);
        // The identity columns are in the file, for readers without this tool.
        let df = read_frame(&p).unwrap();
        assert_eq!(
            df.column("config_hash").unwrap().str().unwrap().get(0),
            Some("abc")
        );
        std::fs::write(&p, b"junk").unwrap();
        assert!(read_lesion(&p)
            .unwrap_err()
            .to_string()
            .contains("lesion.parquet"));
    }
}
