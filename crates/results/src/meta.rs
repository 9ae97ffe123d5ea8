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
    #[test]
    fn formats_known_instants() {
        assert_eq!(super::format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::format_utc(1_795_779_661), "2026-11-27T11:41:01Z");
        assert_eq!(super::format_utc(951_782_400), "2000-02-29T00:00:00Z");
    }
}
