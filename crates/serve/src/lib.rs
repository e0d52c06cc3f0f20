//! The trained model behind a web page and a JSON API.
//!
//! - `GET /`: one page, no external assets: drop, choose or draw a garment; shows the 28x28
//!   input the model sees, the top-3 classes, the model's facts and its training curves.
//! - `POST /api/predict` (image bytes, or multipart with one file): `{class, index,
//!   probabilities, top3, input_28x28}`; `POST /api/predict/batch` (multipart, one file per
//!   part): `{predictions: [...]}`; `GET /api/model`; `GET /healthz`.
//! - Bad input is a 4xx with `{"error": "..."}` naming the problem; the server goes on.
//!
//! HTTP is `tiny_http` on a pool of threads: axum's dependencies would change the features of
//! crates Burn is built with (serde_json, futures-core), and so compile Burn a second time.
//! One thread runs the model ([`Predictor`]): requests queue for it, and those that arrive
//! while it is busy go through together in one forward pass.

mod api;
pub mod load;
mod multipart;
mod predictor;
mod server;

pub use api::{AppState, MAX_BODY_BYTES, model_info, page_gaps};
pub use predictor::{Predictor, PredictorGone};
pub use server::{ServeError, Server, Stopper};
