//! The command line: every subcommand, its flags and their help text (clap's derive).
//! Nothing here acts; `settings` resolves the flags against the experiment's YAML and
//! `commands` runs each subcommand.

use clap::{Parser, Subcommand};
use experiment::ComputeDevice;
use std::path::PathBuf;
use vocab::{DatasetName, Family, ModelArch, ShortcutOption};

#[derive(Parser)]
#[command(
    name = "degrade",
    version,
    about = "Deeper plain nets train worse; residual nets do not. Sweep depths, log to Parquet, report in HTML."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Args)]
pub struct Locations {
    /// The experiment file.
    #[arg(default_value = "experiments/fashion-mlp.yaml")]
    pub experiment: PathBuf,
    /// Where run directories go (results/<experiment>/<run>/).
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
}

/// Where `degrade report` reads.
#[derive(clap::Args)]
pub struct ReportLocations {
    /// The experiment file(s); with two or more, also reports/compare/<a>+<b>/index.html,
    /// their final errors against depth on one chart with the verdict of each.
    #[arg(default_value = "experiments/fashion-mlp.yaml", num_args = 1..)]
    pub experiments: Vec<PathBuf>,
    /// Where run directories go (results/<experiment>/<run>/).
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
}

/// Where the data is and where training runs (sweep, run and slurm share them).
#[derive(clap::Args)]
pub struct TrainFlags {
    /// Directory holding the dataset's files (searched first).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Never download the dataset.
    #[arg(long)]
    pub offline: bool,
    /// cpu, cuda or cuda:N (default: the experiment's `device`, else cpu). CUDA needs a
    /// build with `--features cuda`.
    #[arg(long)]
    pub device: Option<ComputeDevice>,
}

/// How the report draws the curves; each flag overrides the YAML's `report:` section.
#[derive(clap::Args)]
pub struct ReportFlags {
    /// Where reports go (reports/<experiment>/index.html).
    #[arg(long, default_value = "reports")]
    pub reports: PathBuf,
    /// Log-scale error axis.
    #[arg(long)]
    pub log_y: bool,
    /// Exponential-moving-average weight for the curves, in [0, 1).
    #[arg(long)]
    pub smoothing: Option<f64>,
    /// Error axis range in percent, as LOW,HIGH.
    #[arg(long, value_parser = parse_range)]
    pub y_range: Option<(f64, f64)>,
}

pub fn parse_diagnostics(text: &str) -> std::result::Result<experiment::Diagnostics, String> {
    serde_json::from_str(text).map_err(|e| format!("{text:?}: {e}"))
}

pub fn parse_range(text: &str) -> std::result::Result<(f64, f64), String> {
    let (lo, hi) = text
        .split_once(',')
        .ok_or_else(|| format!("{text:?}: expected LOW,HIGH, e.g. 0,100"))?;
    let parse = |v: &str| v.trim().parse::<f64>().map_err(|e| format!("{v:?}: {e}"));
    Ok((parse(lo)?, parse(hi)?))
}

#[derive(Subcommand)]
pub enum Command {
    /// Train every run of the experiment that is not finished yet, then write the report.
    Sweep {
        #[command(flatten)]
        at: Locations,
        #[command(flatten)]
        look: ReportFlags,
        /// Runs trained at once, one thread each (default: the number of cores).
        #[arg(long)]
        jobs: Option<usize>,
        #[command(flatten)]
        train: TrainFlags,
    },
    /// Print an architecture's layers and parameter count, e.g. `degrade arch plain 56`.
    Arch(ArchFlags),
    /// Render the report again from the results on disk (never trains); given several
    /// experiment files, also a page comparing them.
    Report {
        #[command(flatten)]
        at: ReportLocations,
        #[command(flatten)]
        look: ReportFlags,
    },
    /// List the runs the experiment expands to, and which are done.
    Plan {
        #[command(flatten)]
        at: Locations,
        /// Also write the runs not finished yet, one per line, to
        /// results/<experiment>/pending.txt (for `degrade run --index I`).
        #[arg(long)]
        pending: bool,
    },
    /// Train entry I of a pending list (one Slurm array task); I defaults to
    /// $SLURM_ARRAY_TASK_ID. A finished run, or one another process is training, is skipped.
    Run {
        #[command(flatten)]
        at: Locations,
        #[arg(long)]
        index: Option<usize>,
        /// The pending list (default: results/<experiment>/pending.txt).
        #[arg(long)]
        pending: Option<PathBuf>,
        #[command(flatten)]
        train: TrainFlags,
    },
    /// Write a Slurm job array for the runs not finished yet (one task per run) and,
    /// with --submit, submit it. Flags override the experiment's `slurm:` section.
    Slurm {
        #[command(flatten)]
        at: Locations,
        /// Submit the script with sbatch.
        #[arg(long)]
        submit: bool,
        #[command(flatten)]
        resources: SlurmFlags,
        /// (The dataset directory must be on the filesystem the nodes share.)
        #[command(flatten)]
        train: TrainFlags,
    },
    /// Train one run directory (started by `sweep`; not for direct use).
    #[command(hide = true)]
    Worker {
        #[arg(long)]
        run_dir: PathBuf,
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value = "cpu")]
        device: ComputeDevice,
        #[arg(long)]
        keep_final_weights: bool,
        /// What to measure besides the metrics, as JSON (the experiment's `diagnostics`).
        #[arg(long, value_parser = parse_diagnostics)]
        diagnostics: Option<experiment::Diagnostics>,
    },
}

/// `degrade arch`: which network to describe.
#[derive(clap::Args)]
pub struct ArchFlags {
    /// plain or residual.
    pub family: Family,
    /// Weighted layers (6n + 2 for CIFAR-style nets, 2 + 2 * blocks for MLPs).
    pub depth: usize,
    /// cifar (the paper's CIFAR-10 nets) or mlp.
    #[arg(long, default_value = "cifar")]
    pub arch: ModelArch,
    /// First-stage filters of a CIFAR-style net (16 in the paper), or an MLP's width.
    #[arg(long, default_value_t = 16)]
    pub width: usize,
    /// A residual CIFAR-style net's shortcut option: a (the paper's) or b.
    #[arg(long)]
    pub shortcut: Option<ShortcutOption>,
    /// The input: cifar10 (3x32x32), fashion-mnist or mnist (1x28x28).
    #[arg(long, default_value = "cifar10")]
    pub dataset: DatasetName,
}

/// What each array task asks Slurm for; each flag overrides the YAML's `slurm:` section.
#[derive(clap::Args)]
pub struct SlurmFlags {
    /// Wall-time limit per run (MM, HH:MM:SS or D-HH:MM:SS; default 24:00:00).
    #[arg(long)]
    pub time: Option<String>,
    /// CPUs per run (default 1).
    #[arg(long)]
    pub cpus: Option<usize>,
    /// GPUs per run (default 0; with --device cuda, 1 is usual).
    #[arg(long)]
    pub gpus: Option<usize>,
    /// Memory per run (default 4G).
    #[arg(long)]
    pub mem: Option<String>,
    #[arg(long)]
    pub partition: Option<String>,
    /// At most this many runs at once.
    #[arg(long)]
    pub max_parallel: Option<usize>,
}
