use crate::error::ResultsError;
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` so that a reader sees either the old file or the new one,
/// never a half-written one: temporary file in the same directory, fsync, rename, then
/// fsync of the directory (until then a power cut can undo the rename).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ResultsError> {
    let io = |source| ResultsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        sync_dir(path.parent().unwrap_or(Path::new(".")))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Makes the entries of `dir` durable: a rename, link or removal in it survives a power
/// cut only once the directory itself is synced.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Started by `renames_and_links_are_followed_by_a_directory_sync` under strace: an
    /// atomic write and a lock in the directory that names.
    #[test]
    #[ignore = "a child process of the directory-sync test, which starts it"]
    fn write_and_lock_for_strace() {
        let Some(dir) = std::env::var_os("DEGRADE_SYNC_TEST_DIR") else {
            return;
        };
        let dir = Path::new(&dir);
        write_atomically(&dir.join("meta.json"), b"{}").unwrap();
        let run = crate::RunDir {
            path: dir.to_path_buf(),
        };
        let lock = run.try_lock("here").unwrap().expect("a free run");
        drop(lock);
    }

    /// A rename or link is durable only after an fsync of its directory (the README's
    /// power-cut promise): strace shows the directory opened and synced after each one.
    #[test]
    fn renames_and_links_are_followed_by_a_directory_sync() {
        let available = std::process::Command::new("strace")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !available {
            assert!(
                std::env::var_os("DEGRADE_REQUIRE_STRACE").is_none(),
                "strace is required (DEGRADE_REQUIRE_STRACE) but not usable"
            );
            eprintln!("skipped: strace is not installed");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("strace.log");
        let dir = tmp.path().join("run");
        std::fs::create_dir(&dir).unwrap();
        let out = std::process::Command::new("strace")
            .args(["-f", "-qq", "-o"])
            .arg(&log)
            .args([
                "-e",
                "trace=openat,rename,renameat,renameat2,link,linkat,fsync",
            ])
            .arg(std::env::current_exe().unwrap())
            .args([
                "atomic::tests::write_and_lock_for_strace",
                "--exact",
                "--ignored",
            ])
            .env("DEGRADE_SYNC_TEST_DIR", &dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let trace = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = trace.lines().collect();
        let dir_text = format!("\"{}\"", dir.display());
        for (what, target) in [("rename", "meta.json\""), ("link", "/lock\"")] {
            let at = lines
                .iter()
                .position(|l| l.contains(what) && l.contains(target) && l.ends_with("= 0"))
                .unwrap_or_else(|| panic!("no {what} of {target} in\n{trace}"));
            let opened = lines[at..]
                .iter()
                .find(|l| l.contains("openat(") && l.contains(&dir_text))
                .and_then(|l| l.rsplit("= ").next())
                .unwrap_or_else(|| panic!("the directory is not opened after the {what}\n{trace}"));
            assert!(
                lines[at..]
                    .iter()
                    .any(|l| l.contains(&format!("fsync({opened})"))),
                "the directory is not synced after the {what}\n{trace}"
            );
        }
    }
}
