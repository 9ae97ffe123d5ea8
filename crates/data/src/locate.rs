//! Where a dataset's files are, in the documented order: a directory given by the user
//! (command line, then the experiment YAML, then an environment variable), `./data/<name>`,
//! the Debian package's location; failing all, a verified download into `./data/<name>`,
//! and, in a build with the `candle-datasets` feature, the Hugging Face Hub after that.
//! A location the user gave must hold the files: it is an error, not a reason to look on.

use crate::cifar::{has_cifar_files, load_cifar_dir, CIFAR_FILES};
use crate::download::{download_all, download_archive, DigestOf, RemoteArchive, RemoteFile};
use crate::error::DataError;
use crate::image_set::{has_idx_files, load_idx_dir, Splits, IDX_FILES};
use std::path::{Path, PathBuf};

/// How a dataset's files are laid out on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The four MNIST-style IDX files, each possibly gzipped.
    Idx,
    /// CIFAR-10's six binary batch files.
    CifarBinary,
}

/// How a dataset is fetched from its canonical location.
#[derive(Debug, Clone, Copy)]
pub enum Fetch {
    /// No verified source is known.
    Nothing,
    /// Files side by side under the base URL.
    Files(&'static [RemoteFile]),
    /// One archive under the base URL, of which some members are extracted.
    Archive(RemoteArchive),
}

/// A dataset the tool knows how to find and fetch.
#[derive(Debug, Clone, Copy)]
pub struct DatasetSource {
    pub name: &'static str,
    pub env_var: &'static str,
    pub system_dir: &'static str,
    pub debian_package: Option<&'static str>,
    /// Canonical public location, if we know checksums for it.
    pub base_url: Option<&'static str>,
    pub fetch: Fetch,
    pub format: Format,
    pub classes: u8,
}

impl DatasetSource {
    pub const FASHION_MNIST: DatasetSource = DatasetSource {
        name: "fashion-mnist",
        env_var: "FASHION_MNIST_DIR",
        system_dir: "/usr/share/datasets/fashion-mnist",
        debian_package: Some("dataset-fashion-mnist"),
        // The location given in Zalando Research's README (plain HTTP, an S3 website).
        base_url: Some("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com"),
        // SHA-256 of the uncompressed IDX bytes, so recompressed copies verify too.
        fetch: Fetch::Files(&[
            RemoteFile {
                name: "train-images-idx3-ubyte.gz",
                sha256: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                digest_of: DigestOf::Uncompressed,
            },
            RemoteFile {
                name: "train-labels-idx1-ubyte.gz",
                sha256: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                digest_of: DigestOf::Uncompressed,
            },
            RemoteFile {
                name: "t10k-images-idx3-ubyte.gz",
                sha256: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                digest_of: DigestOf::Uncompressed,
            },
            RemoteFile {
                name: "t10k-labels-idx1-ubyte.gz",
                sha256: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
                digest_of: DigestOf::Uncompressed,
            },
        ]),
        format: Format::Idx,
        classes: 10,
    };

    pub const MNIST: DatasetSource = DatasetSource {
        name: "mnist",
        env_var: "MNIST_DIR",
        system_dir: "/usr/share/datasets/mnist",
        debian_package: None,
        // The mirror torchvision uses (yann.lecun.com no longer serves the files
        // reliably). SHA-256 of the .gz files as served, from TensorFlow Datasets'
        // `url_checksums/mnist.txt`; they match torchvision's MD5s for the same bytes.
        base_url: Some("https://ossci-datasets.s3.amazonaws.com/mnist"),
        fetch: Fetch::Files(&[
            RemoteFile {
                name: "train-images-idx3-ubyte.gz",
                sha256: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                digest_of: DigestOf::AsServed,
            },
            RemoteFile {
                name: "train-labels-idx1-ubyte.gz",
                sha256: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                digest_of: DigestOf::AsServed,
            },
            RemoteFile {
                name: "t10k-images-idx3-ubyte.gz",
                sha256: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                digest_of: DigestOf::AsServed,
            },
            RemoteFile {
                name: "t10k-labels-idx1-ubyte.gz",
                sha256: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                digest_of: DigestOf::AsServed,
            },
        ]),
        format: Format::Idx,
        classes: 10,
    };

    pub const CIFAR10: DatasetSource = DatasetSource {
        name: "cifar10",
        env_var: "CIFAR10_DIR",
        system_dir: "/usr/share/datasets/cifar10",
        debian_package: None,
        // Alex Krizhevsky's page. SHA-256 of the archive (170052171 bytes) from TensorFlow
        // Datasets' `url_checksums/cifar10.txt`; the page itself publishes its MD5,
        // c32a1d4ab5d03f1284b67883e8d87530.
        base_url: Some("https://www.cs.toronto.edu/~kriz"),
        fetch: Fetch::Archive(RemoteArchive {
            name: "cifar-10-binary.tar.gz",
            sha256: "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
            folder: "cifar-10-batches-bin",
            members: &CIFAR_FILES,
        }),
        format: Format::CifarBinary,
        classes: 10,
    };

    /// The source of a dataset by its name in experiment files.
    pub fn named(name: &str) -> Option<&'static DatasetSource> {
        match name {
            "fashion-mnist" => Some(&DatasetSource::FASHION_MNIST),
            "mnist" => Some(&DatasetSource::MNIST),
            "cifar10" => Some(&DatasetSource::CIFAR10),
            _ => None,
        }
    }

    /// Whether `dir` holds a complete copy of the dataset's files.
    pub fn is_complete(&self, dir: &Path) -> bool {
        match self.format {
            Format::Idx => has_idx_files(dir),
            Format::CifarBinary => has_cifar_files(dir),
        }
    }

    /// The files a directory must hold, for messages.
    pub fn expected_files(&self) -> String {
        match self.format {
            Format::Idx => format!("{}, each possibly .gz", IDX_FILES.join(", ")),
            Format::CifarBinary => CIFAR_FILES.join(", "),
        }
    }

    /// Reads the train and test sets from `dir`.
    pub fn load(&self, dir: &Path) -> Result<Splits, DataError> {
        match self.format {
            Format::Idx => load_idx_dir(dir, self.classes),
            Format::CifarBinary => load_cifar_dir(dir),
        }
    }
}

/// What the user told us, and where a download may go.
#[derive(Debug, Clone, Default)]
pub struct LocateOptions {
    /// `--data-dir` on the command line.
    pub cli_dir: Option<PathBuf>,
    /// `dataset.dir` in the experiment YAML.
    pub yaml_dir: Option<PathBuf>,
    /// The directory that holds `./data/<name>` (normally the current directory).
    pub local_root: PathBuf,
    /// Replaces the canonical base URL (a mirror, or a test server).
    pub mirror: Option<String>,
    pub allow_download: bool,
}

/// Where the files were found, and by which rule (recorded in run metadata).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub dir: PathBuf,
    pub how: String,
}

/// The first candidates are locations the user gave explicitly.
const EXPLICIT: usize = 3;

pub fn locate_or_fetch(source: &DatasetSource, opts: &LocateOptions) -> Result<Located, DataError> {
    let local = opts.local_root.join("data").join(source.name);
    let env_dir = std::env::var_os(source.env_var).map(PathBuf::from);
    let candidates: Vec<(Option<PathBuf>, String)> = vec![
        (opts.cli_dir.clone(), "--data-dir".into()),
        (
            opts.yaml_dir.clone(),
            "dataset.dir in the experiment".into(),
        ),
        (env_dir, format!("${}", source.env_var)),
        (Some(local.clone()), "the project's data directory".into()),
        (
            Some(PathBuf::from(source.system_dir)),
            match source.debian_package {
                Some(p) => format!("the Debian package {p}"),
                None => "the system dataset directory".into(),
            },
        ),
    ];
    let mut tried = Vec::new();
    for (i, (dir, how)) in candidates.into_iter().enumerate() {
        match dir {
            Some(dir) if source.is_complete(&dir) => return Ok(Located { dir, how }),
            // A location the user gave (flag, YAML, environment) is what they meant:
            // training on data from elsewhere instead would be a silent surprise.
            Some(dir) if i < EXPLICIT => {
                return Err(DataError::BadLocation {
                    how,
                    dir,
                    expected: source.expected_files(),
                })
            }
            Some(dir) => tried.push(format!(
                "  {how}: {} (not a complete set of its files)",
                dir.display()
            )),
            None => tried.push(format!("  {how}: not set")),
        }
    }
    let base = opts.mirror.as_deref().or(source.base_url);
    match (base, opts.allow_download, source.fetch) {
        (_, false, _) => tried.push("  download: not allowed (--offline)".into()),
        (Some(base), true, Fetch::Files(_) | Fetch::Archive(_)) => {
            let fetched = match source.fetch {
                Fetch::Files(files) => download_all(base, files, &local),
                Fetch::Archive(archive) => download_archive(base, &archive, &local),
                Fetch::Nothing => unreachable!("matched above"),
            };
            match fetched {
                Ok(()) => {
                    return Ok(Located {
                        dir: local,
                        how: format!("downloaded from {base}"),
                    })
                }
                Err(e) => tried.push(format!("  download: {e}")),
            }
        }
        _ => tried.push("  download: no verified download source is known for this dataset".into()),
    }
    // The second source, when the canonical one failed.
    let hub = "  the Hugging Face Hub (candle-datasets)";
    match opts.allow_download {
        false => tried.push(format!("{hub}: not allowed (--offline)")),
        #[cfg(feature = "candle-datasets")]
        true => match crate::hub::fetch_from_hub(source, &local) {
            Ok(how) => return Ok(Located { dir: local, how }),
            Err(e) => tried.push(format!("{hub}: {e}")),
        },
        #[cfg(not(feature = "candle-datasets"))]
        true => tried.push(format!(
            "{hub}: not in this build (build with `--features candle-datasets`)"
        )),
    }
    Err(DataError::NotFound {
        dataset: source.name.to_string(),
        tried: tried.join("\n"),
        fix: match source.debian_package {
            Some(p) => format!("install the Debian package `{p}` (apt-get install {p}), or "),
            None => String::new(),
        },
        expected: source.expected_files(),
        env_var: source.env_var.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::download::tests::{serve, Reply};
    use crate::image_set::tests::write_tiny;

    fn tiny_source(files: &'static [RemoteFile]) -> DatasetSource {
        DatasetSource {
            name: "tiny",
            env_var: "DEGRADE_TEST_TINY_DIR_UNSET",
            system_dir: "/nonexistent/tiny",
            debian_package: None,
            base_url: None,
            fetch: Fetch::Files(files),
            format: Format::Idx,
            classes: 10,
        }
    }

    #[test]
    fn cli_dir_wins_over_yaml_dir() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        write_tiny(a.path(), 10, 10);
        write_tiny(b.path(), 10, 10);
        let opts = LocateOptions {
            cli_dir: Some(a.path().into()),
            yaml_dir: Some(b.path().into()),
            local_root: b.path().into(),
            ..Default::default()
        };
        let found = locate_or_fetch(&tiny_source(&[]), &opts).unwrap();
        assert_eq!(found.dir, a.path());
        assert_eq!(found.how, "--data-dir");
    }

    #[test]
    fn the_local_data_dir_is_used_when_no_location_is_given() {
        let root = tempfile::tempdir().unwrap();
        let local = root.path().join("data").join("tiny");
        std::fs::create_dir_all(&local).unwrap();
        write_tiny(&local, 10, 10);
        let opts = LocateOptions {
            local_root: root.path().into(),
            ..Default::default()
        };
        assert_eq!(
            locate_or_fetch(&tiny_source(&[]), &opts).unwrap().dir,
            local
        );
    }

    #[test]
    fn a_given_location_without_the_files_is_an_error_naming_it() {
        let root = tempfile::tempdir().unwrap();
        let local = root.path().join("data").join("tiny");
        std::fs::create_dir_all(&local).unwrap();
        write_tiny(&local, 10, 10);
        let empty = tempfile::tempdir().unwrap();
        let file = root.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        for (cli_dir, yaml_dir, how) in [
            (None, Some(empty.path().to_path_buf()), "dataset.dir"),
            (Some(file.clone()), None, "--data-dir"),
        ] {
            let opts = LocateOptions {
                cli_dir,
                yaml_dir,
                local_root: root.path().into(),
                ..Default::default()
            };
            let e = locate_or_fetch(&tiny_source(&[]), &opts)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(how) && e.contains("train-images-idx3-ubyte"),
                "{e}"
            );
        }
    }

    #[test]
    fn not_found_lists_every_place_tried_and_the_fix() {
        let root = tempfile::tempdir().unwrap();
        let source = DatasetSource {
            system_dir: "/nonexistent/system",
            debian_package: Some("dataset-tiny"),
            ..tiny_source(&[])
        };
        let opts = LocateOptions {
            local_root: root.path().into(),
            ..Default::default()
        };
        let msg = locate_or_fetch(&source, &opts).unwrap_err().to_string();
        for needle in [
            "--data-dir: not set",
            "dataset.dir",
            "DEGRADE_TEST_TINY_DIR_UNSET",
            "/nonexistent/system",
            "dataset-tiny",
            "--offline",
        ] {
            assert!(msg.contains(needle), "{needle} missing from: {msg}");
        }
    }

    #[test]
    fn downloads_from_a_mirror_when_nothing_is_found() {
        let src = tempfile::tempdir().unwrap();
        write_tiny(src.path(), 10, 10);
        let mut routes = Vec::new();
        let mut files = Vec::new();
        for base in crate::image_set::IDX_FILES {
            let bytes = std::fs::read(src.path().join(base)).unwrap();
            let sha = crate::download::hex(&<sha2::Sha256 as sha2::Digest>::digest(&bytes));
            files.push(RemoteFile {
                name: base,
                sha256: Box::leak(sha.into_boxed_str()),
                digest_of: DigestOf::Uncompressed,
            });
            routes.push((format!("/{base}"), Reply::Ok(bytes)));
        }
        let url = serve(routes, 4);
        let root = tempfile::tempdir().unwrap();
        let opts = LocateOptions {
            local_root: root.path().into(),
            mirror: Some(url.clone()),
            allow_download: true,
            ..Default::default()
        };
        let source = tiny_source(Box::leak(files.into_boxed_slice()));
        let found = locate_or_fetch(&source, &opts).unwrap();
        assert_eq!(found.dir, root.path().join("data").join("tiny"));
        assert!(found.how.contains(&url));
        crate::load_idx_dir(&found.dir, 10).unwrap();
    }

    #[test]
    fn cifar10_downloads_as_an_archive_and_loads() {
        let per_file = 2;
        let members: Vec<(String, Vec<u8>)> = CIFAR_FILES
            .iter()
            .enumerate()
            .map(|(k, name)| {
                (
                    format!("cifar-10-batches-bin/{name}"),
                    crate::cifar::tests::records(per_file, k * per_file),
                )
            })
            .collect();
        let refs: Vec<(&str, &[u8])> = members
            .iter()
            .map(|(p, b)| (p.as_str(), b.as_slice()))
            .collect();
        let body = crate::download::tests::tar_gz(&refs);
        let sha = crate::download::hex(&<sha2::Sha256 as sha2::Digest>::digest(&body));
        let url = serve(vec![("/cifar-10-binary.tar.gz".into(), Reply::Ok(body))], 1);
        let root = tempfile::tempdir().unwrap();
        let source = DatasetSource {
            env_var: "DEGRADE_TEST_CIFAR_DIR_UNSET",
            system_dir: "/nonexistent/cifar10",
            fetch: match DatasetSource::CIFAR10.fetch {
                Fetch::Archive(a) => Fetch::Archive(RemoteArchive {
                    sha256: Box::leak(sha.into_boxed_str()),
                    ..a
                }),
                _ => unreachable!(),
            },
            ..DatasetSource::CIFAR10
        };
        let opts = LocateOptions {
            local_root: root.path().into(),
            mirror: Some(url),
            allow_download: true,
            ..Default::default()
        };
        let found = locate_or_fetch(&source, &opts).unwrap();
        assert_eq!(found.dir, root.path().join("data").join("cifar10"));
        let splits = source.load(&found.dir).unwrap();
        assert_eq!((splits.train.len, splits.test.len), (10, 2));
        // Found locally the second time: no server needed.
        let again = locate_or_fetch(&source, &opts).unwrap();
        assert_eq!(again.how, "the project's data directory");
    }

    #[test]
    fn every_known_dataset_has_a_verified_download() {
        for name in ["fashion-mnist", "mnist", "cifar10"] {
            let source = DatasetSource::named(name).unwrap();
            assert!(source.base_url.is_some(), "{name}");
            let sums: Vec<&str> = match source.fetch {
                Fetch::Files(files) => files.iter().map(|f| f.sha256).collect(),
                Fetch::Archive(a) => vec![a.sha256],
                Fetch::Nothing => panic!("{name} has no download"),
            };
            assert!(sums
                .iter()
                .all(|s| s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit())));
        }
    }
}
