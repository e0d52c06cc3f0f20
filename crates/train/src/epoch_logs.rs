//! Burn's per-epoch metric logs (`logs/<split>/epoch-<N>/<Metric>.log`, one serialized entry a
//! line: the layout Burn's `FileMetricLogger` writes and its end-of-training summary reads),
//! written without panicking. Burn's own logger writes from a thread that panics on a failed
//! write (a full disk), and the training then panics with it; here the first failed write
//! goes to the [`EpochLedger`], which stops training and names the file, and nothing more is
//! written to the logs.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::train::logger::MetricLogger;
use burn::train::metric::store::{EpochSummary, MetricsUpdate, Split};
use burn::train::metric::{MetricDefinition, MetricId, NumericEntry};

use crate::ledger::{EpochLedger, WriteFailure, describe_io_error};

/// Burn's metric logs of a training, under `directory`.
pub struct EpochLogs {
    directory: PathBuf,
    names: HashMap<MetricId, String>,
    /// The files of the current epoch, opened (and emptied) at their first line.
    files: HashMap<PathBuf, File>,
    epoch: Option<usize>,
    ledger: EpochLedger,
    failed: bool,
}

impl EpochLogs {
    /// Logs under `directory`; a write that fails is handed to `ledger`.
    pub fn new(directory: impl AsRef<Path>, ledger: EpochLedger) -> Self {
        Self {
            directory: directory.as_ref().to_path_buf(),
            names: HashMap::new(),
            files: HashMap::new(),
            epoch: None,
            ledger,
            failed: false,
        }
    }

    /// Where Burn keeps `name`'s entries of `epoch` on `split`.
    fn path(&self, name: &str, epoch: usize, split: &Split) -> PathBuf {
        let mut dir = self.directory.join(split.to_string());
        if let Split::Test(Some(tag)) = split {
            dir = dir.join(tag.trim().replace(' ', "-").to_lowercase());
        }
        dir.join(format!("epoch-{epoch}"))
            .join(format!("{}.log", name.replace(' ', "_")))
    }

    /// Appends `line` to the file at `path`, creating (or emptying) it at its first line.
    fn append(&mut self, path: PathBuf, line: &str) -> std::io::Result<()> {
        if !self.files.contains_key(&path) {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            self.files.insert(path.clone(), File::create(&path)?);
        }
        let file = self.files.get_mut(&path).expect("opened above");
        writeln!(file, "{line}")
    }
}

impl MetricLogger for EpochLogs {
    fn log(&mut self, update: MetricsUpdate, epoch: usize, split: &Split) {
        if self.failed {
            return;
        }
        if self.epoch != Some(epoch) {
            self.files.clear();
            self.epoch = Some(epoch);
        }
        let entries = update
            .entries
            .iter()
            .chain(update.entries_numeric.iter().map(|numeric| &numeric.entry));
        for entry in entries {
            if entry.serialized_entry.is_not_available() {
                continue;
            }
            let Some(name) = self.names.get(&entry.metric_id) else {
                continue;
            };
            let path = self.path(name, epoch, split);
            if let Err(error) = self.append(path.clone(), &entry.serialized_entry.serialized) {
                self.failed = true;
                self.files.clear();
                self.ledger.fail_logs(WriteFailure {
                    path,
                    cause: describe_io_error(&error),
                });
                return;
            }
        }
    }

    fn read_numeric(
        &mut self,
        name: &str,
        epoch: usize,
        split: &Split,
    ) -> Result<Vec<NumericEntry>, String> {
        let path = self.path(name, epoch, split);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        text.lines()
            .filter(|line| !line.is_empty())
            .map(NumericEntry::deserialize)
            .collect()
    }

    fn log_metric_definition(&mut self, definition: MetricDefinition) {
        self.names
            .insert(definition.metric_id, definition.name.to_string());
    }

    fn log_epoch_summary(&mut self, _summary: EpochSummary) {
        self.files.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::train::Interrupter;
    use burn::train::metric::store::NumericMetricUpdate;
    use burn::train::metric::{LossMetric, MetricEntry, SerializedEntry};
    use fashion_mixer_run::RunDir;

    fn update(id: &MetricId, value: f64) -> MetricsUpdate {
        let entry = MetricEntry::new(
            id.clone(),
            SerializedEntry::new(format!("{value}"), NumericEntry::Value(value).serialize()),
        );
        MetricsUpdate::new(
            Vec::new(),
            vec![NumericMetricUpdate::new(
                entry,
                Some(NumericEntry::Value(value)),
                None,
            )],
        )
    }

    fn logs(dir: &Path) -> (EpochLogs, EpochLedger, Interrupter, MetricId) {
        let stop = Interrupter::new();
        let ledger = EpochLedger::new(RunDir::new(dir), stop.clone());
        let mut logs = EpochLogs::new(dir.join("logs"), ledger.clone());
        let id = MetricId::new(std::sync::Arc::new("loss".to_string()));
        logs.log_metric_definition(MetricDefinition::new(id.clone(), &LossMetric::new()));
        (logs, ledger, stop, id)
    }

    #[test]
    fn entries_land_where_burns_summary_reads_them() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut logs, ledger, stop, id) = logs(tmp.path());
        logs.log(update(&id, 0.5), 1, &Split::Train);
        logs.log(update(&id, 0.25), 1, &Split::Train);
        logs.log(update(&id, 0.75), 2, &Split::Valid);
        let file = tmp.path().join("logs/train/epoch-1/Loss.log");
        assert_eq!(std::fs::read_to_string(file).unwrap(), "0.5\n0.25\n");
        let read = logs.read_numeric("Loss", 2, &Split::Valid).unwrap();
        assert_eq!(
            read.iter().map(NumericEntry::current).collect::<Vec<_>>(),
            [0.75]
        );
        assert!(
            logs.read_numeric("Loss", 3, &Split::Valid)
                .unwrap()
                .is_empty()
        );
        // A resumed epoch starts its files again.
        let mut again = self::logs(tmp.path()).0;
        again.log(update(&id, 0.125), 1, &Split::Train);
        let file = tmp.path().join("logs/train/epoch-1/Loss.log");
        assert_eq!(std::fs::read_to_string(file).unwrap(), "0.125\n");
        assert!(ledger.failure().is_none() && !stop.should_stop());
    }

    #[test]
    fn a_failed_write_stops_training_and_names_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut logs, ledger, stop, id) = logs(tmp.path());
        // A file where the split's folder should be: the folder cannot be made.
        std::fs::create_dir_all(tmp.path().join("logs")).unwrap();
        std::fs::write(tmp.path().join("logs/train"), b"").unwrap();
        logs.log(update(&id, 0.5), 1, &Split::Train);
        let failure = ledger.failure().expect("a failure");
        assert_eq!(failure.path, tmp.path().join("logs/train/epoch-1/Loss.log"));
        assert!(stop.should_stop());
        // Nothing more is tried.
        logs.log(update(&id, 0.25), 1, &Split::Valid);
        assert!(!tmp.path().join("logs/valid").exists());
    }

    #[test]
    fn a_failed_write_of_the_runs_own_files_is_the_one_named() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, ledger, _, _) = logs(tmp.path());
        let logs_failure = WriteFailure {
            path: tmp.path().join("logs/train/epoch-2/Loss.log"),
            cause: "no space".into(),
        };
        let checkpoint = WriteFailure {
            path: tmp.path().join("checkpoint/model-2.bpk"),
            cause: "no space".into(),
        };
        ledger.fail_logs(logs_failure.clone());
        assert_eq!(ledger.failure(), Some(logs_failure));
        ledger.fail(checkpoint.clone());
        assert_eq!(ledger.failure(), Some(checkpoint));
    }
}
