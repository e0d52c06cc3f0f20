//! The routes, as plain functions from a request (method, path, content type, body) to a
//! response (status, content type, body) or to the pictures the model is to see: the page, the
//! prediction API, the model's facts, health, metrics; errors as `{"error": "..."}`.

use std::sync::Arc;

use burn::module::Module;
use fashion_mixer_data::CLASS_NAMES;
use fashion_mixer_data::picture::decode_image;
use fashion_mixer_model::Activation;
use fashion_mixer_train::inference::{LoadedModel, Prediction, top_k};
use fashion_mixer_train::{LrSchedule, OptimizerKind, RunDir, TrainingConfig};
use serde_json::{Value, json};

use crate::board::{Board, Unservable};
use crate::metrics::Metrics;
use crate::multipart;
use crate::predictor::{Image, Predictor};

/// The largest request body accepted (a photo, or a batch of them): 8 MiB.
pub const MAX_BODY_BYTES: usize = 8 << 20;

/// The most pictures one batch request may hold.
const MAX_BATCH_FILES: usize = 256;

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
    pub board: Option<Board>,
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
            board: None,
            metrics,
            limits: (max_batch, max_queue),
        }
    }

    /// Lists the runs under `root` on the runs page (`GET /runs`), and lets predictions ask
    /// for any finished one's model (`?run=NAME`).
    pub fn with_runs(mut self, root: std::path::PathBuf) -> Self {
        let (max_batch, max_queue) = self.limits;
        self.board = Some(Board::new(
            root,
            (max_batch, max_queue),
            Arc::clone(&self.metrics),
            model_info,
        ));
        self
    }

    /// Images waiting for any of the models.
    pub fn queued(&self) -> usize {
        self.predictor.queued() + self.board.as_ref().map_or(0, Board::queued)
    }

    /// The predictor and facts of the run `name` asks for (`None`: the served one).
    fn served(&self, name: Option<&str>) -> Result<(Predictor, Option<Value>), Reply> {
        let Some(name) = name.filter(|n| *n != self.model_info["run"]) else {
            return Ok((self.predictor.clone(), None));
        };
        let Some(board) = &self.board else {
            return Err(Reply::error(404, "this server serves one run: no ?run="));
        };
        board
            .model(name)
            .map(|served| (served.predictor.clone(), Some(served.info.clone())))
            .map_err(|e| match e {
                Unservable::NoSuchRun(name) => Reply::error(
                    404,
                    format!("no run named {name} (GET /api/runs lists them)"),
                ),
                Unservable::NotReady(why) => Reply::error(409, why),
            })
    }
}

/// The run's name: its folder's name, never the path to it (which a server must not show).
pub fn run_name(run: &RunDir) -> String {
    run.name()
}

/// The configuration in one line: the architecture, then the training recipe.
pub fn config_summary(config: &TrainingConfig) -> String {
    let m = &config.model;
    let mut parts = vec![match m.patch_stride {
        Some(stride) if stride != m.patch_size => {
            format!("{0}x{0} patches every {stride} px", m.patch_size)
        }
        _ => format!("{0}x{0} patches", m.patch_size),
    }];
    parts.push(format!(
        "{} features, {} blocks (token MLP {}, channel MLP {})",
        m.dim, m.depth, m.token_hidden, m.channel_hidden
    ));
    parts.extend(m.residual.then(|| "residual".to_string()));
    parts.extend(m.layer_norm.then(|| "LayerNorm".to_string()));
    parts.push(
        match m.activation {
            Activation::Relu => "ReLU",
            Activation::Gelu => "GELU",
        }
        .to_string(),
    );
    let optimizer = match config.optimizer {
        OptimizerKind::Sgd => "SGD",
        OptimizerKind::Adam => "Adam",
        OptimizerKind::AdamW => "AdamW",
    };
    let mut recipe = format!(
        "{optimizer} lr {} weight decay {}",
        config.lr, config.weight_decay
    );
    if config.lr_schedule == LrSchedule::Cosine {
        recipe.push_str(", cosine schedule");
    }
    for (value, name) in [
        (config.random_erasing, "random erasing"),
        (config.mixup, "mixup"),
        (config.cutmix, "cutmix"),
        (config.ema_decay, "weights averaged"),
    ] {
        if value > 0.0 {
            recipe.push_str(&format!(", {name} {value}"));
        }
    }
    // The teacher's folder by name only: the page names no path of the server's disk.
    if let Some(teacher) = config.distill_from.as_ref().and_then(|p| p.file_name()) {
        recipe.push_str(&format!(", distilled from {}", teacher.to_string_lossy()));
    }
    recipe.push_str(&format!(
        ", batch {}, {} epochs",
        config.batch_size, config.epochs
    ));
    format!("{}; {recipe}", parts.join(", "))
}

/// What `GET /api/model` says about the run in `run` whose model is `loaded`: its name (the
/// folder's, no path), a one-line summary and the configuration, parameter count, class names,
/// evaluation (`eval.json`, when it describes the record) and per-epoch metrics (for the
/// curves).
pub fn model_info(run: &RunDir, loaded: &LoadedModel) -> Value {
    let metrics: Vec<Value> = fashion_mixer_train::metrics::read_metrics(&run.metrics())
        .unwrap_or_default()
        .iter()
        .map(|m| {
            json!({
                "epoch": m.epoch,
                "train_loss": m.train_loss,
                "train_accuracy": m.train_accuracy,
                "test_loss": m.test_loss,
                "test_accuracy": m.test_accuracy,
            })
        })
        .collect();
    let mut config = loaded.config.clone();
    // Where the weights started from: its name, not the server's path to it.
    config.init_from = config
        .init_from
        .as_deref()
        .and_then(|p| p.file_name())
        .map(Into::into);
    json!({
        "run": run_name(run),
        "record": run.relative(&loaded.record),
        "summary": config_summary(&config),
        "backend": loaded.backend.to_string(),
        "config": config,
        "parameters": loaded.model.num_params(),
        "classes": CLASS_NAMES,
        "evaluation": fashion_mixer_train::training::current_evaluation(run),
        "metrics": metrics,
    })
}

/// What the page will lack for the run in `run`, and why, in one line each: a `metrics.csv`
/// that does not read (no curves), an `eval.json` that is missing, unreadable or of another
/// record (no accuracy). A run without `metrics.csv` (an imported one) lacks nothing it had.
pub fn page_gaps(run: &RunDir) -> Vec<String> {
    let mut gaps = Vec::new();
    if run.metrics().exists()
        && let Err(e) = fashion_mixer_train::metrics::read_metrics(&run.metrics())
    {
        gaps.push(format!("{e}; the page shows no curves"));
    }
    if fashion_mixer_train::training::current_evaluation(run).is_none() {
        gaps.push(format!(
            "{}: missing, unreadable or not of this record; the page shows no accuracy \
             (`cargo xtask eval --artifacts {}` writes it)",
            run.eval().display(),
            run.root().display()
        ));
    }
    gaps
}

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its body.
    pub body: Vec<u8>,
    /// `Retry-After`, seconds (with 503).
    pub retry_after: Option<u32>,
}

impl Reply {
    fn json(status: u16, value: &Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: value.to_string().into_bytes(),
            retry_after: None,
        }
    }

    /// A page.
    fn html(text: &str) -> Self {
        Self {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: text.as_bytes().to_vec(),
            retry_after: None,
        }
    }

    /// 503 with `Retry-After: 1`: the model cannot take the request now.
    pub fn busy(message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(1),
            ..Self::error(503, message)
        }
    }

    /// `{"error": message}` with `status`.
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        Self::json(status, &json!({ "error": message.into() }))
    }
}

/// What a request is, as far as the routes care.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// The query (after `?`; empty when none).
    pub query: &'a str,
    /// The `Content-Type` header (empty when absent).
    pub content_type: &'a str,
    /// The body (at most [`MAX_BODY_BYTES`]).
    pub body: &'a [u8],
}

/// What a request asks for.
#[derive(Debug)]
pub enum Route {
    /// An answer that needs nothing more.
    Reply(Reply),
    /// The metrics (the server adds its gauges).
    Metrics,
    /// Predictions for these pictures.
    Predict(Upload),
}

/// The pictures of a prediction request, decoded.
#[derive(Debug)]
pub struct Upload {
    /// Each picture's name (a form part's file name, or "the body").
    pub names: Vec<String>,
    /// The 28x28 inputs.
    pub images: Vec<Image>,
    /// Whether the answer is a batch's (`{predictions: [...]}`).
    pub batch: bool,
    /// The model to ask.
    pub predictor: Predictor,
}

impl Upload {
    /// The answer, given the model's `predictions` for [`Self::images`].
    pub fn answer(&self, predictions: &[Prediction]) -> Reply {
        let mut answers: Vec<Value> = self
            .images
            .iter()
            .zip(predictions)
            .map(|(input, prediction)| prediction_json(input, prediction))
            .collect();
        if !self.batch {
            return Reply::json(200, &answers.remove(0));
        }
        for (answer, name) in answers.iter_mut().zip(&self.names) {
            answer["name"] = json!(name);
        }
        Reply::json(200, &json!({ "predictions": answers }))
    }
}

/// The value of `key` in a URL query (`a=1&run=x%2Fy`), percent-decoded.
pub fn param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| {
            let bytes = v.as_bytes();
            let mut out = Vec::with_capacity(bytes.len());
            let mut i = 0;
            while i < bytes.len() {
                let hex = v
                    .get(i + 1..i + 3)
                    .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match (bytes[i], hex) {
                    (b'%', Some(b)) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    (b'+', _) => out.push(b' '),
                    (b, _) => out.push(b),
                }
                i += 1;
            }
            String::from_utf8_lossy(&out).into_owned()
        })
    })
}

/// The routes, for the 404's message.
const ROUTES: &str = "GET /, GET /runs, GET /healthz, GET /metrics, GET /api/model, \
                      GET /api/runs, GET /api/run?name=, POST /api/predict, POST /api/predict/batch";

/// What `ask` asks for: an answer now, or pictures to predict.
pub fn route(state: &AppState, ask: Ask) -> Route {
    let run = param(ask.query, "run");
    let board = || {
        state.board.as_ref().ok_or_else(|| {
            Reply::error(
                404,
                "this server lists no runs (cargo xtask serve --runs DIR)",
            )
        })
    };
    let result = match (ask.method, ask.path) {
        ("GET", "/") => Ok(Route::Reply(Reply::html(include_str!("page.html")))),
        ("GET", "/runs") => board().map(|_| Route::Reply(Reply::html(include_str!("runs.html")))),
        ("GET", "/healthz") => Ok(Route::Reply(Reply::json(200, &json!({ "status": "ok" })))),
        ("GET", "/metrics") => Ok(Route::Metrics),
        ("GET", "/api/model") => state.served(run.as_deref()).map(|(_, info)| {
            Route::Reply(Reply::json(200, info.as_ref().unwrap_or(&state.model_info)))
        }),
        ("GET", "/api/runs") => board().map(|b| Route::Reply(Reply::json(200, &b.list()))),
        ("GET", "/api/run") => board().and_then(|b| {
            let name = param(ask.query, "name").unwrap_or_default();
            b.detail(&name)
                .map(|detail| Route::Reply(Reply::json(200, &detail)))
                .ok_or_else(|| {
                    Reply::error(
                        404,
                        format!("no run named {name:?} (GET /api/runs lists them)"),
                    )
                })
        }),
        ("POST", "/api/predict" | "/api/predict/batch") => {
            state.served(run.as_deref()).and_then(|(predictor, _)| {
                upload(ask, ask.path.ends_with("batch"), predictor).map(Route::Predict)
            })
        }
        (
            _,
            "/" | "/runs" | "/healthz" | "/metrics" | "/api/model" | "/api/runs" | "/api/run"
            | "/api/predict" | "/api/predict/batch",
        ) => Err(Reply::error(
            405,
            format!("{} is not allowed on {}", ask.method, ask.path),
        )),
        _ => Err(Reply::error(
            404,
            format!("no {} {}: the routes are {ROUTES}", ask.method, ask.path),
        )),
    };
    result.unwrap_or_else(Route::Reply)
}

/// The pictures of a request: each part of a multipart form, or the whole body when it is
/// sent as image bytes.
fn uploads(ask: Ask) -> Result<Vec<(String, Vec<u8>)>, Reply> {
    let content_type = ask.content_type.to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let boundary = multipart::boundary(ask.content_type)
            .ok_or_else(|| Reply::error(400, "multipart/form-data without a boundary"))?;
        return multipart::parts(ask.body, &boundary)
            .map_err(|e| Reply::error(400, format!("a malformed multipart form: {e}")));
    }
    let image_like = content_type.is_empty()
        || content_type.starts_with("image/")
        || content_type.starts_with("application/octet-stream")
        // What `curl --data-binary @shirt.png` sends without `-H`: taken when the bytes are a
        // PNG's or a JPEG's.
        || (content_type.starts_with("application/x-www-form-urlencoded")
            && is_png_or_jpeg(ask.body));
    if !image_like {
        return Err(Reply::error(
            415,
            format!(
                "content type {content_type} is not an image: send the picture's bytes \
                 (image/png, image/jpeg, application/octet-stream) or multipart/form-data"
            ),
        ));
    }
    Ok(vec![("the body".to_string(), ask.body.to_vec())])
}

/// Whether `bytes` begin as a PNG or a JPEG file does.
fn is_png_or_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(b"\x89PNG\r\n\x1a\n") || bytes.starts_with(&[0xFF, 0xD8, 0xFF])
}

/// The JSON of one prediction.
fn prediction_json(input: &Image, prediction: &Prediction) -> Value {
    let top3: Vec<Value> = top_k(&prediction.probabilities, 3)
        .into_iter()
        .map(|(c, p)| json!({ "class": CLASS_NAMES[c], "index": c, "probability": p }))
        .collect();
    let best = top_k(&prediction.probabilities, 1)[0].0;
    json!({
        "class": CLASS_NAMES[best],
        "index": best,
        "probabilities": prediction.probabilities,
        "top3": top3,
        "input_28x28": input.to_vec(),
    })
}

/// The decoded pictures of a prediction request, or the 4xx that says what is wrong with it.
fn upload(ask: Ask, batch: bool, predictor: Predictor) -> Result<Upload, Reply> {
    let files = uploads(ask)?;
    let limit = if batch { MAX_BATCH_FILES } else { 1 };
    if files.len() > limit {
        return Err(Reply::error(
            if batch { 413 } else { 400 },
            if batch {
                format!(
                    "{} pictures: a batch holds at most {MAX_BATCH_FILES}",
                    files.len()
                )
            } else {
                format!(
                    "{} pictures: /api/predict takes one; send several to /api/predict/batch",
                    files.len()
                )
            },
        ));
    }
    let mut images = Vec::with_capacity(files.len());
    for (name, bytes) in &files {
        if bytes.is_empty() {
            return Err(Reply::error(
                400,
                format!("{name} is empty: send a PNG or JPEG picture"),
            ));
        }
        images.push(
            decode_image(bytes)
                .map_err(|e| Reply::error(400, format!("{name}: not a readable image: {e}")))?,
        );
    }
    if images.is_empty() {
        return Err(Reply::error(400, "no picture: the form has no parts"));
    }
    Ok(Upload {
        names: files.into_iter().map(|(name, _)| name).collect(),
        images,
        batch,
        predictor,
    })
}
