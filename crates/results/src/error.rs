use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ResultsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not valid JSON for this file: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: cannot read or write Parquet: {source}")]
    Parquet {
        path: PathBuf,
        source: polars::error::PolarsError,
    },
    #[error("{path}: {message}")]
    Schema { path: PathBuf, message: String },
}
