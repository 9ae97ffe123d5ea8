//! The Hugging Face Hub as a second source of the datasets, through Candle's own dataset
//! crate (`candle-datasets`, behind this crate's feature of that name), for when the
//! canonical site is down. Its loaders fetch the Hub's Parquet conversions of MNIST,
//! Fashion-MNIST and CIFAR-10 into the Hub's cache (`$HF_HOME`, default
//! `~/.cache/huggingface`) and decode them to tensors; this module writes them out in the
//! canonical formats in the dataset's directory, so that everything after it (the
//! workers, a Slurm job on other nodes) reads the same files as from the canonical site.
//! Where the canonical checksums are known, the files written are checked against them,
//! and the location says whether they matched.

use crate::cifar::{CIFAR_RECORD_BYTES, CIFAR_TEST_FILE, CIFAR_TRAIN_FILES};
use crate::download::{create_dir, sha256_hex, write_atomically, DigestOf};
use crate::error::DataError;
use crate::idx::encode_idx;
use crate::image_set::IDX_FILES;
use crate::locate::{DatasetSource, Fetch, Format};
use candle_core::{DType, Tensor};
use candle_datasets::vision::Dataset;
use std::path::Path;

/// A candle-datasets loader: fetches (or finds in the Hub's cache) and decodes.
type Loader = fn() -> candle_core::Result<Dataset>;

/// The Hub repository each dataset's candle-datasets loader reads, and the loader.
fn loader(source: &DatasetSource) -> Option<(&'static str, Loader)> {
    match source.name {
        "fashion-mnist" => Some((
            "zalando-datasets/fashion_mnist",
            candle_datasets::vision::fashion_mnist::load,
        )),
        "mnist" => Some(("ylecun/mnist", candle_datasets::vision::mnist::load)),
        "cifar10" => Some(("cifar10", candle_datasets::vision::cifar::load)),
        _ => None,
    }
}

/// Fetches `source` from the Hub and writes its files into `dest`; returns how it was
/// found, for the run's metadata.
pub(crate) fn fetch_from_hub(source: &DatasetSource, dest: &Path) -> Result<String, DataError> {
    let (repo, load) = loader(source).ok_or_else(|| DataError::Hub {
        repo: source.name.to_string(),
        detail: "candle-datasets has no loader for this dataset".into(),
    })?;
    let hub_error = |detail: String| DataError::Hub {
        repo: repo.to_string(),
        detail,
    };
    // candle-datasets unwraps the decoding of each image: one corrupt image in the Hub's
    // cache would abort the whole sweep. Caught here and reported as the error it is.
    let dataset = std::panic::catch_unwind(load)
        .map_err(|panic| {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            hub_error(format!(
                "an image in the Hub's files does not decode ({why})"
            ))
        })?
        .map_err(|e| hub_error(e.to_string()))?;
    let tensor_error = |e: candle_core::Error| hub_error(format!("unexpected tensors: {e}"));
    let files = match source.format {
        Format::Idx => idx_files(&dataset).map_err(tensor_error)?,
        Format::CifarBinary => cifar_files(&dataset).map_err(tensor_error)?,
    };
    create_dir(dest)?;
    for (name, bytes) in &files {
        write_atomically(&dest.join(name), bytes)?;
    }
    // Read back as any other copy would be: the counts, shapes and labels are checked.
    // A copy that does not read is removed, so no later search finds it complete.
    if let Err(e) = source.load(dest) {
        for (name, _) in &files {
            let _ = std::fs::remove_file(dest.join(name));
        }
        return Err(e);
    }
    let canonical = match source.fetch {
        Fetch::Files(remote) => Some(remote.iter().all(|r| {
            let base = r.name.trim_end_matches(".gz");
            r.digest_of == DigestOf::Uncompressed
                && files
                    .iter()
                    .any(|(name, bytes)| name == base && sha256_hex(bytes) == r.sha256)
        })),
        _ => None,
    };
    let how = format!("from the Hugging Face Hub ({repo}, via candle-datasets)");
    Ok(match canonical {
        Some(true) => format!("{how}, identical to the canonical files (SHA-256)"),
        Some(false) => format!("{how}, NOT identical to the canonical files (SHA-256 differs)"),
        None => how,
    })
}

/// Pixel values in [0, 1] back to the bytes they were decoded from.
fn bytes_of(t: &Tensor) -> candle_core::Result<Vec<u8>> {
    (t * 255.0)?
        .round()?
        .to_dtype(DType::U8)?
        .flatten_all()?
        .to_vec1::<u8>()
}

/// The four IDX files (uncompressed) of an MNIST-like dataset of 28x28 images.
fn idx_files(d: &Dataset) -> candle_core::Result<Vec<(String, Vec<u8>)>> {
    let images = |t: &Tensor| -> candle_core::Result<Vec<u8>> {
        let n = t.dim(0)?;
        Ok(encode_idx(&[n, 28, 28], &bytes_of(&t.reshape((n, 784))?)?))
    };
    let labels = |t: &Tensor| -> candle_core::Result<Vec<u8>> {
        let l = t.to_dtype(DType::U8)?.to_vec1::<u8>()?;
        Ok(encode_idx(&[l.len()], &l))
    };
    Ok(vec![
        (IDX_FILES[0].into(), images(&d.train_images)?),
        (IDX_FILES[1].into(), labels(&d.train_labels)?),
        (IDX_FILES[2].into(), images(&d.test_images)?),
        (IDX_FILES[3].into(), labels(&d.test_labels)?),
    ])
}

/// CIFAR-10's binary batches: five training files and the test file, of records
/// (label, then the red, green and blue 32x32 planes).
fn cifar_files(d: &Dataset) -> candle_core::Result<Vec<(String, Vec<u8>)>> {
    // candle-datasets 0.11 permutes the decoded (n, rows, cols, channels) pixels with
    // (0, 3, 2, 1), which gives (n, channels, cols, rows): rows and columns swapped.
    // Swapping them back gives the canonical (n, channels, rows, cols) planes.
    let records = |images: &Tensor, labels: &Tensor| -> candle_core::Result<Vec<Vec<u8>>> {
        let pixels = bytes_of(&images.transpose(2, 3)?.contiguous()?)?;
        let labels = labels.to_dtype(DType::U8)?.to_vec1::<u8>()?;
        let per_image = CIFAR_RECORD_BYTES - 1;
        Ok(labels
            .iter()
            .zip(pixels.chunks_exact(per_image))
            .map(|(&label, image)| [&[label], image].concat())
            .collect())
    };
    let train = records(&d.train_images, &d.train_labels)?;
    let test = records(&d.test_images, &d.test_labels)?;
    let per_file = train.len().div_ceil(CIFAR_TRAIN_FILES.len()).max(1);
    let mut files: Vec<(String, Vec<u8>)> = CIFAR_TRAIN_FILES
        .iter()
        .zip(train.chunks(per_file).chain(std::iter::repeat(&[][..])))
        .map(|(name, chunk)| (name.to_string(), chunk.concat()))
        .collect();
    files.push((CIFAR_TEST_FILE.to_string(), test.concat()));
    Ok(files)
}

#[cfg(test)]
mod tests {
    //! The Hub's loaders run for real, against a Hub cache this test makes: Parquet files
    //! laid out as the Hub's `refs/convert/parquet` branch has them (a struct column
    //! `image` with PNG `bytes`, an int64 `label`), where hf-hub looks before it goes to
    //! the network. No network is used.
    use super::*;
    use crate::cifar::load_cifar_dir;
    use crate::image_set::load_idx_dir;
    use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;
    use std::sync::Arc;

    const SCHEMA: &str = "message schema {
        required group image { optional binary bytes; optional binary path (UTF8); }
        required int64 label;
    }";

    fn png(pixels: &[u8], width: u32, height: u32, rgb: bool) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        let color = match rgb {
            true => image::ExtendedColorType::Rgb8,
            false => image::ExtendedColorType::L8,
        };
        image::write_buffer_with_format(
            &mut out,
            pixels,
            width,
            height,
            color,
            image::ImageFormat::Png,
        )
        .unwrap();
        out.into_inner()
    }

    fn write_parquet(path: &Path, images: &[Vec<u8>], labels: &[i64]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let schema = Arc::new(parse_message_type(SCHEMA).unwrap());
        let file = std::fs::File::create(path).unwrap();
        let props = Arc::new(WriterProperties::builder().build());
        let mut writer = SerializedFileWriter::new(file, schema, props).unwrap();
        let mut group = writer.next_row_group().unwrap();
        let n = images.len();
        let bytes: Vec<ByteArray> = images.iter().map(|i| ByteArray::from(i.clone())).collect();
        let mut column = group.next_column().unwrap().unwrap();
        column
            .typed::<ByteArrayType>()
            .write_batch(&bytes, Some(&vec![1; n]), None)
            .unwrap();
        column.close().unwrap();
        let mut column = group.next_column().unwrap().unwrap();
        column
            .typed::<ByteArrayType>()
            .write_batch(&[], Some(&vec![0; n]), None)
            .unwrap();
        column.close().unwrap();
        let mut column = group.next_column().unwrap().unwrap();
        column
            .typed::<Int64Type>()
            .write_batch(labels, None, None)
            .unwrap();
        column.close().unwrap();
        group.close().unwrap();
        writer.close().unwrap();
    }

    /// A repository in the Hub cache at `hub`, its parquet branch at one commit.
    fn cached_repo(hub: &Path, repo: &str) -> std::path::PathBuf {
        let dir = hub.join(format!("datasets--{}", repo.replace('/', "--")));
        let commit = "0123456789abcdef0123456789abcdef01234567";
        std::fs::create_dir_all(dir.join("refs/refs/convert")).unwrap();
        std::fs::write(dir.join("refs/refs/convert/parquet"), commit).unwrap();
        dir.join("snapshots").join(commit)
    }

    /// Pixel `i` of image `k`: every image different, every position distinguishable.
    fn pixel(k: usize, i: usize) -> u8 {
        ((k * 31 + i * 7) % 251) as u8
    }

    /// One test for all three datasets: `HF_HOME` is the process's, so the checks that
    /// set it run one after another.
    #[test]
    fn the_hubs_files_become_the_canonical_files() {
        let home = tempfile::tempdir().unwrap();
        // SAFETY of the environment change: no other test of this crate reads HF_HOME.
        std::env::set_var("HF_HOME", home.path());
        let hub = home.path().join("hub");

        // Fashion-MNIST: 28x28 grey images, 6 for training and 3 for testing.
        let snapshot = cached_repo(&hub, "zalando-datasets/fashion_mnist");
        let grey = |k: usize| (0..784).map(|i| pixel(k, i)).collect::<Vec<u8>>();
        for (split, n) in [("train", 6), ("test", 3)] {
            let images: Vec<Vec<u8>> = (0..n).map(|k| png(&grey(k), 28, 28, false)).collect();
            let labels: Vec<i64> = (0..n as i64).map(|k| k % 10).collect();
            let path = snapshot.join(format!("fashion_mnist/{split}/0000.parquet"));
            write_parquet(&path, &images, &labels);
        }
        let dest = home.path().join("data/fashion-mnist");
        let how = fetch_from_hub(&DatasetSource::FASHION_MNIST, &dest).unwrap();
        assert!(how.contains("zalando-datasets/fashion_mnist"), "{how}");
        assert!(
            how.contains("NOT identical"),
            "tiny files are not Zalando's: {how}"
        );
        let splits = load_idx_dir(&dest, 10).unwrap();
        assert_eq!((splits.train.len, splits.test.len), (6, 3));
        assert_eq!(&splits.train.images[784..2 * 784], &grey(1)[..]);
        assert_eq!(splits.test.labels, vec![0, 1, 2]);

        // CIFAR-10: 32x32 RGB images; rows and columns must come out as they went in.
        let snapshot = cached_repo(&hub, "cifar10");
        let planes = |k: usize| (0..3072).map(|i| pixel(k, i)).collect::<Vec<u8>>();
        let interleaved = |k: usize| {
            let p = planes(k);
            (0..1024)
                .flat_map(|i| [p[i], p[1024 + i], p[2048 + i]])
                .collect::<Vec<u8>>()
        };
        for (split, n) in [("train", 10), ("test", 2)] {
            let images: Vec<Vec<u8>> = (0..n).map(|k| png(&interleaved(k), 32, 32, true)).collect();
            let labels: Vec<i64> = (0..n as i64).map(|k| 9 - k % 10).collect();
            let path = snapshot.join(format!("plain_text/{split}/0000.parquet"));
            write_parquet(&path, &images, &labels);
        }
        let dest = home.path().join("data/cifar10");
        fetch_from_hub(&DatasetSource::CIFAR10, &dest).unwrap();
        let splits = load_cifar_dir(&dest).unwrap();
        assert_eq!((splits.train.len, splits.test.len), (10, 2));
        assert_eq!(&splits.train.images[3 * 3072..4 * 3072], &planes(3)[..]);
        assert_eq!(splits.test.labels, vec![9, 8]);

        // MNIST with a corrupt image: an error naming the repository, no panic, and
        // nothing written.
        let snapshot = cached_repo(&hub, "ylecun/mnist");
        for split in ["train", "test"] {
            let path = snapshot.join(format!("mnist/{split}/0000.parquet"));
            write_parquet(&path, &[b"not a png".to_vec()], &[1]);
        }
        let dest = home.path().join("data/mnist");
        let err = fetch_from_hub(&DatasetSource::MNIST, &dest)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ylecun/mnist") && err.contains("does not decode"),
            "{err}"
        );
        assert!(!dest.exists());
    }
}
