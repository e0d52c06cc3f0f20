//! The runs under a folder, for the runs page: the list (as `cargo xtask runs` gives it, without
//! paths), one run's curves, configuration and per-class accuracy, and the models of finished
//! runs, loaded when a prediction first asks for one (a few at a time).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use fashion_mixer_train::RunDir;
use fashion_mixer_train::inference::{LoadedModel, load_model};
use fashion_mixer_train::runs::{RunEntry, RunStatus, find_run, list_runs};
use serde_json::{Value, json};

use crate::metrics::Metrics;
use crate::predictor::Predictor;

/// Models of other runs kept loaded at once; the one used longest ago goes first.
const MAX_LOADED: usize = 4;

/// A model being served: its queue and what `/api/model` says of it.
#[derive(Debug)]
pub struct Served {
    /// The model's queue.
    pub predictor: Predictor,
    /// `/api/model`'s answer.
    pub info: Value,
}

/// The runs folder and the models loaded from it.
#[derive(Debug)]
pub struct Board {
    root: PathBuf,
    loaded: Mutex<Vec<(String, Arc<Served>)>>,
    max_batch: usize,
    max_queue: usize,
    metrics: Arc<Metrics>,
    describe: Describe,
}

/// What `/api/model` says of a run and its loaded model.
pub type Describe = fn(&RunDir, &LoadedModel) -> Value;

/// Why a run's model cannot be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unservable {
    /// No run by that name under the folder.
    NoSuchRun(String),
    /// The run has no final record yet, or its files do not load: why.
    NotReady(String),
}

/// A run as the page lists it: no path of the server's file system.
fn public(entry: &RunEntry) -> Value {
    let mut value = serde_json::to_value(entry).expect("a run entry serialises");
    if let Some(map) = value.as_object_mut() {
        map.remove("path");
        if let Some(Value::Object(status)) = map.get_mut("status")
            && let Some(Value::String(problem)) = status.get_mut("problem")
        {
            // Damaged: the problem names the file by its path; keep the file's name.
            let root = entry.path.display().to_string();
            *problem = problem.replace(&root, &entry.name);
        }
    }
    value
}

impl Board {
    /// The runs under `root`; a loaded model gets `max_batch` and `max_queue` as the served
    /// one does, reports its batches to `metrics`, and is described by `describe`.
    pub fn new(
        root: PathBuf,
        (max_batch, max_queue): (usize, usize),
        metrics: Arc<Metrics>,
        describe: Describe,
    ) -> Self {
        Self {
            root,
            loaded: Mutex::new(Vec::new()),
            max_batch,
            max_queue,
            metrics,
            describe,
        }
    }

    /// `GET /api/runs`: every run, oldest first.
    pub fn list(&self) -> Value {
        Value::Array(list_runs(&self.root).iter().map(public).collect())
    }

    /// `GET /api/run?name=...`: the run's entry, configuration, per-epoch metrics and
    /// evaluation; `None` when there is no such run.
    pub fn detail(&self, name: &str) -> Option<Value> {
        let entry = find_run(&self.root, name)?;
        let run = RunDir::new(&entry.path);
        let config = std::fs::read(run.config())
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
        let metrics =
            fashion_mixer_train::metrics::read_metrics(&run.metrics()).unwrap_or_default();
        Some(json!({
            "run": public(&entry),
            "config": config,
            "metrics": metrics.iter().map(|m| json!({
                "epoch": m.epoch,
                "train_loss": m.train_loss,
                "train_accuracy": m.train_accuracy,
                "test_loss": m.test_loss,
                "test_accuracy": m.test_accuracy,
            })).collect::<Vec<_>>(),
            "evaluation": fashion_mixer_train::training::current_evaluation(&run),
        }))
    }

    /// The model of the finished run `name`, loaded on first use.
    pub fn model(&self, name: &str) -> Result<Arc<Served>, Unservable> {
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = loaded.iter().position(|(n, _)| n == name) {
            let hit = loaded.remove(i);
            let served = Arc::clone(&hit.1);
            loaded.push(hit);
            return Ok(served);
        }
        let entry =
            find_run(&self.root, name).ok_or_else(|| Unservable::NoSuchRun(name.to_string()))?;
        if !matches!(entry.status, RunStatus::Finished { record: true }) {
            return Err(Unservable::NotReady(format!(
                "{name} is {}: only a finished run with its model.bpk can predict",
                entry.status
            )));
        }
        let run = RunDir::new(&entry.path);
        let model = load_model(&run, None).map_err(|e| {
            Unservable::NotReady(format!(
                "{name}: {}",
                e.to_string()
                    .replace(&entry.path.display().to_string(), name)
            ))
        })?;
        let mut info = (self.describe)(&run, &model);
        info["run"] = json!(name);
        let served = Arc::new(Served {
            predictor: Predictor::spawn(
                model,
                self.max_batch,
                self.max_queue,
                Arc::clone(&self.metrics),
            ),
            info,
        });
        if loaded.len() >= MAX_LOADED {
            loaded.remove(0);
        }
        loaded.push((name.to_string(), Arc::clone(&served)));
        Ok(served)
    }

    /// Images waiting for the loaded runs' models.
    pub fn queued(&self) -> usize {
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(_, s)| s.predictor.queued())
            .sum()
    }
}
