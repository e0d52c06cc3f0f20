//! A run's folder: what is written there, under which names, and how (atomically).

use std::io::Write;
use std::path::{Path, PathBuf};

use burn::train::checkpoint::{Checkpoint, Checkpointer, CheckpointerError};

use crate::error::TrainError;

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
            .filter(|&epoch| {
                ["optim", "scheduler"].iter().all(|kind| {
                    self.checkpoints()
                        .join(checkpoint_file(kind, epoch))
                        .is_file()
                })
            })
            .max()
    }

    /// Creates the folder (and its parents); an existing file in the way is an error.
    pub fn create(&self) -> Result<(), TrainError> {
        if self.root.exists() && !self.root.is_dir() {
            return Err(TrainError::NotADirectory(self.root.clone()));
        }
        std::fs::create_dir_all(&self.root).map_err(|e| TrainError::io(&self.root, e))
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

/// How [`write_atomic`]'s temporary files are named.
pub const TEMP_PREFIX: &str = ".tmp-";

fn checkpoint_file(kind: &str, epoch: usize) -> String {
    format!("{kind}-{epoch}.bpk")
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed, then
/// renamed over `path`. A crash at any moment leaves the old file or the new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
        .map_err(|e| TrainError::io(path, e))?;
    tmp.write_all(bytes).map_err(|e| TrainError::io(path, e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| TrainError::io(path, e))?;
    tmp.persist(path)
        .map_err(|e| TrainError::io(path, e.error))?;
    Ok(())
}

/// Burn's file checkpointer (`<dir>/<name>-<epoch>.bpk`), but each file is written atomically.
pub struct AtomicFileCheckpointer {
    directory: PathBuf,
    name: String,
}

impl AtomicFileCheckpointer {
    /// Checkpoints named `<name>-<epoch>.bpk` in `directory` (created if needed).
    pub fn new(directory: &Path, name: &str) -> Result<Self, TrainError> {
        std::fs::create_dir_all(directory).map_err(|e| TrainError::io(directory, e))?;
        Ok(Self {
            directory: directory.to_path_buf(),
            name: name.to_string(),
        })
    }

    fn path(&self, epoch: usize) -> PathBuf {
        self.directory.join(checkpoint_file(&self.name, epoch))
    }
}

impl<R: Checkpoint> Checkpointer<R> for AtomicFileCheckpointer {
    fn save(&self, epoch: usize, record: R) -> Result<(), CheckpointerError> {
        let bytes = record
            .checkpoint_into_bytes()
            .map_err(CheckpointerError::Record)?;
        write_atomic(&self.path(epoch), &bytes)
            .map_err(|e| CheckpointerError::Unknown(e.to_string()))
    }

    fn restore(&self, epoch: usize) -> Result<R, CheckpointerError> {
        R::load(self.path(epoch))
    }

    fn delete(&self, epoch: usize) -> Result<(), CheckpointerError> {
        match std::fs::remove_file(self.path(epoch)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(CheckpointerError::IOError(e))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
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
