//! Image-classification data on disk: IDX files (MNIST, Fashion-MNIST), where to find
//! them, and how to fetch them. No tensors here: the trainer turns bytes into tensors.

mod download;
mod error;
mod idx;
mod image_set;
mod locate;

pub use download::{download_all, RemoteFile};
pub use error::DataError;
pub use idx::{decode_idx, encode_idx, parse_idx, read_idx, IdxArray};
pub use image_set::{load_idx_dir, ImageSet, Splits, IDX_FILES};
pub use locate::{locate_or_fetch, source_named, DatasetSource, LocateOptions, Located};
