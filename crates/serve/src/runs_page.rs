//! The runs under a folder, for the runs page: the list (as `cargo xtask runs` gives it, without
//! paths), one run's curves, configuration and per-class accuracy, and the models of finished
//! runs, loaded when a prediction first asks for one (a few kept at a time).
//!
//! A model loads on a thread of its own, never on the server's async threads and never under
//! the lock that other requests take: while it loads (a wgpu start may take 30 s), every other
//! request, and every other model's predictions, are answered; requests for the same run wait
//! for the one load.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use fashion_mixer_experiments::runs::{RunEntry, RunStatus, find_run, list_runs};
use fashion_mixer_run::evaluation::current_evaluation;
use fashion_mixer_run::inference::{LoadedModel, load_model};
use fashion_mixer_run::metrics::read_metrics;
use fashion_mixer_run::{RunDir, RunError};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::predictor::Predictor;
use crate::run_info::model_info;

/// Models of other runs kept loaded at once; the one used longest ago goes first.
const MAX_LOADED: usize = 4;

/// A run's model being served: its queue and what `/api/model` says of it.
#[derive(Debug)]
pub struct ServedRun {
    /// The model's queue.
    pub predictor: Predictor,
    /// `/api/model`'s answer.
    pub info: Value,
}

/// Why a run's model cannot be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunUnavailable {
    /// No run by that name under the folder.
    NoSuchRun(String),
    /// The run has no final record yet, or its files do not load: why.
    NotReady(String),
}

/// How a run's model is loaded (the runs page's own: [`load_model`] on the run's backend).
pub type Loader = Arc<dyn Fn(&RunDir) -> Result<LoadedModel, RunError> + Send + Sync>;

/// What a load ends with, as its waiters receive it.
type Loaded = Result<Arc<ServedRun>, RunUnavailable>;

/// A run's model, loaded or on its way.
#[derive(Debug)]
enum Slot {
    /// Loading: its result arrives on the channel.
    Loading(watch::Receiver<Option<Loaded>>),
    /// Loaded.
    Ready(Arc<ServedRun>),
}

/// The runs folder and the models loaded from it.
pub struct RunsPage {
    root: PathBuf,
    /// Models by run name, the one used longest ago first. Held only to look up or change the
    /// list, never while a model loads.
    slots: Arc<Mutex<Vec<(String, Slot)>>>,
    max_batch: usize,
    max_queue: usize,
    metrics: Arc<Metrics>,
    loader: Loader,
}

impl std::fmt::Debug for RunsPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunsPage")
            .field("root", &self.root)
            .field("max_batch", &self.max_batch)
            .field("max_queue", &self.max_queue)
            .finish_non_exhaustive()
    }
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

/// The slots, whoever held the lock before having panicked or not.
fn lock(slots: &Mutex<Vec<(String, Slot)>>) -> MutexGuard<'_, Vec<(String, Slot)>> {
    slots.lock().unwrap_or_else(|e| e.into_inner())
}

impl RunsPage {
    /// The runs under `root`; a loaded model gets `max_batch` and `max_queue` as the served
    /// one does and reports its batches to `metrics`.
    pub fn new(
        root: PathBuf,
        (max_batch, max_queue): (usize, usize),
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            root,
            slots: Arc::default(),
            max_batch,
            max_queue,
            metrics,
            loader: Arc::new(|run| load_model(run, None)),
        }
    }

    /// The same, loading each run's model with `loader` (the tests' slow one, say).
    pub fn with_loader(mut self, loader: Loader) -> Self {
        self.loader = loader;
        self
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
        let metrics = read_metrics(&run.metrics()).unwrap_or_default();
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
            "evaluation": current_evaluation(&run),
        }))
    }

    /// The model of the finished run `name`: at once when loaded, else after its load (started
    /// now on a thread of its own, or already under way for another request).
    pub async fn model(&self, name: &str) -> Result<Arc<ServedRun>, RunUnavailable> {
        let mut waiting = {
            let mut slots = lock(&self.slots);
            match slots.iter().position(|(n, _)| n == name) {
                Some(i) => {
                    let slot = slots.remove(i);
                    let pending = match &slot.1 {
                        Slot::Ready(served) => Ok(Arc::clone(served)),
                        Slot::Loading(receiver) => Err(receiver.clone()),
                    };
                    slots.push(slot); // used most recently
                    match pending {
                        Ok(served) => return Ok(served),
                        Err(receiver) => receiver,
                    }
                }
                None => {
                    let (sender, receiver) = watch::channel(None);
                    slots.push((name.to_string(), Slot::Loading(receiver.clone())));
                    self.start_loading(name, sender);
                    receiver
                }
            }
        };
        let loaded = waiting
            .wait_for(Option::is_some)
            .await
            .map(|loaded| loaded.clone());
        match loaded {
            Ok(Some(loaded)) => loaded,
            // The loading thread ended without a word: it could not start, or it panicked.
            _ => Err(RunUnavailable::NotReady(format!(
                "{name}: its model could not be loaded"
            ))),
        }
    }

    /// Loads `name`'s model on a thread of its own, then puts it in its slot (or, when it
    /// cannot be served, frees the slot for a later try) and tells the waiters.
    fn start_loading(&self, name: &str, sender: watch::Sender<Option<Loaded>>) {
        let job = LoadJob {
            name: name.to_string(),
            root: self.root.clone(),
            limits: (self.max_batch, self.max_queue),
            metrics: Arc::clone(&self.metrics),
            loader: Arc::clone(&self.loader),
        };
        let slots = Arc::clone(&self.slots);
        let started = std::thread::Builder::new()
            .name("mixer-run-loader".into())
            .spawn(move || {
                let name = job.name.clone();
                let loaded = job.run();
                let mut slots = lock(&slots);
                let at = slots.iter().position(|(n, _)| *n == name);
                match (&loaded, at) {
                    (Ok(served), Some(i)) => {
                        slots[i].1 = Slot::Ready(Arc::clone(served));
                        // The longest unused ready model goes when there are too many.
                        let ready = |(_, slot): &(String, Slot)| matches!(slot, Slot::Ready(_));
                        if slots.iter().filter(|s| ready(s)).count() > MAX_LOADED
                            && let Some(oldest) = slots.iter().position(ready)
                        {
                            slots.remove(oldest);
                        }
                    }
                    (Err(_), Some(i)) => {
                        slots.remove(i);
                    }
                    (_, None) => {}
                }
                drop(slots);
                let _ = sender.send(Some(loaded));
            });
        if started.is_err() {
            // No thread: the waiters hear that the sender is gone; free the slot.
            lock(&self.slots).retain(|(n, _)| n.as_str() != name);
        }
    }

    /// Images waiting for the loaded runs' models.
    pub fn queued(&self) -> usize {
        lock(&self.slots)
            .iter()
            .map(|(_, slot)| match slot {
                Slot::Ready(served) => served.predictor.queued(),
                Slot::Loading(_) => 0,
            })
            .sum()
    }
}

/// What a loading thread needs: everything by value, nothing of the page's lock.
struct LoadJob {
    name: String,
    root: PathBuf,
    limits: (usize, usize),
    metrics: Arc<Metrics>,
    loader: Loader,
}

impl LoadJob {
    /// Finds the run, checks it has finished, loads its model and starts its predictor.
    fn run(self) -> Loaded {
        let name = &self.name;
        let entry =
            find_run(&self.root, name).ok_or_else(|| RunUnavailable::NoSuchRun(name.clone()))?;
        if !matches!(entry.status, RunStatus::Finished { record: true }) {
            return Err(RunUnavailable::NotReady(format!(
                "{name} is {}: only a finished run with its model.bpk can predict",
                entry.status
            )));
        }
        let run = RunDir::new(&entry.path);
        let model = (self.loader)(&run).map_err(|e| {
            RunUnavailable::NotReady(format!(
                "{name}: {}",
                e.to_string()
                    .replace(&entry.path.display().to_string(), name)
            ))
        })?;
        let mut info = model_info(&run, &model);
        info["run"] = json!(name);
        let (max_batch, max_queue) = self.limits;
        Ok(Arc::new(ServedRun {
            predictor: Predictor::spawn(model, max_batch, max_queue, self.metrics),
            info,
        }))
    }
}
