//! The epoch ledger: keeps `metrics.csv` in step with the checkpoints (a completed epoch's row is
//! written once its records are on disk), and the first write that failed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use burn::train::Interrupter;
use fashion_mixer_run::metrics::{EpochMetrics, record_epoch};
use fashion_mixer_run::{RunDir, RunError};

use crate::error::Divergence;

/// Shared between the logger, which detects a divergence, and the code that launched training.
pub type DivergenceSlot = Arc<Mutex<Option<Divergence>>>;

/// A file of the run that could not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteFailure {
    /// The file (its final name, not a temporary one).
    pub path: PathBuf,
    /// Why, in words.
    pub cause: String,
}

impl WriteFailure {
    /// From an error of [`write_atomic`](fashion_mixer_run::run_dir::write_atomic) (or any error naming a file).
    pub fn from_error(error: &RunError, fallback: &Path) -> Self {
        match error {
            RunError::Io { path, source } => Self {
                path: path.clone(),
                cause: describe_io_error(source),
            },
            other => Self {
                path: fallback.to_path_buf(),
                cause: other.to_string(),
            },
        }
    }
}

/// An I/O error in words: the usual causes of a failed write named plainly.
pub fn describe_io_error(e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::StorageFull => "no space left on the device (the disk is full)".into(),
        ErrorKind::QuotaExceeded => "the disk quota is exceeded".into(),
        ErrorKind::ReadOnlyFilesystem => "the file system is read-only".into(),
        ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Keeps `metrics.csv` in step with the checkpoints: a completed epoch's row is written only
/// once that epoch's model, optimizer and scheduler records are all on disk. Shared by the
/// metric logger (which hands in rows) and the checkpointer (which says when records land).
/// The first write that fails is kept, and stops training through the interrupter.
#[derive(Clone)]
pub struct EpochLedger {
    run: RunDir,
    interrupter: Interrupter,
    state: Arc<Mutex<LedgerState>>,
}

#[derive(Default)]
struct LedgerState {
    pending: Vec<EpochMetrics>,
    failure: Option<WriteFailure>,
    /// A write of Burn's logs that failed: named only where no file of the run's own failed.
    logs_failure: Option<WriteFailure>,
}

impl EpochLedger {
    /// For the run in `run`; a failed write stops `interrupter`.
    pub fn new(run: RunDir, interrupter: Interrupter) -> Self {
        Self {
            run,
            interrupter,
            state: Arc::default(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LedgerState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An epoch completed: its row is written as soon as its checkpoint is complete.
    pub fn epoch_done(&self, row: EpochMetrics) {
        self.state().pending.push(row);
        self.flush();
    }

    /// Writes the rows whose checkpoints are complete.
    pub fn flush(&self) {
        let mut state = self.state();
        let path = self.run.metrics();
        while let Some(i) = state
            .pending
            .iter()
            .position(|row| self.run.has_checkpoint(row.epoch))
        {
            let row = state.pending.remove(i);
            if let Err(err) = record_epoch(&path, row) {
                drop(state);
                self.fail(WriteFailure::from_error(&err, &path));
                return;
            }
        }
    }

    /// A file could not be written: training stops; the first failure is kept.
    pub fn fail(&self, failure: WriteFailure) {
        self.state().failure.get_or_insert(failure);
        self.interrupter
            .stop(Some("a file of the run could not be written"));
    }

    /// A write of Burn's metric logs failed: training stops as for [`Self::fail`], but a failed
    /// write of the run's own files (a checkpoint, `metrics.csv`), which a full disk usually
    /// brings at the same moment, is the one [`Self::failure`] names.
    pub fn fail_logs(&self, failure: WriteFailure) {
        self.state().logs_failure.get_or_insert(failure);
        self.interrupter
            .stop(Some("a file of the run could not be written"));
    }

    /// The first write of the run's own files that failed, else the first of the logs, if any.
    pub fn failure(&self) -> Option<WriteFailure> {
        let state = self.state();
        state.failure.clone().or_else(|| state.logs_failure.clone())
    }
}
