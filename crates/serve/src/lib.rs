//! The trained model behind a web page and a JSON API.
//!
//! - `GET /`: one page, no external assets: drop, choose or draw a garment; shows the 28x28
//!   input the model sees, the top-3 classes, the model's facts and its training curves.
//! - `POST /api/predict` (image bytes, or multipart with one file): `{class, index,
//!   probabilities, top3, input_28x28}`; `POST /api/predict/batch` (multipart, one file per
//!   part): `{predictions: [...]}`; `GET /api/model` (the run by name, never a path);
//!   `GET /healthz`; `GET /metrics` (Prometheus' text format).
//! - With a runs folder ([`AppState::with_runs`]): `GET /runs`, a page that lists the runs,
//!   draws the selected ones' curves on shared axes and updates as epochs land; `GET
//!   /api/runs`, `GET /api/run?name=`; and `?run=NAME` on the prediction routes and
//!   `/api/model` asks any finished run's model.
//! - Bad input is a 4xx with `{"error": "..."}` naming the problem; the server goes on. A full
//!   model queue, or too many connections, is a 503 with `Retry-After`.
//!
//! HTTP is hyper's HTTP/1.1 on a tokio runtime of a few threads ([`Server`]): every connection
//! has header, body and idle deadlines, and connections, queued images and request bodies in
//! memory are each bounded ([`ServerConfig`]). One thread runs the model ([`Predictor`]):
//! requests queue for it, and those that arrive while it is busy go through together in one
//! forward pass.

mod api;
mod board;
pub mod load;
pub mod metrics;
mod multipart;
mod predictor;
mod server;

pub use api::{AppState, MAX_BODY_BYTES, config_summary, model_info, page_gaps, param, run_name};
pub use board::{Board, Served, Unservable};
pub use predictor::{Pending, Predictor, Refused};
pub use server::{Access, AccessLog, ServeError, Server, ServerConfig, Stopper};
