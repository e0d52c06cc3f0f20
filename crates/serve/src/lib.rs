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
//! forward pass. Another run's model loads on a thread of its own ([`RunsPage`]). The routes
//! are one table ([`routes::ROUTES`]).

// What requests reach: the served model, the runs page, what is said of a run.
mod app;
mod predictor;
mod run_info;
mod runs_page;
// Requests: the table of routes, routing, prediction requests, forms, answers.
mod multipart;
mod predict;
mod request;
mod response;
mod router;
pub mod routes;
// Connections and the server: bounds, deadlines, the accept loop; what it reports.
mod config;
mod connection;
mod error;
pub mod metrics;
mod server;
// The load generator and hostile clients (`bench-serve`, the tests).
pub mod load;

pub use app::{AppState, MAX_BODY_BYTES};
pub use config::{Access, AccessLog, ServerConfig};
pub use error::{LoadError, MultipartError, ServeError};
pub use predictor::{Pending, Predictor, Refused};
pub use request::param;
pub use run_info::{config_summary, model_info, page_gaps, run_name};
pub use runs_page::{Loader, RunUnavailable, RunsPage, ServedRun};
pub use server::{Server, Stopper};
