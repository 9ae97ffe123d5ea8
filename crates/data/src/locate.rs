//! Where a dataset's files are, in the documented order: a directory given by the user
//! (command line, then the experiment YAML, then an environment variable), `./data/<name>`,
//! the Debian package's location; failing all, a verified download into `./data/<name>`.
//! A location the user gave must hold the files: it is an error, not a reason to look on.

use crate::download::{download_all, RemoteFile};
use crate::error::DataError;
use crate::image_set::{has_idx_files, IDX_FILES};
use std::path::PathBuf;

/// A dataset the tool knows how to find and fetch.
#[derive(Debug, Clone, Copy)]
pub struct DatasetSource {
    pub name: &'static str,
    pub env_var: &'static str,
    pub system_dir: &'static str,
    pub debian_package: Option<&'static str>,
    /// Canonical public location, if we know checksums for it.
    pub base_url: Option<&'static str>,
    pub files: &'static [RemoteFile],
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
        files: &[
            RemoteFile {
                name: "train-images-idx3-ubyte.gz",
                sha256: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            },
            RemoteFile {
                name: "train-labels-idx1-ubyte.gz",
                sha256: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            },
            RemoteFile {
                name: "t10k-images-idx3-ubyte.gz",
                sha256: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            },
            RemoteFile {
                name: "t10k-labels-idx1-ubyte.gz",
                sha256: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
            },
        ],
        classes: 10,
    };

    /// MNIST is read from a directory; no download is wired up for it yet.
    pub const MNIST: DatasetSource = DatasetSource {
        name: "mnist",
        env_var: "MNIST_DIR",
        system_dir: "/usr/share/datasets/mnist",
        debian_package: None,
        base_url: None,
        files: &[],
        classes: 10,
    };
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
            Some(dir) if has_idx_files(&dir) => return Ok(Located { dir, how }),
            // A location the user gave (flag, YAML, environment) is what they meant:
            // training on data from elsewhere instead would be a silent surprise.
            Some(dir) if i < EXPLICIT => {
                return Err(DataError::BadLocation {
                    how,
                    dir,
                    expected: IDX_FILES.join(", "),
                })
            }
            Some(dir) => tried.push(format!(
                "  {how}: {} (no complete set of IDX files)",
                dir.display()
            )),
            None => tried.push(format!("  {how}: not set")),
        }
    }
    let base = opts.mirror.as_deref().or(source.base_url);
    match (base, opts.allow_download) {
        (Some(base), true) if !source.files.is_empty() => {
            match download_all(base, source.files, &local) {
                Ok(()) => {
                    return Ok(Located {
                        dir: local,
                        how: format!("downloaded from {base}"),
                    })
                }
                Err(e) => tried.push(format!("  download: {e}")),
            }
        }
        (_, false) => tried.push("  download: not allowed (--offline)".into()),
        _ => tried.push("  download: no verified download source is known for this dataset".into()),
    }
    Err(DataError::NotFound {
        dataset: source.name.to_string(),
        tried: tried.join("\n"),
        fix: match source.debian_package {
            Some(p) => format!("install the Debian package `{p}` (apt-get install {p}), or "),
            None => String::new(),
        },
        env_var: source.env_var.to_string(),
    })
}

/// Helper for callers that know a dataset by name.
pub fn source_named(name: &str) -> Option<&'static DatasetSource> {
    match name {
        "fashion-mnist" => Some(&DatasetSource::FASHION_MNIST),
        "mnist" => Some(&DatasetSource::MNIST),
        _ => None,
    }
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
            files,
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
}
