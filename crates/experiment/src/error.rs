use std::path::PathBuf;

/// Everything that can be wrong with an experiment file. Every variant names the file,
/// and where the YAML parser or the validator knows it, the line, column and field.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error("cannot read experiment file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}:{line}:{column}: field `{field}`: {message}")]
    Invalid {
        path: PathBuf,
        line: u64,
        column: u64,
        field: String,
        message: String,
    },
}
