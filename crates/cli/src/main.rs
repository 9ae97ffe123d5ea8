//! `degrade`: the command users run. It parses arguments and calls the libraries:
//! experiment (plan) -> runner (train) -> results (Parquet) -> report (HTML).

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use experiment::{load_experiment, ComputeDevice, DatasetName, Experiment, ReportSettings};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "degrade",
    version,
    about = "Deeper plain nets train worse; residual nets do not. Sweep depths, log to Parquet, report in HTML."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Locations {
    /// The experiment file.
    #[arg(default_value = "experiments/fashion-mlp.yaml")]
    experiment: PathBuf,
    /// Where run directories go (results/<experiment>/<run>/).
    #[arg(long, default_value = "results")]
    results: PathBuf,
}

/// How the report draws the curves; each flag overrides the YAML's `report:` section.
#[derive(clap::Args)]
struct ReportFlags {
    /// Where reports go (reports/<experiment>/index.html).
    #[arg(long, default_value = "reports")]
    reports: PathBuf,
    /// Log-scale error axis.
    #[arg(long)]
    log_y: bool,
    /// Exponential-moving-average weight for the curves, in [0, 1).
    #[arg(long)]
    smoothing: Option<f64>,
    /// Error axis range in percent, as LOW,HIGH.
    #[arg(long, value_parser = parse_range)]
    y_range: Option<(f64, f64)>,
}

fn parse_range(text: &str) -> std::result::Result<(f64, f64), String> {
    let (lo, hi) = text
        .split_once(',')
        .ok_or_else(|| format!("{text:?}: expected LOW,HIGH, e.g. 0,100"))?;
    let parse = |v: &str| v.trim().parse::<f64>().map_err(|e| format!("{v:?}: {e}"));
    Ok((parse(lo)?, parse(hi)?))
}

impl ReportFlags {
    /// The YAML's settings with these flags applied on top, checked.
    fn settings(&self, experiment: &Experiment) -> Result<ReportSettings> {
        let mut s = experiment.report.clone();
        s.log_y |= self.log_y;
        if let Some(w) = self.smoothing {
            s.smoothing = w;
        }
        if let Some(r) = self.y_range {
            s.y_range = Some(r);
        }
        if let Some(why) = ReportSettings::smoothing_problem(s.smoothing) {
            bail!("report smoothing (--smoothing or report.smoothing) {why}");
        }
        if let Some((lo, hi)) = s.y_range {
            if let Some(why) = ReportSettings::y_range_problem(lo, hi, s.log_y) {
                bail!("error axis range (--y-range or report.y_range, with --log-y or report.log_y) {why}");
            }
        }
        Ok(s)
    }
}

#[derive(Subcommand)]
enum Command {
    /// Train every run of the experiment that is not finished yet, then write the report.
    Sweep {
        #[command(flatten)]
        at: Locations,
        #[command(flatten)]
        look: ReportFlags,
        /// Runs trained at once, one thread each (default: the number of cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Directory holding the dataset's IDX files (searched first).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Never download the dataset.
        #[arg(long)]
        offline: bool,
        /// cpu, cuda or cuda:N (default: the experiment's `device`, else cpu). CUDA needs
        /// a build with `--features cuda`.
        #[arg(long)]
        device: Option<ComputeDevice>,
    },
    /// Print an architecture's layers and parameter count, e.g. `degrade arch plain 56`.
    Arch {
        /// plain or residual.
        family: ArchFamily,
        /// Weighted layers (6n + 2 for CIFAR-style nets, 2 + 2 * blocks for MLPs).
        depth: usize,
        /// cifar (the paper's CIFAR-10 nets) or mlp.
        #[arg(long, default_value = "cifar")]
        arch: ArchKind,
        /// First-stage filters of a CIFAR-style net (16 in the paper), or an MLP's width.
        #[arg(long, default_value_t = 16)]
        width: usize,
        /// A residual CIFAR-style net's shortcut option: a (the paper's) or b.
        #[arg(long, default_value = "a")]
        shortcut: ArchShortcut,
        /// The input: cifar10 (3x32x32), fashion-mnist or mnist (1x28x28).
        #[arg(long, default_value = "cifar10")]
        dataset: ArchDataset,
    },
    /// Render the report again from the results on disk (never trains).
    Report {
        #[command(flatten)]
        at: Locations,
        #[command(flatten)]
        look: ReportFlags,
    },
    /// List the runs the experiment expands to, and which are done.
    Plan {
        #[command(flatten)]
        at: Locations,
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
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ArchFamily {
    Plain,
    Residual,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ArchKind {
    Cifar,
    Mlp,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ArchShortcut {
    A,
    B,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ArchDataset {
    Cifar10,
    FashionMnist,
    Mnist,
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Sweep {
            at,
            look,
            jobs,
            data_dir,
            offline,
            device,
        } => sweep(&at, &look, jobs, data_dir, offline, device),
        Command::Arch {
            family,
            depth,
            arch,
            width,
            shortcut,
            dataset,
        } => {
            print_arch(family, depth, arch, width, shortcut, dataset)?;
            Ok(())
        }
        Command::Report { at, look } => {
            let experiment = load(&at.experiment)?;
            report(&experiment, &at, &look)
        }
        Command::Plan { at } => plan(&at),
        Command::Worker {
            run_dir,
            data_dir,
            device,
            keep_final_weights,
        } => {
            runner::worker::run_worker(&run_dir, &data_dir, device, keep_final_weights)
                .with_context(|| format!("training {}", run_dir.display()))?;
            Ok(())
        }
    }
}

fn print_arch(
    family: ArchFamily,
    depth: usize,
    arch: ArchKind,
    width: usize,
    shortcut: ArchShortcut,
    dataset: ArchDataset,
) -> Result<()> {
    let family = match family {
        ArchFamily::Plain => models::Family::Plain,
        ArchFamily::Residual => models::Family::Residual,
    };
    let [channels, side, _] = match dataset {
        ArchDataset::Cifar10 => DatasetName::Cifar10,
        ArchDataset::FashionMnist => DatasetName::FashionMnist,
        ArchDataset::Mnist => DatasetName::Mnist,
    }
    .image_shape();
    if width == 0 {
        bail!("--width must be at least 1");
    }
    let architecture = match arch {
        ArchKind::Cifar => models::Architecture::Cifar(models::CifarConfig {
            family,
            depth,
            width,
            in_channels: channels,
            classes: 10,
            shortcut: match shortcut {
                ArchShortcut::A => models::ShortcutOption::A,
                ArchShortcut::B => models::ShortcutOption::B,
            },
            zero_init_residual: false,
        }),
        ArchKind::Mlp => models::Architecture::Mlp(models::MlpConfig {
            family,
            depth,
            width,
            inputs: channels * side * side,
            classes: 10,
            zero_init_residual: false,
        }),
    };
    print_lines(&architecture.summary(side)?.to_string())
}

fn load(path: &Path) -> Result<Experiment> {
    Ok(load_experiment(path)?)
}

fn plan(at: &Locations) -> Result<()> {
    let experiment = load(&at.experiment)?;
    let planned = runner::sweep::plan(&experiment, &at.results);
    let done = planned.iter().filter(|p| p.state.is_finished()).count();
    print_lines(&format!(
        "{}: {} runs, {} finished, {} to train",
        experiment.name,
        planned.len(),
        done,
        planned.len() - done
    ))?;
    let lines: Vec<String> = planned
        .iter()
        .map(|p| {
            format!(
                "  {:<10} {:<9} depth {:>4}  seed {:>3}  {}",
                p.state.label(),
                p.config.family.as_str(),
                p.config.depth,
                p.config.seed,
                p.dir.path.display()
            )
        })
        .collect();
    print_lines(&lines.join("\n"))
}

/// Prints to stdout; a closed pipe (`degrade plan | head`) ends the output quietly.
fn print_lines(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

fn sweep(
    at: &Locations,
    look: &ReportFlags,
    jobs: Option<usize>,
    data_dir: Option<PathBuf>,
    offline: bool,
    device: Option<ComputeDevice>,
) -> Result<()> {
    let experiment = load(&at.experiment)?;
    let device = device.unwrap_or(experiment.device);
    // Bad report flags fail before any training, not after it.
    look.settings(&experiment)?;
    let planned = runner::sweep::plan(&experiment, &at.results);
    let todo = planned.iter().filter(|p| !p.state.is_finished()).count();
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    eprintln!(
        "{}: {} runs, {} already finished, {} to train with {} worker(s) on {device}",
        experiment.name,
        planned.len(),
        planned.len() - todo,
        todo,
        jobs
    );
    let mut failed = Vec::new();
    let mut interrupted = Vec::new();
    if todo > 0 {
        // A device that cannot be opened fails here, once, not in every worker.
        runner::worker::open_device(device).context("--device (or the experiment's `device`)")?;
        let dataset = locate_dataset(&experiment, data_dir, offline)?;
        let worker_exe =
            std::env::current_exe().context("finding this program to start workers")?;
        // Ctrl-C (or SIGTERM) stops the sweep between messages; workers resume next time.
        let interrupt = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, Arc::clone(&interrupt))
                .context("installing the interrupt handler")?;
        }
        let summary = runner::sweep::run_sweep(
            &experiment,
            &runner::sweep::SweepOptions {
                results_root: at.results.clone(),
                jobs,
                data_dir: dataset,
                worker: vec![worker_exe.into_os_string(), "worker".into()],
                keep_final_weights: experiment.keep_final_weights,
                device,
            },
            &interrupt,
        )?;
        eprintln!(
            "trained {} run(s) in {:.1} s: {} done, {} diverged, {} failed",
            summary.done + summary.diverged.len() + summary.failed.len(),
            summary.wall_s,
            summary.done,
            summary.diverged.len(),
            summary.failed.len()
        );
        failed = summary.failed;
        interrupted = summary.interrupted;
    }
    report(&experiment, at, look)?;
    if !interrupted.is_empty() {
        eprintln!(
            "interrupted: {} run(s) stopped at their last finished epoch ({}); run the same \
             command again to resume them",
            interrupted.len(),
            interrupted.join(", ")
        );
        std::process::exit(130);
    }
    if !failed.is_empty() {
        let list: Vec<String> = failed
            .iter()
            .map(|(run, why)| format!("  {run}: {why}"))
            .collect();
        bail!(
            "{} run(s) failed (they are retrained by the next sweep; finished runs are kept):\n{}",
            failed.len(),
            list.join("\n")
        );
    }
    Ok(())
}

fn locate_dataset(
    experiment: &Experiment,
    cli_dir: Option<PathBuf>,
    offline: bool,
) -> Result<PathBuf> {
    let Some(first) = experiment.runs.first() else {
        bail!("{}: the experiment has no runs", experiment.path.display());
    };
    let source = data::DatasetSource::named(first.dataset.as_str())
        .with_context(|| format!("no source is known for dataset {}", first.dataset))?;
    let options = data::LocateOptions {
        cli_dir,
        yaml_dir: experiment.data_dir.clone(),
        local_root: PathBuf::from("."),
        mirror: std::env::var("DEGRADE_DATA_MIRROR").ok(),
        allow_download: !offline,
    };
    let found = data::locate_or_fetch(source, &options)?;
    eprintln!(
        "{}: using {} ({})",
        source.name,
        found.dir.display(),
        found.how
    );
    // Workers run with other working directories in mind: hand them an absolute path.
    Ok(std::path::absolute(&found.dir).unwrap_or(found.dir))
}

fn report(experiment: &Experiment, at: &Locations, look: &ReportFlags) -> Result<()> {
    let settings = look.settings(experiment)?;
    let reports = &look.reports;
    let runs = report::load_runs(experiment, &at.results)?;
    let command = format!(
        "degrade sweep {} --results {} --reports {}",
        experiment.path.display(),
        at.results.display(),
        reports.display()
    );
    let page = report::render_experiment(experiment, &runs, reports, &settings, &command)?;
    let index = report::render_index(reports)?;
    eprintln!(
        "report: {} (all experiments: {})",
        page.display(),
        index.display()
    );
    Ok(())
}
