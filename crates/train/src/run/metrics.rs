//! `metrics.csv`: one row per completed epoch, written by a Burn [`MetricLogger`] once the
//! epoch's checkpoint is complete on disk (so an interrupted run keeps every epoch it finished,
//! and never a row whose checkpoint is missing).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use burn::train::Interrupter;

use burn::train::logger::MetricLogger;
use burn::train::metric::store::{EpochSummary, MetricsUpdate, Split};
use burn::train::metric::{MetricDefinition, MetricId, NumericEntry};

pub use crate::error::Divergence;
use crate::error::TrainError;
use crate::progress::Progress;
use crate::run::artifacts::{RunDir, write_atomic};

/// The header of `metrics.csv`.
pub const METRICS_HEADER: &str =
    "epoch,train_loss,train_accuracy,test_loss,test_accuracy,learning_rate,epoch_seconds";

/// One row of `metrics.csv`; accuracies are fractions in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// Training accuracy over the epoch (measured while the weights changed).
    pub train_accuracy: f64,
    /// Test loss after the epoch.
    pub test_loss: f64,
    /// Test accuracy after the epoch.
    pub test_accuracy: f64,
    /// Mean learning rate over the epoch.
    pub learning_rate: f64,
    /// Wall-clock seconds for the epoch (training and testing).
    pub epoch_seconds: f64,
}

impl EpochMetrics {
    fn to_row(self) -> String {
        format!(
            "{},{:.6},{:.6},{:.6},{:.6},{:.4e},{:.3}",
            self.epoch,
            self.train_loss,
            self.train_accuracy,
            self.test_loss,
            self.test_accuracy,
            self.learning_rate,
            self.epoch_seconds
        )
    }

    fn parse(line: &str) -> Option<Self> {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() != 7 {
            return None;
        }
        let num = |i: usize| f[i].trim().parse::<f64>().ok();
        Some(Self {
            epoch: f[0].trim().parse().ok()?,
            train_loss: num(1)?,
            train_accuracy: num(2)?,
            test_loss: num(3)?,
            test_accuracy: num(4)?,
            learning_rate: num(5)?,
            epoch_seconds: num(6)?,
        })
    }
}

/// The median of `values` (the upper one of an even count); `NaN` for none.
pub fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// What a run's rows add up to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunSummary {
    /// The last completed epoch.
    pub last: EpochMetrics,
    /// The epoch with the highest test accuracy (the last of equals).
    pub best_test: EpochMetrics,
    /// The epoch with the highest training accuracy (the last of equals).
    pub best_train: EpochMetrics,
    /// Median wall time of an epoch, in seconds.
    pub median_epoch_seconds: f64,
    /// Wall time of all epochs, in seconds.
    pub total_seconds: f64,
}

impl RunSummary {
    /// The summary of `rows`; `None` when no epoch has completed.
    pub fn of(rows: &[EpochMetrics]) -> Option<Self> {
        let best = |key: fn(&EpochMetrics) -> f64| {
            rows.iter()
                .copied()
                .max_by(|a, b| key(a).total_cmp(&key(b)))
        };
        let seconds: Vec<f64> = rows.iter().map(|m| m.epoch_seconds).collect();
        Some(Self {
            last: *rows.last()?,
            best_test: best(|m| m.test_accuracy)?,
            best_train: best(|m| m.train_accuracy)?,
            total_seconds: seconds.iter().sum(),
            median_epoch_seconds: median(seconds),
        })
    }
}

/// Reads `metrics.csv`; a missing file is an empty history.
pub fn read_metrics(path: &Path) -> Result<Vec<EpochMetrics>, TrainError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(TrainError::io(path, e)),
    };
    let bad = |message: String| {
        TrainError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidData, message),
        )
    };
    let mut lines = text.lines();
    match lines.next() {
        Some(header) if header.trim() == METRICS_HEADER => {}
        other => {
            return Err(bad(format!(
                "expected header '{METRICS_HEADER}', found '{}'",
                other.unwrap_or("")
            )));
        }
    }
    lines
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            EpochMetrics::parse(l).ok_or_else(|| bad(format!("bad row {}: '{l}'", i + 2)))
        })
        .collect()
}

/// Writes `metrics.csv` atomically, rows sorted by epoch.
pub fn write_metrics(path: &Path, rows: &[EpochMetrics]) -> Result<(), TrainError> {
    let mut rows = rows.to_vec();
    rows.sort_by_key(|r| r.epoch);
    let mut text = String::from(METRICS_HEADER);
    text.push('\n');
    for row in rows {
        text.push_str(&row.to_row());
        text.push('\n');
    }
    write_atomic(path, text.as_bytes())
}

/// Adds (or replaces) the row for `row.epoch` in `metrics.csv`.
pub fn record_epoch(path: &Path, row: EpochMetrics) -> Result<(), TrainError> {
    let mut rows = read_metrics(path)?;
    rows.retain(|r| r.epoch != row.epoch);
    rows.push(row);
    write_metrics(path, &rows)
}

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
    /// From an error of [`write_atomic`] (or any error naming a file).
    pub fn from_error(error: &TrainError, fallback: &Path) -> Self {
        match error {
            TrainError::Io { path, source } => Self {
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

    /// The first write that failed, if any.
    pub fn failure(&self) -> Option<WriteFailure> {
        self.state().failure.clone()
    }
}

/// A Burn metric logger that keeps each epoch's final loss, accuracy and learning rate, and
/// hands the epoch's row to the [`EpochLedger`] when its test pass ends. With an [`Interrupter`], it
/// also stops training when the loss becomes NaN or infinite, and writes no row for an epoch
/// that was cut short.
pub struct CsvMetricLogger {
    ledger: EpochLedger,
    names: HashMap<MetricId, String>,
    values: HashMap<(bool, String), f64>,
    epoch_start: Instant,
    total_epochs: usize,
    progress: Progress,
    interrupter: Option<Interrupter>,
    steps: [usize; 2],
    divergence: DivergenceSlot,
}

impl CsvMetricLogger {
    /// Rows go to `ledger`; each is also said as one line through `progress`.
    pub fn new(ledger: EpochLedger, total_epochs: usize, progress: Progress) -> Self {
        Self {
            ledger,
            names: HashMap::new(),
            values: HashMap::new(),
            epoch_start: Instant::now(),
            total_epochs,
            progress,
            interrupter: None,
            steps: [0, 0],
            divergence: DivergenceSlot::default(),
        }
    }

    /// Watches the loss and stops `interrupter` when it is not finite (the place is put in
    /// `divergence`); rows of epochs that `interrupter` cut short are not written.
    pub fn with_interrupter(
        mut self,
        interrupter: Interrupter,
        divergence: DivergenceSlot,
    ) -> Self {
        self.interrupter = Some(interrupter);
        self.divergence = divergence;
        self
    }

    fn stopped(&self) -> bool {
        self.interrupter.as_ref().is_some_and(|i| i.should_stop())
    }

    fn value(&self, train: bool, name: &str) -> f64 {
        self.values
            .get(&(train, name.to_string()))
            .copied()
            .unwrap_or(f64::NAN)
    }
}

impl MetricLogger for CsvMetricLogger {
    fn log(&mut self, update: MetricsUpdate, epoch: usize, split: &Split) {
        let train = match split {
            Split::Train => true,
            Split::Valid => false,
            Split::Test(_) => return,
        };
        self.steps[usize::from(train)] += 1;
        for numeric in update.entries_numeric {
            let Some(name) = self.names.get(&numeric.entry.metric_id) else {
                continue;
            };
            if name == "Loss"
                && let Some(interrupter) = &self.interrupter
                && let Some(loss) = numeric.numeric_entry.as_ref().map(NumericEntry::current)
                && !loss.is_finite()
            {
                let mut slot = self.divergence.lock().expect("not poisoned");
                if slot.is_none() {
                    let step = self.steps[usize::from(train)];
                    *slot = Some(Divergence {
                        epoch,
                        step,
                        train,
                        loss,
                    });
                    interrupter.stop(Some("the loss is not a finite number"));
                }
            }
            // The epoch's final value when this is the end-of-epoch update; otherwise the
            // running mean so far.
            let value = match (&numeric.numeric_entry, &numeric.running_entry) {
                (Some(NumericEntry::Final(v)), _) => *v,
                (_, Some(running)) => running.current(),
                (Some(entry), None) => entry.current(),
                (None, None) => continue,
            };
            self.values.insert((train, name.clone()), value);
        }
    }

    fn read_numeric(
        &mut self,
        _name: &str,
        _epoch: usize,
        _split: &Split,
    ) -> Result<Vec<NumericEntry>, String> {
        Err("metrics.csv keeps epoch summaries only".into())
    }

    fn log_metric_definition(&mut self, definition: MetricDefinition) {
        self.names
            .insert(definition.metric_id, definition.name.to_string());
    }

    fn log_epoch_summary(&mut self, summary: EpochSummary) {
        if !matches!(summary.split, Split::Valid) {
            return;
        }
        self.steps = [0, 0];
        if self.stopped() {
            // Cut short (Ctrl-C, or the loss diverged): not a completed epoch.
            self.values.clear();
            return;
        }
        let row = EpochMetrics {
            epoch: summary.epoch_number,
            train_loss: self.value(true, "Loss"),
            train_accuracy: self.value(true, "Accuracy") / 100.0,
            test_loss: self.value(false, "Loss"),
            test_accuracy: self.value(false, "Accuracy") / 100.0,
            learning_rate: self.value(true, "Learning Rate"),
            epoch_seconds: self.epoch_start.elapsed().as_secs_f64(),
        };
        self.ledger.epoch_done(row);
        self.progress.say(&format!(
                "epoch {:>3}/{}  train loss {:.4} acc {:6.2}%  test loss {:.4} acc {:6.2}%  lr {:.1e}  {:.1}s",
                row.epoch,
                self.total_epochs,
                row.train_loss,
                100.0 * row.train_accuracy,
                row.test_loss,
                100.0 * row.test_accuracy,
                row.learning_rate,
                row.epoch_seconds
            ));
        self.values.clear();
        self.epoch_start = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(epoch: usize) -> EpochMetrics {
        EpochMetrics {
            epoch,
            train_loss: 0.5,
            train_accuracy: 0.8125,
            test_loss: 0.625,
            test_accuracy: 0.75,
            learning_rate: 1e-3,
            epoch_seconds: 12.5,
        }
    }

    #[test]
    fn rows_round_trip_and_replace_by_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        assert!(read_metrics(&path).unwrap().is_empty());
        record_epoch(&path, row(2)).unwrap();
        record_epoch(&path, row(1)).unwrap();
        let mut again = row(2);
        again.test_loss = 0.25;
        record_epoch(&path, again).unwrap();
        let rows = read_metrics(&path).unwrap();
        assert_eq!(rows, vec![row(1), again]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(&format!("{METRICS_HEADER}\n1,0.500000,0.812500,")));
    }

    #[test]
    fn a_bad_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.csv");
        std::fs::write(&path, "a,b\n").unwrap();
        let msg = read_metrics(&path).unwrap_err().to_string();
        assert!(
            msg.contains("metrics.csv") && msg.contains("expected header"),
            "{msg}"
        );
    }
}
