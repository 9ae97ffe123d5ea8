//! Fetching dataset files over HTTP. Each file is held in memory, checked against the
//! SHA-256 of its *uncompressed* content (so a recompressed mirror, like Debian's, still
//! verifies), and only then written: temporary name, fsync, rename. A failed or
//! interrupted download never leaves a file where the reader would pick it up.

use crate::error::DataError;
use crate::idx::gunzip_if_needed;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// A file to fetch from a base URL, with the SHA-256 of its uncompressed bytes.
#[derive(Debug, Clone, Copy)]
pub struct RemoteFile {
    pub name: &'static str,
    pub sha256: &'static str,
}

/// Largest body we accept: the biggest Fashion-MNIST file is 26 MB gzipped.
const MAX_BODY_BYTES: u64 = 256 * 1024 * 1024;

/// Downloads every file into `dest` (created if needed). Stops at the first failure.
pub fn download_all(base_url: &str, files: &[RemoteFile], dest: &Path) -> Result<(), DataError> {
    std::fs::create_dir_all(dest).map_err(|source| DataError::Io {
        path: dest.to_path_buf(),
        source,
    })?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into();
    for file in files {
        let url = format!("{}/{}", base_url.trim_end_matches('/'), file.name);
        let body = fetch(&agent, &url)?;
        let content =
            gunzip_if_needed(Path::new(&url), body.clone()).map_err(|e| DataError::Download {
                url: url.clone(),
                detail: e.to_string(),
            })?;
        let actual = hex(&Sha256::digest(&content));
        if actual != file.sha256 {
            return Err(DataError::Checksum {
                url,
                expected: file.sha256.to_string(),
                actual,
            });
        }
        write_atomically(&dest.join(file.name), &body)?;
    }
    Ok(())
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

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("part");
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
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
        RemoteFile { name, sha256: sha }
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    #[test]
    fn good_file_is_written_and_checksum_is_of_uncompressed_bytes() {
        let content = b"hello idx".to_vec();
        let url = serve(vec![("/a.gz".into(), Reply::Ok(gz(&content)))], 1);
        let dir = tempfile::tempdir().unwrap();
        download_all(&url, &[file("a.gz", &content)], dir.path()).unwrap();
        let written = std::fs::read(dir.path().join("a.gz")).unwrap();
        assert_eq!(gunzip_if_needed(Path::new("a"), written).unwrap(), content);
        assert!(!dir.path().join("a.part").exists());
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
