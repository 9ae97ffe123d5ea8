//! Checks that the parser cannot make: values that are well-typed but impossible.

use crate::device::ComputeDevice;
use crate::error::ExperimentError;
use crate::run_config::Schedule;
use crate::settings::ReportSettings;
use crate::spec::ExperimentSpec;
use serde_saphyr::Spanned;
use std::collections::HashSet;
use std::hash::Hash;
use std::path::Path;
use vocab::ModelArch;

/// Why `depth` is impossible for a net of the given architecture, or None if it is fine.
pub fn depth_problem(arch: ModelArch, depth: usize) -> Option<String> {
    arch.units(depth).err()
}

/// The error for `field` at `at` in the file `path`, as a failed check.
fn invalid(
    path: &Path,
    at: &serde_saphyr::Location,
    field: &str,
    message: String,
) -> Result<(), ExperimentError> {
    Err(ExperimentError::Invalid {
        path: path.to_path_buf(),
        line: at.line(),
        column: at.column(),
        field: field.to_string(),
        message,
    })
}

pub(crate) fn validate(path: &Path, spec: &ExperimentSpec) -> Result<(), ExperimentError> {
    let fail = |at: &serde_saphyr::Location, field: &str, message: String| {
        invalid(path, at, field, message)
    };

    let name = &spec.name;
    if name.value.is_empty()
        || !name
            .value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        || name.value.starts_with('.')
    {
        return fail(
            &name.referenced,
            "name",
            format!(
                "{:?} cannot name a results directory: use letters, digits, '-', '_' and '.'",
                name.value
            ),
        );
    }

    non_empty_unique(&spec.families, "families", &fail)?;
    non_empty_unique(&spec.depths, "depths", &fail)?;
    non_empty_unique(&spec.seeds, "seeds", &fail)?;
    for (i, depth) in spec.depths.value.iter().enumerate() {
        if let Some(why) = depth_problem(spec.model.arch, depth.value) {
            return fail(&depth.referenced, &format!("depths[{i}]"), why);
        }
    }

    if let Some(exclude) = &spec.exclude {
        let grid: HashSet<String> = spec
            .families
            .value
            .iter()
            .flat_map(|f| {
                spec.depths
                    .value
                    .iter()
                    .map(move |d| format!("{}-{}", f.value, d.value))
            })
            .collect();
        for (i, run) in exclude.value.iter().enumerate() {
            if !grid.contains(&run.value) {
                return fail(
                    &run.referenced,
                    &format!("exclude[{i}]"),
                    format!(
                        "{:?} is not a run of this grid: write family-depth, e.g. plain-{}",
                        run.value,
                        spec.depths.value.last().map_or(0, |d| d.value)
                    ),
                );
            }
        }
        let excluded: HashSet<&String> = exclude.value.iter().map(|r| &r.value).collect();
        if excluded.len() == grid.len() {
            return fail(
                &exclude.referenced,
                "exclude",
                "leaves no run of the grid to train: remove an entry, or add a family or depth"
                    .into(),
            );
        }
    }

    let positive = |v: &Spanned<usize>, field: &str| {
        if v.value == 0 {
            fail(&v.referenced, field, "must be at least 1".into())
        } else {
            Ok(())
        }
    };
    positive(&spec.model.width, "model.width")?;
    let t = &spec.train.value;
    match (&t.epochs, &t.iterations) {
        (Some(_), Some(i)) => {
            return fail(
                &i.referenced,
                "train.iterations",
                "give the length once: train.epochs or train.iterations, not both".into(),
            )
        }
        (None, None) => {
            return fail(
                &spec.train.referenced,
                "train",
                "missing the length: add train.epochs or train.iterations".into(),
            )
        }
        (Some(n), None) => positive(n, "train.epochs")?,
        (None, Some(n)) => positive(n, "train.iterations")?,
    }
    if t.batch_size.value < crate::run_config::MIN_BATCH {
        return fail(
            &t.batch_size.referenced,
            "train.batch_size",
            format!(
                "{} trains nothing: batch norm needs at least {} examples in a batch",
                t.batch_size.value,
                crate::run_config::MIN_BATCH
            ),
        );
    }
    for (limit, field) in [
        (&spec.dataset.train_limit, "dataset.train_limit"),
        (&spec.dataset.test_limit, "dataset.test_limit"),
        (&spec.dataset.validation, "dataset.validation"),
    ] {
        if let Some(limit) = limit {
            positive(limit, field)?;
        }
    }
    if let Some(v) = &spec.dataset.validation {
        let size = spec.dataset.name.train_size();
        if v.value >= size {
            return fail(
                &v.referenced,
                "dataset.validation",
                format!(
                    "holds out {} of the {size} training images of {}, leaving none to train on",
                    v.value, spec.dataset.name
                ),
            );
        }
    }
    if let Some(shortcut) = &spec.model.shortcut {
        if spec.model.arch != ModelArch::Cifar {
            return fail(
                &shortcut.referenced,
                "model.shortcut",
                "only CIFAR-style nets (arch: cifar) change shape between blocks; an MLP's \
                 shortcuts are always the identity"
                    .into(),
            );
        }
    }
    if let Some(slurm) = &spec.slurm {
        if let Some(why) = slurm.value.problem() {
            return fail(&slurm.referenced, "slurm", why);
        }
    }
    if let Some(device) = &spec.device {
        if let Err(why) = device.value.parse::<ComputeDevice>() {
            return fail(&device.referenced, "device", why);
        }
    }
    if let Some(w) = &t.warmup {
        let at = &w.referenced;
        if let Some(depths) = &w.value.depths {
            let known: HashSet<usize> = spec.depths.value.iter().map(|d| d.value).collect();
            if let Some(d) = depths.iter().find(|d| !known.contains(d)) {
                return fail(
                    at,
                    "train.warmup.depths",
                    format!("depth {d} is not in `depths`"),
                );
            }
        }
        let w = &w.value.warmup();
        if !(w.lr.is_finite() && w.lr > 0.0) {
            return fail(
                at,
                "train.warmup.lr",
                format!("must be a positive number, got {}", w.lr),
            );
        }
        match (w.until_train_error, w.iterations) {
            (Some(e), None) if !(e > 0.0 && e <= 1.0) => {
                return fail(
                    at,
                    "train.warmup.until_train_error",
                    format!("must be a fraction in (0, 1], got {e}"),
                )
            }
            (None, Some(0)) => {
                return fail(at, "train.warmup.iterations", "must be at least 1".into())
            }
            (Some(_), None) | (None, Some(_)) => {}
            _ => {
                return fail(
                    at,
                    "train.warmup",
                    "give exactly one end: until_train_error (the paper: 0.8) or iterations".into(),
                )
            }
        }
    }

    if !(t.lr.value.is_finite() && t.lr.value > 0.0) {
        return fail(
            &t.lr.referenced,
            "train.lr",
            format!("must be a positive number, got {}", t.lr.value),
        );
    }
    if !(0.0..1.0).contains(&t.momentum.value) {
        return fail(
            &t.momentum.referenced,
            "train.momentum",
            format!("must be in [0, 1), got {}", t.momentum.value),
        );
    }
    if !(t.weight_decay.value.is_finite() && t.weight_decay.value >= 0.0) {
        return fail(
            &t.weight_decay.referenced,
            "train.weight_decay",
            format!("must be zero or positive, got {}", t.weight_decay.value),
        );
    }
    if let Some(m) = &t.max_loss {
        if !(m.value.is_finite() && m.value > 0.0) {
            return fail(
                &m.referenced,
                "train.max_loss",
                format!("must be a positive number, got {}", m.value),
            );
        }
    }
    if let Some(report) = &spec.report {
        if let Some(s) = &report.smoothing {
            if let Some(why) = ReportSettings::smoothing_problem(s.value) {
                return fail(&s.referenced, "report.smoothing", why);
            }
        }
        if let Some(range) = &report.y_range {
            let why = match range.value.as_slice() {
                [lo, hi] => ReportSettings::y_range_problem(*lo, *hi, report.log_y),
                other => Some(format!("must be [low, high] in percent, got {other:?}")),
            };
            if let Some(why) = why {
                return fail(&range.referenced, "report.y_range", why);
            }
        }
    }
    if let Schedule::Step { milestones, gamma } = &t.schedule.value {
        let at = &t.schedule.referenced;
        if !(*gamma > 0.0 && *gamma <= 1.0) {
            return fail(
                at,
                "train.schedule.step.gamma",
                format!("must be in (0, 1], got {gamma}"),
            );
        }
        // A milestone counts the epochs or steps done before the drop: one at 0 would be
        // a lower lr, one at the run's length would change nothing.
        let (unit, lowest, highest) = match (&t.epochs, &t.iterations) {
            (_, Some(i)) => ("iterations", 1, i.value.saturating_sub(1)),
            (Some(e), None) => ("epochs", 1, e.value.saturating_sub(1)),
            (None, None) => unreachable!("checked above"),
        };
        let increasing = milestones.windows(2).all(|w| w[0] < w[1]);
        let in_range = milestones.iter().all(|&m| m >= lowest && m <= highest);
        if milestones.is_empty() || !increasing || !in_range {
            return fail(
                at,
                "train.schedule.step.milestones",
                format!(
                    "must be a non-empty, increasing list of {unit} between {lowest} and \
                     {highest} (milestones count in the unit of the run's length, \
                     train.{unit}), got {milestones:?}"
                ),
            );
        }
    }
    Ok(())
}

fn non_empty_unique<T, F>(
    list: &Spanned<Vec<Spanned<T>>>,
    field: &str,
    fail: &F,
) -> Result<(), ExperimentError>
where
    T: Eq + Hash + std::fmt::Debug,
    F: Fn(&serde_saphyr::Location, &str, String) -> Result<(), ExperimentError>,
{
    if list.value.is_empty() {
        return fail(
            &list.referenced,
            field,
            "must list at least one value".into(),
        );
    }
    let mut seen = HashSet::new();
    for (i, item) in list.value.iter().enumerate() {
        if !seen.insert(&item.value) {
            return fail(
                &item.referenced,
                &format!("{field}[{i}]"),
                format!("{:?} is listed twice", item.value),
            );
        }
    }
    Ok(())
}

/// Why a run would not fit in this machine's memory, as an error's text naming the file,
/// line and field, if one would not.
pub(crate) fn memory_problem(path: &Path, spec: &ExperimentSpec) -> Option<String> {
    let fail = |at: &serde_saphyr::Location, field: &str, message: String| {
        invalid(path, at, field, message)
    };
    memory_limits(spec, &fail).err().map(|e| e.to_string())
}

/// The width and every depth must leave a run that fits in this machine's memory: the
/// first that does not is named, with the largest value that would fit.
fn memory_limits(
    spec: &ExperimentSpec,
    fail: &impl Fn(&serde_saphyr::Location, &str, String) -> Result<(), ExperimentError>,
) -> Result<(), ExperimentError> {
    use crate::memory::{describe_bytes, host_memory_bytes, largest_fitting, NetShape};
    let Some(memory) = host_memory_bytes() else {
        return Ok(());
    };
    let arch = spec.model.arch;
    let batch_size = spec.train.value.batch_size.value;
    let shape = |depth: usize, width: usize| NetShape {
        arch,
        depth,
        width,
        batch_size,
        image: spec.dataset.name.image_shape(),
    };
    let width = &spec.model.width;
    for (i, depth) in spec.depths.value.iter().enumerate() {
        let needs = shape(depth.value, width.value);
        if needs.fits(memory) {
            continue;
        }
        let what = format!(
            "depth {} at width {} needs about {} to train at batch size {batch_size}; this machine has {}",
            depth.value,
            width.value,
            describe_bytes(needs.training_bytes()),
            describe_bytes(memory)
        );
        if shape(arch.shallowest(), width.value).fits(memory) {
            let units = arch.units(depth.value).unwrap_or(1);
            let units =
                largest_fitting(units, |u| shape(arch.depth_of(u), width.value).fits(memory))
                    .unwrap_or(1);
            return fail(
                &depth.referenced,
                &format!("depths[{i}]"),
                format!("{what}: the deepest that fits is {}", arch.depth_of(units)),
            );
        }
        let hint = match largest_fitting(width.value, |w| shape(depth.value, w).fits(memory)) {
            Some(w) => format!("the widest that fits is {w}"),
            None => "not even width 1 fits: lower train.batch_size".into(),
        };
        return fail(&width.referenced, "model.width", format!("{what}: {hint}"));
    }
    Ok(())
}
