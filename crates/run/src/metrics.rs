//! `metrics.csv`: one row per completed epoch (training writes a row once the epoch's
//! checkpoint is complete on disk), read back for reports, listings and the served page.

use std::path::Path;

use crate::error::RunError;
use crate::run_dir::{RunDir, write_atomic};

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

/// The last epoch `metrics.csv` holds a row of (0: none, or no readable file).
pub fn epochs_done(run: &RunDir) -> usize {
    read_metrics(&run.metrics()).map_or(0, |rows| rows.last().map_or(0, |row| row.epoch))
}

/// Whether the run in `run` has finished its `epochs`: `model.bpk` written, and its last epoch
/// done: checkpointed, or (a run without checkpoints: shipped, imported, or its checkpoints
/// removed) in `metrics.csv`.
pub fn is_finished(run: &RunDir, epochs: usize) -> bool {
    run.model().is_file()
        && (run.last_checkpoint().is_some_and(|e| e >= epochs) || epochs_done(run) >= epochs)
}

/// Reads `metrics.csv`; a missing file is an empty history.
pub fn read_metrics(path: &Path) -> Result<Vec<EpochMetrics>, RunError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(RunError::io(path, e)),
    };
    let bad = |message: String| {
        RunError::io(
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
pub fn write_metrics(path: &Path, rows: &[EpochMetrics]) -> Result<(), RunError> {
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
pub fn record_epoch(path: &Path, row: EpochMetrics) -> Result<(), RunError> {
    let mut rows = read_metrics(path)?;
    rows.retain(|r| r.epoch != row.epoch);
    rows.push(row);
    write_metrics(path, &rows)
}
