//! Fetching dataset files over HTTP(S). Each file is held in memory, checked against its
//! SHA-256, and only then written: temporary name, fsync, rename. A failed or
//! interrupted download never leaves a file where the reader would pick it up.
//! Fashion-MNIST's sums are of the *uncompressed* content (so a recompressed mirror,
//! like Debian's, still verifies); MNIST's and CIFAR-10's are of the files as served
//! (the published sums). An archive (CIFAR-10) is verified whole, then only the members
//! the reader needs are extracted, each written the same safe way.

use crate::error::DataError;
use crate::idx::gunzip_if_needed;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// What a published SHA-256 is the digest of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestOf {
    /// The bytes after gunzip (the same for any compression of the same data).
    Uncompressed,
    /// The bytes exactly as the server sends them.
    AsServed,
}

impl DigestOf {
    fn describe(self) -> &'static str {
        match self {
            DigestOf::Uncompressed => "the uncompressed data",
            DigestOf::AsServed => "the file as served",
        }
    }
}

/// A file to fetch from a base URL, with its SHA-256.
#[derive(Debug, Clone, Copy)]
pub struct RemoteFile {
    pub name: &'static str,
    pub sha256: &'static str,
    pub digest_of: DigestOf,
}

/// A `.tar.gz` to fetch from a base URL, verified whole (SHA-256 as served), of which
/// the `members` inside `folder` are extracted.
#[derive(Debug, Clone, Copy)]
pub struct RemoteArchive {
    pub name: &'static str,
    pub sha256: &'static str,
    pub folder: &'static str,
    pub members: &'static [&'static str],
}

/// Largest body we accept: CIFAR-10's binary archive is 170 MB.
const MAX_BODY_BYTES: u64 = 256 * 1024 * 1024;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_global(Some(Duration::from_secs(1800)))
        .build()
        .into()
}

pub(crate) fn create_dir(dest: &Path) -> Result<(), DataError> {
    std::fs::create_dir_all(dest).map_err(|source| DataError::Io {
        path: dest.to_path_buf(),
        source,
    })
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn check_sha256(url: &str, bytes: &[u8], expected: &str, what: DigestOf) -> Result<(), DataError> {
    let actual = sha256_hex(bytes);
    if actual != expected {
        return Err(DataError::Checksum {
            url: url.to_string(),
            what: what.describe(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(())
}

/// Downloads every file into `dest` (created if needed). Stops at the first failure.
pub fn download_all(base_url: &str, files: &[RemoteFile], dest: &Path) -> Result<(), DataError> {
    create_dir(dest)?;
    let agent = agent();
    for file in files {
        let url = join_url(base_url, file.name);
        let body = fetch(&agent, &url)?;
        match file.digest_of {
            DigestOf::AsServed => check_sha256(&url, &body, file.sha256, file.digest_of)?,
            DigestOf::Uncompressed => {
                let content = gunzip_if_needed(Path::new(&url), body.clone()).map_err(|e| {
                    DataError::Download {
                        url: url.clone(),
                        detail: e.to_string(),
                    }
                })?;
                check_sha256(&url, &content, file.sha256, file.digest_of)?;
            }
        }
        write_atomically(&dest.join(file.name), &body)?;
    }
    Ok(())
}

/// Downloads `archive`, checks it, and writes its members into `dest` (created if
/// needed). Nothing is written unless the checksum matches and every member is there.
pub fn download_archive(
    base_url: &str,
    archive: &RemoteArchive,
    dest: &Path,
) -> Result<(), DataError> {
    let url = join_url(base_url, archive.name);
    let body = fetch(&agent(), &url)?;
    check_sha256(&url, &body, archive.sha256, DigestOf::AsServed)?;
    let members = extract_members(&body, archive).map_err(|detail| DataError::Archive {
        url: url.clone(),
        detail,
    })?;
    create_dir(dest)?;
    for (name, bytes) in archive.members.iter().zip(&members) {
        write_atomically(&dest.join(name), bytes)?;
    }
    Ok(())
}

/// The bytes of each of `archive.members` (in that order) from a `.tar.gz`.
fn extract_members(tar_gz: &[u8], archive: &RemoteArchive) -> Result<Vec<Vec<u8>>, String> {
    let mut found: Vec<Option<Vec<u8>>> = vec![None; archive.members.len()];
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(tar_gz));
    let entries = tar.entries().map_err(|e| e.to_string())?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("corrupt tar stream: {e}"))?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        // Only `folder/member`: a name is matched, never used as a path to write to.
        let in_folder = path
            .parent()
            .is_some_and(|p| p == Path::new(archive.folder));
        let Some(index) = path.file_name().and_then(|n| {
            archive
                .members
                .iter()
                .position(|m| Path::new(m) == Path::new(n))
        }) else {
            continue;
        };
        if in_folder {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut bytes)
                .map_err(|e| format!("reading {}: {e}", path.display()))?;
            found[index] = Some(bytes);
        }
    }
    let missing: Vec<&str> = archive
        .members
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(m, _)| *m)
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "it lacks {} in {}/",
            missing.join(", "),
            archive.folder
        ));
    }
    Ok(found.into_iter().flatten().collect())
}

fn join_url(base: &str, name: &str) -> String {
    format!("{}/{}", base.trim_end_matches('/'), name)
}

fn fetch(agent: &ureq::Agent, url: &str) -> Result<Vec<u8>, DataError> {
    let fail = |detail: String| DataError::Download {
        url: url.to_string(),
        detail,
    };
    let mut response = agent.get(url).call().map_err(|e| fail(e.to_string()))?;
    response
        .body_mut()
        .with_config()
        .limit(MAX_BODY_BYTES)
        .read_to_vec()
        .map_err(|e| fail(format!("reading the body: {e}")))
}

pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    // Per process: two downloads into one directory never write the same temporary.
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.part-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename is durable only once the directory is synced.
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        std::fs::File::open(dir.unwrap_or(Path::new(".")))?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;

    /// What the test server answers for one path.
    #[derive(Clone)]
    pub enum Reply {
        Ok(Vec<u8>),
        /// Announces the full length, then sends only half the body and hangs up.
        Truncated(Vec<u8>),
        NotFound,
    }

    /// A tiny HTTP/1.1 server on 127.0.0.1 answering `max_requests` requests, then exiting.
    pub fn serve(routes: Vec<(String, Reply)>, max_requests: usize) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(max_requests) {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap() <= 2 {
                        break;
                    }
                }
                let path = request_line.split_whitespace().nth(1).unwrap_or("/");
                let reply = routes
                    .iter()
                    .find(|(p, _)| p == path)
                    .map(|(_, r)| r.clone())
                    .unwrap_or(Reply::NotFound);
                let (status, body, sent) = match reply {
                    Reply::Ok(b) => ("200 OK", b.clone(), b.len()),
                    Reply::Truncated(b) => ("200 OK", b.clone(), b.len() / 2),
                    Reply::NotFound => ("404 Not Found", b"not found".to_vec(), 9),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&body[..sent]);
                let _ = stream.flush();
                // Hang up for real (the reader holds a clone of the socket).
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        });
        format!("http://{addr}")
    }

    fn file(name: &'static str, content: &[u8]) -> RemoteFile {
        let sha: &'static str = Box::leak(hex(&Sha256::digest(content)).into_boxed_str());
        RemoteFile {
            name,
            sha256: sha,
            digest_of: DigestOf::Uncompressed,
        }
    }

    /// A `.tar.gz` holding `files` (path inside the archive, bytes).
    pub fn tar_gz(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, bytes) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, path, *bytes).unwrap();
        }
        gz(&builder.into_inner().unwrap())
    }

    fn archive(sha256: &'static str) -> RemoteArchive {
        RemoteArchive {
            name: "set.tar.gz",
            sha256,
            folder: "set-bin",
            members: &["one.bin", "two.bin"],
        }
    }

    fn leak_sha(bytes: &[u8]) -> &'static str {
        Box::leak(hex(&Sha256::digest(bytes)).into_boxed_str())
    }

    #[test]
    fn an_archive_is_verified_then_only_its_members_are_extracted() {
        let body = tar_gz(&[
            ("set-bin/readme.html", b"<p>"),
            ("set-bin/one.bin", b"first"),
            ("elsewhere/two.bin", b"decoy"),
            ("set-bin/two.bin", b"second"),
        ]);
        let url = serve(vec![("/set.tar.gz".into(), Reply::Ok(body.clone()))], 1);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("set");
        download_archive(&url, &archive(leak_sha(&body)), &dest).unwrap();
        assert_eq!(std::fs::read(dest.join("one.bin")).unwrap(), b"first");
        assert_eq!(std::fs::read(dest.join("two.bin")).unwrap(), b"second");
        assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 2);
    }

    #[test]
    fn a_bad_archive_writes_nothing() {
        let good = tar_gz(&[("set-bin/one.bin", b"1"), ("set-bin/two.bin", b"2")]);
        let incomplete = tar_gz(&[("set-bin/one.bin", b"1")]);
        let cases: Vec<(Reply, &'static str, &str)> = vec![
            (
                Reply::Ok(good.clone()),
                leak_sha(b"other"),
                "checksum mismatch",
            ),
            (
                Reply::Truncated(good.clone()),
                leak_sha(&good),
                "set.tar.gz",
            ),
            (Reply::NotFound, leak_sha(&good), "404"),
            (
                Reply::Ok(incomplete.clone()),
                leak_sha(&incomplete),
                "lacks two.bin",
            ),
            (
                Reply::Ok(b"not gzip".to_vec()),
                leak_sha(b"not gzip"),
                "not usable",
            ),
        ];
        for (reply, sha, expected) in cases {
            let url = serve(vec![("/set.tar.gz".into(), reply)], 1);
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("set");
            let e = download_archive(&url, &archive(sha), &dest)
                .unwrap_err()
                .to_string();
            assert!(e.contains(expected), "expected {expected:?} in {e}");
            assert!(!dest.exists() || std::fs::read_dir(&dest).unwrap().count() == 0);
        }
    }

    #[test]
    fn a_checksum_of_the_served_file_is_checked_on_the_compressed_bytes() {
        let body = gz(b"idx bytes");
        let url = serve(vec![("/m.gz".into(), Reply::Ok(body.clone()))], 2);
        let dir = tempfile::tempdir().unwrap();
        let served = RemoteFile {
            name: "m.gz",
            sha256: leak_sha(&body),
            digest_of: DigestOf::AsServed,
        };
        download_all(&url, &[served], dir.path()).unwrap();
        let wrong = RemoteFile {
            sha256: leak_sha(b"idx bytes"),
            ..served
        };
        let e = download_all(&url, &[wrong], dir.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("the file as served"), "{e}");
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn good_file_is_written_and_checksum_is_of_uncompressed_bytes() {
        let content = crate::encode_idx(&[9], b"hello idx");
        let url = serve(vec![("/a.gz".into(), Reply::Ok(gz(&content)))], 1);
        let dir = tempfile::tempdir().unwrap();
        download_all(&url, &[file("a.gz", &content)], dir.path()).unwrap();
        let written = std::fs::read(dir.path().join("a.gz")).unwrap();
        assert_eq!(gunzip_if_needed(Path::new("a"), written).unwrap(), content);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary left"
        );
    }

    #[test]
    fn wrong_checksum_is_rejected_and_nothing_is_left() {
        let url = serve(vec![("/a".into(), Reply::Ok(b"tampered".to_vec()))], 1);
        let dir = tempfile::tempdir().unwrap();
        let e = download_all(&url, &[file("a", b"original")], dir.path()).unwrap_err();
        assert!(matches!(e, DataError::Checksum { .. }), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn truncated_body_is_rejected_and_nothing_is_left() {
        let content = vec![42u8; 10_000];
        let url = serve(vec![("/a".into(), Reply::Truncated(content.clone()))], 1);
        let dir = tempfile::tempdir().unwrap();
        let e = download_all(&url, &[file("a", &content)], dir.path()).unwrap_err();
        assert!(e.to_string().contains("/a"), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn not_found_is_a_clear_error() {
        let url = serve(vec![], 1);
        let dir = tempfile::tempdir().unwrap();
        let e = download_all(&url, &[file("missing", b"x")], dir.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing") && e.contains("404"), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
