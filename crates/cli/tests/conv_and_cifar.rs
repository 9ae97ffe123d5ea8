//! The paper's networks end to end: CIFAR-style nets trained by the real binary on tiny
//! generated CIFAR-10 files with the paper's data handling and recipe, and `degrade arch`.

mod common;

use common::*;

#[test]
fn a_cifar_sweep_with_every_option_trains_logs_validation_and_reruns_nothing() {
    let ws = Workspace::new();
    ws.write_experiment(&cifar_yaml("tiny-cifar"));
    let args = [
        "sweep",
        "exp.yaml",
        "--data-dir",
        "cifar",
        "--offline",
        "--jobs",
        "2",
    ];
    let out = ws.degrade(&args);
    assert!(out.status.success(), "{}", text(&out));
    let dirs = ws.run_dirs("tiny-cifar");
    assert_eq!(dirs.len(), 2);
    for dir in &dirs {
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("meta.json")).unwrap()).unwrap();
        assert_eq!(meta["status"], "done", "{}", dir.display());
        assert_eq!(meta["device"], "cpu");
        let rows = results::read_metrics(&dir.join("metrics.parquet")).unwrap();
        // 100 training images - 20 held out = 80: 3 batches of 32 per epoch (the last
        // has 16); 10 iterations end inside epoch 4.
        let iterations: Vec<Option<u64>> = rows.iter().map(|r| r.iteration).collect();
        assert_eq!(iterations, [Some(3), Some(6), Some(9), Some(10)]);
        assert!(rows.iter().all(|r| r.val_error.is_some()));
        // Warm-up lr at iteration 0, schedule after; the milestone at 6 drops it.
        assert!((rows[0].lr - 0.01).abs() < 1e-12 && (rows[1].lr - 0.05).abs() < 1e-12);
        assert!((rows[2].lr - 0.005).abs() < 1e-12);
        let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
        for needle in [
            "\"validation\": 20",
            "per-pixel-mean",
            "\"pad\": 4",
            "\"iterations\": 10",
        ] {
            assert!(config.contains(needle), "{needle} missing from {config}");
        }
    }
    let report = std::fs::read_to_string(ws.root.join("reports/tiny-cifar/index.html")).unwrap();
    assert!(
        report.contains("validation error (%)"),
        "the report shows the validation split"
    );
    let again = ws.degrade(&args);
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("0 to train"),
        "{}",
        text(&again)
    );
}

#[test]
fn arch_prints_the_layers_and_the_papers_parameter_counts() {
    let ws = Workspace::new();
    for (args, needles) in [
        (
            vec!["arch", "residual", "56"],
            vec![
                "56 weighted layers, 853,018 trainable parameters",
                "shortcut A",
            ],
        ),
        (
            vec!["arch", "plain", "20"],
            vec!["20 weighted layers, 269,722", "stages.2.2.second", "64x8x8"],
        ),
        (
            vec!["arch", "residual", "110", "--shortcut", "b"],
            vec!["1,730,714", "conv 1x1 16->32 /2 + BN"],
        ),
        (
            vec![
                "arch",
                "plain",
                "20",
                "--width",
                "8",
                "--dataset",
                "fashion-mnist",
            ],
            vec!["input 1x28x28", "32x7x7"],
        ),
        (
            vec![
                "arch",
                "plain",
                "64",
                "--arch",
                "mlp",
                "--width",
                "64",
                "--dataset",
                "fashion-mnist",
            ],
            vec!["64 weighted layers", "linear 784->64 + BN"],
        ),
    ] {
        let out = ws.degrade(&args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        for needle in needles {
            assert!(
                stdout.contains(needle),
                "{args:?}: {needle:?} missing from\n{stdout}"
            );
        }
    }
    let out = ws.degrade(&["arch", "plain", "57"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("6n + 2"),
        "{}",
        text(&out)
    );
}
