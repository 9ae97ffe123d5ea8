//! Image-classification data on disk: IDX files (MNIST, Fashion-MNIST) and CIFAR-10's
//! binary batches, where to find them, and how to fetch them. No tensors here: the trainer
//! turns bytes into tensors (only the optional Hub source, `hub.rs`, meets candle's
//! tensors, and turns them back into the canonical files).

mod cifar;
mod download;
mod error;
#[cfg(feature = "candle-datasets")]
mod hub;
mod idx;
mod image_set;
mod locate;

pub use cifar::{decode_cifar, load_cifar_dir, CIFAR_FILES, CIFAR_RECORD_BYTES};
pub use download::{download_all, download_archive, DigestOf, RemoteArchive, RemoteFile};
pub use error::DataError;
pub use idx::{decode_idx, encode_idx, parse_idx, read_idx, IdxArray};
pub use image_set::{load_idx_dir, ImageSet, Splits, IDX_FILES};
pub use locate::{locate_or_fetch, DatasetSource, Fetch, Format, LocateOptions, Located};
