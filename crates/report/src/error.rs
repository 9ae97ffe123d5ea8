use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Results(#[from] results::ResultsError),
    #[error("aggregating results: {0}")]
    Aggregate(String),
    #[error("drawing chart {chart}: {detail}")]
    Chart { chart: String, detail: String },
    #[error("template {template}: {detail}")]
    Template { template: String, detail: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}
