//! `degrade`: the command users run. It parses arguments and calls the libraries:
//! experiment (plan) -> runner (train) -> results (Parquet) -> report (HTML).

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use experiment::{load_experiment, DatasetName, Experiment, ReportSettings};
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
        #[arg(long)]
        keep_final_weights: bool,
    },
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
        } => sweep(&at, &look, jobs, data_dir, offline),
        Command::Report { at, look } => {
            let experiment = load(&at.experiment)?;
            report(&experiment, &at, &look)
        }
        Command::Plan { at } => plan(&at),
        Command::Worker {
            run_dir,
            data_dir,
            keep_final_weights,
        } => {
            runner::worker::run_worker(&run_dir, &data_dir, keep_final_weights)
                .with_context(|| format!("training {}", run_dir.display()))?;
            Ok(())
        }
    }
}

fn load(path: &Path) -> Result<Experiment> {
    Ok(load_experiment(path)?)
}

fn plan(at: &Locations) -> Result<()> {
    let experiment = load(&at.experiment)?;
    let planned = runner::sweep::plan(&experiment, &at.results);
    let done = planned.iter().filter(|p| p.state.is_finished()).count();
    println!(
        "{}: {} runs, {} finished, {} to train",
        experiment.name,
        planned.len(),
        done,
        planned.len() - done
    );
    for p in &planned {
        println!(
            "  {:<10} {:<9} depth {:>4}  seed {:>3}  {}",
            p.state.label(),
            p.config.family.as_str(),
            p.config.depth,
            p.config.seed,
            p.dir.path.display()
        );
    }
    Ok(())
}

fn sweep(
    at: &Locations,
    look: &ReportFlags,
    jobs: Option<usize>,
    data_dir: Option<PathBuf>,
    offline: bool,
) -> Result<()> {
    let experiment = load(&at.experiment)?;
    // Bad report flags fail before any training, not after it.
    look.settings(&experiment)?;
    let planned = runner::sweep::plan(&experiment, &at.results);
    let todo = planned.iter().filter(|p| !p.state.is_finished()).count();
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    eprintln!(
        "{}: {} runs, {} already finished, {} to train with {} worker(s)",
        experiment.name,
        planned.len(),
        planned.len() - todo,
        todo,
        jobs
    );
    let mut failed = Vec::new();
    let mut interrupted = Vec::new();
    if todo > 0 {
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
    let source = match first.dataset {
        DatasetName::FashionMnist => &data::DatasetSource::FASHION_MNIST,
        DatasetName::Mnist => &data::DatasetSource::MNIST,
    };
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
