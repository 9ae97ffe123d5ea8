//! The one place where flags meet the experiment's YAML: each function takes what the
//! command line says and what the file says, and returns the settings a subcommand
//! uses, checked, with an error that names both the flag and the YAML key.

use crate::args::{ReportFlags, SlurmFlags, TrainFlags};
use anyhow::{bail, Context, Result};
use experiment::{ComputeDevice, Experiment, ReportSettings, SlurmSettings};
use std::path::PathBuf;

/// The YAML's `report:` settings with the flags applied on top, checked.
pub fn report(flags: &ReportFlags, experiment: &Experiment) -> Result<ReportSettings> {
    let mut s = experiment.report.clone();
    s.log_y |= flags.log_y;
    if let Some(w) = flags.smoothing {
        s.smoothing = w;
    }
    if let Some(r) = flags.y_range {
        s.y_range = Some(r);
    }
    if let Some(why) = ReportSettings::smoothing_problem(s.smoothing) {
        bail!("report smoothing (--smoothing or report.smoothing) {why}");
    }
    if let Some((lo, hi)) = s.y_range {
        if let Some(why) = ReportSettings::y_range_problem(lo, hi, s.log_y) {
            bail!("error axis range (--y-range or report.y_range, with --log-y or report.log_y) {why}");
        }
    }
    Ok(s)
}

/// The YAML's `slurm:` settings with the flags applied on top, checked.
pub fn slurm(flags: &SlurmFlags, experiment: &Experiment) -> Result<SlurmSettings> {
    let y = experiment.slurm.clone();
    let settings = SlurmSettings {
        time: flags.time.clone().or(y.time),
        cpus: flags.cpus.or(y.cpus),
        gpus: flags.gpus.or(y.gpus),
        mem: flags.mem.clone().or(y.mem),
        partition: flags.partition.clone().or(y.partition),
        max_parallel: flags.max_parallel.or(y.max_parallel),
    };
    if let Some(why) = settings.problem() {
        bail!("slurm settings (flags or the experiment's `slurm:`): {why}");
    }
    Ok(settings)
}

/// `--device`, else the experiment's `device` (cpu by default).
pub fn device(flags: &TrainFlags, experiment: &Experiment) -> ComputeDevice {
    flags.device.unwrap_or(experiment.device)
}

/// `--jobs`, else one worker per core.
pub fn jobs(flag: Option<usize>) -> Result<usize> {
    match flag {
        Some(0) => bail!("--jobs must be at least 1"),
        Some(n) => Ok(n),
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

/// `--index`, else the Slurm array task's own index.
pub fn array_index(flag: Option<usize>) -> Result<usize> {
    match flag {
        Some(i) => Ok(i),
        None => std::env::var("SLURM_ARRAY_TASK_ID")
            .context("no --index, and SLURM_ARRAY_TASK_ID is not set (not a Slurm array task)")?
            .parse()
            .context("SLURM_ARRAY_TASK_ID is not a number"),
    }
}

/// The experiment's dataset, found (or downloaded) where the flags and the YAML say: an
/// absolute path, since workers may start in other directories.
pub fn dataset(experiment: &Experiment, flags: &TrainFlags) -> Result<PathBuf> {
    let Some(first) = experiment.runs.first() else {
        bail!("{}: the experiment has no runs", experiment.path.display());
    };
    let source = data::DatasetSource::named(first.dataset.as_str())
        .with_context(|| format!("no source is known for dataset {}", first.dataset))?;
    let options = data::LocateOptions {
        cli_dir: flags.data_dir.clone(),
        yaml_dir: experiment.data_dir.clone(),
        local_root: PathBuf::from("."),
        mirror: std::env::var("DEGRADE_DATA_MIRROR").ok(),
        allow_download: !flags.offline,
    };
    let found = data::locate_or_fetch(source, &options)?;
    eprintln!(
        "{}: using {} ({})",
        source.name,
        found.dir.display(),
        found.how
    );
    Ok(std::path::absolute(&found.dir).unwrap_or(found.dir))
}

/// Training on this machine's CPU needs its memory: a run that would not fit is refused
/// before anything trains (on a GPU the activations live in the device's memory).
pub fn fits_in_memory(experiment: &Experiment, device: ComputeDevice) -> Result<()> {
    match (&experiment.memory_problem, device) {
        (Some(why), ComputeDevice::Cpu) => bail!("{why}"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "name: t
dataset: {name: fashion-mnist}
model: {arch: mlp, width: 8}
families: [plain]
depths: [4]
seeds: [0]
train: {epochs: 1, batch_size: 16, lr: 0.05, momentum: 0.9, weight_decay: 0.0001, schedule: cosine}
report: {smoothing: 0.5}
slurm: {cpus: 4, mem: 8G}
";

    fn experiment() -> Experiment {
        experiment::parse_experiment(std::path::Path::new("t.yaml"), YAML).unwrap()
    }

    fn report_flags() -> ReportFlags {
        ReportFlags {
            reports: "reports".into(),
            log_y: false,
            smoothing: None,
            y_range: None,
        }
    }

    #[test]
    fn a_flag_overrides_the_yaml_and_an_unset_one_keeps_it() {
        let e = experiment();
        assert_eq!(report(&report_flags(), &e).unwrap().smoothing, 0.5);
        let flags = ReportFlags {
            smoothing: Some(0.2),
            log_y: true,
            ..report_flags()
        };
        let s = report(&flags, &e).unwrap();
        assert_eq!((s.smoothing, s.log_y), (0.2, true));
        let slurm_flags = SlurmFlags {
            time: None,
            cpus: Some(2),
            gpus: None,
            mem: None,
            partition: None,
            max_parallel: None,
        };
        let s = slurm(&slurm_flags, &e).unwrap();
        assert_eq!((s.cpus, s.mem.as_deref()), (Some(2), Some("8G")));
    }

    #[test]
    fn a_bad_value_names_the_flag_and_the_yaml_key() {
        let e = experiment();
        let flags = ReportFlags {
            smoothing: Some(1.5),
            ..report_flags()
        };
        let err = report(&flags, &e).unwrap_err().to_string();
        assert!(
            err.contains("--smoothing") && err.contains("report.smoothing"),
            "{err}"
        );
        let flags = ReportFlags {
            y_range: Some((0.0, 50.0)),
            log_y: true,
            ..report_flags()
        };
        let err = report(&flags, &e).unwrap_err().to_string();
        assert!(
            err.contains("--y-range") && err.contains("--log-y"),
            "{err}"
        );
        assert!(jobs(Some(0)).unwrap_err().to_string().contains("--jobs"));
        assert_eq!(jobs(Some(3)).unwrap(), 3);
        assert_eq!(array_index(Some(4)).unwrap(), 4);
    }
}
