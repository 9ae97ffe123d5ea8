//! The real `degrade` binary on tiny generated IDX data (and, where installed, on a slice
//! of the real Fashion-MNIST): YAML in, Parquet and HTML out, reruns skip finished runs.

mod common;

use common::*;
use std::path::PathBuf;
use std::process::Command;

#[test]
fn sweep_writes_parquet_and_report_and_reruns_only_new_depths() {
    let ws = Workspace::new();
    ws.write_experiment(&experiment_yaml("tiny", "[4, 6]", ""));
    let out = ws.sweep();
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("4 to train"), "{stderr}");
    assert!(
        stderr.contains("epoch 2: train error"),
        "plain progress lines expected: {stderr}"
    );

    let dirs = ws.run_dirs("tiny");
    assert_eq!(dirs.len(), 4, "{dirs:?}");
    for dir in &dirs {
        let rows = results::read_metrics(&dir.join("metrics.parquet")).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows.iter().map(|r| r.epoch).collect::<Vec<_>>(), vec![1, 2]);
        for r in &rows {
            assert_eq!(r.experiment, "tiny");
            assert!(r.family == "plain" || r.family == "residual");
            assert!(r.depth == 4 || r.depth == 6);
            assert!((0.0..=1.0).contains(&r.train_error) && (0.0..=1.0).contains(&r.test_error));
            assert!(r.wall_s > 0.0 && r.lr > 0.0 && r.train_loss.is_finite());
        }
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        assert!(name.ends_with(&rows[0].config_hash), "{name}");
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("meta.json")).unwrap()).unwrap();
        assert_eq!(meta["status"], "done");
        assert_eq!(meta["threads"], 1);
        assert!(meta["versions"]["candle-core"].is_string());
        assert!(dir.join("config.json").is_file());
        assert!(
            !dir.join("checkpoint.safetensors").exists() && !dir.join("final.safetensors").exists()
        );
        assert!(!dir.join("lock").exists());
    }
    // The data is learnable: the shallow residual net must do better than chance.
    let residual4 = dirs
        .iter()
        .find(|d| d.to_string_lossy().contains("residual-d4"))
        .unwrap();
    let last = results::read_metrics(&residual4.join("metrics.parquet"))
        .unwrap()
        .pop()
        .unwrap();
    assert!(last.test_error < 0.5, "{last:?}");

    let html = std::fs::read_to_string(ws.root.join("reports/tiny/index.html")).unwrap();
    assert!(html.contains("id=\"verdict\""));
    let training = &html[..html.find("id=\"why\"").unwrap_or(html.len())];
    assert_eq!(
        training.matches("<svg").count(),
        3,
        "one panel per family and error vs depth"
    );
    // Then the diagnostics (on by default): gradients at initialisation (16 iterations
    // are fewer than the default 50 between logs, so no later ones), responses, lesion.
    assert_eq!(html.matches("<svg").count(), 3 + 3);
    assert!(html.contains("final error against depth"));
    assert!(
        html.contains("Not yet evidence"),
        "one seed: the verdict must not claim the effect"
    );
    assert!(html.contains("plain-6") && html.contains("residual-4"));
    assert!(html.contains("metrics.parquet"));
    let index = std::fs::read_to_string(ws.root.join("reports/index.html")).unwrap();
    assert!(index.contains("tiny/index.html"));

    // Rerun: nothing to train, finished files untouched.
    let before = std::fs::metadata(dirs[0].join("metrics.parquet"))
        .unwrap()
        .modified()
        .unwrap();
    let out = ws.sweep();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("0 to train"),
        "{}",
        text(&out)
    );
    let after = std::fs::metadata(dirs[0].join("metrics.parquet"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);

    // Add a depth: only its two runs train.
    ws.write_experiment(&experiment_yaml("tiny", "[4, 6, 8]", ""));
    let plan = ws.degrade(&["plan", "exp.yaml"]);
    let plan_text = String::from_utf8_lossy(&plan.stdout);
    assert!(
        plan_text.contains("6 runs, 4 finished, 2 to train"),
        "{}",
        text(&plan)
    );
    let out = ws.sweep();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("2 to train"),
        "{}",
        text(&out)
    );
    assert_eq!(ws.run_dirs("tiny").len(), 6);

    // The report renders from results alone, with no dataset anywhere.
    std::fs::remove_dir_all(ws.root.join("reports")).unwrap();
    std::fs::remove_dir_all(ws.root.join("idx")).unwrap();
    let out = ws.degrade(&["report", "exp.yaml"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(ws.root.join("reports/tiny/index.html").is_file());
}

#[test]
fn bad_experiment_files_fail_with_the_file_and_field_named() {
    let ws = Workspace::new();
    let cases = [
        (experiment_yaml("t", "[4, 5]", ""), "depths[1]"),
        (
            experiment_yaml("t", "[4]", "").replace("lr: 0.05", "lr: -1"),
            "train.lr",
        ),
        (
            experiment_yaml("t", "[4]", "").replace("epochs: 2", "epochs: 2\n  epoch: 3"),
            "epoch",
        ),
        (experiment_yaml("t", "[4", ""), "exp.yaml"),
    ];
    for (yaml, needle) in cases {
        ws.write_experiment(&yaml);
        let out = ws.sweep();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{yaml}");
        assert!(
            err.contains("exp.yaml") && err.contains(needle),
            "{needle}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert!(
            !ws.root.join("results").exists(),
            "nothing is written for a bad file"
        );
    }
    let out = ws.degrade(&["plan", "missing.yaml"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.yaml"));
}

#[test]
fn a_wrong_dataset_location_is_an_error_naming_it() {
    let ws = Workspace::new();
    let limits = "  train_limit: 256\n  test_limit: 64\n";
    ws.write_experiment(&experiment_yaml("t", "[4]", limits));
    let out = Command::new(BIN)
        .args(["sweep", "exp.yaml", "--data-dir", "nowhere", "--offline"])
        .current_dir(&ws.root)
        .env("FASHION_MNIST_DIR", ws.root.join("also-nowhere"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // A location the user gave is authoritative: no silent fallback to other data.
    assert!(!out.status.success(), "{}", text(&out));
    assert!(err.contains("--data-dir points to nowhere"), "{err}");
    assert!(!ws.root.join("results").exists());
    let out = Command::new(BIN)
        .args(["sweep", "exp.yaml", "--offline"])
        .current_dir(&ws.root)
        .env("FASHION_MNIST_DIR", ws.root.join("also-nowhere"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("$FASHION_MNIST_DIR") && err.contains("also-nowhere"),
        "{err}"
    );
}

#[test]
fn a_diverging_run_is_marked_and_the_sweep_goes_on() {
    let ws = Workspace::new();
    ws.write_experiment(
        &experiment_yaml("div", "[4]", "")
            .replace("families: [plain, residual]", "families: [plain]")
            .replace("lr: 0.05", "lr: 1.0e9"),
    );
    let out = ws.sweep();
    assert!(
        out.status.success(),
        "divergence is a result, not a failure: {}",
        text(&out)
    );
    let dir = &ws.run_dirs("div")[0];
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["status"], "diverged", "{meta}");
    let html = std::fs::read_to_string(ws.root.join("reports/div/index.html")).unwrap();
    assert!(html.contains("diverged"));
    // A diverged run is finished: the next sweep does not train it again.
    assert!(String::from_utf8_lossy(&ws.sweep().stderr).contains("0 to train"));
}

/// A short run on the real Fashion-MNIST, where it is installed (CI installs it and sets
/// DEGRADE_REQUIRE_REAL_DATA=1, so there this test cannot silently skip).
#[test]
fn real_fashion_mnist_slice_trains() {
    let dir = std::env::var_os("FASHION_MNIST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/datasets/fashion-mnist"));
    if !dir.join("train-images-idx3-ubyte.gz").exists()
        && !dir.join("train-images-idx3-ubyte").exists()
    {
        assert!(
            std::env::var_os("DEGRADE_REQUIRE_REAL_DATA").is_none(),
            "Fashion-MNIST is required but not installed at {}",
            dir.display()
        );
        eprintln!("skipped: Fashion-MNIST not installed at {}", dir.display());
        return;
    }
    let ws = Workspace::new();
    let limits = "  train_limit: 3000\n  test_limit: 1000\n";
    ws.write_experiment(&experiment_yaml("real", "[4]", limits).replace("width: 16", "width: 32"));
    let out = ws.degrade(&[
        "sweep",
        "exp.yaml",
        "--data-dir",
        dir.to_str().unwrap(),
        "--offline",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    for run in ws.run_dirs("real") {
        let rows = results::read_metrics(&run.join("metrics.parquet")).unwrap();
        let last = rows.last().unwrap();
        assert!(last.test_error < 0.35, "{run:?}: {last:?}");
    }
}

#[test]
fn final_weights_are_kept_when_asked() {
    let ws = Workspace::new();
    ws.write_experiment(&format!(
        "{}keep_final_weights: true\n",
        experiment_yaml("keep", "[4]", "")
            .replace("families: [plain, residual]", "families: [plain]")
    ));
    let out = ws.sweep();
    assert!(out.status.success(), "{}", text(&out));
    let dir = &ws.run_dirs("keep")[0];
    assert!(dir.join("final.safetensors").is_file());
    assert!(!dir.join("checkpoint.safetensors").exists());
}

#[test]
fn diagnostics_are_written_beside_the_metrics_and_shown_in_the_report_unless_switched_off() {
    let ws = Workspace::new();
    // 256 images in batches of 32: 8 iterations per epoch, 16 in all; every 5 -> 0, 5, 10, 15.
    let yaml = experiment_yaml("diag", "[4, 8]", "")
        + "diagnostics:\n  gradient_every: 5\n  lesion_images: 64\n";
    ws.write_experiment(&yaml);
    let out = ws.sweep();
    assert!(out.status.success(), "{}", text(&out));
    for dir in ws.run_dirs("diag") {
        let depth: usize = if dir.to_string_lossy().contains("-d8-") {
            8
        } else {
            4
        };
        let g = results::read_gradients(&dir.join("gradients.parquet")).unwrap();
        let iterations: std::collections::BTreeSet<u64> = g.iter().map(|r| r.iteration).collect();
        assert_eq!(iterations.into_iter().collect::<Vec<_>>(), [0, 5, 10, 15]);
        assert_eq!(g.len(), 4 * depth, "one norm per weighted layer");
        // Zero-initialised residual blocks get no gradient at initialisation (their
        // branch is multiplied by a zero gamma); every later norm is positive.
        assert!(g
            .iter()
            .all(|r| r.grad_norm.is_finite() && r.grad_norm >= 0.0));
        assert!(g
            .iter()
            .filter(|r| r.iteration > 0)
            .all(|r| r.grad_norm > 0.0));
        let r = results::read_responses(&dir.join("responses.parquet")).unwrap();
        assert_eq!(
            r.len(),
            depth - 1,
            "every weighted layer but the classifier"
        );
        let l = results::read_lesion(&dir.join("lesion.parquet")).unwrap();
        assert_eq!(l.len(), (depth - 2) / 2, "every MLP block can be deleted");
    }
    let report = std::fs::read_to_string(ws.root.join("reports/diag/index.html")).unwrap();
    for needle in [
        "Why it happens",
        "Gradient flow at initialisation",
        "Lesion study",
        "layer responses",
    ] {
        assert!(report.contains(needle), "{needle} missing from the report");
    }

    // Switched off: the same runs are done (diagnostics are not in the hash); new ones
    // write no diagnostic files.
    let off = experiment_yaml("quiet", "[4]", "")
        + "diagnostics: {gradient_every: 0, responses: false, lesion: false}\n";
    ws.write_experiment(&off);
    let out = ws.sweep();
    assert!(out.status.success(), "{}", text(&out));
    for dir in ws.run_dirs("quiet") {
        for file in ["gradients.parquet", "responses.parquet", "lesion.parquet"] {
            assert!(
                !dir.join(file).exists(),
                "{file} written although switched off"
            );
        }
    }
    let report = std::fs::read_to_string(ws.root.join("reports/quiet/index.html")).unwrap();
    assert!(!report.contains("Why it happens"));
}

/// A finished run whose meta.json no longer reads back (truncated by a disk fault, or
/// edited by hand) is named with what to do, by the sweep, the plan and the report, and
/// its results stay exactly as they were: it is not trained again.
#[test]
fn a_finished_run_with_a_corrupt_meta_is_named_and_never_overwritten() {
    let ws = Workspace::new();
    ws.write_experiment(&experiment_yaml("corrupt", "[4]", ""));
    assert!(ws.sweep().status.success());
    let run = ws.run_dirs("corrupt").remove(0);
    let meta = run.join("meta.json");
    let text_before = std::fs::read(&meta).unwrap();
    std::fs::write(&meta, &text_before[..text_before.len() / 2]).unwrap();
    let metrics_before = std::fs::read(run.join("metrics.parquet")).unwrap();

    let out = ws.sweep();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", text(&out));
    let named = meta.strip_prefix(&ws.root).unwrap().display().to_string();
    assert!(stderr.contains(&named), "{stderr}");
    assert!(
        stderr.contains("delete it to train the run from the start"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 already finished, 0 to train"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(run.join("metrics.parquet")).unwrap(),
        metrics_before
    );
    assert_eq!(
        std::fs::read(&meta).unwrap(),
        &text_before[..text_before.len() / 2],
        "the damaged file is left for the user to restore"
    );
    for command in ["plan", "report"] {
        let out = ws.degrade(&[command, "exp.yaml"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("warning:") && stderr.contains("meta.json"),
            "{command}: {stderr}"
        );
    }
    let html = std::fs::read_to_string(ws.root.join("reports/corrupt/index.html")).unwrap();
    assert!(html.contains("unreadable"), "the runs table shows it");
}

/// One run's metrics file damaged on disk: the report still renders every other run,
/// shows that one as unreadable, names the file, and exits with an error.
#[test]
fn a_damaged_metrics_file_leaves_the_rest_of_the_report_standing() {
    let ws = Workspace::new();
    ws.write_experiment(&experiment_yaml("damaged", "[4]", ""));
    assert!(ws.sweep().status.success());
    let runs = ws.run_dirs("damaged");
    std::fs::write(runs[0].join("metrics.parquet"), b"PAR1 not parquet").unwrap();
    let out = ws.degrade(&["report", "exp.yaml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(!stderr.contains("panicked"), "{stderr}");
    let named = runs[0]
        .strip_prefix(&ws.root)
        .unwrap()
        .join("metrics.parquet");
    assert!(stderr.contains(&named.display().to_string()), "{stderr}");
    let html = std::fs::read_to_string(ws.root.join("reports/damaged/index.html")).unwrap();
    assert!(
        html.contains("unreadable"),
        "the damaged run is shown as such"
    );
    assert!(
        html.contains("1 of 2 runs done"),
        "the other run is still counted"
    );
}

/// While a sweep trains, its report is on disk from the first finished epoch, says it
/// is live and reloads itself; every read finds a whole page (each write replaces the
/// file atomically); at the end the page is no longer live and is byte for byte what
/// `degrade report` writes.
#[test]
fn the_report_is_live_while_the_sweep_trains() {
    let ws = Workspace::new();
    let yaml =
        experiment_yaml_seeds("live", "[4, 6, 8]", "", "[0, 1]").replace("epochs: 2", "epochs: 4");
    ws.write_experiment(&yaml);
    let page = ws.root.join("reports/live/index.html");
    let mut child = ws
        .sweep_command()
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (mut reads, mut live_reads) = (0, 0);
    let status = loop {
        if let Ok(html) = std::fs::read_to_string(&page) {
            reads += 1;
            assert!(
                html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"),
                "a partial page was read ({} bytes)",
                html.len()
            );
            live_reads += usize::from(html.contains("http-equiv=\"refresh\""));
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("rewritten as epochs finish") && stderr.contains("reports/live/index.html"),
        "{stderr}"
    );
    assert!(live_reads > 0, "no live page seen in {reads} reads");
    let swept = std::fs::read(&page).unwrap();
    assert!(!String::from_utf8_lossy(&swept).contains("http-equiv=\"refresh\""));
    let out = ws.degrade(&["report", "exp.yaml"]);
    assert!(out.status.success(), "{}", text(&out));
    let reported = std::fs::read_to_string(&page).unwrap();
    let swept = String::from_utf8(swept).unwrap();
    if let Some((i, (a, b))) = swept
        .lines()
        .zip(reported.lines())
        .enumerate()
        .find(|(_, (a, b))| a != b)
    {
        panic!("the sweep's last page differs from degrade report's at line {i}:\n{a}\n{b}");
    }
    assert_eq!(swept, reported);
}

/// `degrade report A.yaml B.yaml` writes each report and a page with both experiments'
/// final errors against depth on one chart, each with its verdict and a link to its
/// report.
#[test]
fn two_experiments_are_compared_on_one_page() {
    let ws = Workspace::new();
    ws.write_experiment(&experiment_yaml("cmp-a", "[4, 6]", ""));
    std::fs::write(
        ws.root.join("b.yaml"),
        experiment_yaml("cmp-b", "[4, 8]", "").replace("width: 16", "width: 8"),
    )
    .unwrap();
    for file in ["exp.yaml", "b.yaml"] {
        let out = ws.degrade(&["sweep", file, "--data-dir", "idx", "--offline"]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let out = ws.degrade(&["report", "exp.yaml", "b.yaml"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("comparison: reports/compare/cmp-a+cmp-b/index.html"),
        "{}",
        text(&out)
    );
    let page =
        std::fs::read_to_string(ws.root.join("reports/compare/cmp-a+cmp-b/index.html")).unwrap();
    for needle in [
        "cmp-a plain train",
        "cmp-a residual test",
        "cmp-b plain train",
        "href=\"../../cmp-a/index.html\"",
        "href=\"../../cmp-b/index.html\"",
        "<svg",
    ] {
        assert!(page.contains(needle), "{needle} missing");
    }
    for name in ["cmp-a", "cmp-b"] {
        let report =
            std::fs::read_to_string(ws.root.join("reports").join(name).join("index.html")).unwrap();
        let headline = report
            .split("<p class=\"headline\">")
            .nth(1)
            .and_then(|s| s.split("</p>").next())
            .expect("a verdict headline");
        assert!(
            page.contains(headline),
            "{name}'s verdict is not on the page"
        );
    }
}
