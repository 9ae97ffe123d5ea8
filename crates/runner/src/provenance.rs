//! Facts about the code and the machine that produced a run, for its `meta.json`.

use std::collections::BTreeMap;
use std::process::Command;

/// `(commit, dirty)` of the git checkout in the current directory, if there is one.
pub fn git_state() -> (Option<String>, Option<bool>) {
    let run = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = run(&["rev-parse", "HEAD"]);
    let dirty = commit
        .as_ref()
        .and_then(|_| run(&["status", "--porcelain", "--untracked-files=no"]))
        .map(|s| !s.is_empty());
    (commit, dirty)
}

pub fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// This tool's version and those of the crates that compute the numbers.
pub fn versions() -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    v.insert("degrade".to_string(), env!("CARGO_PKG_VERSION").to_string());
    for pair in env!("DEGRADE_DEP_VERSIONS")
        .split(';')
        .filter(|p| !p.is_empty())
    {
        if let Some((name, version)) = pair.split_once('=') {
            v.insert(name.to_string(), version.to_string());
        }
    }
    v
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_name_candle_and_polars() {
        let v = super::versions();
        assert!(v.contains_key("candle-core"), "{v:?}");
        assert!(v.contains_key("polars"), "{v:?}");
    }
}
