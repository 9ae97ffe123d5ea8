//! Paths of a run's files and the run's state as read from them.

use crate::atomic::write_atomically;
use crate::error::ResultsError;
use crate::meta::{RunMeta, RunStatus};
use experiment::{Experiment, RunConfig};
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// The directory of one run: `<results>/<experiment>/<dir_name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    pub path: PathBuf,
}

/// A run of an experiment's plan and what the results directory says about it.
#[derive(Debug, Clone)]
pub struct PlannedRun {
    pub config: RunConfig,
    pub dir: RunDir,
    pub state: RunState,
}

/// Every run the experiment expands to, with its directory and what is on disk for it,
/// in the experiment's order. The sweep trains from it; the report reads from it.
pub fn run_states(experiment: &Experiment, results_root: &Path) -> Vec<PlannedRun> {
    experiment
        .runs
        .iter()
        .map(|config| {
            let dir = RunDir::for_run(results_root, config);
            PlannedRun {
                state: dir.state(),
                config: config.clone(),
                dir,
            }
        })
        .collect()
}

/// Who holds a run's lock.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LockHolder {
    pub pid: u32,
    pub host: String,
    /// The holder's start time (clock ticks since boot, from /proc), so that a lock of a
    /// dead process whose pid was reused is not taken for a live one. Absent in locks
    /// written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<u64>,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "process {} on {}", self.pid, self.host)
    }
}

/// A held run lock; dropping it releases the run. It knows its lock by what it says
/// (this process's pid, start time and host), so that it never removes another's.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    holder: Vec<u8>,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Under the guard, like every change of the lock (see `RunDir::link_lock`).
        let _guard = self.path.parent().and_then(guard);
        // Ours is still there unless someone deleted it by hand (and perhaps another
        // process locked the run since): then there is nothing of ours to remove.
        if std::fs::read(&self.path).is_ok_and(|bytes| bytes == self.holder) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The guard of the run directory `dir`: an exclusive advisory lock on its
/// `.lock.guard`, held until the file is dropped. A regular file opened for writing, not
/// the directory itself: NFS emulates such locks with byte-range locks, which need one.
/// None where the file cannot be made or locked.
fn guard(dir: &Path) -> Option<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock.guard"))
        .ok()?;
    file.lock().ok()?;
    Some(file)
}

/// A run's state as the files on disk tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Missing,
    /// A `running` or `failed` meta: started but not finished; the next sweep retrains it.
    Unfinished(RunStatus),
    Done,
    Diverged,
    /// A `meta.json` that does not read back (truncated, edited, a disk fault). Whether
    /// the run finished cannot be told, so it is neither trusted nor trained again: that
    /// would overwrite results that may be finished ones. `RunDir::meta_problem` says why.
    Unreadable,
}

impl RunState {
    /// Finished runs are never trained again (a diverged run would diverge again: the
    /// training is deterministic).
    pub fn is_finished(self) -> bool {
        matches!(self, RunState::Done | RunState::Diverged)
    }

    /// Whether a sweep trains this run: never a finished one, nor one whose state cannot
    /// be read.
    pub fn wants_training(self) -> bool {
        matches!(self, RunState::Missing | RunState::Unfinished(_))
    }

    pub fn label(self) -> &'static str {
        match self {
            RunState::Missing => "missing",
            RunState::Unfinished(RunStatus::Failed) => "failed",
            RunState::Unfinished(_) => "unfinished",
            RunState::Done => "done",
            RunState::Diverged => "diverged",
            RunState::Unreadable => "unreadable",
        }
    }
}

impl RunDir {
    pub fn for_run(results_root: &Path, config: &RunConfig) -> Self {
        Self {
            path: results_root
                .join(&config.experiment)
                .join(config.dir_name()),
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.path.join("config.json")
    }
    pub fn meta_path(&self) -> PathBuf {
        self.path.join("meta.json")
    }
    pub fn metrics_path(&self) -> PathBuf {
        self.path.join("metrics.parquet")
    }

    /// The training state of the last finished epoch, while the run is not finished.
    pub fn gradients_path(&self) -> PathBuf {
        self.path.join("gradients.parquet")
    }
    pub fn responses_path(&self) -> PathBuf {
        self.path.join("responses.parquet")
    }
    pub fn lesion_path(&self) -> PathBuf {
        self.path.join("lesion.parquet")
    }
    pub fn checkpoint_path(&self) -> PathBuf {
        self.path.join("checkpoint.safetensors")
    }
    pub fn lock_path(&self) -> PathBuf {
        self.path.join("lock")
    }

    /// Takes the run's lock, so that no other process trains it at the same time. A lock
    /// left by a process that no longer exists on this host is taken over; one held by a
    /// live process (or by any process on another host) gives `Err(holder)`.
    pub fn try_lock(&self, host: &str) -> Result<Result<RunLock, LockHolder>, ResultsError> {
        let io = |source| ResultsError::Io {
            path: self.lock_path(),
            source,
        };
        // The lock appears complete or not at all: written under a temporary name, then
        // hard-linked into place (which fails if a lock exists). A process killed while
        // taking it leaves only a temporary, never an empty lock.
        let me = LockHolder {
            pid: std::process::id(),
            host: host.to_string(),
            started: process_start(std::process::id()),
        };
        let tmp = self.path.join(format!(".lock.tmp-{}", me.pid));
        let json = serde_json::to_vec(&me).expect("a lock holder serialises");
        let written = std::fs::File::create(&tmp).and_then(|mut f| {
            std::io::Write::write_all(&mut f, &json)?;
            f.sync_all()
        });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(e));
        }
        let outcome = self.link_lock(&tmp, json, host);
        let _ = std::fs::remove_file(&tmp);
        outcome
    }

    /// Puts the complete lock `tmp` in place: at once if the run has no lock, or in
    /// place of a stale one. Everything here happens under the run directory's guard
    /// (`guard`), as does a lock's release: of several processes that find one stale lock
    /// at once, one takes it over and the others then find its live lock (a second
    /// takeover would remove the first's fresh lock, and both would train); and no lock
    /// vanishes, by its holder's release, between being judged and being replaced.
    /// Without a guard (a filesystem that cannot lock files) a lock is never taken over.
    fn link_lock(
        &self,
        tmp: &Path,
        holder: Vec<u8>,
        host: &str,
    ) -> Result<Result<RunLock, LockHolder>, ResultsError> {
        let io = |source| ResultsError::Io {
            path: self.lock_path(),
            source,
        };
        let guard = guard(&self.path);
        // The link is durable once the directory is synced; if that fails, the lock goes
        // again (here: its release would wait for the guard this process holds).
        let held = || -> Result<Result<RunLock, LockHolder>, ResultsError> {
            if let Err(e) = crate::atomic::sync_dir(&self.path) {
                let _ = std::fs::remove_file(self.lock_path());
                return Err(io(e));
            }
            Ok(Ok(RunLock {
                path: self.lock_path(),
                holder: holder.clone(),
            }))
        };
        let holder_or_unknown = || {
            self.lock_holder(host).unwrap_or(LockHolder {
                pid: 0,
                host: "unknown".into(),
                started: None,
            })
        };
        match std::fs::hard_link(tmp, self.lock_path()) {
            Ok(()) => return held(),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(e)),
        }
        if guard.is_none() {
            return Ok(Err(holder_or_unknown()));
        }
        if let Some(holder) = self.lock_holder(host) {
            return Ok(Err(holder));
        }
        match std::fs::remove_file(self.lock_path()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
            _ => {}
        }
        match std::fs::hard_link(tmp, self.lock_path()) {
            Ok(()) => held(),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Err(holder_or_unknown())),
            Err(e) => Err(io(e)),
        }
    }

    /// Removes the run's lock if process `pid` holds it: for a process ending on a
    /// signal, whose `RunLock` is never dropped. Under the guard, like every change of
    /// the lock (see `link_lock`).
    pub fn release_lock_of(&self, pid: u32) {
        let _guard = guard(&self.path);
        let ours = std::fs::read(self.lock_path())
            .ok()
            .and_then(|bytes| serde_json::from_slice::<LockHolder>(&bytes).ok())
            .is_some_and(|holder| holder.pid == pid);
        if ours {
            let _ = std::fs::remove_file(self.lock_path());
        }
    }

    /// The live process holding this run's lock, if any.
    pub fn lock_holder(&self, host: &str) -> Option<LockHolder> {
        let bytes = std::fs::read(self.lock_path()).ok()?;
        match serde_json::from_slice::<LockHolder>(&bytes) {
            Ok(holder) if holder.host != host => Some(holder),
            // Alive, and the same process: not a later one that got its pid.
            Ok(holder) => (process_alive(holder.pid)
                && holder
                    .started
                    .is_none_or(|t| process_start(holder.pid) == Some(t)))
            .then_some(holder),
            // Empty or partial: its writer crashed between creating and writing it, or is
            // writing it right now. Young files are given the benefit of the doubt.
            Err(_) => {
                let age = std::fs::metadata(self.lock_path())
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .unwrap_or_default();
                (age < std::time::Duration::from_secs(10)).then(|| LockHolder {
                    pid: 0,
                    host: host.to_string(),
                    started: None,
                })
            }
        }
    }

    /// Removes temporary files that a killed writer left: ours (`.<name>.tmp-<pid>`, if
    /// that process is gone) and those of the safetensors writer (`.tmpXXXXXX`). Call it
    /// only while holding the run's lock.
    pub fn remove_stale_temporaries(&self) {
        let Ok(entries) = std::fs::read_dir(&self.path) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let stale = match name.rsplit_once(".tmp-") {
                // Ours carry the writer's pid: the sweep writes config.json without the
                // lock, so only a dead writer's file may go.
                Some((_, pid)) => pid.parse().is_ok_and(|pid| !process_alive(pid)),
                // Only the lock holder writes checkpoints, so these are always stale.
                None => name.starts_with(".tmp"),
            };
            if name.starts_with('.') && stale {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    pub fn create(&self) -> Result<(), ResultsError> {
        std::fs::create_dir_all(&self.path).map_err(|source| ResultsError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Creates the directory and writes the run's config, unless it is there already:
    /// the directory's name is the config's hash, so an existing config.json is this one.
    pub fn prepare(&self, config: &RunConfig) -> Result<(), ResultsError> {
        self.create()?;
        match self.config_path().exists() {
            true => Ok(()),
            false => self.write_config(config),
        }
    }

    pub fn write_config(&self, config: &RunConfig) -> Result<(), ResultsError> {
        write_json(&self.config_path(), config)
    }
    pub fn read_config(&self) -> Result<RunConfig, ResultsError> {
        read_json(&self.config_path())
    }
    pub fn write_meta(&self, meta: &RunMeta) -> Result<(), ResultsError> {
        write_json(&self.meta_path(), meta)
    }
    pub fn read_meta(&self) -> Result<RunMeta, ResultsError> {
        read_json(&self.meta_path())
    }

    /// What the files say. A run counts as done only if its meta says so *and* its
    /// metrics file exists: the trainer writes the metrics before it marks a run done.
    pub fn state(&self) -> RunState {
        if !self.meta_path().exists() {
            return RunState::Missing;
        }
        match self.read_meta() {
            Ok(meta) => match meta.status {
                RunStatus::Done if self.metrics_path().is_file() => RunState::Done,
                RunStatus::Diverged => RunState::Diverged,
                RunStatus::Done => RunState::Unfinished(RunStatus::Failed),
                other => RunState::Unfinished(other),
            },
            Err(_) => RunState::Unreadable,
        }
    }

    /// Why this run's `meta.json` cannot be trusted, and what to do, if it exists and
    /// does not read back.
    pub fn meta_problem(&self) -> Option<String> {
        if !self.meta_path().exists() {
            return None;
        }
        self.read_meta().err().map(|e| {
            format!(
                "{e}. The run is left as it is and not trained again: restore the file, or \
                 delete it to train the run from the start (which replaces its metrics)"
            )
        })
    }
}

/// Whether `pid` is a running process on this host. A zombie (killed, not yet reaped:
/// common in containers whose init does not reap) counts as gone.
/// The fields of /proc/<pid>/stat after the parenthesised command name.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// When process `pid` started (field 22 of /proc/<pid>/stat), if it exists.
fn process_start(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

fn process_alive(pid: u32) -> bool {
    // The state is the first field after the command name; zombies are dead.
    stat_fields(pid)
        .and_then(|f| f.first().cloned())
        .is_some_and(|state| state != "Z" && state != "X")
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), ResultsError> {
    let json = serde_json::to_vec_pretty(value).map_err(|source| ResultsError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomically(path, &json)
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, ResultsError> {
    let bytes = std::fs::read(path).map_err(|source| ResultsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| ResultsError::Json {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process's release removes its own lock and leaves another process's.
    #[test]
    fn a_release_by_pid_removes_only_that_processs_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RunDir {
            path: tmp.path().to_path_buf(),
        };
        let lock = dir.try_lock("here").unwrap().unwrap();
        dir.release_lock_of(std::process::id() + 1);
        assert!(dir.lock_path().exists());
        dir.release_lock_of(std::process::id());
        assert!(!dir.lock_path().exists());
        drop(lock);
    }
    use std::time::{Duration, Instant};

    const STALE_LOCK: &[u8] = br#"{"pid":4294967295,"host":"here"}"#;

    /// Started by `of_several_processes_taking_over_one_stale_lock_exactly_one_wins`: waits
    /// for the start signal, tries to lock the run, and if it wins, says so in a file of
    /// its own and holds the lock until told to let go.
    #[test]
    #[ignore = "a child process of the lock race test, which starts it"]
    fn lock_contender() {
        let Some(path) = std::env::var_os("DEGRADE_LOCK_RACE_DIR") else {
            return;
        };
        let dir = RunDir {
            path: PathBuf::from(path),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !dir.path.join("go").exists() && Instant::now() < deadline {
            std::hint::spin_loop();
        }
        if let Ok(lock) = dir.try_lock("here").unwrap() {
            std::fs::write(dir.path.join(format!("won-{}", std::process::id())), b"").unwrap();
            while !dir.path.join("release").exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            drop(lock);
        }
    }

    /// The README promises that two sweeps never train one run twice. Processes that all
    /// find the same stale lock at once must leave exactly one of them holding the run.
    #[test]
    fn of_several_processes_taking_over_one_stale_lock_exactly_one_wins() {
        const ROUNDS: usize = 50;
        const PROCESSES: usize = 4;
        for round in 0..ROUNDS {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path();
            std::fs::write(dir.join("lock"), STALE_LOCK).unwrap();
            let mut children: Vec<std::process::Child> = (0..PROCESSES)
                .map(|_| {
                    std::process::Command::new(std::env::current_exe().unwrap())
                        .args(["layout::tests::lock_contender", "--exact", "--ignored"])
                        .env("DEGRADE_LOCK_RACE_DIR", dir)
                        .stdout(std::process::Stdio::null())
                        .spawn()
                        .unwrap()
                })
                .collect();
            // Let them all reach their start line, then go at once.
            std::thread::sleep(Duration::from_millis(150));
            std::fs::write(dir.join("go"), b"").unwrap();
            // The losers return at once; the winner holds on until released, so a second
            // winner could not have come after the first let go.
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut exited = [false; PROCESSES];
            while exited.iter().filter(|&&e| e).count() < PROCESSES - 1 && Instant::now() < deadline
            {
                for (child, exited) in children.iter_mut().zip(exited.iter_mut()) {
                    *exited |= child.try_wait().unwrap().is_some();
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            let winners: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
                .filter(|n| n.starts_with("won-"))
                .collect();
            std::fs::write(dir.join("release"), b"").unwrap();
            for child in &mut children {
                assert!(child.wait().unwrap().success(), "round {round}");
            }
            assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
            assert!(
                !dir.join("lock").exists(),
                "round {round}: the winner let go"
            );
        }
    }

    #[test]
    fn a_lock_removes_only_itself() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RunDir {
            path: tmp.path().to_path_buf(),
        };
        let lock = dir.try_lock("here").unwrap().expect("free run");
        // Deleted by hand, and the run locked by someone else meanwhile.
        std::fs::remove_file(dir.lock_path()).unwrap();
        std::fs::write(dir.lock_path(), br#"{"pid":1,"host":"elsewhere"}"#).unwrap();
        drop(lock);
        assert!(dir.lock_path().exists(), "the other holder's lock stays");
    }

    #[test]
    fn a_meta_that_does_not_read_back_is_unreadable_not_unfinished() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RunDir {
            path: tmp.path().to_path_buf(),
        };
        assert_eq!(dir.state(), RunState::Missing);
        assert_eq!(dir.meta_problem(), None);
        std::fs::write(dir.metrics_path(), b"finished metrics").unwrap();
        std::fs::write(dir.meta_path(), br#"{"config_hash": "ab", "status": "do"#).unwrap();
        assert_eq!(dir.state(), RunState::Unreadable);
        assert!(!dir.state().wants_training() && !dir.state().is_finished());
        let why = dir.meta_problem().expect("a problem");
        assert!(
            why.contains("meta.json") && why.contains("delete it"),
            "{why}"
        );
        for trained in [RunState::Missing, RunState::Unfinished(RunStatus::Failed)] {
            assert!(trained.wants_training());
        }
    }

    #[test]
    fn a_lock_excludes_others_until_dropped_and_stale_locks_are_taken_over() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RunDir {
            path: tmp.path().to_path_buf(),
        };
        let first = dir.try_lock("here").unwrap().expect("free run");
        let holder = dir
            .try_lock("here")
            .unwrap()
            .expect_err("held by this live process");
        assert_eq!(holder.pid, std::process::id());
        drop(first);
        assert!(!dir.lock_path().exists());

        // A lock of a process that is gone (pid beyond the kernel's maximum) is stale.
        std::fs::write(dir.lock_path(), br#"{"pid":4294967295,"host":"here"}"#).unwrap();
        assert_eq!(dir.lock_holder("here"), None);
        let taken = dir
            .try_lock("here")
            .unwrap()
            .expect("stale lock taken over");
        drop(taken);

        // A zombie (a killed process nobody has reaped yet) does not hold a lock.
        let mut zombie = std::process::Command::new("true").spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(
            !process_alive(zombie.id()),
            "an exited, unreaped child is a zombie"
        );
        zombie.wait().unwrap();
        assert!(process_alive(std::process::id()));

        // A lock from another host cannot be checked, so it is respected.
        std::fs::write(dir.lock_path(), br#"{"pid":4294967295,"host":"elsewhere"}"#).unwrap();
        assert!(dir.try_lock("here").unwrap().is_err());
        std::fs::remove_file(dir.lock_path()).unwrap();

        // A live pid with another start time is a later process that reused the pid of
        // the lock's dead holder: the lock is stale. The right start time holds it.
        let me = std::process::id();
        let started = process_start(me).expect("our own start time");
        let reused = format!(r#"{{"pid":{me},"host":"here","started":{}}}"#, started + 1);
        std::fs::write(dir.lock_path(), reused).unwrap();
        assert_eq!(dir.lock_holder("here"), None);
        let held = format!(r#"{{"pid":{me},"host":"here","started":{started}}}"#);
        std::fs::write(dir.lock_path(), held).unwrap();
        assert!(dir.lock_holder("here").is_some());
        std::fs::remove_file(dir.lock_path()).unwrap();

        // Taking a lock leaves no temporary behind, and the lock names its holder in full.
        let lock = dir.try_lock("here").unwrap().expect("free run");
        let names: Vec<String> = std::fs::read_dir(&dir.path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        let mut names = names;
        names.sort();
        assert_eq!(names, [".lock.guard", "lock"]);
        assert_eq!(dir.lock_holder("here").unwrap().started, Some(started));
        drop(lock);
    }
}
