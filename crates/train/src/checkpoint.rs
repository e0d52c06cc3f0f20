//! The Learner's checkpointer: Burn's file checkpointer, but each record is written atomically,
//! and the [`EpochLedger`] hears when a record lands or cannot be written.

use std::path::{Path, PathBuf};

use burn::train::checkpoint::{Checkpoint, Checkpointer, CheckpointerError};

use crate::error::TrainError;
use crate::ledger::{EpochLedger, WriteFailure};
use fashion_mixer_run::run_dir::{checkpoint_file, write_atomic};

/// Records named `<dir>/<name>-<epoch>.bpk`, each written atomically.
pub struct AtomicFileCheckpointer {
    directory: PathBuf,
    name: String,
    ledger: EpochLedger,
}

impl AtomicFileCheckpointer {
    /// Checkpoints named `<name>-<epoch>.bpk` in `directory` (created if needed); `ledger`
    /// writes an epoch's `metrics.csv` row once its records are all saved.
    pub fn new(directory: &Path, name: &str, ledger: EpochLedger) -> Result<Self, TrainError> {
        std::fs::create_dir_all(directory).map_err(|e| TrainError::io(directory, e))?;
        Ok(Self {
            directory: directory.to_path_buf(),
            name: name.to_string(),
            ledger,
        })
    }

    fn path(&self, epoch: usize) -> PathBuf {
        self.directory.join(checkpoint_file(&self.name, epoch))
    }
}

impl<R: Checkpoint> Checkpointer<R> for AtomicFileCheckpointer {
    fn save(&self, epoch: usize, record: R) -> Result<(), CheckpointerError> {
        let path = self.path(epoch);
        let bytes = record
            .checkpoint_into_bytes()
            .map_err(CheckpointerError::Record)?;
        if let Err(err) = write_atomic(&path, &bytes) {
            let failure = WriteFailure::from_error(&err, &path);
            self.ledger.fail(failure);
            return Err(CheckpointerError::Unknown(err.to_string()));
        }
        self.ledger.flush();
        Ok(())
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
