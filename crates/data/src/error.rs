use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not an IDX file of unsigned bytes: {detail}")]
    BadMagic { path: PathBuf, detail: String },
    #[error("{path}: truncated IDX file: the header promises {expected} bytes of data, the file has {actual}")]
    Truncated {
        path: PathBuf,
        expected: usize,
        actual: usize,
    },
    #[error("{path}: IDX file has {actual} dimensions, expected {expected}")]
    WrongRank {
        path: PathBuf,
        expected: usize,
        actual: usize,
    },
    #[error("{images} holds {n_images} images but {labels} holds {n_labels} labels")]
    CountMismatch {
        images: PathBuf,
        n_images: usize,
        labels: PathBuf,
        n_labels: usize,
    },
    #[error("{path}: label {label} at index {index} is out of range (at most {max})")]
    BadLabel {
        path: PathBuf,
        index: usize,
        label: u8,
        max: u8,
    },
    #[error("{how} points to {dir}, which is not a directory holding the dataset's files ({expected}). Fix the path, or leave it out to use the default search.")]
    BadLocation {
        how: String,
        dir: PathBuf,
        expected: String,
    },
    #[error("{path}: {detail}")]
    BadRecords { path: PathBuf, detail: String },
    #[error("{url}: the archive is not usable: {detail}")]
    Archive { url: String, detail: String },
    #[error("download of {url} failed: {detail}")]
    Download { url: String, detail: String },
    #[error("{url}: checksum mismatch: expected SHA-256 {expected} of {what}, got {actual}; nothing was written")]
    Checksum {
        url: String,
        /// "the uncompressed data" or "the file as served".
        what: &'static str,
        expected: String,
        actual: String,
    },
    #[error("the Hugging Face Hub's {repo}: {detail}")]
    Hub { repo: String, detail: String },
    #[error("{dataset} not found. Tried:\n{tried}\nFix: {fix}put its files ({expected}) in a directory and pass it with --data-dir, `dataset.dir` in the experiment YAML or the {env_var} environment variable.")]
    NotFound {
        dataset: String,
        tried: String,
        fix: String,
        expected: String,
        env_var: String,
    },
}
