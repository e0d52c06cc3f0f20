//! What every request can reach: the served run's model and facts (`/api/model`), the metrics,
//! and the runs page with the other runs' models.

use std::sync::Arc;

use burn::module::Module;
use fashion_mixer_run::RunDir;
use fashion_mixer_run::inference::LoadedModel;
use serde_json::Value;

use crate::metrics::Metrics;
use crate::predictor::Predictor;
use crate::response::ApiResponse;
use crate::run_info::model_info;
use crate::runs_page::{RunUnavailable, RunsPage};

/// The largest request body accepted (a photo, or a batch of them): 8 MiB.
pub const MAX_BODY_BYTES: usize = 8 << 20;

/// What every request can reach.
#[derive(Debug)]
pub struct AppState {
    /// The model.
    pub predictor: Predictor,
    /// `GET /api/model`'s answer (see [`model_info`]).
    pub model_info: Value,
    /// What `GET /metrics` reports.
    pub metrics: Arc<Metrics>,
    /// The runs page's folder and the other runs' models (see [`AppState::with_runs`]).
    pub runs_page: Option<RunsPage>,
    /// `max_batch` and `max_queue`, for the other runs' models.
    limits: (usize, usize),
}

impl AppState {
    /// The state for serving `loaded`, the model of the run in `run`: at most `max_batch`
    /// images in one forward pass, at most `max_queue` waiting for it.
    pub fn new(run: &RunDir, loaded: LoadedModel, max_batch: usize, max_queue: usize) -> Self {
        let model_info = model_info(run, &loaded);
        let accuracy = |split: &str| {
            model_info["evaluation"][split]["accuracy"]
                .as_f64()
                .map_or_else(String::new, |a| a.to_string())
        };
        let metrics = Arc::new(Metrics::new(&[
            ("run", model_info["run"].as_str().unwrap_or_default().into()),
            ("backend", loaded.backend.to_string()),
            ("parameters", loaded.model.num_params().to_string()),
            ("test_accuracy", accuracy("test")),
            ("test_mirrored_accuracy", accuracy("test_mirrored")),
        ]));
        Self {
            predictor: Predictor::spawn(loaded, max_batch, max_queue, Arc::clone(&metrics)),
            model_info,
            runs_page: None,
            metrics,
            limits: (max_batch, max_queue),
        }
    }

    /// Lists the runs under `root` on the runs page (`GET /runs`), and lets predictions ask
    /// for any finished one's model (`?run=NAME`).
    pub fn with_runs(self, root: std::path::PathBuf) -> Self {
        let (max_batch, max_queue) = self.limits;
        let page = RunsPage::new(root, (max_batch, max_queue), Arc::clone(&self.metrics));
        self.with_runs_page(page)
    }

    /// [`Self::with_runs`] with a runs page of the caller's (its own loader, say).
    pub fn with_runs_page(mut self, page: RunsPage) -> Self {
        self.runs_page = Some(page);
        self
    }

    /// `max_batch` and `max_queue`, as the served model has them.
    pub fn limits(&self) -> (usize, usize) {
        self.limits
    }

    /// Images waiting for any of the models.
    pub fn queued(&self) -> usize {
        self.predictor.queued() + self.runs_page.as_ref().map_or(0, RunsPage::queued)
    }

    /// The predictor and facts of the run `name` asks for (`None`: the served one). Another
    /// run's model is loaded on first use, off the async threads; meanwhile every other
    /// request is answered.
    pub(crate) async fn served(
        &self,
        name: Option<&str>,
    ) -> Result<(Predictor, Option<Value>), ApiResponse> {
        let Some(name) = name.filter(|n| *n != self.model_info["run"]) else {
            return Ok((self.predictor.clone(), None));
        };
        let Some(page) = &self.runs_page else {
            return Err(ApiResponse::error(
                404,
                "this server serves one run: no ?run=",
            ));
        };
        page.model(name)
            .await
            .map(|served| (served.predictor.clone(), Some(served.info.clone())))
            .map_err(|e| match e {
                RunUnavailable::NoSuchRun(name) => ApiResponse::error(
                    404,
                    format!("no run named {name} (GET /api/runs lists them)"),
                ),
                RunUnavailable::NotReady(why) => ApiResponse::error(409, why),
            })
    }
}
