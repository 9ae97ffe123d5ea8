//! The Slurm job array that trains an experiment's pending runs on a cluster: one array
//! task per run, each running `degrade run --index $SLURM_ARRAY_TASK_ID`. Slurm does the
//! scheduling; the per-run locks and atomic writes make a shared results directory safe,
//! and a requeued or repeated task finds its run done (or being trained) and stops.

use experiment::{ComputeDevice, SlurmSettings};
use std::path::{Path, PathBuf};

/// Defaults where neither the command line nor the YAML says.
pub const DEFAULT_TIME: &str = "24:00:00";
pub const DEFAULT_MEM: &str = "4G";

/// Everything the script needs, resolved to absolute paths.
#[derive(Debug, Clone)]
pub struct ArrayJob {
    pub experiment_name: String,
    /// Tasks: the length of the pending list.
    pub tasks: usize,
    pub settings: SlurmSettings,
    /// The `degrade` binary the tasks run (on a shared filesystem).
    pub program: PathBuf,
    pub experiment_file: PathBuf,
    pub results_root: PathBuf,
    pub pending_list: PathBuf,
    pub data_dir: PathBuf,
    pub device: ComputeDevice,
    /// Where each task's output goes (`%A_%a.out`).
    pub log_dir: PathBuf,
    /// The directory the tasks start in.
    pub work_dir: PathBuf,
}

/// Single-quotes a path for bash.
fn quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

/// Why `job` cannot be written as a script, if it cannot: `#SBATCH` lines are not
/// shell-quoted, and Slurm reads `%` in a file name as a pattern.
pub fn problem(job: &ArrayJob) -> Option<String> {
    let log = job.log_dir.display().to_string();
    (log.contains(char::is_whitespace) || log.contains('%')).then(|| {
        format!("the results directory {log} holds a space or '%', which #SBATCH --output cannot take: use --results with a plain path")
    })
}

/// The sbatch script for `job`; `None` if there is nothing to train.
pub fn sbatch_script(job: &ArrayJob) -> Option<String> {
    if job.tasks == 0 {
        return None;
    }
    let s = &job.settings;
    let cpus = s.cpus.unwrap_or(1);
    let mut lines = vec![
        "#!/bin/bash".to_string(),
        format!(
            "# Written by `degrade slurm` for experiment {}: one array task per",
            job.experiment_name
        ),
        "# pending run; task I trains entry I of the pending list. Resubmitting after a".into(),
        "# failure or a cancel is safe: finished runs are skipped, interrupted ones resume.".into(),
        format!("#SBATCH --job-name=degrade-{}", job.experiment_name),
        format!(
            "#SBATCH --array=0-{}{}",
            job.tasks - 1,
            s.max_parallel.map(|m| format!("%{m}")).unwrap_or_default()
        ),
        format!(
            "#SBATCH --time={}",
            s.time.as_deref().unwrap_or(DEFAULT_TIME)
        ),
        "#SBATCH --ntasks=1".into(),
        format!("#SBATCH --cpus-per-task={cpus}"),
        format!("#SBATCH --mem={}", s.mem.as_deref().unwrap_or(DEFAULT_MEM)),
        format!("#SBATCH --output={}/%A_%a.out", job.log_dir.display()),
        // A requeued task appends to its log instead of replacing the first attempt's.
        "#SBATCH --open-mode=append".into(),
        "#SBATCH --requeue".into(),
    ];
    if let Some(p) = &s.partition {
        lines.push(format!("#SBATCH --partition={p}"));
    }
    if let Some(g) = s.gpus.filter(|&g| g > 0) {
        lines.push(format!("#SBATCH --gres=gpu:{g}"));
    }
    lines.extend([
        String::new(),
        "set -euo pipefail".into(),
        format!("cd {}", quote(&job.work_dir)),
        "# One run per task, with the CPUs Slurm gave it.".into(),
        "export RAYON_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-1}\"".into(),
        "export CANDLE_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-1}\"".into(),
        format!(
            "exec {} run {} --results {} --pending {} --data-dir {} --device {} --index \"$SLURM_ARRAY_TASK_ID\"",
            quote(&job.program),
            quote(&job.experiment_file),
            quote(&job.results_root),
            quote(&job.pending_list),
            quote(&job.data_dir),
            job.device
        ),
    ]);
    Some(lines.join("\n") + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(tasks: usize, settings: SlurmSettings) -> ArrayJob {
        ArrayJob {
            experiment_name: "paper".into(),
            tasks,
            settings,
            program: "/opt/degrade/bin/degrade".into(),
            experiment_file: "/home/me/exp's.yaml".into(),
            results_root: "/shared/results".into(),
            pending_list: "/shared/results/paper/slurm/pending-1.txt".into(),
            data_dir: "/shared/data/cifar10".into(),
            device: ComputeDevice::Cuda(0),
            log_dir: "/shared/results/paper/slurm".into(),
            work_dir: "/home/me".into(),
        }
    }

    #[test]
    fn the_script_has_one_task_per_run_and_the_resources_asked_for() {
        let script = sbatch_script(&job(
            27,
            SlurmSettings {
                time: Some("2-00:00:00".into()),
                cpus: Some(4),
                gpus: Some(1),
                mem: Some("16G".into()),
                partition: Some("gpu".into()),
                max_parallel: Some(8),
            },
        ))
        .unwrap();
        for needle in [
            "#SBATCH --array=0-26%8",
            "#SBATCH --time=2-00:00:00",
            "#SBATCH --cpus-per-task=4",
            "#SBATCH --mem=16G",
            "#SBATCH --partition=gpu",
            "#SBATCH --gres=gpu:1",
            "#SBATCH --output=/shared/results/paper/slurm/%A_%a.out",
            "--device cuda:0",
            "--index \"$SLURM_ARRAY_TASK_ID\"",
            r"'/home/me/exp'\''s.yaml'",
        ] {
            assert!(script.contains(needle), "{needle} missing from\n{script}");
        }
        assert!(script.starts_with("#!/bin/bash\n"));
    }

    #[test]
    fn defaults_apply_and_nothing_to_train_writes_no_script() {
        let script = sbatch_script(&job(3, SlurmSettings::default())).unwrap();
        assert!(script.contains("#SBATCH --array=0-2\n"), "{script}");
        assert!(script.contains(&format!("--time={DEFAULT_TIME}")));
        assert!(!script.contains("--partition") && !script.contains("--gres"));
        assert!(sbatch_script(&job(0, SlurmSettings::default())).is_none());
        assert!(script.contains("--open-mode=append"));
        assert_eq!(problem(&job(3, SlurmSettings::default())), None);
        let spaced = ArrayJob {
            log_dir: "/shared/my results/slurm".into(),
            ..job(3, SlurmSettings::default())
        };
        assert!(problem(&spaced).unwrap().contains("--results"));
    }
}
