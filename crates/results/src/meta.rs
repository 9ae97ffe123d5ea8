//! `meta.json`: who ran a run, where, with what, and how it ended.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// Being trained now, or the process that trained it died (it is retrained).
    Running,
    /// All epochs finished.
    Done,
    /// Stopped because the loss became NaN, infinite or too large; metrics so far kept.
    Diverged,
    /// Stopped by an error (message in `error`); trained again by the next sweep.
    Failed,
}

impl RunStatus {
    /// The status as `meta.json` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Done => "done",
            RunStatus::Diverged => "diverged",
            RunStatus::Failed => "failed",
        }
    }
}

/// The code and CPU path that computed a run's numbers, as the binary knows them (the
/// commit is embedded at build time, not read from the directory a run is started in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Build {
    pub commit: Option<String>,
    /// Whether the build had uncommitted changes to tracked files.
    pub dirty: Option<bool>,
    /// The CPU kernels' numerical version (`kernels::VERSION`).
    pub kernels: u32,
    /// The instruction set the kernels took (`avx512`, `avx2+fma`, `generic`).
    pub cpu_path: String,
}

impl std::fmt::Display for Build {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.commit {
            Some(c) => write!(f, "{}", c.chars().take(12).collect::<String>())?,
            None => write!(f, "no commit")?,
        }
        if self.dirty == Some(true) {
            write!(f, " with uncommitted changes")?;
        }
        write!(f, ", kernels v{} on {}", self.kernels, self.cpu_path)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    pub config_hash: String,
    pub status: RunStatus,
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
    pub host: String,
    pub cpu: String,
    pub threads: usize,
    /// `cpu` or `cuda:N` (absent in runs from before the option existed: all CPU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Versions of this tool and of the crates that compute the numbers.
    pub versions: BTreeMap<String, String>,
    /// Where the dataset was found.
    pub data_dir: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub wall_s: Option<f64>,
    /// Why the run diverged or failed.
    pub error: Option<String>,
    /// The build that trained it (absent in runs from before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    /// The build of the checkpoint this run resumed from, where that was another build
    /// (or one that did not record itself): its numbers come from both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumed_from: Option<ResumedFrom>,
}

/// Where a resumed run's earlier epochs came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumedFrom {
    /// The epoch the checkpoint was written after.
    pub epoch: usize,
    /// None: a checkpoint from before builds were recorded.
    pub build: Option<Build>,
}

/// What a user should know about where the numbers of `runs` (label, meta) come from,
/// as lines: each (build, CPU) when there is more than one, and each run resumed from
/// another build's checkpoint. Empty when one build on one CPU computed them all.
pub fn mixed_provenance(runs: &[(String, RunMeta)]) -> Vec<String> {
    let mut groups: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (label, meta) in runs {
        let build = meta.build.as_ref().map_or(
            "a build that did not record itself".into(),
            Build::to_string,
        );
        groups
            .entry(format!("{build}, CPU {}", meta.cpu))
            .or_default()
            .push(label);
    }
    let mut lines = Vec::new();
    if groups.len() > 1 {
        lines.push(format!(
            "these runs come from {} different builds or CPUs, whose numbers may differ in the last digits:",
            groups.len()
        ));
        for (what, labels) in &groups {
            let shown: Vec<&str> = labels.iter().take(6).copied().collect();
            let more = labels.len().saturating_sub(shown.len());
            let more = match more {
                0 => String::new(),
                n => format!(" and {n} more"),
            };
            lines.push(format!("  {what}: {}{more}", shown.join(", ")));
        }
    }
    for (label, meta) in runs {
        if let Some(from) = &meta.resumed_from {
            let build = from.build.as_ref().map_or(
                "a build that did not record itself".into(),
                Build::to_string,
            );
            lines.push(format!(
                "{label} resumed after epoch {} from a checkpoint of another build ({build})",
                from.epoch
            ));
        }
    }
    lines
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SSZ` (no date crate needed for this).
pub fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format_utc(secs)
}

fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_is_named_as_meta_json_spells_it() {
        for status in [
            RunStatus::Running,
            RunStatus::Done,
            RunStatus::Diverged,
            RunStatus::Failed,
        ] {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
    }

    fn meta(commit: &str, cpu: &str) -> RunMeta {
        RunMeta {
            config_hash: "h".into(),
            status: RunStatus::Done,
            git_commit: Some(commit.into()),
            git_dirty: Some(false),
            host: "here".into(),
            cpu: cpu.into(),
            threads: 1,
            device: None,
            versions: BTreeMap::new(),
            data_dir: "d".into(),
            started_at: "t".into(),
            ended_at: None,
            wall_s: None,
            error: None,
            build: Some(Build {
                commit: Some(commit.into()),
                dirty: Some(false),
                kernels: 1,
                cpu_path: "avx2+fma".into(),
            }),
            resumed_from: None,
        }
    }

    #[test]
    fn runs_of_one_build_say_nothing_and_mixed_ones_are_named() {
        let one = vec![
            ("plain-4".to_string(), meta("aaaa", "Zen 3")),
            ("plain-8".to_string(), meta("aaaa", "Zen 3")),
        ];
        assert!(mixed_provenance(&one).is_empty());
        let mut mixed = one.clone();
        mixed.push(("plain-16".into(), meta("bbbb", "Zen 3")));
        mixed.push(("plain-32".into(), meta("aaaa", "Zen 5")));
        let old = RunMeta {
            build: None,
            ..meta("cccc", "Zen 3")
        };
        mixed.push(("plain-64".into(), old));
        let mut resumed = meta("aaaa", "Zen 3");
        resumed.resumed_from = Some(ResumedFrom {
            epoch: 2,
            build: None,
        });
        mixed.push(("residual-4".into(), resumed));
        let lines = mixed_provenance(&mixed).join("\n");
        assert!(lines.contains("4 different builds or CPUs"), "{lines}");
        assert!(
            lines.contains("bbbb, kernels v1 on avx2+fma, CPU Zen 3: plain-16"),
            "{lines}"
        );
        assert!(lines.contains("CPU Zen 5: plain-32"), "{lines}");
        assert!(
            lines.contains("did not record itself, CPU Zen 3: plain-64"),
            "{lines}"
        );
        assert!(
            lines.contains("residual-4 resumed after epoch 2"),
            "{lines}"
        );
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(super::format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::format_utc(1_795_779_661), "2026-11-27T11:41:01Z");
        assert_eq!(super::format_utc(951_782_400), "2000-02-29T00:00:00Z");
    }
}
