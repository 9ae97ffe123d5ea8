//! Records the versions of the crates that compute the numbers (read from the
//! workspace's Cargo.lock), and the commit this binary is built from, so that every run's
//! metadata names the code that computed it: not the checkout a run happens to be started
//! in, which may be another one, or none.

use std::path::{Path, PathBuf};
use std::process::Command;

const TRACKED: [&str; 3] = ["candle-core", "candle-nn", "polars"];

fn main() {
    let root = workspace_root();
    let lock = root.join("Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let text = std::fs::read_to_string(&lock).unwrap_or_else(|e| {
        println!(
            "cargo:warning=no versions recorded: cannot read {}: {e}",
            lock.display()
        );
        String::new()
    });
    let mut found = Vec::new();
    let mut name = None;
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"').to_string());
        } else if let (Some(v), Some(n)) = (line.strip_prefix("version = "), name.take()) {
            if TRACKED.contains(&n.as_str()) {
                found.push(format!("{n}={}", v.trim_matches('"')));
            }
        }
    }
    println!("cargo:rustc-env=DEGRADE_DEP_VERSIONS={}", found.join(";"));
    build_commit(&root);
}

/// The workspace of the package being built, from the directory cargo gives this run of
/// the script. Not `env!`, the directory this script was compiled in: cargo reuses a
/// compiled build script for another checkout of the same package in a shared target
/// directory, and one compiled in a clone since deleted read no Cargo.lock and recorded
/// no versions.
fn workspace_root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default();
    Path::new(&manifest).join("../..")
}

/// `DEGRADE_BUILD_COMMIT` and `DEGRADE_BUILD_DIRTY` (empty outside a git checkout). The
/// script runs again when the commit moves or a tracked file of the workspace changes.
fn build_commit(root: &Path) {
    for watched in [
        ".git/HEAD",
        ".git/index",
        ".git/refs",
        "crates",
        "Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "HEAD"]).unwrap_or_default();
    let dirty = match commit.is_empty() {
        true => String::new(),
        false => git(&["status", "--porcelain", "--untracked-files=no"])
            .map(|s| (!s.is_empty()).to_string())
            .unwrap_or_default(),
    };
    println!("cargo:rustc-env=DEGRADE_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=DEGRADE_BUILD_DIRTY={dirty}");
}
