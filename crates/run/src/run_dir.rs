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

    /// `logs/`: Burn's metric logs (`train/`, `valid/`) and `experiment.log`. Kept apart
    /// from the files written here: Burn lists its folder while the last epoch's files are still
    /// being written, and panics when a listed file is renamed or deleted under it.
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// `logs/experiment.log`: what burn-train logged while the run trained.
    pub fn experiment_log(&self) -> PathBuf {
        self.logs().join("experiment.log")
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

/// Checks that the run in `run`, whose `config.json` holds `saved`, was started with the
/// settings `asked` for; otherwise [`RunError::OtherSettings`], naming what differs.
pub fn check_same_settings(
    run: &RunDir,
    saved: &TrainingConfig,
    asked: &TrainingConfig,
) -> Result<(), RunError> {
    let differences = saved.differences(asked);
    if differences.is_empty() {
        return Ok(());
    }
    Err(RunError::OtherSettings {
        path: run.root().to_path_buf(),
        differences,
    })
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
