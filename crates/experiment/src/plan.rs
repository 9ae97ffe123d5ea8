//! Expansion of a validated experiment into the grid of runs it asks for.

use crate::device::ComputeDevice;
use crate::error::ExperimentError;
use crate::run_config::{Normalize, RunConfig, TrainConfig};
use crate::settings::{Diagnostics, ReportSettings, SlurmSettings};
use crate::spec::ExperimentSpec;
use crate::validate::validate;
use std::path::{Path, PathBuf};
use vocab::{Family, ShortcutOption};

/// A parsed, validated experiment and the runs it expands to.
#[derive(Debug, Clone)]
pub struct Experiment {
    /// The file it came from (for messages and provenance).
    pub path: PathBuf,
    pub name: String,
    /// The YAML text as written, kept for the report's provenance section.
    pub source: String,
    /// `dataset.dir`, if the file gives one.
    pub data_dir: Option<PathBuf>,
    /// One entry per (family, depth, seed), families outermost, in the file's order.
    pub runs: Vec<RunConfig>,
    /// The `report:` section (defaults where absent).
    pub report: ReportSettings,
    /// Keep each finished run's final weights.
    pub keep_final_weights: bool,
    /// Where to train, unless the command line says otherwise.
    pub device: ComputeDevice,
    /// The `slurm:` section (each field can be overridden on the command line).
    pub slurm: SlurmSettings,
    /// What the trainer measures besides the metrics (the `diagnostics:` section).
    pub diagnostics: Diagnostics,
    /// Why a run of this experiment would not fit in this machine's memory (the field,
    /// its line and the largest value that fits), if one would not. Only training on
    /// the CPU here needs the memory: `sweep` and `run` check it, while `plan` and
    /// `report` (on a smaller machine, say) and a GPU do not.
    pub memory_problem: Option<String>,
}

pub fn load_experiment(path: &Path) -> Result<Experiment, ExperimentError> {
    let text = std::fs::read_to_string(path).map_err(|source| ExperimentError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_experiment(path, &text)
}

/// Parses and validates `text`; `path` is only used to name the file in errors.
pub fn parse_experiment(path: &Path, text: &str) -> Result<Experiment, ExperimentError> {
    let spec: ExperimentSpec =
        serde_saphyr::from_str(text).map_err(|e| ExperimentError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    validate(path, &spec)?;

    let t = &spec.train.value;
    let train = TrainConfig {
        epochs: t.epochs.as_ref().map(|e| e.value),
        iterations: t.iterations.as_ref().map(|i| i.value),
        warmup: None,
        batch_size: t.batch_size.value,
        lr: t.lr.value,
        momentum: t.momentum.value,
        weight_decay: t.weight_decay.value,
        schedule: t.schedule.value.clone(),
        max_loss: t.max_loss.as_ref().map(|m| m.value),
    };
    let excluded: Vec<&str> = spec
        .exclude
        .as_ref()
        .map(|e| e.value.iter().map(|r| r.value.as_str()).collect())
        .unwrap_or_default();
    let mut runs = Vec::new();
    for family in &spec.families.value {
        for depth in &spec.depths.value {
            if excluded.contains(&format!("{}-{}", family.value, depth.value).as_str()) {
                continue;
            }
            // A warm-up limited to some depths is part of those runs' configs only.
            let warmup = t.warmup.as_ref().and_then(|w| {
                let applies = w
                    .value
                    .depths
                    .as_ref()
                    .is_none_or(|ds| ds.contains(&depth.value));
                applies.then(|| w.value.warmup())
            });
            let train = TrainConfig {
                warmup,
                ..train.clone()
            };
            for seed in &spec.seeds.value {
                runs.push(RunConfig {
                    experiment: spec.name.value.clone(),
                    dataset: spec.dataset.name,
                    train_limit: spec.dataset.train_limit.as_ref().map(|l| l.value),
                    test_limit: spec.dataset.test_limit.as_ref().map(|l| l.value),
                    validation: spec.dataset.validation.as_ref().map(|v| v.value),
                    // Options that change nothing are left out, so that writing the
                    // default explicitly does not make new runs.
                    normalize: spec.dataset.normalize.filter(|n| *n != Normalize::Global),
                    augment: spec
                        .dataset
                        .augment
                        .as_ref()
                        .map(|a| a.value)
                        .filter(|a| a.pad > 0 || a.flip),
                    arch: spec.model.arch,
                    family: family.value,
                    depth: depth.value,
                    width: spec.model.width.value,
                    shortcut: shortcut(&spec, family.value),
                    zero_init_residual: spec.model.zero_init_residual,
                    seed: seed.value,
                    train: train.clone(),
                });
            }
        }
    }
    Ok(Experiment {
        memory_problem: crate::validate::memory_problem(path, &spec),
        path: path.to_path_buf(),
        name: spec.name.value.clone(),
        source: text.to_string(),
        data_dir: spec.dataset.dir.clone(),
        runs,
        report: spec
            .report
            .as_ref()
            .map(|r| ReportSettings {
                log_y: r.log_y,
                smoothing: r.smoothing.as_ref().map_or(0.0, |s| s.value),
                y_range: r.y_range.as_ref().map(|v| (v.value[0], v.value[1])),
            })
            .unwrap_or_default(),
        keep_final_weights: spec.keep_final_weights,
        diagnostics: spec.diagnostics.clone().unwrap_or_default(),
        slurm: spec
            .slurm
            .as_ref()
            .map(|s| s.value.clone())
            .unwrap_or_default(),
        device: match &spec.device {
            // Checked by `validate`.
            Some(d) => d.value.parse().unwrap_or_default(),
            None => ComputeDevice::Cpu,
        },
    })
}

/// A residual CIFAR-style net's shortcut option, the paper's A unless the file says
/// otherwise. None for plain nets (they have no shortcut: switching options must not
/// retrain them) and for MLPs.
fn shortcut(spec: &ExperimentSpec, family: Family) -> Option<ShortcutOption> {
    let asked = spec.model.shortcut.as_ref().map(|s| s.value);
    ShortcutOption::for_net(spec.model.arch, family, asked)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
name: demo
dataset:
  name: fashion-mnist
model:
  arch: mlp
  width: 16
  zero_init_residual: true
families: [plain, residual]
depths: [4, 8]
seeds: [0, 1, 2]
train:
  epochs: 3
  batch_size: 32
  lr: 0.1
  momentum: 0.9
  weight_decay: 0.0001
  schedule: cosine
";

    fn parse(text: &str) -> Result<Experiment, ExperimentError> {
        parse_experiment(Path::new("exp.yaml"), text)
    }

    /// The error's display for a copy of GOOD with `from` replaced by `to`.
    fn error_for(from: &str, to: &str) -> String {
        assert!(GOOD.contains(from), "test edits a line that exists: {from}");
        parse(&GOOD.replace(from, to)).unwrap_err().to_string()
    }

    #[test]
    fn expands_to_the_full_grid_in_order() {
        let e = parse(GOOD).unwrap();
        assert_eq!(e.name, "demo");
        assert_eq!(e.runs.len(), 2 * 2 * 3);
        assert_eq!(e.runs[0].family, Family::Plain);
        assert_eq!((e.runs[0].depth, e.runs[0].seed), (4, 0));
        assert_eq!((e.runs[5].depth, e.runs[5].seed), (8, 2));
        assert_eq!(e.runs[6].family, Family::Residual);
        let hashes: std::collections::HashSet<_> = e.runs.iter().map(|r| r.hash()).collect();
        assert_eq!(hashes.len(), e.runs.len());
    }

    #[test]
    fn adding_a_depth_keeps_existing_run_hashes() {
        let before = parse(GOOD).unwrap();
        let after = parse(&GOOD.replace("depths: [4, 8]", "depths: [4, 8, 16]")).unwrap();
        for run in &before.runs {
            assert!(after.runs.iter().any(|r| r.hash() == run.hash()));
        }
        assert_eq!(after.runs.len(), before.runs.len() + 6);
    }

    #[test]
    fn report_section_is_optional_and_parsed() {
        assert_eq!(parse(GOOD).unwrap().report, ReportSettings::default());
        let e = parse(&GOOD.replace(
            "seeds: [0, 1, 2]",
            "seeds: [0, 1, 2]\nreport:\n  log_y: true\n  smoothing: 0.6\n  y_range: [1, 100]",
        ))
        .unwrap();
        assert_eq!(
            e.report,
            ReportSettings {
                log_y: true,
                smoothing: 0.6,
                y_range: Some((1.0, 100.0))
            }
        );
        // Report settings never change which runs exist.
        assert_eq!(e.runs[0].hash(), parse(GOOD).unwrap().runs[0].hash());
    }

    #[test]
    fn optional_fields_leave_existing_hashes_alone() {
        let plain = parse(GOOD).unwrap();
        let with = parse(&GOOD.replace("lr: 0.1", "lr: 0.1\n  max_loss: 50")).unwrap();
        assert_eq!(with.runs[0].train.max_loss, Some(50.0));
        assert_ne!(with.runs[0].hash(), plain.runs[0].hash());
        let kept = parse(&format!("{GOOD}keep_final_weights: true\n")).unwrap();
        assert!(kept.keep_final_weights && !plain.keep_final_weights);
        assert_eq!(kept.runs[0].hash(), plain.runs[0].hash());
        // The hash of a config without max_loss is what it was before the field existed.
        assert!(!serde_json::to_string(&plain.runs[0])
            .unwrap()
            .contains("max_loss"));
    }

    #[test]
    fn step_schedule_parses() {
        let e = parse(&GOOD.replace(
            "schedule: cosine",
            "schedule:\n    step: {milestones: [1, 2], gamma: 0.1}",
        ))
        .unwrap();
        assert_eq!(
            e.runs[0].train.schedule,
            crate::Schedule::Step {
                milestones: vec![1, 2],
                gamma: 0.1
            }
        );
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let msg = error_for("  lr: 0.1\n", "  lr: 0.1\n  learning_rate: 0.1\n");
        assert!(msg.starts_with("exp.yaml"), "{msg}");
        assert!(msg.contains("learning_rate"), "{msg}");
        assert!(msg.contains("line 15"), "{msg}");
    }

    #[test]
    fn syntax_error_names_file_and_line() {
        let msg = error_for("depths: [4, 8]", "depths: [4, 8");
        assert!(msg.starts_with("exp.yaml"), "{msg}");
        assert!(msg.contains("line"), "{msg}");
    }

    #[test]
    fn wrong_type_is_an_error() {
        let msg = error_for("width: 16", "width: wide");
        assert!(msg.contains("exp.yaml") && msg.contains("line 6"), "{msg}");
        let msg = error_for("depths: [4, 8]", "depths: [4, -8]");
        assert!(msg.contains("line 9"), "{msg}");
    }

    #[test]
    fn missing_field_is_an_error() {
        let msg = error_for("  epochs: 3\n", "");
        assert!(msg.contains("epochs"), "{msg}");
    }

    #[test]
    fn impossible_residual_depth_names_line_and_field() {
        let msg = error_for("depths: [4, 8]", "depths: [4, 7]");
        assert!(msg.starts_with("exp.yaml:9:"), "{msg}");
        assert!(msg.contains("`depths[1]`"), "{msg}");
        assert!(msg.contains("depth 7"), "{msg}");
    }

    #[test]
    fn plain_only_sweeps_reject_odd_and_tiny_depths_too() {
        let plain = GOOD.replace("[plain, residual]", "[plain]");
        for bad in ["[4, 5]", "[2]"] {
            let msg = parse(&plain.replace("[4, 8]", bad))
                .unwrap_err()
                .to_string();
            assert!(msg.contains("depth = 2 + 2 * blocks"), "{msg}");
        }
        assert!(parse(&plain.replace("[4, 8]", "[4, 6]")).is_ok());
    }

    #[test]
    fn every_validation_error_names_its_field() {
        let cases = [
            ("name: demo", "name: ../evil", "`name`"),
            ("name: demo", "name: \"\"", "`name`"),
            ("families: [plain, residual]", "families: []", "`families`"),
            (
                "families: [plain, residual]",
                "families: [plain, plain]",
                "`families[1]`",
            ),
            ("depths: [4, 8]", "depths: []", "`depths`"),
            ("depths: [4, 8]", "depths: [8, 8]", "`depths[1]`"),
            ("seeds: [0, 1, 2]", "seeds: []", "`seeds`"),
            ("seeds: [0, 1, 2]", "seeds: [0, 0]", "`seeds[1]`"),
            ("width: 16", "width: 0", "`model.width`"),
            ("epochs: 3", "epochs: 0", "`train.epochs`"),
            ("batch_size: 32", "batch_size: 0", "`train.batch_size`"),
            ("batch_size: 32", "batch_size: 1", "`train.batch_size`"),
            ("lr: 0.1", "lr: -0.1", "`train.lr`"),
            ("lr: 0.1", "lr: 0", "`train.lr`"),
            ("lr: 0.1", "lr: .nan", "`train.lr`"),
            ("momentum: 0.9", "momentum: 1.5", "`train.momentum`"),
            (
                "weight_decay: 0.0001",
                "weight_decay: -1",
                "`train.weight_decay`",
            ),
            (
                "schedule: cosine",
                "schedule:\n    step: {milestones: [5], gamma: 0.1}",
                "`train.schedule.step.milestones`",
            ),
            (
                "schedule: cosine",
                "schedule:\n    step: {milestones: [3], gamma: 0.1}",
                "`train.schedule.step.milestones`",
            ),
            (
                "schedule: cosine",
                "schedule:\n    step: {milestones: [3, 2], gamma: 0.1}",
                "`train.schedule.step.milestones`",
            ),
            (
                "schedule: cosine",
                "schedule:\n    step: {milestones: [2], gamma: 0}",
                "`train.schedule.step.gamma`",
            ),
            (
                "  name: fashion-mnist\n",
                "  name: fashion-mnist\n  train_limit: 0\n",
                "`dataset.train_limit`",
            ),
            ("lr: 0.1", "lr: 0.1\n  max_loss: 0", "`train.max_loss`"),
            ("lr: 0.1", "lr: 0.1\n  max_loss: .inf", "`train.max_loss`"),
            (
                "seeds: [0, 1, 2]",
                "seeds: [0, 1, 2]\nreport:\n  smoothing: 1.0",
                "`report.smoothing`",
            ),
            (
                "seeds: [0, 1, 2]",
                "seeds: [0, 1, 2]\nreport:\n  y_range: [50, 10]",
                "`report.y_range`",
            ),
            (
                "seeds: [0, 1, 2]",
                "seeds: [0, 1, 2]\nreport:\n  log_y: true\n  y_range: [0, 10]",
                "`report.y_range`",
            ),
        ];
        for (from, to, field) in cases {
            let msg = error_for(from, to);
            assert!(msg.starts_with("exp.yaml:"), "{to}: {msg}");
            assert!(msg.contains(field), "{to}: expected {field} in {msg}");
        }
    }

    #[test]
    fn the_paper_experiment_validates_and_plans_the_papers_runs() {
        let text = include_str!("../../../experiments/cifar10-paper.yaml");
        let e = parse(text).unwrap();
        let runs: Vec<(Family, usize)> = e
            .runs
            .iter()
            .filter(|r| r.seed == 0)
            .map(|r| (r.family, r.depth))
            .collect();
        use Family::{Plain, Residual};
        assert_eq!(
            runs,
            [
                (Plain, 20),
                (Plain, 32),
                (Plain, 44),
                (Plain, 56),
                (Residual, 20),
                (Residual, 32),
                (Residual, 44),
                (Residual, 56),
                (Residual, 110)
            ]
        );
        assert_eq!(e.runs.len(), 27);
        for r in &e.runs {
            assert_eq!(r.dataset, vocab::DatasetName::Cifar10);
            assert_eq!(r.validation, Some(5000));
            assert_eq!(r.normalize, Some(crate::Normalize::PerPixelMean));
            assert_eq!(r.augment, Some(crate::Augment { pad: 4, flip: true }));
            assert_eq!(r.train.iterations, Some(64_000));
            assert_eq!(r.train.epochs, None);
            // 45000 images, batch 128: 352 iterations per epoch, 182 epochs started.
            assert_eq!(r.planned_epochs(), 182);
            assert!((r.lr_at(47_999, 352) - 0.01).abs() < 1e-12);
            assert_eq!(r.train.warmup.is_some(), r.depth == 110, "{}", r.label());
            let option = (r.family == Residual).then_some(ShortcutOption::A);
            assert_eq!(r.shortcut, option);
        }
    }

    #[test]
    fn zero_init_residual_is_optional_and_off_by_default() {
        let without = parse(&CONV.replace("  zero_init_residual: false\n", "")).unwrap();
        let with_false = parse(CONV).unwrap();
        assert!(without.runs.iter().all(|r| !r.zero_init_residual));
        let hashes = |e: &Experiment| e.runs.iter().map(|r| r.hash()).collect::<Vec<_>>();
        assert_eq!(hashes(&without), hashes(&with_false));
    }

    #[test]
    fn the_conv_experiment_validates() {
        let e = parse(include_str!("../../../experiments/fashion-conv.yaml")).unwrap();
        assert!(e.runs.iter().all(|r| r.arch == vocab::ModelArch::Cifar));
        assert_eq!(e.device, ComputeDevice::Cpu);
    }

    const CONV: &str = "\
name: conv
dataset:
  name: cifar10
model:
  arch: cifar
  width: 16
  zero_init_residual: false
families: [plain, residual]
depths: [20, 56]
seeds: [0]
train:
  iterations: 1000
  batch_size: 128
  lr: 0.1
  momentum: 0.9
  weight_decay: 0.0001
  schedule:
    step: {milestones: [500, 750], gamma: 0.1}
";

    fn conv_error(from: &str, to: &str) -> String {
        assert!(CONV.contains(from), "test edits a line that exists: {from}");
        parse(&CONV.replace(from, to)).unwrap_err().to_string()
    }

    #[test]
    fn conv_options_are_checked_with_their_field_named() {
        let cases = [
            ("depths: [20, 56]", "depths: [20, 21]", "`depths[1]`", "6n + 2"),
            ("depths: [20, 56]", "depths: [2]", "`depths[0]`", "6n + 2"),
            ("  iterations: 1000\n", "", "`train`", "train.epochs or train.iterations"),
            ("  iterations: 1000\n", "  iterations: 1000\n  epochs: 3\n", "`train.iterations`", "not both"),
            ("  iterations: 1000\n", "  iterations: 0\n", "`train.iterations`", "at least 1"),
            ("[500, 750]", "[500, 1000]", "`train.schedule.step.milestones`", "iterations between 1 and 999"),
            ("  name: cifar10\n", "  name: cifar10\n  validation: 50000\n", "`dataset.validation`", "leaving none"),
            ("  name: cifar10\n", "  name: cifar10\n  validation: 0\n", "`dataset.validation`", "at least 1"),
            ("  name: cifar10\n", "  name: cifar10\n  normalize: per-image\n", "normalize", "per-image"),
            ("  name: cifar10\n", "  name: cifar10\n  augment: {pad: 4, rotate: true}\n", "", "rotate"),
            ("  width: 16\n", "  width: 16\n  shortcut: c\n", "", "`c`"),
            ("seeds: [0]", "seeds: [0]\ndevice: gpu", "`device`", "cpu, cuda or cuda:N"),
            ("seeds: [0]", "seeds: [0]\nexclude: [plain-110]", "`exclude[0]`", "not a run of this grid"),
            ("seeds: [0]", "seeds: [0]\nexclude: [plain56]", "`exclude[0]`", "family-depth"),
            (
                "seeds: [0]",
                "seeds: [0]\nexclude: [plain-20, plain-56, residual-20, residual-56]",
                "`exclude`",
                "leaves no run",
            ),
            (
                "  weight_decay: 0.0001\n",
                "  weight_decay: 0.0001\n  warmup: {lr: 0.01}\n",
                "`train.warmup`",
                "exactly one end",
            ),
            (
                "  weight_decay: 0.0001\n",
                "  weight_decay: 0.0001\n  warmup: {lr: 0.01, until_train_error: 0.8, iterations: 400}\n",
                "`train.warmup`",
                "exactly one end",
            ),
            (
                "  weight_decay: 0.0001\n",
                "  weight_decay: 0.0001\n  warmup: {lr: -1, iterations: 400}\n",
                "`train.warmup.lr`",
                "positive",
            ),
            (
                "  weight_decay: 0.0001\n",
                "  weight_decay: 0.0001\n  warmup: {lr: 0.01, until_train_error: 80}\n",
                "`train.warmup.until_train_error`",
                "(0, 1]",
            ),
            (
                "  weight_decay: 0.0001\n",
                "  weight_decay: 0.0001\n  warmup: {lr: 0.01, iterations: 4, depths: [110]}\n",
                "`train.warmup.depths`",
                "depth 110 is not in `depths`",
            ),
        ];
        for (from, to, field, why) in cases {
            let msg = conv_error(from, to);
            assert!(msg.starts_with("exp.yaml"), "{to}: {msg}");
            assert!(
                msg.contains(field) && msg.contains(why),
                "{to}: expected {field} and {why:?} in {msg}"
            );
        }
        // The MLP has no shortcut option.
        let msg = error_for("  width: 16\n", "  width: 16\n  shortcut: a\n");
        assert!(msg.contains("`model.shortcut`"), "{msg}");
    }

    #[test]
    fn shortcut_options_and_warmup_depths_reach_only_the_runs_they_concern() {
        let a = parse(CONV).unwrap();
        let b = parse(&CONV.replace("  width: 16\n", "  width: 16\n  shortcut: b\n")).unwrap();
        for (ra, rb) in a.runs.iter().zip(&b.runs) {
            // Plain nets have no shortcut: switching the option does not retrain them.
            assert_eq!(
                ra.hash() == rb.hash(),
                ra.family == Family::Plain,
                "{}",
                ra.label()
            );
        }
        let warm = parse(&CONV.replace(
            "  weight_decay: 0.0001\n",
            "  weight_decay: 0.0001\n  warmup: {lr: 0.01, iterations: 40, depths: [56]}\n",
        ))
        .unwrap();
        for (r, w) in a.runs.iter().zip(&warm.runs) {
            assert_eq!(r.hash() == w.hash(), r.depth != 56, "{}", r.label());
        }
        let explicit_defaults = parse(&CONV.replace(
            "  name: cifar10\n",
            "  name: cifar10\n  normalize: global\n  augment: {pad: 0, flip: false}\n",
        ))
        .unwrap();
        assert_eq!(explicit_defaults.runs[0].hash(), a.runs[0].hash());
        let on_gpu = parse(&format!("{CONV}device: cuda:1\n")).unwrap();
        assert_eq!(on_gpu.device, ComputeDevice::Cuda(1));
        assert_eq!(
            on_gpu.runs[0].hash(),
            a.runs[0].hash(),
            "the device is not in the hash"
        );
    }

    #[test]
    fn slurm_settings_are_optional_checked_and_not_hashed() {
        let with = parse(&format!(
            "{GOOD}slurm:\n  time: \"02:00:00\"\n  cpus: 2\n  mem: 8G\n  partition: gpu\n  max_parallel: 10\n"
        ))
        .unwrap();
        assert_eq!(with.slurm.time.as_deref(), Some("02:00:00"));
        assert_eq!(with.slurm.max_parallel, Some(10));
        assert_eq!(with.runs[0].hash(), parse(GOOD).unwrap().runs[0].hash());
        for (bad, field) in [
            ("time: soon", "time"),
            ("cpus: 0", "cpus"),
            ("mem: lots", "mem"),
            ("partition: \"a b\"", "partition"),
            ("max_parallel: 0", "max_parallel"),
        ] {
            let msg = parse(&format!("{GOOD}slurm:\n  {bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(
                msg.contains("`slurm`") && msg.contains(field),
                "{bad}: {msg}"
            );
        }
        let msg = parse(&format!("{GOOD}slurm:\n  nodes: 4\n"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("nodes"), "{msg}");
        for good in ["30", "1:00:00", "2-00:00:00", "00:10:00"] {
            let s = SlurmSettings {
                time: Some(good.into()),
                ..Default::default()
            };
            assert_eq!(s.problem(), None, "{good}");
        }
    }

    #[test]
    fn diagnostics_default_on_can_be_switched_off_and_are_not_hashed() {
        assert_eq!(parse(GOOD).unwrap().diagnostics, Diagnostics::default());
        let off = parse(&format!(
            "{GOOD}diagnostics:\n  gradient_every: 0\n  responses: false\n  lesion: false\n"
        ))
        .unwrap();
        assert_eq!(off.diagnostics.gradient_every, 0);
        assert!(!off.diagnostics.responses && !off.diagnostics.lesion);
        assert_eq!(off.runs[0].hash(), parse(GOOD).unwrap().runs[0].hash());
        let msg = parse(&format!("{GOOD}diagnostics:\n  gradients: 5\n"))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("gradients"), "{msg}");
    }

    #[test]
    fn unknown_enum_values_are_errors() {
        let msg = error_for("families: [plain, residual]", "families: [plain, highway]");
        assert!(msg.contains("highway"), "{msg}");
        let msg = error_for("name: fashion-mnist", "name: imagenet");
        assert!(msg.contains("imagenet"), "{msg}");
        let msg = error_for("schedule: cosine", "schedule: linear");
        assert!(msg.contains("linear"), "{msg}");
    }
}
