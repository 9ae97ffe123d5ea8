//! `degrade`: the command users run. It parses arguments and calls the libraries:
//! experiment (plan) -> runner (train) -> results (Parquet) -> report (HTML).

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use experiment::{load_experiment, DatasetName, Experiment};
use std::path::{Path, PathBuf};

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

#[derive(Subcommand)]
enum Command {
    /// Train every run of the experiment that is not finished yet, then write the report.
    Sweep {
        #[command(flatten)]
        at: Locations,
        /// Where reports go (reports/<experiment>/index.html).
        #[arg(long, default_value = "reports")]
        reports: PathBuf,
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
        #[arg(long, default_value = "reports")]
        reports: PathBuf,
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
            reports,
            jobs,
            data_dir,
            offline,
        } => sweep(&at, &reports, jobs, data_dir, offline),
        Command::Report { at, reports } => {
            let experiment = load(&at.experiment)?;
            report(&experiment, &at, &reports)
        }
        Command::Plan { at } => plan(&at),
        Command::Worker { run_dir, data_dir } => {
            runner::worker::run_worker(&run_dir, &data_dir)
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
    reports: &Path,
    jobs: Option<usize>,
    data_dir: Option<PathBuf>,
    offline: bool,
) -> Result<()> {
    let experiment = load(&at.experiment)?;
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
    if todo > 0 {
        let dataset = locate_dataset(&experiment, data_dir, offline)?;
        let worker_exe =
            std::env::current_exe().context("finding this program to start workers")?;
        let summary = runner::sweep::run_sweep(
            &experiment,
            &runner::sweep::SweepOptions {
                results_root: at.results.clone(),
                jobs,
                data_dir: dataset,
                worker: vec![worker_exe.into_os_string(), "worker".into()],
            },
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
    }
    report(&experiment, at, reports)?;
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

fn report(experiment: &Experiment, at: &Locations, reports: &Path) -> Result<()> {
    let runs = report::load_runs(experiment, &at.results)?;
    let command = format!(
        "degrade sweep {} --results {} --reports {}",
        experiment.path.display(),
        at.results.display(),
        reports.display()
    );
    let page = report::render_experiment(experiment, &runs, reports, &command)?;
    let index = report::render_index(reports)?;
    eprintln!(
        "report: {} (all experiments: {})",
        page.display(),
        index.display()
    );
    Ok(())
}
