//! The Slurm job array that trains an experiment's pending runs on a cluster: one array
//! task per run, each running `degrade run --index $SLURM_ARRAY_TASK_ID`. Slurm does the
//! scheduling; the per-run locks and atomic writes make a shared results directory safe,
//! and a requeued or repeated task finds its run done (or being trained) and stops.

use crate::TrainError;
use experiment::{ComputeDevice, Experiment, SlurmSettings};
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

/// A job array written to disk: its script and the pending list its tasks index.
#[derive(Debug, Clone)]
pub struct WrittenJob {
    pub script: PathBuf,
    pub pending_list: PathBuf,
    pub tasks: usize,
}

/// Writes, under `<results>/<experiment>/slurm/`, a pending list of the runs of `planned`
/// (the experiment's `results::run_states`) not finished yet and the sbatch script of an
/// array that trains them on `device` with the dataset in `data_dir` (on the filesystem
/// the nodes share); `None` if every run is finished.
/// Each call writes a list and a script of its own, named by time and process, so that
/// a job still running keeps its list and its indices.
pub fn write_job(
    experiment: &Experiment,
    results_root: &Path,
    planned: &[results::PlannedRun],
    settings: SlurmSettings,
    device: ComputeDevice,
    data_dir: &Path,
) -> Result<Option<WrittenJob>, TrainError> {
    if !planned.iter().any(|p| p.state.wants_training()) {
        return Ok(None);
    }
    let absolute = |p: &Path| {
        std::path::absolute(p)
            .map_err(|e| TrainError::Config(format!("resolving {}: {e}", p.display())))
    };
    let slurm_dir = results_root.join(&experiment.name).join("slurm");
    std::fs::create_dir_all(&slurm_dir).map_err(|source| results::ResultsError::Io {
        path: slurm_dir.clone(),
        source,
    })?;
    let stamp = format!(
        "{}-{}",
        results::now_utc().replace([':', '-'], ""),
        std::process::id()
    );
    let pending_list = slurm_dir.join(format!("pending-{stamp}.txt"));
    let tasks = results::write_pending(&pending_list, &experiment.name, planned)?;
    let settings = SlurmSettings {
        // A CUDA run needs a GPU of its own: ask for one unless told otherwise.
        gpus: settings
            .gpus
            .or(matches!(device, ComputeDevice::Cuda(_)).then_some(1)),
        ..settings
    };
    let here = |what: &str, r: std::io::Result<PathBuf>| {
        r.map_err(|e| TrainError::Config(format!("finding {what}: {e}")))
    };
    let job = ArrayJob {
        experiment_name: experiment.name.clone(),
        tasks,
        settings,
        program: here("this program", std::env::current_exe())?,
        experiment_file: absolute(&experiment.path)?,
        results_root: absolute(results_root)?,
        pending_list: absolute(&pending_list)?,
        data_dir: absolute(data_dir)?,
        device,
        log_dir: absolute(&slurm_dir)?,
        work_dir: here("the current directory", std::env::current_dir())?,
    };
    if let Some(why) = problem(&job) {
        return Err(TrainError::Config(why));
    }
    let script_text =
        sbatch_script(&job).ok_or_else(|| TrainError::Config("no runs to train".into()))?;
    let script = slurm_dir.join(format!("sweep-{stamp}.sbatch"));
    results::write_atomically(&script, script_text.as_bytes())?;
    Ok(Some(WrittenJob {
        script,
        pending_list,
        tasks,
    }))
}

/// Submits `script` with `sbatch`; returns what sbatch printed ("Submitted batch job N").
pub fn submit(script: &Path) -> Result<String, TrainError> {
    let out = std::process::Command::new("sbatch")
        .arg(script)
        .output()
        .map_err(|e| {
            TrainError::Config(format!(
                "running sbatch (is Slurm installed on this machine?): {e}"
            ))
        })?;
    if !out.status.success() {
        return Err(TrainError::Config(format!(
            "sbatch {} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
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

    /// The list and the script land under results/<experiment>/slurm/, the script
    /// trains the list's entries with absolute paths and asks for a GPU for a CUDA run;
    /// a finished experiment writes nothing.
    #[test]
    fn a_job_is_written_beside_the_results_and_only_when_runs_are_left() {
        let tmp = tempfile::tempdir().unwrap();
        let experiment =
            experiment::parse_experiment(&tmp.path().join("exp.yaml"), crate::test_data::TINY_MLP)
                .unwrap();
        let results_root = tmp.path().join("results");
        let job = write_job(
            &experiment,
            &results_root,
            &results::run_states(&experiment, &results_root),
            SlurmSettings::default(),
            ComputeDevice::Cuda(0),
            tmp.path(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(job.tasks, 1);
        assert!(job.script.starts_with(results_root.join("tiny/slurm")));
        let names = results::read_pending(&job.pending_list, "tiny").unwrap();
        assert_eq!(names, vec![experiment.runs[0].dir_name()]);
        let script = std::fs::read_to_string(&job.script).unwrap();
        assert!(script.contains("#SBATCH --gres=gpu:1"), "{script}");
        let list = std::path::absolute(&job.pending_list).unwrap();
        assert!(
            script.contains(&format!("--pending '{}'", list.display())),
            "{script}"
        );

        let dir = results::RunDir::for_run(&results_root, &experiment.runs[0]);
        dir.prepare(&experiment.runs[0]).unwrap();
        crate::test_data::tiny_dataset(tmp.path());
        let status = crate::worker::run_worker(
            &dir.path,
            tmp.path(),
            ComputeDevice::Cpu,
            false,
            &experiment::Diagnostics::off(),
        )
        .unwrap();
        assert_eq!(status, results::RunStatus::Done);
        let again = write_job(
            &experiment,
            &results_root,
            &results::run_states(&experiment, &results_root),
            SlurmSettings::default(),
            ComputeDevice::Cpu,
            tmp.path(),
        )
        .unwrap();
        assert!(again.is_none());
    }
}
