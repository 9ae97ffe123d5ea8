//! Nothing lost: a sweep killed with SIGKILL at random moments, over and over, then let
//! finish, gives exactly the metrics of an uninterrupted sweep, with no corrupt file and
//! no lost or duplicated epoch; and two sweeps started at once on one results directory
//! train every run exactly once.

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

const KILLS: usize = 20;
/// Many short epochs: every kill interval spans a few checkpoints.
const EPOCHS: u32 = 60;

fn yaml() -> String {
    experiment_yaml("faults", "[4, 8]", "")
        .replace("width: 16", "width: 128")
        .replace("epochs: 2", &format!("epochs: {EPOCHS}"))
}

fn setup() -> Workspace {
    let ws = Workspace::new();
    write_tiny_dataset(&ws.root.join("idx"), 2048, 128);
    ws.write_experiment(&yaml());
    ws
}

/// Every run's metrics without wall times (the only column allowed to differ), by run.
fn metrics(ws: &Workspace) -> Vec<(String, Vec<results::MetricRow>)> {
    ws.run_dirs("faults")
        .into_iter()
        .map(|dir| {
            let rows = results::read_metrics(&dir.join("metrics.parquet")).unwrap();
            let rows = rows
                .into_iter()
                .map(|r| results::MetricRow { wall_s: 0.0, ..r })
                .collect();
            (dir.file_name().unwrap().to_string_lossy().to_string(), rows)
        })
        .collect()
}

fn assert_clean(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            assert_clean(&path);
        } else {
            assert!(
                !name.contains(".tmp"),
                "temporary file left: {}",
                path.display()
            );
            assert!(
                name != "lock" && name != "checkpoint.safetensors",
                "{} left after a finished sweep",
                path.display()
            );
        }
    }
}

type RunMetrics = Vec<(String, Vec<results::MetricRow>)>;

/// A sweep in its own process group (so the whole group can be signalled, as a terminal
/// or a power cut would), with its stderr to read as it goes.
fn spawn_in_group(ws: &Workspace) -> (Child, BufReader<ChildStderr>) {
    let mut child = ws
        .sweep_command()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    (child, stderr)
}

/// Reads stderr into `log` until `epochs` more epoch lines have appeared; false if the
/// sweep ended first.
fn read_epochs(stderr: &mut BufReader<ChildStderr>, epochs: u64, log: &mut String) -> bool {
    let mut seen = 0;
    while seen < epochs {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            return false;
        }
        seen += u64::from(line.contains(": epoch "));
        log.push_str(&line);
    }
    true
}

fn signal_group(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, "--", &format!("-{}", child.id())])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The metrics of an uninterrupted sweep, computed once for all tests here.
fn expected() -> &'static RunMetrics {
    static EXPECTED: OnceLock<RunMetrics> = OnceLock::new();
    EXPECTED.get_or_init(|| {
        let reference = setup();
        let out = reference.sweep();
        assert!(out.status.success(), "{}", text(&out));
        let m = metrics(&reference);
        assert_eq!(m.len(), 4);
        m
    })
}

#[test]
fn ctrl_c_stops_cleanly_and_the_next_sweep_resumes() {
    let ws = setup();
    let (mut child, mut stderr) = spawn_in_group(&ws);
    let mut log = String::new();
    assert!(
        read_epochs(&mut stderr, 3, &mut log),
        "sweep ended early:\n{log}"
    );
    // What a terminal does on Ctrl-C: SIGINT to the whole foreground process group.
    signal_group(&child, "-INT");
    stderr.read_to_string(&mut log).unwrap();
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(130), "{log}");
    assert!(
        log.contains("interrupted:") && log.contains("run the same command again"),
        "{log}"
    );
    assert!(
        !log.contains("FAILED"),
        "an interrupt is not a failure: {log}"
    );

    let out = ws.sweep();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("resuming after epoch"),
        "{}",
        text(&out)
    );
    assert_eq!(&metrics(&ws), expected());
    assert_clean(&ws.root.join("results"));
}

#[test]
fn killed_sweeps_resume_to_the_uninterrupted_result() {
    let expected = expected().clone();

    let ws = setup();
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut kills = 0;
    let mut resumed = 0;
    for _ in 0..2 * KILLS {
        if kills == KILLS {
            break;
        }
        let mut next = || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            state >> 33
        };
        // Kill at a random moment after 1 to 3 more epochs have finished, so every
        // attempt makes progress whatever the machine's load, and kills land anywhere in
        // an epoch: mid-batch, mid-evaluation, mid-write of metrics or checkpoint.
        let epochs_first = 1 + next() % 3;
        let delay = Duration::from_millis(next() % 150);
        let (mut child, mut stderr) = spawn_in_group(&ws);
        let mut log = String::new();
        read_epochs(&mut stderr, epochs_first, &mut log);
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_none() {
            signal_group(&child, "-KILL");
            kills += 1;
        }
        stderr.read_to_string(&mut log).unwrap();
        child.wait().unwrap();
        resumed += log.matches("resuming after epoch").count();
    }
    assert_eq!(kills, KILLS, "sweeps finished before they could be killed");
    assert!(resumed > 0, "no run ever resumed from a checkpoint");
    let out = ws.sweep();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        metrics(&ws),
        expected,
        "after {kills} kills ({resumed} resumes from checkpoints)"
    );
    for (_, rows) in metrics(&ws) {
        assert_eq!(
            rows.iter().map(|r| r.epoch).collect::<Vec<_>>(),
            (1..=EPOCHS).collect::<Vec<_>>()
        );
    }
    assert_clean(&ws.root.join("results"));
    eprintln!("{kills} kills, {resumed} resumes from checkpoints");
}

#[test]
fn two_sweeps_at_once_train_each_run_once() {
    let ws = setup();
    let spawn = || {
        ws.sweep_command()
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", text(&a));
    assert!(b.status.success(), "{}", text(&b));
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    let done = logs.lines().filter(|l| l.ends_with(": done")).count();
    assert_eq!(
        done, 4,
        "each of the 4 runs is trained by exactly one sweep:\n{logs}"
    );
    for (_, rows) in metrics(&ws) {
        assert_eq!(
            rows.iter().map(|r| r.epoch).collect::<Vec<_>>(),
            (1..=EPOCHS).collect::<Vec<_>>()
        );
    }
    assert_clean(&ws.root.join("results"));
}
