//! A run folder nobody keeps, in a temporary folder: what a rank other than 0 of a distributed
//! run trains into. It is removed when dropped, and, should its process be killed first, by the
//! next one made with the same name prefix.

use std::fs::File;
use std::path::Path;

use tempfile::TempDir;

use crate::error::RunError;
use crate::run_dir::RunDir;

/// A temporary folder holding a run folder (`run/`), removed when dropped. While its process
/// lives, the folder's `.lock` is locked; the kernel lets go of the lock however the process
/// ends, so a folder whose lock is free was left by a killed process.
pub struct ScratchRun {
    dir: TempDir,
    _lock: File,
}

impl ScratchRun {
    /// A new one in `parent`, its name starting with `prefix`, after removing the folders with
    /// that prefix that killed processes left there.
    pub fn new(parent: &Path, prefix: &str) -> Result<Self, RunError> {
        remove_orphans(parent, prefix);
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(parent)
            .map_err(|e| RunError::io(parent, e))?;
        // Locked before it takes its name, so no other process finds it free.
        let taking = dir.path().join(".lock.new");
        let lock = File::create(&taking).map_err(|e| RunError::io(&taking, e))?;
        lock.lock().map_err(|e| RunError::io(&taking, e))?;
        let named = dir.path().join(".lock");
        std::fs::rename(&taking, &named).map_err(|e| RunError::io(&named, e))?;
        Ok(Self { dir, _lock: lock })
    }

    /// The temporary folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The run folder inside it (made when the run is).
    pub fn run(&self) -> RunDir {
        RunDir::new(self.dir.path().join("run"))
    }
}

/// Removes the folders in `parent` named `prefix...` whose lock is free (see [`ScratchRun`]).
/// A folder without a `.lock` is left alone: it is still being made, or not one of these.
fn remove_orphans(parent: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        let Ok(lock) = File::open(entry.path().join(".lock")) else {
            continue;
        };
        if lock.try_lock().is_ok() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
