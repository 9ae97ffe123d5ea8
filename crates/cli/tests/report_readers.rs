//! The report and the Parquet files as outside tools see them: headless Chromium opens
//! the HTML (no console errors, every chart an inline SVG with visible lines, a
//! screenshot kept under target/) and its figures answer the mouse, and Python's
//! pyarrow reads the Parquet files.
//! CI installs both and sets DEGRADE_REQUIRE_CHROMIUM / DEGRADE_REQUIRE_PYARROW, so
//! there these tests cannot silently skip.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs a two-seed sweep of two depths on the tiny dataset; returns the workspace.
fn swept() -> Workspace {
    let ws = Workspace::new();
    ws.write_experiment(&experiment_yaml_seeds("browser", "[4, 6]", "", "[0, 1]"));
    let out = ws.sweep();
    assert!(out.status.success(), "{}", text(&out));
    ws
}

fn available(program: &str, args: &[&str], require_var: &str) -> bool {
    let ok = Command::new(program)
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var_os(require_var).is_none(),
            "{program} is required ({require_var}) but not usable"
        );
        eprintln!("skipped: {program} is not installed");
    }
    ok
}

const CHROMIUM_FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
];

fn chromium(profile: &Path, args: &[&str]) -> std::process::Output {
    Command::new("chromium")
        .args(CHROMIUM_FLAGS)
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn report_opens_in_headless_chromium() {
    if !available("chromium", &["--version"], "DEGRADE_REQUIRE_CHROMIUM") {
        return;
    }
    let ws = swept();
    let page = ws.root.join("reports/browser/index.html");
    let url = format!("file://{}", page.display());
    let profile = ws.root.join("chromium-profile");

    // With the page's script (the DOM Chromium built: figures redrawn, interactive) and
    // without it (the file as written: the SVG the report drew, which is what print,
    // e-mail and a reader without JavaScript get): the same figures, with visible lines.
    for script in [true, false] {
        let dom = if script {
            let out = chromium(
                &profile,
                &["--enable-logging=stderr", "--v=0", "--dump-dom", &url],
            );
            assert!(out.status.success(), "{}", text(&out));
            let log = String::from_utf8_lossy(&out.stderr);
            let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
            assert!(console.is_empty(), "console messages: {console:?}");
            String::from_utf8_lossy(&out.stdout).to_string()
        } else {
            std::fs::read_to_string(&page).unwrap()
        };
        assert!(
            dom.contains("id=\"verdict\""),
            "verdict missing from the DOM"
        );
        assert!(
            !dom.contains("src=\"http") && !dom.contains("href=\"http"),
            "the report must not fetch anything"
        );
        // Two family panels and the error-vs-depth chart, then the diagnostics (gradient
        // norms at initialisation, responses, lesion: the tiny sweep is too short for a
        // second gradient log), each an inline SVG with lines.
        let figures: Vec<&str> = dom.split("<figure class=").skip(1).collect();
        assert_eq!(figures.len(), 6, "expected 6 figures (script {script})");
        for figure in figures {
            let figure = figure.split("</figure>").next().unwrap();
            let interactive = figure.starts_with("\"panel interactive\"");
            assert_eq!(interactive, script, "script {script}: {}", &figure[..80]);
            assert!(figure.contains("<svg"), "a figure without inline SVG");
            let visible_lines = figure
                .split("<polyline")
                .skip(1)
                .filter(|p| {
                    let tag = p.split('>').next().unwrap_or("");
                    let points = tag
                        .split("points=\"")
                        .nth(1)
                        .and_then(|r| r.split('"').next())
                        .unwrap_or("");
                    !tag.contains("stroke=\"none\"") && points.split_whitespace().count() >= 2
                })
                .count();
            assert!(
                visible_lines >= 2,
                "a chart without visible lines (script {script})"
            );
        }
    }

    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/report-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("tiny-two-seeds.png");
    let _ = std::fs::remove_file(&shot);
    let out = chromium(
        &profile,
        &[
            "--window-size=1280,2000",
            &format!("--screenshot={}", shot.display()),
            &url,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "screenshot too small"
    );
    eprintln!("screenshot: {}", shot.display());
}

/// The figures driven in a real browser as a reader would, over the DevTools protocol
/// (tests/drive_report.py): a hovered point's tooltip against the Parquet files (a mean
/// curve and one seed's), the legend hiding and showing a depth, the log axis, the
/// smoothing slider, SVG and PNG downloads, and no console error.
#[test]
fn report_figures_answer_the_mouse_in_headless_chromium() {
    if !available("chromium", &["--version"], "DEGRADE_REQUIRE_CHROMIUM")
        || !available(
            "python3",
            &["-c", "import pyarrow"],
            "DEGRADE_REQUIRE_PYARROW",
        )
    {
        return;
    }
    let ws = swept();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/drive_report.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(ws.root.join("reports/browser/index.html"))
        .arg(ws.root.join("results/browser"))
        .arg(ws.root.join("devtools"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("no console errors"), "{stdout}");
    eprintln!("{stdout}");
}

#[test]
fn pyarrow_reads_the_parquet_files() {
    if !available(
        "python3",
        &["-c", "import pyarrow"],
        "DEGRADE_REQUIRE_PYARROW",
    ) {
        return;
    }
    let ws = swept();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/read_parquet.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(ws.root.join("results/browser"))
        .args(["8", "2"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("8 files, 16 rows"));
}

/// bench/compare_errors.py on real results: identical results are within the spread
/// with Welch's t at zero; a run that is not done is left out, and said to be.
#[test]
fn compare_errors_counts_only_done_runs_and_prints_welch_t() {
    if !available(
        "python3",
        &["-c", "import pyarrow"],
        "DEGRADE_REQUIRE_PYARROW",
    ) {
        return;
    }
    let ws = swept();
    let (old, new) = (ws.root.join("results/browser"), ws.root.join("copy"));
    let copied = Command::new("cp")
        .arg("-r")
        .arg(&old)
        .arg(&new)
        .status()
        .unwrap();
    assert!(copied.success());
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bench/compare_errors.py");
    let compare = || {
        Command::new("python3")
            .arg(&script)
            .arg(&old)
            .arg(&new)
            .output()
            .unwrap()
    };
    let out = compare();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout.contains("Welch t"), "{stdout}");
    assert!(
        !stdout.contains("NO") && !stdout.contains("left out"),
        "{stdout}"
    );

    let run = std::fs::read_dir(&new)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let meta = std::fs::read_to_string(run.join("meta.json")).unwrap();
    std::fs::write(
        run.join("meta.json"),
        meta.replace("\"done\"", "\"diverged\""),
    )
    .unwrap();
    let stdout = String::from_utf8_lossy(&compare().stdout).to_string();
    let name = run.file_name().unwrap().to_string_lossy().to_string();
    assert!(stdout.contains("left out of NEW"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.contains(&name) && l.contains("diverged")),
        "{stdout}"
    );
}
