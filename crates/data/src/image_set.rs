//! Labelled image sets in memory, and the train/test pair of MNIST-style IDX files.

use crate::error::DataError;
use crate::idx::read_idx;
use std::path::{Path, PathBuf};

/// Base names of the four IDX files; each may also carry a `.gz` suffix.
pub const IDX_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// Labelled images, `n x channels x rows x cols` bytes (channel-major, as CIFAR-10's
/// binary files and the networks' input both lay them out).
#[derive(Debug, Clone)]
pub struct ImageSet {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub len: usize,
    pub channels: usize,
    pub rows: usize,
    pub cols: usize,
}

impl ImageSet {
    pub fn pixels_per_image(&self) -> usize {
        self.channels * self.rows * self.cols
    }

    /// Splits off the last `n` examples (a validation set held out of a training file).
    /// `None` if that would leave nothing before them.
    pub fn split_off_last(mut self, n: usize) -> Option<(Self, Self)> {
        if n >= self.len {
            return None;
        }
        let keep = self.len - n;
        let tail = ImageSet {
            images: self.images.split_off(keep * self.pixels_per_image()),
            labels: self.labels.split_off(keep),
            len: n,
            ..self.clone_shape()
        };
        self.len = keep;
        Some((self, tail))
    }

    fn clone_shape(&self) -> Self {
        ImageSet {
            images: Vec::new(),
            labels: Vec::new(),
            len: 0,
            channels: self.channels,
            rows: self.rows,
            cols: self.cols,
        }
    }

    /// The first `n` examples (all of them if there are fewer).
    pub fn truncated(mut self, n: usize) -> Self {
        let n = n.min(self.len);
        self.images.truncate(n * self.pixels_per_image());
        self.labels.truncate(n);
        self.len = n;
        self
    }
}

#[derive(Debug, Clone)]
pub struct Splits {
    pub train: ImageSet,
    pub test: ImageSet,
}

/// The path of an IDX file in `dir`, gzipped or not, if either exists.
pub(crate) fn find_idx_file(dir: &Path, base: &str) -> Option<PathBuf> {
    [format!("{base}.gz"), base.to_string()]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
}

/// Whether `dir` holds all four IDX files.
pub(crate) fn has_idx_files(dir: &Path) -> bool {
    IDX_FILES.iter().all(|b| find_idx_file(dir, b).is_some())
}

/// Loads the train and test sets from a directory with the four IDX files.
pub fn load_idx_dir(dir: &Path, classes: u8) -> Result<Splits, DataError> {
    Ok(Splits {
        train: load_pair(dir, IDX_FILES[0], IDX_FILES[1], classes)?,
        test: load_pair(dir, IDX_FILES[2], IDX_FILES[3], classes)?,
    })
}

fn load_pair(dir: &Path, images: &str, labels: &str, classes: u8) -> Result<ImageSet, DataError> {
    let missing = |base: &str| DataError::Io {
        path: dir.join(base),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file (nor .gz)"),
    };
    let images_path = find_idx_file(dir, images).ok_or_else(|| missing(images))?;
    let labels_path = find_idx_file(dir, labels).ok_or_else(|| missing(labels))?;
    let img = read_idx(&images_path)?;
    let lab = read_idx(&labels_path)?;
    if img.dims.len() != 3 {
        return Err(DataError::WrongRank {
            path: images_path,
            expected: 3,
            actual: img.dims.len(),
        });
    }
    if lab.dims.len() != 1 {
        return Err(DataError::WrongRank {
            path: labels_path,
            expected: 1,
            actual: lab.dims.len(),
        });
    }
    if img.dims[0] != lab.dims[0] {
        return Err(DataError::CountMismatch {
            images: images_path,
            n_images: img.dims[0],
            labels: labels_path,
            n_labels: lab.dims[0],
        });
    }
    if let Some((index, &label)) = lab.data.iter().enumerate().find(|(_, &l)| l >= classes) {
        return Err(DataError::BadLabel {
            path: labels_path,
            index,
            label,
            max: classes - 1,
        });
    }
    Ok(ImageSet {
        len: img.dims[0],
        channels: 1,
        rows: img.dims[1],
        cols: img.dims[2],
        images: img.data,
        labels: lab.data,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::idx::encode_idx;

    /// Writes a tiny IDX dataset: `n_train`/`n_test` 4x4 images, labels `i % 10`.
    pub fn write_tiny(dir: &Path, n_train: usize, n_test: usize) {
        for (prefix, n) in [("train", n_train), ("t10k", n_test)] {
            let images: Vec<u8> = (0..n * 16).map(|i| (i % 251) as u8).collect();
            let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
            std::fs::write(
                dir.join(format!("{prefix}-images-idx3-ubyte")),
                encode_idx(&[n, 4, 4], &images),
            )
            .unwrap();
            std::fs::write(
                dir.join(format!("{prefix}-labels-idx1-ubyte")),
                encode_idx(&[n], &labels),
            )
            .unwrap();
        }
    }

    #[test]
    fn loads_a_generated_dataset() {
        let dir = tempfile::tempdir().unwrap();
        write_tiny(dir.path(), 20, 10);
        let s = load_idx_dir(dir.path(), 10).unwrap();
        assert_eq!((s.train.len, s.train.rows, s.train.cols), (20, 4, 4));
        assert_eq!(s.test.len, 10);
        assert_eq!(s.train.labels[13], 3);
        assert_eq!(s.train.clone().truncated(5).images.len(), 5 * 16);
        let (head, tail) = s.train.clone().split_off_last(4).unwrap();
        assert_eq!((head.len, tail.len), (16, 4));
        assert_eq!(head.images.len(), 16 * 16);
        assert_eq!(tail.labels, s.train.labels[16..].to_vec());
        assert_eq!(tail.images, s.train.images[16 * 16..].to_vec());
        assert!(s.train.split_off_last(20).is_none());
    }

    #[test]
    fn count_mismatch_names_both_files() {
        let dir = tempfile::tempdir().unwrap();
        write_tiny(dir.path(), 20, 10);
        std::fs::write(
            dir.path().join("t10k-labels-idx1-ubyte"),
            encode_idx(&[9], &[0; 9]),
        )
        .unwrap();
        let e = load_idx_dir(dir.path(), 10).unwrap_err().to_string();
        assert!(
            e.contains("t10k-images") && e.contains("t10k-labels"),
            "{e}"
        );
        assert!(e.contains("10 images") && e.contains("9 labels"), "{e}");
    }

    #[test]
    fn label_out_of_range_and_wrong_rank_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        write_tiny(dir.path(), 20, 10);
        std::fs::write(
            dir.path().join("train-labels-idx1-ubyte"),
            encode_idx(&[20], &[10; 20]),
        )
        .unwrap();
        let e = load_idx_dir(dir.path(), 10).unwrap_err().to_string();
        assert!(e.contains("label 10"), "{e}");
        write_tiny(dir.path(), 20, 10);
        std::fs::write(
            dir.path().join("train-images-idx3-ubyte"),
            encode_idx(&[20, 16], &[0; 320]),
        )
        .unwrap();
        let e = load_idx_dir(dir.path(), 10).unwrap_err().to_string();
        assert!(e.contains("2 dimensions"), "{e}");
    }

    #[test]
    fn missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write_tiny(dir.path(), 20, 10);
        std::fs::remove_file(dir.path().join("t10k-images-idx3-ubyte")).unwrap();
        let e = load_idx_dir(dir.path(), 10).unwrap_err().to_string();
        assert!(e.contains("t10k-images-idx3-ubyte"), "{e}");
    }
}
