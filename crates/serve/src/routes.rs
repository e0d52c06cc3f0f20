//! The server's routes, listed once: the router dispatches by this table, the metrics label
//! requests by its paths, a known path asked with another method is a 405 and an unknown one a
//! 404 that lists them, and `docs/serving.md`'s table of the API is [`markdown`]'s output (a
//! test holds it to that).

/// What a route does; the router's dispatch is a match over these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// The prediction page.
    Page,
    /// The runs page.
    RunsPage,
    /// Liveness.
    Health,
    /// Prometheus' text format.
    Metrics,
    /// The served run's facts.
    Model,
    /// Every run under the runs folder.
    Runs,
    /// One run's details.
    Run,
    /// One picture's prediction.
    Predict,
    /// Several pictures' predictions.
    PredictBatch,
}

/// One route: its method, path and what it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// What serves it.
    pub endpoint: Endpoint,
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The path, without a query.
    pub path: &'static str,
    /// The query it takes, as the listing shows it (`name=`), or empty.
    pub query: &'static str,
    /// What the request carries, for the docs (empty: nothing more).
    pub request: &'static str,
    /// What it answers, for the docs.
    pub answer: &'static str,
}

/// Every route, in the order the 404 and the docs list them and the metrics label them.
pub const ROUTES: [Route; 9] = [
    Route {
        endpoint: Endpoint::Page,
        method: "GET",
        path: "/",
        query: "",
        request: "",
        answer: "one page, no external assets: drop, choose or draw a garment; the 28x28 input \
                 the model sees, the top-3 classes, the run's name and summary, its accuracy (as \
                 given and mirrored, per class) and curves",
    },
    Route {
        endpoint: Endpoint::RunsPage,
        method: "GET",
        path: "/runs",
        query: "",
        request: "",
        answer: "the runs of `--runs DIR` (default `artifacts/`, and its sweeps' runs; with \
                 `--public`, only when `--runs` is given): the newest three selected, their \
                 accuracy and loss on shared axes, the settings that differ, their per-class \
                 accuracy side by side; the page asks for new epochs every 2 s, so a run in \
                 training grows on it",
    },
    Route {
        endpoint: Endpoint::Health,
        method: "GET",
        path: "/healthz",
        query: "",
        request: "",
        answer: "`{\"status\": \"ok\"}`",
    },
    Route {
        endpoint: Endpoint::Metrics,
        method: "GET",
        path: "/metrics",
        query: "",
        request: "",
        answer: "Prometheus' text format (below)",
    },
    Route {
        endpoint: Endpoint::Model,
        method: "GET",
        path: "/api/model",
        query: "",
        request: "",
        answer: "the run's name (its folder's, never a path), a one-line summary, config, \
                 parameter count, classes, `eval.json`, per-epoch metrics",
    },
    Route {
        endpoint: Endpoint::Runs,
        method: "GET",
        path: "/api/runs",
        query: "",
        request: "",
        answer: "the runs as `cargo xtask runs --json` lists them (by name, without paths)",
    },
    Route {
        endpoint: Endpoint::Run,
        method: "GET",
        path: "/api/run",
        query: "name=",
        request: "",
        answer: "one run's entry, config, per-epoch metrics and evaluation",
    },
    Route {
        endpoint: Endpoint::Predict,
        method: "POST",
        path: "/api/predict",
        query: "",
        request: "the picture's bytes (`image/png`, `image/jpeg`, `application/octet-stream`) \
                  or a multipart form with one file",
        answer: "`{class, index, probabilities[10], top3, input_28x28[784]}` (both orientations \
                 averaged, as `infer` does for pictures)",
    },
    Route {
        endpoint: Endpoint::PredictBatch,
        method: "POST",
        path: "/api/predict/batch",
        query: "",
        request: "a multipart form, one picture per part (at most 256)",
        answer: "`{predictions: [{name, class, ...}]}`",
    },
];

/// The metrics' label for requests to paths outside [`ROUTES`], so that a client cannot make
/// the label set grow.
pub const OTHER: &str = "other";

/// What the router makes of a method and a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// A route.
    Found(Endpoint),
    /// A route's path, asked with another method: 405.
    MethodNotAllowed,
    /// No route has this path: 404.
    NotFound,
}

/// The route of `method` and `path`.
pub fn lookup(method: &str, path: &str) -> Lookup {
    let mut known = false;
    for route in &ROUTES {
        if route.path == path {
            if route.method == method {
                return Lookup::Found(route.endpoint);
            }
            known = true;
        }
    }
    if known {
        Lookup::MethodNotAllowed
    } else {
        Lookup::NotFound
    }
}

/// The metrics' label of `path`: the route's path, or [`OTHER`].
pub fn label(path: &str) -> &'static str {
    ROUTES
        .iter()
        .find(|route| route.path == path)
        .map_or(OTHER, |route| route.path)
}

/// The labels the metrics know, in order: every route's path, then [`OTHER`].
pub fn labels() -> impl Iterator<Item = &'static str> {
    ROUTES
        .iter()
        .map(|route| route.path)
        .chain(std::iter::once(OTHER))
}

/// The routes in one line, as a 404 lists them: `GET /, GET /runs, ..., GET /api/run?name=`.
pub fn listing() -> String {
    ROUTES
        .iter()
        .map(|route| {
            let query = if route.query.is_empty() { "" } else { "?" };
            format!("{} {}{query}{}", route.method, route.path, route.query)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The API as a Markdown table, one row per route: `docs/serving.md` holds it as it is.
pub fn markdown() -> String {
    let mut table = String::from("| request | answer |\n|---|---|\n");
    for route in &ROUTES {
        let query = if route.query.is_empty() {
            String::new()
        } else {
            format!("?{}NAME", route.query)
        };
        let request = if route.request.is_empty() {
            String::new()
        } else {
            format!(", {}", route.request)
        };
        table.push_str(&format!(
            "| `{} {}{query}`{request} | {} |\n",
            route.method, route.path, route.answer
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_found_and_other_methods_are_not_allowed() {
        for route in &ROUTES {
            assert_eq!(
                lookup(route.method, route.path),
                Lookup::Found(route.endpoint)
            );
            assert_eq!(lookup("DELETE", route.path), Lookup::MethodNotAllowed);
            assert_eq!(label(route.path), route.path);
        }
        assert_eq!(lookup("GET", "/nope"), Lookup::NotFound);
        assert_eq!(label("/../../etc/passwd"), OTHER);
        assert_eq!(labels().count(), ROUTES.len() + 1);
    }

    /// `docs/serving.md` holds the table this list makes, as it is.
    #[test]
    fn the_docs_table_is_this_lists() {
        let docs = fashion_mixer_data::testing::workspace_root().join("docs/serving.md");
        let docs = std::fs::read_to_string(docs).unwrap();
        assert!(
            docs.contains(&markdown()),
            "docs/serving.md's table of routes is not routes::markdown()'s:\n{}",
            markdown()
        );
    }

    #[test]
    fn the_listing_names_each_route_once() {
        assert_eq!(
            listing(),
            "GET /, GET /runs, GET /healthz, GET /metrics, GET /api/model, GET /api/runs, \
             GET /api/run?name=, POST /api/predict, POST /api/predict/batch"
        );
    }
}
