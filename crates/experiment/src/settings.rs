//! The settings of an experiment that do not change its numbers: what to measure
//! besides the metrics, how a cluster runs it, how the report draws it. Each comes with
//! the check of its values, used for the YAML and for the command line's flags alike.

/// Measurements that explain the degradation, taken while and after a run trains. They
/// never change the numbers a run produces, so they are not part of its hash.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Diagnostics {
    /// Log each weighted layer's gradient norm every this many iterations, from
    /// iteration 0 (at initialisation); 0 turns it off.
    #[serde(default = "Diagnostics::default_gradient_every")]
    pub gradient_every: usize,
    /// After training: each layer's response std on a fixed batch (the paper's Figure 7).
    #[serde(default = "Diagnostics::yes")]
    pub responses: bool,
    /// After training: test error with each block deleted (Veit et al. 2016).
    #[serde(default = "Diagnostics::yes")]
    pub lesion: bool,
    /// Test images the lesion study evaluates each deleted block on.
    #[serde(default = "Diagnostics::default_lesion_images")]
    pub lesion_images: usize,
}

impl Diagnostics {
    fn default_gradient_every() -> usize {
        50
    }
    fn default_lesion_images() -> usize {
        1000
    }
    fn yes() -> bool {
        true
    }

    /// Nothing measured (for tests and benchmarks).
    pub fn off() -> Self {
        Diagnostics {
            gradient_every: 0,
            responses: false,
            lesion: false,
            lesion_images: 0,
        }
    }
}

impl Default for Diagnostics {
    fn default() -> Self {
        Diagnostics {
            gradient_every: Self::default_gradient_every(),
            responses: true,
            lesion: true,
            lesion_images: Self::default_lesion_images(),
        }
    }
}

/// Resources of each task of a Slurm job array; None leaves the choice to the command
/// line or the defaults of `degrade slurm`.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmSettings {
    /// Wall-time limit per run, as Slurm writes it: `MM`, `HH:MM:SS` or `D-HH:MM:SS`.
    #[serde(default)]
    pub time: Option<String>,
    #[serde(default)]
    pub cpus: Option<usize>,
    #[serde(default)]
    pub gpus: Option<usize>,
    /// Memory per task, e.g. `4G`.
    #[serde(default)]
    pub mem: Option<String>,
    #[serde(default)]
    pub partition: Option<String>,
    /// At most this many tasks at once (`--array=0-N%max_parallel`).
    #[serde(default)]
    pub max_parallel: Option<usize>,
}

impl SlurmSettings {
    /// Why these settings cannot go into an sbatch script, if they cannot (the YAML
    /// and the command line share this rule).
    pub fn problem(&self) -> Option<String> {
        let time_ok = |t: &str| {
            let (days, clock) = t.split_once('-').unwrap_or(("0", t));
            let parts: Vec<&str> = clock.split(':').collect();
            days.chars().all(|c| c.is_ascii_digit())
                && !days.is_empty()
                && (1..=3).contains(&parts.len())
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.len() <= 3 && p.chars().all(|c| c.is_ascii_digit()))
        };
        let mem_ok = |m: &str| {
            let digits = m.trim_end_matches(['K', 'M', 'G', 'T']);
            !digits.is_empty()
                && digits.len() + 1 >= m.len()
                && digits.chars().all(|c| c.is_ascii_digit())
        };
        let word_ok = |w: &str| {
            !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ',' | '.'))
        };
        match self {
            SlurmSettings { time: Some(t), .. } if !time_ok(t) => Some(format!(
                "time {t:?} is not a Slurm time limit: write MM, HH:MM:SS or D-HH:MM:SS"
            )),
            SlurmSettings { cpus: Some(0), .. } => Some("cpus must be at least 1".into()),
            SlurmSettings {
                max_parallel: Some(0),
                ..
            } => Some("max_parallel must be at least 1".into()),
            SlurmSettings { mem: Some(m), .. } if !mem_ok(m) => Some(format!(
                "mem {m:?} is not a Slurm memory size: write a number with K, M, G or T, e.g. 4G"
            )),
            SlurmSettings {
                partition: Some(p), ..
            } if !word_ok(p) => Some(format!("partition {p:?} is not a partition name")),
            _ => None,
        }
    }
}

/// How the report draws the curves; the command line can override each.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportSettings {
    pub log_y: bool,
    /// EMA weight in [0, 1); 0 = raw values.
    pub smoothing: f64,
    /// Error axis range in percent; None = fitted to the data.
    pub y_range: Option<(f64, f64)>,
}

impl ReportSettings {
    /// Why a smoothing weight is impossible, if it is (the YAML and the command line
    /// share this rule).
    pub fn smoothing_problem(weight: f64) -> Option<String> {
        (!(0.0..1.0).contains(&weight)).then(|| format!("must be in [0, 1), got {weight}"))
    }

    /// Why an error-axis range is impossible, if it is.
    pub fn y_range_problem(lo: f64, hi: f64, log_y: bool) -> Option<String> {
        let ok = lo.is_finite() && hi.is_finite() && lo >= 0.0 && lo < hi && (!log_y || lo > 0.0);
        (!ok).then(|| {
            format!("must be [low, high] in percent with 0 <= low < high (low > 0 with a log axis), got [{lo}, {hi}]")
        })
    }
}
