//! CIFAR-10, binary version (`cifar-10-binary.tar.gz`): `data_batch_1.bin` to
//! `data_batch_5.bin` (50000 training images) and `test_batch.bin` (10000). Each file
//! is a sequence of 3073-byte records: one label byte (0-9), then the 32x32 red, green
//! and blue planes, row-major: the (channels, rows, cols) layout `ImageSet` uses.

use crate::error::DataError;
use crate::image_set::{ImageSet, Splits};
use std::path::Path;

pub const CIFAR_TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
pub const CIFAR_TEST_FILE: &str = "test_batch.bin";
/// Every file a CIFAR-10 directory must hold.
pub const CIFAR_FILES: [&str; 6] = [
    CIFAR_TRAIN_FILES[0],
    CIFAR_TRAIN_FILES[1],
    CIFAR_TRAIN_FILES[2],
    CIFAR_TRAIN_FILES[3],
    CIFAR_TRAIN_FILES[4],
    CIFAR_TEST_FILE,
];

const CHANNELS: usize = 3;
const SIDE: usize = 32;
const PIXELS: usize = CHANNELS * SIDE * SIDE;
pub const CIFAR_RECORD_BYTES: usize = 1 + PIXELS;
const CLASSES: u8 = 10;

/// Decodes the records of one file; `path` only names it in errors.
pub fn decode_cifar(bytes: &[u8], path: &Path) -> Result<ImageSet, DataError> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(CIFAR_RECORD_BYTES) {
        return Err(DataError::BadRecords {
            path: path.to_path_buf(),
            detail: format!(
                "{} bytes is not a whole number of {CIFAR_RECORD_BYTES}-byte records (a label \
                 byte and 3x32x32 pixels): {} whole records and {} bytes over. The file is \
                 truncated, or not the CIFAR-10 binary version (the Python version's pickles \
                 are not read)",
                bytes.len(),
                bytes.len() / CIFAR_RECORD_BYTES,
                bytes.len() % CIFAR_RECORD_BYTES
            ),
        });
    }
    let len = bytes.len() / CIFAR_RECORD_BYTES;
    let mut images = Vec::with_capacity(len * PIXELS);
    let mut labels = Vec::with_capacity(len);
    for (index, record) in bytes.chunks_exact(CIFAR_RECORD_BYTES).enumerate() {
        let label = record[0];
        if label >= CLASSES {
            return Err(DataError::BadLabel {
                path: path.to_path_buf(),
                index,
                label,
                max: CLASSES - 1,
            });
        }
        labels.push(label);
        images.extend_from_slice(&record[1..]);
    }
    Ok(ImageSet {
        images,
        labels,
        len,
        channels: CHANNELS,
        rows: SIDE,
        cols: SIDE,
    })
}

fn read_file(dir: &Path, name: &str) -> Result<ImageSet, DataError> {
    let path = dir.join(name);
    let bytes = std::fs::read(&path).map_err(|source| DataError::Io {
        path: path.clone(),
        source,
    })?;
    decode_cifar(&bytes, &path)
}

/// Whether `dir` holds every CIFAR-10 binary file.
pub(crate) fn has_cifar_files(dir: &Path) -> bool {
    CIFAR_FILES.iter().all(|f| dir.join(f).is_file())
}

/// The five training batches, in order, and the test batch.
pub fn load_cifar_dir(dir: &Path) -> Result<Splits, DataError> {
    let mut train = read_file(dir, CIFAR_TRAIN_FILES[0])?;
    for name in &CIFAR_TRAIN_FILES[1..] {
        let more = read_file(dir, name)?;
        train.images.extend(more.images);
        train.labels.extend(more.labels);
        train.len += more.len;
    }
    Ok(Splits {
        train,
        test: read_file(dir, CIFAR_TEST_FILE)?,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `n` records: label `i % 10`, pixels `(i + j) % 256`.
    pub fn records(n: usize, first: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n * CIFAR_RECORD_BYTES);
        for i in first..first + n {
            out.push((i % 10) as u8);
            out.extend((0..PIXELS).map(|j| ((i + j) % 256) as u8));
        }
        out
    }

    /// A CIFAR-10 directory with `per_file` records in each of the six files.
    pub fn write_cifar(dir: &Path, per_file: usize) {
        for (k, name) in CIFAR_FILES.iter().enumerate() {
            std::fs::write(dir.join(name), records(per_file, k * per_file)).unwrap();
        }
    }

    #[test]
    fn reads_generated_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        write_cifar(dir.path(), 3);
        assert!(has_cifar_files(dir.path()));
        let s = load_cifar_dir(dir.path()).unwrap();
        assert_eq!((s.train.len, s.test.len), (15, 3));
        assert_eq!((s.train.channels, s.train.rows, s.train.cols), (3, 32, 32));
        assert_eq!(s.train.labels[..4], [0, 1, 2, 3]);
        assert_eq!(s.test.labels, vec![5, 6, 7]);
        // Image 4's red plane starts at pixel value 4, its blue plane at 4 + 2048.
        let img = &s.train.images[4 * PIXELS..5 * PIXELS];
        assert_eq!((img[0], img[2048]), (4, ((4 + 2048) % 256) as u8));
    }

    #[test]
    fn short_records_wrong_sizes_and_bad_labels_are_errors_naming_the_file() {
        let path = Path::new("data_batch_2.bin");
        let good = records(2, 0);
        for bad in [&good[..good.len() - 1], &good[..100], &[][..]] {
            let e = decode_cifar(bad, path).unwrap_err().to_string();
            assert!(
                e.contains("data_batch_2.bin") && e.contains("3073-byte records"),
                "{e}"
            );
        }
        let mut labelled = good.clone();
        labelled[CIFAR_RECORD_BYTES] = 10;
        let e = decode_cifar(&labelled, path).unwrap_err().to_string();
        assert!(e.contains("label 10") && e.contains("index 1"), "{e}");
    }

    #[test]
    fn a_missing_batch_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write_cifar(dir.path(), 1);
        std::fs::remove_file(dir.path().join("data_batch_4.bin")).unwrap();
        assert!(!has_cifar_files(dir.path()));
        let e = load_cifar_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("data_batch_4.bin"), "{e}");
    }
}
