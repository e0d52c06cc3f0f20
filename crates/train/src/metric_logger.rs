//! A Burn metric logger that turns each epoch's loss, accuracy and learning rate into a
//! `metrics.csv` row for the [`EpochLedger`], and stops training when the loss stops being a
//! finite number.

use std::collections::HashMap;
use std::time::Instant;

use burn::train::Interrupter;
use burn::train::logger::MetricLogger;
use burn::train::metric::store::{EpochSummary, MetricsUpdate, Split};
use burn::train::metric::{MetricDefinition, MetricId, NumericEntry};
use fashion_mixer_run::Progress;
use fashion_mixer_run::metrics::EpochMetrics;

use crate::error::Divergence;
use crate::ledger::{DivergenceSlot, EpochLedger};

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
    /// Where a divergence asks training to stop (`interrupter` when `None`).
    requests: Option<Interrupter>,
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
            requests: None,
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

    /// Asks `requests` to stop training on divergence instead of the watched interrupter (with
    /// other ranks, a request travels with the next step's reduction).
    pub fn with_stop_requests(mut self, requests: Interrupter) -> Self {
        self.requests = Some(requests);
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
                    let requests = self.requests.as_ref().unwrap_or(interrupter);
                    requests.stop(Some("the loss is not a finite number"));
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
        self.progress.emit(&format!(
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
