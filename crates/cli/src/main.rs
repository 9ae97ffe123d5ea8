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

/// Where the data is and where training runs (sweep, run and slurm share them).
#[derive(clap::Args)]
struct TrainFlags {
    /// Directory holding the dataset's files (searched first).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Never download the dataset.
    #[arg(long)]
    offline: bool,
    /// cpu, cuda or cuda:N (default: the experiment's `device`, else cpu). CUDA needs a
    /// build with `--features cuda`.
    #[arg(long)]
    device: Option<ComputeDevice>,
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

fn parse_diagnostics(text: &str) -> std::result::Result<experiment::Diagnostics, String> {
    serde_json::from_str(text).map_err(|e| format!("{text:?}: {e}"))
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
        #[command(flatten)]
        train: TrainFlags,
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
        /// Wall-time limit per run (MM, HH:MM:SS or D-HH:MM:SS; default 24:00:00).
        #[arg(long)]
        time: Option<String>,
        /// CPUs per run (default 1).
        #[arg(long)]
        cpus: Option<usize>,
        /// GPUs per run (default 0; with --device cuda, 1 is usual).
        #[arg(long)]
        gpus: Option<usize>,
        /// Memory per run (default 4G).
        #[arg(long)]
        mem: Option<String>,
        #[arg(long)]
        partition: Option<String>,
        /// At most this many runs at once.
        #[arg(long)]
        max_parallel: Option<usize>,
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
    runner::allocator::retain_freed_memory();
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
            train,
        } => sweep(&at, &look, jobs, &train),
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
            match report(&experiment, &at, &look)? {
                0 => Ok(()),
                damaged => bail!(
                    "{damaged} file(s) of the results do not read back (see the warnings above); the report shows everything else"
                ),
            }
        }
        Command::Plan { at, pending } => plan(&at, pending),
        Command::Run {
            at,
            index,
            pending,
            train,
        } => run_pending(&at, index, pending, &train),
        Command::Slurm {
            at,
            submit,
            time,
            cpus,
            gpus,
            mem,
            partition,
            max_parallel,
            train,
        } => {
            let experiment = load(&at.experiment)?;
            let y = experiment.slurm.clone();
            let settings = experiment::SlurmSettings {
                time: time.or(y.time),
                cpus: cpus.or(y.cpus),
                gpus: gpus.or(y.gpus),
                mem: mem.or(y.mem),
                partition: partition.or(y.partition),
                max_parallel: max_parallel.or(y.max_parallel),
            };
            if let Some(why) = settings.problem() {
                bail!("slurm settings (flags or the experiment's `slurm:`): {why}");
            }
            slurm(&experiment, &at, settings, submit, &train)
        }
        Command::Worker {
            run_dir,
            data_dir,
            device,
            keep_final_weights,
            diagnostics,
        } => {
            runner::worker::run_worker(
                &run_dir,
                &data_dir,
                device,
                keep_final_weights,
                &diagnostics.unwrap_or_default(),
            )
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
    // A net whose parameters alone exceed this machine's memory has a layer table whose
    // counts would overflow: the same limit as an experiment's.
    let shape = |depth, width| experiment::memory::NetShape {
        arch: match arch {
            ArchKind::Cifar => experiment::ModelArch::Cifar,
            ArchKind::Mlp => experiment::ModelArch::Mlp,
        },
        depth,
        width,
        batch_size: 0,
        image: [channels, side, side],
    };
    if let Some(memory) = experiment::memory::host_memory_bytes() {
        if !shape(depth, width).fits(memory) {
            bail!(
                "--width {width} at depth {depth}: its parameters, their gradients and momentum need about {}, and this machine has {}: the widest that fits at this depth is {}",
                experiment::memory::describe_bytes(shape(depth, width).training_bytes()),
                experiment::memory::describe_bytes(memory),
                experiment::memory::largest_fitting(width, |w| shape(depth, w).fits(memory))
                    .map_or("none".into(), |w| w.to_string())
            );
        }
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

fn plan(at: &Locations, write_pending: bool) -> Result<()> {
    let experiment = load(&at.experiment)?;
    let planned = runner::sweep::plan(&experiment, &at.results);
    if write_pending {
        let path = results::default_pending_path(&at.results, &experiment.name);
        let n = results::write_pending(&path, &experiment.name, &planned)?;
        eprintln!(
            "pending: {n} run(s) written to {} (train entry I with `degrade run {} --index I`)",
            path.display(),
            experiment.path.display()
        );
    }
    let done = planned.iter().filter(|p| p.state.is_finished()).count();
    warn_unreadable(&planned);
    let finished: Vec<(String, results::RunMeta)> = planned
        .iter()
        .filter(|p| p.state.is_finished())
        .filter_map(|p| Some((p.config.label(), p.dir.read_meta().ok()?)))
        .collect();
    for line in results::mixed_provenance(&finished) {
        eprintln!("note: {line}");
    }
    print_lines(&format!(
        "{}: {} runs, {} finished, {} to train",
        experiment.name,
        planned.len(),
        done,
        planned.iter().filter(|p| p.state.wants_training()).count()
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

/// Training on this machine's CPU needs its memory: a run that would not fit is refused
/// before anything trains (on a GPU the activations live in the device's memory).
fn fits_in_memory(experiment: &Experiment, device: experiment::ComputeDevice) -> Result<()> {
    match (&experiment.memory_problem, device) {
        (Some(why), experiment::ComputeDevice::Cpu) => bail!("{why}"),
        _ => Ok(()),
    }
}

/// Says, for each run whose `meta.json` does not read back, which file and what to do;
/// returns how many there are. Such runs are never trained or counted as finished.
fn warn_unreadable(planned: &[results::PlannedRun]) -> usize {
    let problems: Vec<String> = planned
        .iter()
        .filter_map(|p| Some(format!("{}: {}", p.config.label(), p.dir.meta_problem()?)))
        .collect();
    for problem in &problems {
        eprintln!("warning: {problem}");
    }
    problems.len()
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
    train: &TrainFlags,
) -> Result<()> {
    let experiment = load(&at.experiment)?;
    let device = train.device.unwrap_or(experiment.device);
    // Bad report flags fail before any training, not after it.
    look.settings(&experiment)?;
    let planned = runner::sweep::plan(&experiment, &at.results);
    let todo = planned.iter().filter(|p| p.state.wants_training()).count();
    let finished = planned.iter().filter(|p| p.state.is_finished()).count();
    let unreadable = warn_unreadable(&planned);
    let jobs = jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if jobs == 0 {
        bail!("--jobs must be at least 1");
    }
    eprintln!(
        "{}: {} runs, {} already finished, {} to train with {} worker(s) on {device}",
        experiment.name,
        planned.len(),
        finished,
        todo,
        jobs
    );
    let mut failed = Vec::new();
    let mut interrupted = Vec::new();
    if todo > 0 {
        fits_in_memory(&experiment, device)?;
        // A device that cannot be opened fails here, once, not in every worker.
        runner::worker::open_device(device).context("--device (or the experiment's `device`)")?;
        let dataset = locate_dataset(&experiment, train)?;
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
                diagnostics: experiment.diagnostics.clone(),
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
        if !summary.busy.is_empty() {
            eprintln!(
                "{} run(s) being trained by another process were left to it ({}); the report \
                 shows them once they finish",
                summary.busy.len(),
                summary.busy.join(", ")
            );
        }
        failed = summary.failed;
        interrupted = summary.interrupted;
    }
    let damaged = report(&experiment, at, look)?;
    if !interrupted.is_empty() {
        eprintln!(
            "interrupted: {} run(s) stopped at their last finished epoch ({}); run the same \
             command again to resume them",
            interrupted.len(),
            interrupted.join(", ")
        );
        std::process::exit(130);
    }
    if unreadable > 0 {
        bail!(
            "{unreadable} run(s) were left untouched because their meta.json does not read back (see the warnings above)"
        );
    }
    if damaged > 0 {
        bail!(
            "{damaged} file(s) of the finished results do not read back (see the warnings above); the report shows everything else"
        );
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

/// `degrade run`: trains one entry of a pending list, in this process.
fn run_pending(
    at: &Locations,
    index: Option<usize>,
    pending: Option<PathBuf>,
    train: &TrainFlags,
) -> Result<()> {
    let experiment = load(&at.experiment)?;
    let index = match index {
        Some(i) => i,
        None => std::env::var("SLURM_ARRAY_TASK_ID")
            .context("no --index, and SLURM_ARRAY_TASK_ID is not set (not a Slurm array task)")?
            .parse()
            .context("SLURM_ARRAY_TASK_ID is not a number")?,
    };
    let list =
        pending.unwrap_or_else(|| results::default_pending_path(&at.results, &experiment.name));
    let names = results::read_pending(&list, &experiment.name).with_context(|| {
        format!(
            "reading the pending list (write it with `degrade plan {} --pending` or `degrade slurm`)",
            experiment.path.display()
        )
    })?;
    let name = names.get(index).with_context(|| {
        format!(
            "index {index} is past the end of {} ({} runs)",
            list.display(),
            names.len()
        )
    })?;
    let planned = runner::sweep::plan(&experiment, &at.results);
    let run = planned
        .iter()
        .find(|p| &p.config.dir_name() == name)
        .with_context(|| {
            format!(
                "{name} (entry {index} of {}) is not a run of {} any more: the experiment changed \
                 after the list was written; write a new one",
                list.display(),
                experiment.path.display()
            )
        })?;
    let label = run.config.label();
    if let Some(why) = run.dir.meta_problem() {
        bail!("{label}: {why}");
    }
    if run.state.is_finished() {
        eprintln!(
            "{label}: already {} ({}); nothing to do",
            run.state.label(),
            run.dir.path.display()
        );
        return Ok(());
    }
    let device = train.device.unwrap_or(experiment.device);
    fits_in_memory(&experiment, device)?;
    runner::worker::open_device(device).context("--device (or the experiment's `device`)")?;
    let dataset = locate_dataset(&experiment, train)?;
    run.dir.create()?;
    if !run.dir.config_path().exists() {
        run.dir.write_config(&run.config)?;
    }
    release_lock_on_termination(run.dir.lock_path())?;
    eprintln!("{label}: training in {}", run.dir.path.display());
    let status = runner::worker::run_worker(
        &run.dir.path,
        &dataset,
        device,
        experiment.keep_final_weights,
        &experiment.diagnostics,
    )
    .with_context(|| format!("training {label} in {}", run.dir.path.display()))?;
    if status == results::RunStatus::Running {
        let host = runner::provenance::host();
        if let Some(holder) = run.dir.lock_holder(&host).filter(|h| h.host != host) {
            // Whether a process on another node is alive cannot be checked from here:
            // fail, so that the task shows up, rather than skip the run silently forever.
            bail!(
                "{label}: locked by {holder}. If that process is gone (a crashed node), delete \
                 {} and resubmit",
                run.dir.lock_path().display()
            );
        }
    }
    match status {
        results::RunStatus::Failed => {
            bail!("{label}: failed (see {})", run.dir.meta_path().display())
        }
        other => {
            eprintln!(
                "{label}: {}",
                serde_json::to_string(&other)
                    .unwrap_or_default()
                    .trim_matches('"')
            );
            Ok(())
        }
    }
}

/// Slurm ends a task (scancel, time limit, preemption) with SIGTERM, and SIGKILL a
/// little later. The run's lock is then removed, so that a requeued task on another
/// node can take the run over (a lock from another host cannot be checked for a live
/// process). Everything the worker writes is atomic, so stopping anywhere is safe; the
/// run resumes from its last checkpoint.
fn release_lock_on_termination(lock: PathBuf) -> Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
    ])
    .context("installing the termination handler")?;
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            // Only our own lock: the worker took it in this process.
            let ours = std::fs::read(&lock)
                .ok()
                .and_then(|b| serde_json::from_slice::<results::LockHolder>(&b).ok())
                .is_some_and(|holder| holder.pid == std::process::id());
            if ours {
                let _ = std::fs::remove_file(&lock);
            }
            eprintln!("stopped by signal {signal}; the run resumes from its last checkpoint");
            std::process::exit(128 + signal);
        }
    });
    Ok(())
}

/// `degrade slurm`: the pending list and the sbatch script for it, submitted on request.
fn slurm(
    experiment: &Experiment,
    at: &Locations,
    settings: experiment::SlurmSettings,
    submit: bool,
    train: &TrainFlags,
) -> Result<()> {
    let absolute =
        |p: &Path| std::path::absolute(p).with_context(|| format!("resolving {}", p.display()));
    let planned = runner::sweep::plan(experiment, &at.results);
    let todo = planned.iter().filter(|p| p.state.wants_training()).count();
    if todo == 0 {
        eprintln!(
            "{}: all {} runs are finished; nothing to submit",
            experiment.name,
            planned.len()
        );
        return Ok(());
    }
    // Located (and downloaded) once here, not by every task at once.
    let dataset = locate_dataset(experiment, train)?;
    let slurm_dir = at.results.join(&experiment.name).join("slurm");
    std::fs::create_dir_all(&slurm_dir)
        .with_context(|| format!("creating {}", slurm_dir.display()))?;
    // A list per submission: a job still running keeps its own list and indices.
    let stamp = format!(
        "{}-{}",
        results::now_utc().replace([':', '-'], ""),
        std::process::id()
    );
    let list = slurm_dir.join(format!("pending-{stamp}.txt"));
    let tasks = results::write_pending(&list, &experiment.name, &planned)?;
    let device = train.device.unwrap_or(experiment.device);
    let settings = experiment::SlurmSettings {
        // A CUDA run needs a GPU of its own: ask for one unless told otherwise.
        gpus: settings
            .gpus
            .or(matches!(device, ComputeDevice::Cuda(_)).then_some(1)),
        ..settings
    };
    let job = runner::slurm::ArrayJob {
        experiment_name: experiment.name.clone(),
        tasks,
        settings,
        program: std::env::current_exe().context("finding this program")?,
        experiment_file: absolute(&experiment.path)?,
        results_root: absolute(&at.results)?,
        pending_list: absolute(&list)?,
        data_dir: dataset,
        device,
        log_dir: absolute(&slurm_dir)?,
        work_dir: std::env::current_dir().context("the current directory")?,
    };
    if let Some(why) = runner::slurm::problem(&job) {
        bail!("{why}");
    }
    let script = runner::slurm::sbatch_script(&job).context("no runs to train")?;
    let script_path = slurm_dir.join(format!("sweep-{stamp}.sbatch"));
    results::write_atomically(&script_path, script.as_bytes())?;
    eprintln!(
        "{}: {tasks} pending run(s); job array script {} (its list: {})",
        experiment.name,
        script_path.display(),
        list.display()
    );
    if submit {
        let out = std::process::Command::new("sbatch")
            .arg(&script_path)
            .output()
            .context("running sbatch (is Slurm installed on this machine?)")?;
        if !out.status.success() {
            bail!(
                "sbatch {} failed: {}",
                script_path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        // "Submitted batch job 123"
        print_lines(String::from_utf8_lossy(&out.stdout).trim())?;
    } else {
        eprintln!("submit it with: sbatch {}", script_path.display());
    }
    Ok(())
}

fn locate_dataset(experiment: &Experiment, train: &TrainFlags) -> Result<PathBuf> {
    let Some(first) = experiment.runs.first() else {
        bail!("{}: the experiment has no runs", experiment.path.display());
    };
    let source = data::DatasetSource::named(first.dataset.as_str())
        .with_context(|| format!("no source is known for dataset {}", first.dataset))?;
    let options = data::LocateOptions {
        cli_dir: train.data_dir.clone(),
        yaml_dir: experiment.data_dir.clone(),
        local_root: PathBuf::from("."),
        mirror: std::env::var("DEGRADE_DATA_MIRROR").ok(),
        allow_download: !train.offline,
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

/// Writes the report; returns how many of the results' files did not read back (each
/// named in a warning, and left out of the report).
fn report(experiment: &Experiment, at: &Locations, look: &ReportFlags) -> Result<usize> {
    let settings = look.settings(experiment)?;
    let reports = &look.reports;
    let runs = report::load_runs(experiment, &at.results)?;
    let damaged: Vec<String> = runs
        .iter()
        .flat_map(|r| {
            r.problems
                .iter()
                .map(|p| format!("{}: {p}", r.config.label()))
        })
        .collect();
    for problem in &damaged {
        eprintln!("warning: {problem}");
    }
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
    Ok(damaged.len())
}
