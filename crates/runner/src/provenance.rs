//! Facts about the code and the machine that produced a run, for its `meta.json`.

use results::Build;
use std::collections::BTreeMap;

/// The code that computes this process's numbers: the commit this binary was built from
/// (embedded at build time), the kernels' version and the path they take on this CPU.
pub fn build() -> Build {
    let commit = env!("DEGRADE_BUILD_COMMIT");
    Build {
        commit: (!commit.is_empty()).then(|| commit.to_string()),
        dirty: env!("DEGRADE_BUILD_DIRTY").parse().ok(),
        kernels: kernels::VERSION,
        cpu_path: kernels::cpu_path().to_string(),
    }
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
    /// This test binary is built from this checkout, wherever it runs.
    #[test]
    fn the_build_names_its_own_commit_and_kernels() {
        let build = super::build();
        if std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../.git")).exists() {
            let commit = build.commit.expect("built in a git checkout");
            assert_eq!(commit.len(), 40, "{commit}");
            assert!(build.dirty.is_some());
        }
        assert_eq!(build.kernels, kernels::VERSION);
        assert!(["avx512", "avx2+fma", "generic"].contains(&build.cpu_path.as_str()));
    }

    #[test]
    fn versions_name_candle_and_polars() {
        let v = super::versions();
        assert!(v.contains_key("candle-core"), "{v:?}");
        assert!(v.contains_key("polars"), "{v:?}");
    }
}
