//! The sweep: every run of an experiment that is not finished yet, trained by worker
//! processes, `jobs` at a time, with a live view of their progress.

use crate::error::TrainError;
use crate::progress::SweepProgress;
use crate::worker::WorkerEvent;
use experiment::{ComputeDevice, Diagnostics, Experiment, RunConfig};
use results::{run_states, PlannedRun, RunDir, RunStatus};
use std::collections::{HashMap, VecDeque};
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

pub struct SweepOptions {
    pub results_root: PathBuf,
    pub jobs: usize,
    pub data_dir: PathBuf,
    /// The worker command: program and leading arguments; `--run-dir D --device X --data-dir P`
    /// (and `--keep-final-weights`) are appended.
    pub worker: Vec<OsString>,
    pub keep_final_weights: bool,
    /// Passed to every worker as `--device`.
    pub device: ComputeDevice,
    /// Passed to every worker as `--diagnostics` (JSON).
    pub diagnostics: Diagnostics,
}

#[derive(Debug, Default)]
pub struct SweepSummary {
    pub skipped: usize,
    pub done: usize,
    pub diverged: Vec<(String, String)>,
    pub failed: Vec<(String, String)>,
    /// Runs another live process was training (its lock was held).
    pub busy: Vec<String>,
    /// Runs stopped by an interrupt; they resume from their last checkpoint next time.
    pub interrupted: Vec<String>,
    pub wall_s: f64,
}

/// Work units of one run, for the sweep's ETA: one per layer per batch, scaled so that
/// fractions of an epoch count.
const UNITS_PER_EPOCH_LAYER: u64 = 1000;

fn run_work(config: &RunConfig) -> u64 {
    (config.planned_epochs() * config.depth) as u64 * UNITS_PER_EPOCH_LAYER
}

struct Running {
    label: String,
    child: Child,
    work_total: u64,
    work_reported: u64,
    batches: usize,
    depth: usize,
    finished: Option<(RunStatus, Option<String>)>,
    dir: RunDir,
}

/// A worker still running when its `Running` goes away (the sweep returning early with
/// an error) is stopped: it would otherwise train on unobserved, holding its run's lock.
impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

enum Message {
    Event(usize, WorkerEvent),
    Closed(usize),
}

/// A flag that Ctrl-C (SIGINT) or SIGTERM raises: `run_sweep` then stops between
/// messages, and its workers' runs resume from their checkpoints next time.
pub fn interrupt_on_signals() -> Result<Arc<AtomicBool>, TrainError> {
    let interrupt = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&interrupt))
            .map_err(|e| TrainError::Config(format!("installing the interrupt handler: {e}")))?;
    }
    Ok(interrupt)
}

/// Trains every unfinished run of `experiment`. When `interrupt` becomes true (Ctrl-C),
/// stops starting runs, kills the running workers (they resume from their last
/// checkpoint next time) and returns with `interrupted` listing them. `on_results` is
/// called whenever the results on disk have changed: a worker has written an epoch's
/// metrics, or a run has ended.
pub fn run_sweep(
    experiment: &Experiment,
    opts: &SweepOptions,
    interrupt: &AtomicBool,
    on_results: &mut dyn FnMut(),
) -> Result<SweepSummary, TrainError> {
    let started = Instant::now();
    let planned = run_states(experiment, &opts.results_root);
    let mut summary = SweepSummary {
        skipped: planned.iter().filter(|p| p.state.is_finished()).count(),
        ..Default::default()
    };
    let mut pending: Vec<PlannedRun> = planned
        .into_iter()
        .filter(|p| p.state.wants_training())
        .collect();
    // Longest runs first: fewer idle workers at the end of the sweep.
    pending.sort_by_key(|p| std::cmp::Reverse(run_work(&p.config)));
    let total_work: u64 = pending.iter().map(|p| run_work(&p.config)).sum();
    let mut progress = SweepProgress::new(pending.len(), total_work);
    let mut queue: VecDeque<PlannedRun> = pending.into();
    let mut running: HashMap<usize, Running> = HashMap::new();
    let (tx, rx) = mpsc::channel();
    let mut next_id = 0;

    loop {
        if interrupt.load(Ordering::Relaxed) {
            for (id, mut r) in running.drain() {
                let _ = r.child.kill();
                let _ = r.child.wait();
                progress.run_finished(
                    id,
                    format!(
                        "{}: interrupted; resumes from its last finished epoch",
                        r.label
                    ),
                    0,
                );
                summary.interrupted.push(r.label.clone());
            }
            break;
        }
        while running.len() < opts.jobs.max(1) {
            let Some(run) = queue.pop_front() else { break };
            let id = next_id;
            next_id += 1;
            let child = spawn_worker(&run, opts, id, tx.clone())?;
            progress.run_started(id, &run.config.label(), run_work(&run.config));
            running.insert(
                id,
                Running {
                    label: run.config.label(),
                    child,
                    work_total: run_work(&run.config),
                    work_reported: 0,
                    batches: 1,
                    depth: run.config.depth,
                    finished: None,
                    dir: run.dir,
                },
            );
        }
        if running.is_empty() {
            break;
        }
        // Wake up now and then to notice an interrupt.
        let message = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(m) => m,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(TrainError::Worker {
                    run: "sweep".into(),
                    detail: "all workers' channels closed".into(),
                })
            }
        };
        match message {
            Message::Event(id, event) => {
                let Some(r) = running.get_mut(&id) else {
                    continue;
                };
                let epoch_written = matches!(event, WorkerEvent::Epoch { .. });
                handle_event(id, r, event, &mut progress);
                if epoch_written {
                    on_results();
                }
            }
            Message::Closed(id) => {
                let Some(mut r) = running.remove(&id) else {
                    continue;
                };
                let exit = r.child.wait();
                let remaining = r.work_total.saturating_sub(r.work_reported);
                let text = match (r.finished.take(), exit) {
                    (Some((RunStatus::Done, _)), Ok(s)) if s.success() => {
                        summary.done += 1;
                        format!("{}: done", r.label)
                    }
                    (Some((RunStatus::Running, why)), _) => {
                        summary.busy.push(r.label.clone());
                        format!("{}: skipped, {}", r.label, why.unwrap_or_default())
                    }
                    (Some((RunStatus::Diverged, why)), _) => {
                        let why = why.unwrap_or_default();
                        summary.diverged.push((r.label.clone(), why.clone()));
                        format!("{}: DIVERGED ({why}); its metrics so far are kept", r.label)
                    }
                    // Ctrl-C reaches the workers too: that is an interrupt, not a failure.
                    (None, _) if interrupt.load(Ordering::Relaxed) => {
                        summary.interrupted.push(r.label.clone());
                        format!(
                            "{}: interrupted; resumes from its last finished epoch",
                            r.label
                        )
                    }
                    (finished, exit) => {
                        let why = finished
                            .and_then(|(_, m)| m)
                            .unwrap_or_else(|| describe_crash(&r.dir, exit));
                        summary.failed.push((r.label.clone(), why.clone()));
                        format!("{}: FAILED: {why}", r.label)
                    }
                };
                progress.run_finished(id, text, remaining);
                on_results();
            }
        }
    }
    progress.finish();
    summary.wall_s = started.elapsed().as_secs_f64();
    Ok(summary)
}

fn handle_event(id: usize, r: &mut Running, event: WorkerEvent, progress: &mut SweepProgress) {
    let per_epoch = r.depth as u64 * UNITS_PER_EPOCH_LAYER;
    match event {
        WorkerEvent::Started {
            batches,
            resumed_after,
            resumed_from_build,
            ..
        } => {
            if let Some(build) = resumed_from_build {
                progress.line(format!(
                    "{}: warning: its checkpoint was written by another build ({build}); its numbers come from both",
                    r.label
                ));
            }
            r.batches = batches.max(1);
            if resumed_after > 0 {
                let skipped = resumed_after as u64 * per_epoch;
                progress.batch(
                    id,
                    skipped,
                    format!("resumed after epoch {resumed_after}"),
                    skipped,
                );
                r.work_reported = skipped;
                progress.line(format!(
                    "{}: resuming after epoch {resumed_after} (its checkpoint)",
                    r.label
                ));
            }
        }
        WorkerEvent::Batch {
            epoch,
            batch,
            train_error,
        } => {
            let done = (epoch as u64 - 1) * per_epoch + per_epoch * batch as u64 / r.batches as u64;
            let delta = done.saturating_sub(r.work_reported);
            r.work_reported = r.work_reported.max(done);
            progress.batch(
                id,
                done,
                format!(
                    "epoch {epoch} batch {batch}/{}  train err {:.1}%",
                    r.batches,
                    100.0 * train_error
                ),
                delta,
            );
        }
        WorkerEvent::Epoch {
            epoch,
            train_error,
            test_error,
            wall_s,
        } => progress.line(format!(
            "{}: epoch {epoch}: train error {:.2}%, test error {:.2}% ({wall_s:.1} s)",
            r.label,
            100.0 * train_error,
            100.0 * test_error
        )),
        WorkerEvent::Finished { status, message } => r.finished = Some((status, message)),
    }
}

fn spawn_worker(
    run: &PlannedRun,
    opts: &SweepOptions,
    id: usize,
    tx: mpsc::Sender<Message>,
) -> Result<Child, TrainError> {
    run.dir.prepare(&run.config)?;
    let log_path = run.dir.path.join("worker.log");
    // Appended, not truncated: it keeps the history of interrupted attempts, and another
    // sweep's worker may be writing to it.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|source| results::ResultsError::Io {
            path: log_path.clone(),
            source,
        })?;
    let (program, args) = opts
        .worker
        .split_first()
        .ok_or_else(|| TrainError::Config("empty worker command".into()))?;
    let mut child = Command::new(program)
        .args(args)
        .arg("--run-dir")
        .arg(&run.dir.path)
        .arg("--device")
        .arg(opts.device.to_string())
        .arg("--diagnostics")
        .arg(serde_json::to_string(&opts.diagnostics).expect("diagnostics serialise"))
        .arg("--data-dir")
        .arg(&opts.data_dir)
        .args(opts.keep_final_weights.then_some("--keep-final-weights"))
        // One compute thread per run: runs side by side use the cores better.
        .env("RAYON_NUM_THREADS", "1")
        .env("CANDLE_NUM_THREADS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| TrainError::Worker {
            run: run.config.label(),
            detail: format!("cannot start {}: {e}", Path::new(program).display()),
        })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(event) = serde_json::from_str::<WorkerEvent>(&line) {
                if tx.send(Message::Event(id, event)).is_err() {
                    return;
                }
            }
        }
        let _ = tx.send(Message::Closed(id));
    });
    Ok(child)
}

/// Why a worker ended without reporting an outcome: its exit and its log's last lines.
fn describe_crash(dir: &RunDir, exit: std::io::Result<std::process::ExitStatus>) -> String {
    let log = std::fs::read_to_string(dir.path.join("worker.log")).unwrap_or_default();
    let tail: Vec<&str> = log
        .lines()
        .rev()
        .take(5)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let exit = match exit {
        Ok(s) => s.to_string(),
        Err(e) => e.to_string(),
    };
    format!(
        "worker {exit}; see {}/worker.log: {}",
        dir.path.display(),
        tail.join(" | ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const YAML: &str = "name: stops
dataset:
  name: fashion-mnist
model:
  arch: mlp
  width: 8
  zero_init_residual: true
families: [plain]
depths: [4, 6]
seeds: [0]
train:
  epochs: 1
  batch_size: 32
  lr: 0.05
  momentum: 0.9
  weight_decay: 0.0001
  schedule: cosine
";

    /// A sweep that cannot start its next worker returns an error, and the workers it
    /// had started do not go on training (and holding their runs' locks) without it.
    #[test]
    fn a_sweep_that_fails_stops_the_workers_it_started() {
        let tmp = tempfile::tempdir().unwrap();
        let experiment = experiment::parse_experiment(&tmp.path().join("exp.yaml"), YAML).unwrap();
        let results_root = tmp.path().join("results");
        let planned = run_states(&experiment, &results_root);
        let dir_of = |depth| {
            &planned
                .iter()
                .find(|p| p.config.depth == depth)
                .unwrap()
                .dir
        };
        // The deeper run starts first; the shallower one's directory cannot be made.
        std::fs::create_dir_all(results_root.join("stops")).unwrap();
        std::fs::write(&dir_of(4).path, b"a file in the way").unwrap();
        // A worker that says who it is and trains forever ("--run-dir D" come first).
        let script = tmp.path().join("worker.sh");
        std::fs::write(
            &script,
            "#!/bin/sh\necho $$ > \"$2/pid.tmp\"\nmv \"$2/pid.tmp\" \"$2/pid\"\nexec sleep 60\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let opts = SweepOptions {
            results_root: results_root.clone(),
            jobs: 2,
            data_dir: tmp.path().to_path_buf(),
            worker: vec![script.into_os_string()],
            keep_final_weights: false,
            device: ComputeDevice::Cpu,
            diagnostics: Diagnostics::off(),
        };
        let e = run_sweep(&experiment, &opts, &AtomicBool::new(false), &mut || {})
            .expect_err("the sweep fails");
        assert!(
            e.to_string()
                .contains(&dir_of(4).path.display().to_string()),
            "{e}"
        );
        // The worker may have been stopped before it wrote its pid; if it wrote it, it
        // must be gone.
        let pid_file = dir_of(6).path.join("pid");
        let deadline = Instant::now() + Duration::from_secs(2);
        while !pid_file.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Ok(pid) = std::fs::read_to_string(&pid_file) {
            let alive = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
                .is_ok_and(|stat| !stat.contains(") Z"));
            assert!(
                !alive,
                "worker {} still running after the sweep failed",
                pid.trim()
            );
        }
    }
}
