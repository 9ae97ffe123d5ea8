//! The bad-input corpus: each case runs the real binary on something wrong and expects
//! a non-zero exit, a message naming the file and field or run, no panic, and no run
//! marked done that is not.

mod common;

use common::*;
use std::path::Path;

struct Case {
    name: &'static str,
    /// Changes the workspace (experiment file, data, results) into the bad state.
    setup: fn(&Workspace),
    args: &'static [&'static str],
    /// Every one of these must appear in stderr.
    expect: &'static [&'static str],
}

const SWEEP: &[&str] = &[
    "sweep",
    "exp.yaml",
    "--data-dir",
    "idx",
    "--offline",
    "--jobs",
    "1",
];
const REPORT: &[&str] = &["report", "exp.yaml"];
const SWEEP_CIFAR: &[&str] = &[
    "sweep",
    "exp.yaml",
    "--data-dir",
    "cifar",
    "--offline",
    "--jobs",
    "1",
];

fn cifar(ws: &Workspace) {
    ws.write_experiment(&cifar_yaml("bad"));
}

fn edit_cifar(ws: &Workspace, from: &str, to: &str) {
    let text = cifar_yaml("bad");
    assert!(text.contains(from), "case edits a line that exists: {from}");
    ws.write_experiment(&text.replace(from, to));
}

fn base(ws: &Workspace) {
    ws.write_experiment(&experiment_yaml("bad", "[4]", ""));
}

fn edit(ws: &Workspace, from: &str, to: &str) {
    let text = experiment_yaml("bad", "[4]", "");
    assert!(text.contains(from), "case edits a line that exists: {from}");
    ws.write_experiment(&text.replace(from, to));
}

fn write_idx(ws: &Workspace, name: &str, bytes: &[u8]) {
    std::fs::write(ws.root.join("idx").join(name), bytes).unwrap();
}

/// Trains the base experiment once, so that results exist to be damaged.
fn trained(ws: &Workspace) -> std::path::PathBuf {
    base(ws);
    let out = ws.sweep();
    assert!(out.status.success(), "{}", text(&out));
    ws.run_dirs("bad")[0].clone()
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "yaml syntax error",
            setup: |ws| edit(ws, "depths: [4]", "depths: [4"),
            args: SWEEP,
            expect: &["exp.yaml", "line"],
        },
        Case {
            name: "tab-indented yaml",
            setup: |ws| edit(ws, "  width: 16", "\twidth: 16"),
            args: SWEEP,
            expect: &["exp.yaml"],
        },
        Case {
            name: "empty file",
            setup: |ws| {
                ws.write_experiment("");
            },
            args: SWEEP,
            expect: &["exp.yaml"],
        },
        Case {
            name: "not a mapping",
            setup: |ws| {
                ws.write_experiment("- a\n- b\n");
            },
            args: SWEEP,
            expect: &["exp.yaml"],
        },
        Case {
            name: "unknown top-level key",
            setup: |ws| edit(ws, "seeds: [0]", "seeds: [0]\nseed: 1"),
            args: SWEEP,
            expect: &["exp.yaml", "seed"],
        },
        Case {
            name: "unknown nested key",
            setup: |ws| edit(ws, "  lr: 0.05", "  lr: 0.05\n  learning_rate: 0.1"),
            args: SWEEP,
            expect: &["exp.yaml", "learning_rate"],
        },
        Case {
            name: "missing field",
            setup: |ws| edit(ws, "  epochs: 2\n", ""),
            args: SWEEP,
            expect: &["exp.yaml", "epochs"],
        },
        Case {
            name: "width is a string",
            setup: |ws| edit(ws, "width: 16", "width: wide"),
            args: SWEEP,
            expect: &["exp.yaml", "line"],
        },
        Case {
            name: "depth is negative",
            setup: |ws| edit(ws, "depths: [4]", "depths: [-4]"),
            args: SWEEP,
            expect: &["exp.yaml", "line"],
        },
        Case {
            name: "depths is a scalar",
            setup: |ws| edit(ws, "depths: [4]", "depths: 4"),
            args: SWEEP,
            expect: &["exp.yaml", "depths"],
        },
        Case {
            name: "odd depth",
            setup: |ws| edit(ws, "depths: [4]", "depths: [5]"),
            args: SWEEP,
            expect: &["exp.yaml", "depths[0]", "depth 5"],
        },
        Case {
            name: "depth too small",
            setup: |ws| edit(ws, "depths: [4]", "depths: [2]"),
            args: SWEEP,
            expect: &["exp.yaml", "depths[0]"],
        },
        Case {
            name: "empty depth list",
            setup: |ws| edit(ws, "depths: [4]", "depths: []"),
            args: SWEEP,
            expect: &["exp.yaml", "depths"],
        },
        Case {
            name: "duplicate seed",
            setup: |ws| edit(ws, "seeds: [0]", "seeds: [0, 0]"),
            args: SWEEP,
            expect: &["exp.yaml", "seeds[1]"],
        },
        Case {
            name: "unknown family",
            setup: |ws| edit(ws, "[plain, residual]", "[plain, highway]"),
            args: SWEEP,
            expect: &["exp.yaml", "highway"],
        },
        Case {
            name: "unknown dataset",
            setup: |ws| edit(ws, "name: fashion-mnist", "name: imagenet"),
            args: SWEEP,
            expect: &["exp.yaml", "imagenet"],
        },
        Case {
            name: "negative lr",
            setup: |ws| edit(ws, "lr: 0.05", "lr: -0.05"),
            args: SWEEP,
            expect: &["exp.yaml", "train.lr"],
        },
        Case {
            name: "momentum of 1",
            setup: |ws| edit(ws, "momentum: 0.9", "momentum: 1.0"),
            args: SWEEP,
            expect: &["exp.yaml", "train.momentum"],
        },
        Case {
            name: "zero batch size",
            setup: |ws| edit(ws, "batch_size: 32", "batch_size: 0"),
            args: SWEEP,
            expect: &["exp.yaml", "train.batch_size"],
        },
        Case {
            name: "a width no memory holds",
            setup: |ws| edit(ws, "width: 16", "width: 4000000000"),
            args: SWEEP,
            expect: &["exp.yaml", "model.width", "the widest that fits is"],
        },
        Case {
            name: "a depth no memory holds",
            setup: |ws| edit(ws, "depths: [4]", "depths: [4, 2000000002]"),
            args: SWEEP,
            expect: &["exp.yaml", "depths[1]", "the deepest that fits is"],
        },
        Case {
            name: "an architecture no memory holds",
            setup: base,
            args: &["arch", "plain", "56", "--width", "100000000000"],
            expect: &["--width", "the widest that fits"],
        },
        Case {
            name: "batch size of one",
            setup: |ws| edit(ws, "batch_size: 32", "batch_size: 1"),
            args: SWEEP,
            expect: &["exp.yaml", "train.batch_size", "at least 2"],
        },
        Case {
            name: "bad experiment name",
            setup: |ws| edit(ws, "name: bad", "name: ../escape"),
            args: SWEEP,
            expect: &["exp.yaml", "name"],
        },
        Case {
            name: "unknown schedule",
            setup: |ws| edit(ws, "schedule: cosine", "schedule: linear"),
            args: SWEEP,
            expect: &["exp.yaml", "linear"],
        },
        Case {
            name: "missing experiment file",
            setup: |_| {},
            args: &["sweep", "nope.yaml"],
            expect: &["nope.yaml"],
        },
        Case {
            name: "experiment path is a directory",
            setup: |ws| std::fs::create_dir_all(ws.root.join("dir.yaml")).unwrap(),
            args: &["plan", "dir.yaml"],
            expect: &["dir.yaml"],
        },
        Case {
            name: "zero jobs",
            setup: base,
            args: &["sweep", "exp.yaml", "--jobs", "0"],
            expect: &["--jobs"],
        },
        Case {
            name: "bad --y-range",
            setup: base,
            args: &["report", "exp.yaml", "--y-range", "50,10"],
            expect: &["--y-range"],
        },
        Case {
            name: "bad --smoothing",
            setup: base,
            args: &["report", "exp.yaml", "--smoothing", "1.5"],
            expect: &["--smoothing"],
        },
        Case {
            name: "dataset directory is a file",
            setup: |ws| {
                base(ws);
                std::fs::remove_dir_all(ws.root.join("idx")).unwrap();
                std::fs::write(ws.root.join("idx"), b"not a directory").unwrap();
            },
            args: &["sweep", "exp.yaml", "--data-dir", "idx", "--offline"],
            expect: &["idx"],
        },
        Case {
            name: "truncated image file",
            setup: |ws| {
                base(ws);
                let path = ws.root.join("idx/train-images-idx3-ubyte");
                let bytes = std::fs::read(&path).unwrap();
                std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
            },
            args: SWEEP,
            expect: &["train-images-idx3-ubyte", "truncated"],
        },
        Case {
            name: "bad magic number",
            setup: |ws| {
                base(ws);
                write_idx(
                    ws,
                    "train-labels-idx1-ubyte",
                    b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00",
                );
            },
            args: SWEEP,
            expect: &["train-labels-idx1-ubyte", "magic"],
        },
        Case {
            name: "label count disagrees",
            setup: |ws| {
                base(ws);
                write_idx(
                    ws,
                    "t10k-labels-idx1-ubyte",
                    &data::encode_idx(&[3], &[0, 1, 2]),
                );
            },
            args: SWEEP,
            expect: &["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "labels"],
        },
        Case {
            name: "corrupt gzip",
            setup: |ws| {
                base(ws);
                std::fs::remove_file(ws.root.join("idx/train-images-idx3-ubyte")).unwrap();
                write_idx(ws, "train-images-idx3-ubyte.gz", b"\x1f\x8b\x08\x00garbage");
            },
            args: SWEEP,
            expect: &["train-images-idx3-ubyte.gz", "gzip"],
        },
        Case {
            name: "corrupt metrics parquet",
            setup: |ws| {
                let dir = trained(ws);
                std::fs::write(dir.join("metrics.parquet"), b"PAR1 broken").unwrap();
            },
            args: REPORT,
            expect: &["metrics.parquet", "the report shows everything else"],
        },
        Case {
            name: "corrupt checkpoint of an interrupted run",
            setup: |ws| {
                let dir = trained(ws);
                let meta = std::fs::read_to_string(dir.join("meta.json")).unwrap();
                std::fs::write(
                    dir.join("meta.json"),
                    meta.replace("\"done\"", "\"running\""),
                )
                .unwrap();
                std::fs::write(
                    dir.join("checkpoint.safetensors"),
                    b"\x08\x00\x00\x00\x00\x00\x00\x00{}",
                )
                .unwrap();
            },
            args: SWEEP,
            expect: &["checkpoint.safetensors", "delete it"],
        },
        Case {
            // Whether it finished cannot be told: it is left alone, whatever else is there.
            name: "unreadable meta of a finished run",
            setup: |ws| {
                let dir = trained(ws);
                std::fs::write(dir.join("meta.json"), b"{ not json").unwrap();
                std::fs::remove_file(dir.join("metrics.parquet")).unwrap();
                std::fs::write(dir.join("checkpoint.safetensors"), b"garbage").unwrap();
            },
            args: SWEEP,
            expect: &["meta.json", "not trained again", "delete it"],
        },
        Case {
            name: "conv depth that is not 6n + 2",
            setup: |ws| edit_cifar(ws, "depths: [8]", "depths: [8, 21]"),
            args: SWEEP_CIFAR,
            expect: &["exp.yaml", "depths[1]", "6n + 2"],
        },
        Case {
            name: "truncated CIFAR-10 batch",
            setup: |ws| {
                cifar(ws);
                let path = ws.root.join("cifar").join("data_batch_3.bin");
                let bytes = std::fs::read(&path).unwrap();
                std::fs::write(&path, &bytes[..bytes.len() - 7]).unwrap();
            },
            args: SWEEP_CIFAR,
            expect: &["data_batch_3.bin", "3073-byte records"],
        },
        Case {
            name: "CIFAR-10 label out of range",
            setup: |ws| {
                cifar(ws);
                let path = ws.root.join("cifar").join("test_batch.bin");
                let mut bytes = std::fs::read(&path).unwrap();
                bytes[0] = 10;
                std::fs::write(&path, bytes).unwrap();
            },
            args: SWEEP_CIFAR,
            expect: &["test_batch.bin", "label 10"],
        },
        Case {
            name: "CIFAR-10 directory without the batches",
            setup: cifar,
            args: &["sweep", "exp.yaml", "--data-dir", "idx", "--offline"],
            expect: &["--data-dir", "data_batch_1.bin"],
        },
        Case {
            name: "validation split larger than the training file",
            setup: |ws| edit_cifar(ws, "validation: 20", "validation: 120"),
            args: SWEEP_CIFAR,
            expect: &["dataset.validation", "120", "only 100 training images"],
        },
        Case {
            name: "CUDA on a build without it",
            setup: cifar,
            args: &[
                "sweep",
                "exp.yaml",
                "--data-dir",
                "cifar",
                "--offline",
                "--device",
                "cuda",
            ],
            expect: &["cuda:0", "--features cuda"],
        },
        Case {
            name: "unknown device",
            setup: cifar,
            args: &["sweep", "exp.yaml", "--device", "tpu"],
            expect: &["--device", "tpu"],
        },
        Case {
            name: "results directory is a file",
            setup: |ws| {
                base(ws);
                std::fs::write(ws.root.join("results"), b"a file").unwrap();
            },
            args: SWEEP,
            expect: &["results"],
        },
    ]
}

/// Runs that claim `done` must have every epoch's metrics.
fn assert_no_false_done(root: &Path) {
    let Ok(experiments) = std::fs::read_dir(root.join("results")) else {
        return;
    };
    for run in experiments
        .flatten()
        .flat_map(|e| std::fs::read_dir(e.path()).into_iter().flatten().flatten())
    {
        let meta = std::fs::read(run.path().join("meta.json")).ok();
        let done = meta
            .and_then(|m| serde_json::from_slice::<serde_json::Value>(&m).ok())
            .is_some_and(|m| m["status"] == "done");
        if done {
            let config: serde_json::Value =
                serde_json::from_slice(&std::fs::read(run.path().join("config.json")).unwrap())
                    .unwrap();
            let rows = results::read_metrics(&run.path().join("metrics.parquet"))
                .map(|r| r.len())
                .unwrap_or(0);
            // A run damaged on purpose by a case may not read back; it must not be one the
            // binary just marked done.
            if rows > 0 {
                assert_eq!(
                    rows as u64,
                    config["train"]["epochs"].as_u64().unwrap(),
                    "{:?}",
                    run.path()
                );
            }
        }
    }
}

#[test]
fn every_bad_input_fails_clearly() {
    // A CUDA build on a machine with a GPU can open it: that case is for CPU builds.
    let cases: Vec<Case> = cases()
        .into_iter()
        .filter(|c| !(cfg!(feature = "cuda") && c.name == "CUDA on a build without it"))
        .collect();
    assert!(cases.len() >= 30, "the corpus has {} cases", cases.len());
    for case in &cases {
        let ws = Workspace::new();
        (case.setup)(&ws);
        let out = ws.degrade(case.args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{}: exited 0\n{}",
            case.name,
            text(&out)
        );
        assert!(!err.contains("panicked"), "{}: panicked\n{err}", case.name);
        for needle in case.expect {
            assert!(
                err.contains(needle),
                "{}: {needle:?} missing from\n{err}",
                case.name
            );
        }
        assert!(
            err.lines().count() <= 20,
            "{}: a message should be a paragraph, not a dump\n{err}",
            case.name
        );
        assert_no_false_done(&ws.root);
    }
    eprintln!("{} bad-input cases", cases.len());
}
