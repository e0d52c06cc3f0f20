//! Routing: a request (method, path, query, content type, body) to what answers it, by the
//! table in [`crate::routes`]: an answer now, the metrics (the server adds its gauges), or the
//! pictures a model is to see.

use serde_json::json;

use crate::app::AppState;
use crate::predict::{Upload, upload};
use crate::request::{ApiRequest, param};
use crate::response::ApiResponse;
use crate::routes::{Endpoint, Lookup, listing, lookup};
use crate::runs_page::RunsPage;

/// What a request asks for.
#[derive(Debug)]
pub enum Routed {
    /// An answer that needs nothing more.
    ApiResponse(ApiResponse),
    /// The metrics (the server adds its gauges).
    Metrics,
    /// Predictions for these pictures.
    Predict(Upload),
}

/// What `request` asks for: an answer now, or pictures to predict. A request for another run's
/// model waits for it to load (off the async threads).
pub async fn route(state: &AppState, request: ApiRequest<'_>) -> Routed {
    let endpoint = match lookup(request.method, request.path) {
        Lookup::Found(endpoint) => endpoint,
        Lookup::MethodNotAllowed => {
            let message = format!("{} is not allowed on {}", request.method, request.path);
            return Routed::ApiResponse(ApiResponse::error(405, message));
        }
        Lookup::NotFound => {
            let message = format!(
                "no {} {}: the routes are {}",
                request.method,
                request.path,
                listing()
            );
            return Routed::ApiResponse(ApiResponse::error(404, message));
        }
    };
    answer(state, endpoint, request)
        .await
        .unwrap_or_else(Routed::ApiResponse)
}

/// What `endpoint` answers to `request`; `Err` is an answer too (a 4xx).
async fn answer(
    state: &AppState,
    endpoint: Endpoint,
    request: ApiRequest<'_>,
) -> Result<Routed, ApiResponse> {
    let run = param(request.query, "run");
    let runs_page = || -> Result<&RunsPage, ApiResponse> {
        state.runs_page.as_ref().ok_or_else(|| {
            ApiResponse::error(
                404,
                "this server lists no runs (cargo xtask serve --runs DIR)",
            )
        })
    };
    let reply = |reply: ApiResponse| Ok(Routed::ApiResponse(reply));
    match endpoint {
        Endpoint::Page => reply(ApiResponse::html(include_str!("page.html"))),
        Endpoint::RunsPage => {
            runs_page()?;
            reply(ApiResponse::html(include_str!("runs.html")))
        }
        Endpoint::Health => reply(ApiResponse::json(200, &json!({ "status": "ok" }))),
        Endpoint::Metrics => Ok(Routed::Metrics),
        Endpoint::Model => {
            let (_, info) = state.served(run.as_deref()).await?;
            reply(ApiResponse::json(
                200,
                info.as_ref().unwrap_or(&state.model_info),
            ))
        }
        Endpoint::Runs => reply(ApiResponse::json(200, &runs_page()?.list())),
        Endpoint::Run => {
            let name = param(request.query, "name").unwrap_or_default();
            let detail = runs_page()?.detail(&name).ok_or_else(|| {
                ApiResponse::error(
                    404,
                    format!("no run named {name:?} (GET /api/runs lists them)"),
                )
            })?;
            reply(ApiResponse::json(200, &detail))
        }
        Endpoint::Predict | Endpoint::PredictBatch => {
            let (predictor, _) = state.served(run.as_deref()).await?;
            let batch = endpoint == Endpoint::PredictBatch;
            Ok(Routed::Predict(upload(request, batch, predictor)?))
        }
    }
}
