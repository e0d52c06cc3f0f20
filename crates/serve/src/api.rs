//! The routes, as plain functions from a request (method, path, content type, body) to a
//! response (status, content type, body): the page, the prediction API, the model's facts,
//! health; errors as `{"error": "..."}`.

use burn::module::Module;
use fashion_mixer_data::CLASS_NAMES;
use fashion_mixer_data::picture::decode_image;
use fashion_mixer_train::RunDir;
use fashion_mixer_train::inference::{LoadedModel, Prediction, top_k};
use serde_json::{Value, json};

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
}

/// What `GET /api/model` says about the run in `run` whose model is `loaded`: its folder,
/// configuration, parameter count, class names, evaluation (`eval.json`, when it describes the
/// record) and per-epoch metrics (for the curves).
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
    json!({
        "run": run.root().display().to_string(),
        "record": loaded.record.display().to_string(),
        "backend": loaded.backend.to_string(),
        "config": loaded.config,
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
}

impl Reply {
    fn json(status: u16, value: &Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: value.to_string().into_bytes(),
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
    /// The `Content-Type` header (empty when absent).
    pub content_type: &'a str,
    /// The body (at most [`MAX_BODY_BYTES`]).
    pub body: &'a [u8],
}

/// The answer to `ask`.
pub fn respond(state: &AppState, ask: Ask) -> Reply {
    let result = match (ask.method, ask.path) {
        ("GET", "/") => Ok(Reply {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: include_str!("page.html").as_bytes().to_vec(),
        }),
        ("GET", "/healthz") => Ok(Reply::json(200, &json!({ "status": "ok" }))),
        ("GET", "/api/model") => Ok(Reply::json(200, &state.model_info)),
        ("POST", "/api/predict") => predict(state, ask, false),
        ("POST", "/api/predict/batch") => predict(state, ask, true),
        (_, "/" | "/healthz" | "/api/model" | "/api/predict" | "/api/predict/batch") => {
            Err(Reply::error(
                405,
                format!("{} is not allowed on {}", ask.method, ask.path),
            ))
        }
        _ => Err(Reply::error(
            404,
            format!(
                "no {} {}: the routes are GET /, GET /healthz, GET /api/model, \
                 POST /api/predict, POST /api/predict/batch",
                ask.method, ask.path
            ),
        )),
    };
    result.unwrap_or_else(|error| error)
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

fn predict(state: &AppState, ask: Ask, batch: bool) -> Result<Reply, Reply> {
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
    let predictions = state
        .predictor
        .predict(images.clone())
        .map_err(|e| Reply::error(503, e.to_string()))?;
    let mut answers: Vec<Value> = images
        .iter()
        .zip(&predictions)
        .map(|(input, prediction)| prediction_json(input, prediction))
        .collect();
    if !batch {
        return Ok(Reply::json(200, &answers.remove(0)));
    }
    for (answer, (name, _)) in answers.iter_mut().zip(&files) {
        answer["name"] = json!(name);
    }
    Ok(Reply::json(200, &json!({ "predictions": answers })))
}
