//! A run's folder: what is written there, under which names, and how (atomically).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::config::TrainingConfig;
use crate::error::RunError;

/// The files of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run stored in `root` (nothing is checked or created).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The run's name: its folder's name (never the path to it, which a server must not show).
    pub fn name(&self) -> String {
        let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
        name(&self.root)
            .or_else(|| self.root.canonicalize().ok().as_deref().and_then(name))
            .unwrap_or_else(|| "run".into())
    }

    /// `path` relative to the folder when it lies inside it (else `path` whole), as text.
    pub fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    /// `config.json`: the full training configuration.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.json")
    }

    /// `model.bpk`: the final model record (burnpack).
    pub fn model(&self) -> PathBuf {
        self.root.join("model.bpk")
    }

    /// `metrics.csv`: one row per completed epoch.
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.csv")
    }

    /// `eval.json`: what `eval` measured.
    pub fn eval(&self) -> PathBuf {
        self.root.join("eval.json")
    }

    /// `logs/`: Burn's own metric logs (`train/`, `valid/`) and `experiment.log`. Kept apart
    /// from the files written here: Burn lists its folder while the last epoch's files are still
    /// being written, and panics when a listed file is renamed or deleted under it.
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// `checkpoint/`: per-epoch model, optimizer and scheduler records.
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoint")
    }

    /// The model record of the checkpoint at `epoch`.
    pub fn checkpoint_model(&self, epoch: usize) -> PathBuf {
        self.checkpoints().join(checkpoint_file("model", epoch))
    }

    /// Whether the model, optimizer and scheduler checkpoints of `epoch` all exist.
    pub fn has_checkpoint(&self, epoch: usize) -> bool {
        CHECKPOINT_KINDS.iter().all(|kind| {
            self.checkpoints()
                .join(checkpoint_file(kind, epoch))
                .is_file()
        })
    }

    /// The newest epoch whose model, optimizer and scheduler checkpoints all exist.
    pub fn last_checkpoint(&self) -> Option<usize> {
        let entries = std::fs::read_dir(self.checkpoints()).ok()?;
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_prefix("model-")?
                    .strip_suffix(".bpk")?
                    .parse::<usize>()
                    .ok()
            })
            .filter(|&epoch| self.has_checkpoint(epoch))
            .max()
    }

    /// Whether the run has finished its `epochs`: `model.bpk` written, and a complete
    /// checkpoint of the last epoch.
    pub fn is_finished(&self, epochs: usize) -> bool {
        self.model().is_file() && self.last_checkpoint().is_some_and(|e| e >= epochs)
    }

    /// `.lock`: held by the one process that writes the run (see [`RunDir::lock`]).
    pub fn lock_file(&self) -> PathBuf {
        self.root.join(".lock")
    }

    /// Makes this process the run's only writer until the returned guard is dropped: an OS
    /// file lock on `.lock` (which then holds this process's id). The kernel releases it when
    /// the process ends, however it ends, so a killed run never leaves a stale lock. A second
    /// writer gets [`RunError::RunInUse`] at once. The folder must exist.
    pub fn lock(&self) -> Result<RunLock, RunError> {
        let path = self.lock_file();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| RunError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {
                let pid = std::process::id().to_string();
                file.set_len(0)
                    .and_then(|()| file.rewind())
                    .and_then(|()| file.write_all(pid.as_bytes()))
                    .map_err(|e| RunError::io(&path, e))?;
                Ok(RunLock { _file: file })
            }
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let pid = file
                    .read_to_string(&mut text)
                    .ok()
                    .and_then(|_| text.trim().parse().ok());
                Err(RunError::RunInUse {
                    path: self.root.clone(),
                    pid,
                })
            }
            Err(TryLockError::Error(e)) => Err(RunError::io(&path, e)),
        }
    }

    /// Creates the folder (and its parents); an existing file in the way is an error.
    pub fn create(&self) -> Result<(), RunError> {
        if self.root.exists() && !self.root.is_dir() {
            return Err(RunError::NotADirectory(self.root.clone()));
        }
        std::fs::create_dir_all(&self.root).map_err(|e| RunError::io(&self.root, e))
    }

    /// Checks that a fresh run can start here: the folder is missing, empty, or holds only
    /// what a run's start leaves before its `config.json` (the lock, temporary files). A run
    /// is [`RunError::RunExists`]; anything else is [`RunError::NotEmpty`], since a run's
    /// files (`report.md`, `metrics.csv`, ...) would overwrite files of the same name.
    pub fn check_fresh(&self) -> Result<(), RunError> {
        if self.config().exists() {
            return Err(RunError::RunExists(self.root.clone()));
        }
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Ok(()); // missing, or not a folder: `create` says so
        };
        let mut others: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name != ".lock" && !name.starts_with(TEMP_PREFIX))
            .collect();
        if others.is_empty() {
            return Ok(());
        }
        others.sort();
        let mut held = others[..others.len().min(3)].join(", ");
        if others.len() > 3 {
            held += &format!(" and {} more", others.len() - 3);
        }
        Err(RunError::NotEmpty {
            path: self.root.clone(),
            held,
        })
    }

    /// Deletes the temporary files (`.tmp-*`) that a process killed in the middle of
    /// [`write_atomic`] left behind; the files they were to replace are intact. Returns how
    /// many were removed.
    pub fn remove_stale_temp_files(&self) -> usize {
        let mut removed = 0;
        for dir in [self.root.clone(), self.checkpoints()] {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                if name.to_string_lossy().starts_with(TEMP_PREFIX)
                    && entry.file_type().is_ok_and(|t| t.is_file())
                    && std::fs::remove_file(entry.path()).is_ok()
                {
                    removed += 1;
                }
            }
        }
        removed
    }
}

/// Reads a run's `config.json`; a folder without one is [`RunError::NotARun`], naming the
/// runs in it or beside it.
pub fn load_config(run: &RunDir) -> Result<TrainingConfig, RunError> {
    let path = run.config();
    let missing = if !run.root().exists() {
        Some("no such folder")
    } else if !run.root().is_dir() {
        Some("not a folder")
    } else if !path.exists() {
        Some("no config.json")
    } else {
        None
    };
    if let Some(reason) = missing {
        let mut nearby = runs_in(run.root());
        if let (true, Some(parent)) = (nearby.is_empty(), run.root().parent()) {
            nearby = runs_in(parent);
        }
        return Err(RunError::NotARun {
            path: run.root().to_path_buf(),
            reason: reason.into(),
            nearby,
        });
    }
    let text = std::fs::read_to_string(&path).map_err(|e| RunError::io(&path, e))?;
    // Fields a file lacks (it was written before they existed) keep their defaults, which
    // are the settings runs had before those fields existed.
    let bad = |source| RunError::BadConfigFile {
        path: path.clone(),
        source,
    };
    let config = TrainingConfig::from_partial_json(&text).map_err(bad)?;
    config.validate().map_err(|e| bad(e.into()))?;
    Ok(config)
}

/// The run folders (those with a `config.json`) in the folder `dir`, by name (none when it
/// cannot be listed).
fn runs_in(dir: &Path) -> Vec<PathBuf> {
    let listed = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(entries) = std::fs::read_dir(listed) else {
        return Vec::new();
    };
    let mut runs: Vec<PathBuf> = entries
        .flatten()
        .map(|entry| dir.join(entry.file_name()))
        .filter(|run| run.join("config.json").is_file())
        .collect();
    runs.sort();
    runs
}

/// Writes a run's `config.json` atomically.
pub fn save_config(run: &RunDir, config: &TrainingConfig) -> Result<(), RunError> {
    let json = serde_json::to_string_pretty(config).expect("a config always serialises");
    write_atomic(&run.config(), json.as_bytes())
}

/// A run folder's write lock, held until dropped (see [`RunDir::lock`]).
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

/// How [`write_atomic`]'s temporary files are named.
pub const TEMP_PREFIX: &str = ".tmp-";

/// The three records of a checkpoint, in the order the Learner saves them.
pub const CHECKPOINT_KINDS: [&str; 3] = ["model", "optim", "scheduler"];

/// The file name of a checkpoint record: `model-3.bpk`.
pub fn checkpoint_file(kind: &str, epoch: usize) -> String {
    format!("{kind}-{epoch}.bpk")
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed, then
/// renamed over `path`. A crash at any moment leaves the old file or the new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    let fail = |e: std::io::Error| RunError::io(path, os_error(e));
    let mut tmp = temp_beside(path)?;
    let file = tmp.as_file_mut();
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(fail)?;
    tmp.persist(path).map_err(|e| fail(e.error))?;
    Ok(())
}

/// Makes `path`'s folder and checks that [`write_atomic`] can write `path` there (a temporary
/// file is made beside it and removed): for commands that write their result after minutes of
/// work, so that a bad `--out` fails before the work, not after it.
pub fn prepare_output(path: &Path) -> Result<(), RunError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            // A file on the way (`notes.txt/bench.json`): the system says "File exists".
            match dir.ancestors().find(|a| a.is_file()) {
                Some(file) => RunError::io(
                    file,
                    std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a folder"),
                ),
                None => RunError::io(dir, e),
            }
        })?;
    }
    temp_beside(path).map(drop)
}

/// A new temporary file in `path`'s folder, as any other program makes a file (rw for all,
/// less the umask; not tempfile's 0600); removed when dropped unless persisted.
fn temp_beside(path: &Path) -> Result<tempfile::NamedTempFile, RunError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMP_PREFIX);
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    // Errors name `path`, never the temporary file.
    builder
        .tempfile_in(dir)
        .map_err(|e| RunError::io(path, os_error(e)))
}

/// The operating system's error inside `e`, without the temporary file's path that tempfile
/// adds to its errors (`... at path "/dir/.tmp-x"`).
fn os_error(e: std::io::Error) -> std::io::Error {
    if e.raw_os_error().is_some() {
        return e;
    }
    let code = e
        .get_ref()
        .and_then(|inner| inner.source())
        .and_then(|source| source.downcast_ref::<std::io::Error>())
        .and_then(std::io::Error::raw_os_error);
    if let Some(code) = code {
        return std::io::Error::from_raw_os_error(code);
    }
    match e.to_string().split_once(" at path ") {
        Some((cause, _)) => std::io::Error::new(e.kind(), cause.to_string()),
        None => e,
    }
}

/// `2026-11-26T19-20-05`: the default run name (UTC, sortable, no characters paths dislike).
pub fn utc_timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}-{:02}-{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run names sort by time and hold no character paths dislike.
    #[test]
    fn run_names_are_utc_timestamps() {
        let name = utc_timestamp();
        assert_eq!(name.len(), "2026-11-26T19-20-05".len(), "{name}");
        assert!(
            name.starts_with("20") && name.as_bytes()[10] == b'T',
            "{name}"
        );
        assert!(
            name.chars()
                .all(|c| c.is_ascii_digit() || c == '-' || c == 'T'),
            "{name}"
        );
    }

    /// A path that holds no run says why and names the runs in it or beside it.
    #[test]
    fn a_folder_without_a_run_names_the_runs_in_or_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let good = RunDir::new(dir.path().join("good"));
        std::fs::create_dir(good.root()).unwrap();
        save_config(&good, &TrainingConfig::default()).unwrap();
        std::fs::create_dir(dir.path().join("empty")).unwrap();
        std::fs::write(dir.path().join("file"), b"x").unwrap();
        for (name, reason) in [
            ("missing", "no such folder"),
            ("file", "not a folder"),
            ("empty", "no config.json"),
        ] {
            let path = dir.path().join(name);
            let error = load_config(&RunDir::new(&path)).unwrap_err();
            let RunError::NotARun {
                path: said,
                reason: why,
                nearby,
            } = &error
            else {
                panic!("{name}: {error}");
            };
            assert_eq!((said, why.as_str()), (&path, reason));
            assert_eq!(nearby, &[good.root().to_path_buf()]);
            let message = error.to_string();
            assert!(
                message.contains(&good.root().display().to_string()),
                "{message}"
            );
        }
        assert!(load_config(&good).is_ok());
        // The folder above runs: the runs in it.
        let Err(RunError::NotARun { nearby, .. }) = load_config(&RunDir::new(dir.path())) else {
            panic!("the parent folder loads as a run");
        };
        assert_eq!(nearby, [good.root().to_path_buf()]);
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// Written files are readable by others as a plain write makes them (0666 less the umask;
    /// the usual umask 022 gives 0644), not tempfile's owner-only 0600.
    #[cfg(unix)]
    #[test]
    fn atomic_write_keeps_the_usual_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (atomic, plain) = (dir.path().join("a"), dir.path().join("b"));
        write_atomic(&atomic, b"x").unwrap();
        std::fs::write(&plain, b"x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&atomic), mode(&plain));
    }

    /// A fresh run starts in a missing or empty folder, or one holding only what a start
    /// leaves before `config.json`; never over a run, nor over other files.
    #[test]
    fn a_fresh_run_starts_only_where_it_overwrites_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path().join("run"));
        run.check_fresh().unwrap();
        run.create().unwrap();
        std::fs::write(run.lock_file(), b"").unwrap();
        std::fs::write(run.root().join(".tmp-x"), b"").unwrap();
        run.check_fresh().unwrap();
        for name in ["report.md", "notes", "a", "b"] {
            std::fs::write(run.root().join(name), b"mine").unwrap();
        }
        let message = run.check_fresh().unwrap_err().to_string();
        assert!(
            message.contains("not empty and not a run (holds a, b, notes and 1 more)"),
            "{message}"
        );
        std::fs::write(run.config(), b"{}").unwrap();
        assert!(matches!(run.check_fresh(), Err(RunError::RunExists(_))));
    }

    #[test]
    fn prepare_output_makes_the_folder_and_leaves_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a/b/bench.json");
        prepare_output(&out).unwrap();
        assert!(out.parent().unwrap().is_dir());
        assert_eq!(std::fs::read_dir(out.parent().unwrap()).unwrap().count(), 0);
        write_atomic(&out, b"x").unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"x");
    }

    /// `/proc` refuses new files to everyone, root included: the error names the file asked
    /// for and the system's reason, never the temporary file tried.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_folder_that_refuses_files_is_named_with_the_file() {
        let out = Path::new("/proc/fashion-mixer-bench.json");
        for e in [prepare_output(out), write_atomic(out, b"x")] {
            let message = e.unwrap_err().to_string();
            assert!(
                message.starts_with("/proc/fashion-mixer-bench.json: "),
                "{message}"
            );
            assert!(message.contains("os error"), "{message}");
            assert!(!message.contains(TEMP_PREFIX), "{message}");
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let message = prepare_output(&file.join("out.json"))
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with(&format!("{}: ", file.display())),
            "{message}"
        );
    }

    #[test]
    fn last_checkpoint_needs_all_three_records() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::new(dir.path());
        assert_eq!(run.last_checkpoint(), None);
        std::fs::create_dir_all(run.checkpoints()).unwrap();
        for kind in ["model", "optim", "scheduler"] {
            std::fs::write(run.checkpoints().join(checkpoint_file(kind, 3)), b"x").unwrap();
        }
        std::fs::write(run.checkpoint_model(4), b"x").unwrap();
        assert_eq!(run.last_checkpoint(), Some(3));
    }
}
