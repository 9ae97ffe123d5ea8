//! Expansion of a validated experiment into the grid of runs it asks for.

use crate::error::ExperimentError;
use crate::run_config::{RunConfig, TrainConfig};
use crate::spec::ExperimentSpec;
use crate::validate::validate;
use std::path::{Path, PathBuf};

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
}

/// How the report draws the curves; the command line can override each.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReportSettings {
    pub log_y: bool,
    /// EMA weight in [0, 1); 0 = raw values.
    pub smoothing: f64,
    /// Error axis range in percent; None = fitted to the data.
    pub y_range: Option<(f64, f64)>,
}

impl ReportSettings {
    /// Why a smoothing weight is impossible, if it is (the YAML and the command line
    /// share this rule).
    pub fn smoothing_problem(weight: f64) -> Option<String> {
        (!(0.0..1.0).contains(&weight)).then(|| format!("must be in [0, 1), got {weight}"))
    }

    /// Why an error-axis range is impossible, if it is.
    pub fn y_range_problem(lo: f64, hi: f64, log_y: bool) -> Option<String> {
        let ok = lo.is_finite() && hi.is_finite() && lo >= 0.0 && lo < hi && (!log_y || lo > 0.0);
        (!ok).then(|| {
            format!("must be [low, high] in percent with 0 <= low < high (low > 0 with a log axis), got [{lo}, {hi}]")
        })
    }
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

    let t = &spec.train;
    let train = TrainConfig {
        epochs: t.epochs.value,
        batch_size: t.batch_size.value,
        lr: t.lr.value,
        momentum: t.momentum.value,
        weight_decay: t.weight_decay.value,
        schedule: t.schedule.value.clone(),
        max_loss: t.max_loss.as_ref().map(|m| m.value),
    };
    let mut runs = Vec::new();
    for family in &spec.families.value {
        for depth in &spec.depths.value {
            for seed in &spec.seeds.value {
                runs.push(RunConfig {
                    experiment: spec.name.value.clone(),
                    dataset: spec.dataset.name,
                    train_limit: spec.dataset.train_limit.as_ref().map(|l| l.value),
                    test_limit: spec.dataset.test_limit.as_ref().map(|l| l.value),
                    arch: spec.model.arch,
                    family: family.value,
                    depth: depth.value,
                    width: spec.model.width.value,
                    zero_init_residual: spec.model.zero_init_residual,
                    seed: seed.value,
                    train: train.clone(),
                });
            }
        }
    }
    Ok(Experiment {
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run_config::Family;

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
            "schedule:\n    step: {milestones: [2, 3], gamma: 0.1}",
        ))
        .unwrap();
        assert_eq!(
            e.runs[0].train.schedule,
            crate::Schedule::Step {
                milestones: vec![2, 3],
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
    fn unknown_enum_values_are_errors() {
        let msg = error_for("families: [plain, residual]", "families: [plain, highway]");
        assert!(msg.contains("highway"), "{msg}");
        let msg = error_for("name: fashion-mnist", "name: imagenet");
        assert!(msg.contains("imagenet"), "{msg}");
        let msg = error_for("schedule: cosine", "schedule: linear");
        assert!(msg.contains("linear"), "{msg}");
    }
}
