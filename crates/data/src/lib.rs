//! Image-classification data on disk: IDX files (MNIST, Fashion-MNIST) and CIFAR-10's
//! binary batches, where to find them, and how to fetch them. No tensors here: the trainer turns bytes into tensors.

mod cifar;
mod download;
mod error;
mod idx;
mod image_set;
mod locate;

pub use cifar::{decode_cifar, load_cifar_dir, CIFAR_FILES, CIFAR_RECORD_BYTES};
pub use download::{download_all, download_archive, DigestOf, RemoteArchive, RemoteFile};
pub use error::DataError;
pub use idx::{decode_idx, encode_idx, parse_idx, read_idx, IdxArray};
pub use image_set::{load_idx_dir, ImageSet, Splits, IDX_FILES};
pub use locate::{locate_or_fetch, DatasetSource, Fetch, Format, LocateOptions, Located};
