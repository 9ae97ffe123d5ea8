//! The sweep on a real (single-node) Slurm cluster: `degrade slurm --submit` writes and
//! submits a job array, every run is trained exactly once, a cancelled task's run is
//! finished by a resubmission without duplicate rows, and `report` works from the
//! results. Needs a running Slurm (`scripts/slurm-single-node.sh`, which `.ci/run`
//! starts); skipped without one unless DEGRADE_REQUIRE_SLURM=1 (CI sets it).

mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

fn slurm_up() -> bool {
    let up = Command::new("sinfo")
        .args(["-h", "-o", "%t"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    if !up && std::env::var_os("DEGRADE_REQUIRE_SLURM").is_some() {
        panic!("DEGRADE_REQUIRE_SLURM is set but no Slurm cluster answers (run scripts/slurm-single-node.sh)");
    }
    up
}

/// `degrade slurm exp.yaml --submit ...` in the workspace; returns the job id.
const SUBMIT: [&str; 6] = [
    "slurm",
    "exp.yaml",
    "--submit",
    "--data-dir",
    "idx",
    "--offline",
];

fn submit(ws: &Workspace, extra: &[&str]) -> String {
    let mut args = SUBMIT.to_vec();
    args.extend_from_slice(&["--time", "10", "--mem", "400M"]);
    args.extend_from_slice(extra);
    let out = ws.degrade(&args);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .split_whitespace()
        .last()
        .filter(|id| id.chars().all(|c| c.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no job id in {}", text(&out)))
        .to_string()
}

fn job_tasks(job: &str) -> Vec<String> {
    let out = Command::new("squeue")
        .args(["-h", "-r", "-j", job, "-o", "%i %t"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn wait_for_job(job: &str) {
    let start = Instant::now();
    while !job_tasks(job).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "job {job} still queued after 5 minutes: {:?}",
            job_tasks(job)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn status(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("meta.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .map(|m| m["status"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// Epoch numbers in a run's metrics, in file order.
fn epochs(dir: &std::path::Path) -> Vec<u32> {
    results::read_metrics(&dir.join("metrics.parquet"))
        .unwrap()
        .iter()
        .map(|r| r.epoch)
        .collect()
}

/// How many times task output says a run started training.
fn starts(ws: &Workspace, experiment: &str, run_dir: &std::path::Path) -> usize {
    let name = run_dir.file_name().unwrap().to_string_lossy().to_string();
    let slurm_dir = ws.root.join("results").join(experiment).join("slurm");
    std::fs::read_dir(slurm_dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".out"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .map(|log| {
            log.lines()
                .filter(|l| l.contains("training in") && l.contains(&name))
                .count()
        })
        .sum()
}

#[test]
fn a_job_array_trains_every_run_once_and_a_resubmission_finishes_a_cancelled_one() {
    if !slurm_up() {
        eprintln!("skipped: no Slurm cluster (scripts/slurm-single-node.sh starts one)");
        return;
    }
    let started = Instant::now();
    let ws = Workspace::new();

    // Four short runs, two at a time.
    ws.write_experiment(&experiment_yaml("cluster", "[4, 6]", ""));
    let job = submit(&ws, &["--max-parallel", "2"]);
    wait_for_job(&job);
    let dirs = ws.run_dirs("cluster");
    let runs: Vec<_> = dirs
        .iter()
        .filter(|d| d.join("config.json").exists())
        .collect();
    assert_eq!(runs.len(), 4, "{dirs:?}");
    for dir in &runs {
        assert_eq!(status(dir), "done", "{}", dir.display());
        assert_eq!(epochs(dir), [1, 2], "{}", dir.display());
        assert_eq!(
            starts(&ws, "cluster", dir),
            1,
            "{} trained more than once",
            dir.display()
        );
    }
    // Nothing left: no script, no job.
    let again = ws.degrade(&SUBMIT);
    assert!(again.status.success(), "{}", text(&again));
    assert!(String::from_utf8_lossy(&again.stderr).contains("nothing to submit"));
    let report = ws.degrade(&["report", "exp.yaml"]);
    assert!(report.status.success(), "{}", text(&report));
    assert!(ws.root.join("reports/cluster/index.html").exists());

    // Longer runs; task 0 is cancelled once it has finished an epoch.
    let long = experiment_yaml("long", "[4, 6]", "").replace("epochs: 2", "epochs: 400");
    ws.write_experiment(&long);
    let job = submit(&ws, &["--max-parallel", "2"]);
    let first = {
        let plan = ws.degrade(&["plan", "exp.yaml", "--pending"]);
        assert!(plan.status.success(), "{}", text(&plan));
        let list = std::fs::read_to_string(ws.root.join("results/long/pending.txt")).unwrap();
        ws.root
            .join("results/long")
            .join(list.lines().nth(1).unwrap())
    };
    let start = Instant::now();
    while !first.join("checkpoint.safetensors").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "task 0 never checkpointed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let cancel = Command::new("scancel")
        .arg(format!("{job}_0"))
        .output()
        .unwrap();
    assert!(cancel.status.success(), "{}", text(&cancel));
    wait_for_job(&job);
    assert_ne!(status(&first), "done", "the cancelled run cannot be done");
    let cancelled_at = epochs(&first).len();
    assert!(cancelled_at < 400);

    let job = submit(&ws, &[]);
    wait_for_job(&job);
    for dir in ws
        .run_dirs("long")
        .iter()
        .filter(|d| d.join("config.json").exists())
    {
        assert_eq!(status(dir), "done", "{}", dir.display());
        assert_eq!(
            epochs(dir),
            (1..=400).collect::<Vec<u32>>(),
            "{}",
            dir.display()
        );
    }
    assert_eq!(
        starts(&ws, "long", &first),
        2,
        "cancelled once, resumed once"
    );
    eprintln!(
        "slurm test: {:.1} s (task 0 cancelled after {cancelled_at} epochs)",
        started.elapsed().as_secs_f64()
    );
}

/// Slurm ends a task with SIGTERM (scancel, time limit, preemption). The task must take
/// its lock with it, or a requeued task on another node would find the run "being
/// trained" by a process it cannot check, and skip it forever.
#[test]
fn a_terminated_run_task_releases_its_lock_and_resumes_later() {
    let ws = Workspace::new();
    ws.write_experiment(&experiment_yaml("term", "[4]", "").replace("epochs: 2", "epochs: 400"));
    let plan = ws.degrade(&["plan", "exp.yaml", "--pending"]);
    assert!(plan.status.success(), "{}", text(&plan));
    let run_args = [
        "run",
        "exp.yaml",
        "--index",
        "0",
        "--data-dir",
        "idx",
        "--offline",
    ];
    let mut child = Command::new(BIN)
        .args(run_args)
        .current_dir(&ws.root)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let names = results::read_pending(&ws.root.join("results/term/pending.txt"), "term").unwrap();
    let dir = ws.root.join("results/term").join(&names[0]);
    let start = Instant::now();
    while !dir.join("checkpoint.safetensors").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never checkpointed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(dir.join("lock").exists());
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(128 + 15), "{exit:?}");
    assert!(!dir.join("lock").exists(), "the lock outlived its process");
    assert_ne!(status(&dir), "done");
    // The same entry again (a requeued task) finishes the run.
    let again = ws.degrade(&run_args);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(status(&dir), "done");
    assert_eq!(epochs(&dir), (1..=400).collect::<Vec<u32>>());
}
