//! What `GET /metrics` reports, in Prometheus' text format (version 0.0.4): requests by route
//! (labelled by [`routes::label`]) and status, their latency, the model's batch sizes and
//! queue, the connections, and the model served. Counters are atomics (or one short lock per request), so recording costs
//! next to nothing.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::routes;

/// Request latency buckets, seconds.
const LATENCY_BOUNDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Forward-pass batch size buckets, images.
const BATCH_BOUNDS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// A Prometheus histogram: cumulative counts at fixed upper bounds, a sum and a count.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// The sum of the observations, as `f64` bits.
    sum: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
            count: AtomicU64::new(0),
        }
    }

    /// Counts one observation of `value`.
    pub fn observe(&self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|&b| value <= b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }

    /// The series of `name` with `labels` (`key="value",` each, or empty).
    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {count}");
        let sum = f64::from_bits(self.sum.load(Ordering::Relaxed));
        let labels = match labels.trim_end_matches(',') {
            "" => String::new(),
            labels => format!("{{{labels}}}"),
        };
        let _ = writeln!(out, "{name}_sum{labels} {sum}");
        let _ = writeln!(out, "{name}_count{labels} {count}");
    }
}

/// Why a connection was closed by the server before the client was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timeout {
    /// A request's headers did not arrive in time.
    Header,
    /// A request's body did not arrive in time.
    Body,
    /// No new request came on a kept-alive connection in time.
    Idle,
}

impl Timeout {
    const ALL: [Timeout; 3] = [Timeout::Header, Timeout::Body, Timeout::Idle];

    fn label(self) -> &'static str {
        match self {
            Timeout::Header => "header",
            Timeout::Body => "body",
            Timeout::Idle => "idle",
        }
    }
}

/// The gauges read when `/metrics` is asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    /// Connections open now.
    pub connections_open: usize,
    /// The bound on open connections.
    pub connections_max: usize,
    /// Images waiting for the model.
    pub queue_depth: usize,
    /// The bound on waiting images.
    pub queue_capacity: usize,
    /// Request body bytes held in memory now.
    pub body_bytes: usize,
}

/// Every counter the server keeps.
#[derive(Debug)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    latency: Vec<Histogram>,
    /// Images per forward pass.
    pub batch_sizes: Histogram,
    connections: AtomicU64,
    refused: AtomicU64,
    timeouts: [AtomicU64; 3],
    /// `fashion_mixer_model_info`'s labels, rendered.
    model_labels: String,
}

impl Metrics {
    /// Empty counters for a server of the model that `info` describes (label name, value).
    pub fn new(info: &[(&str, String)]) -> Self {
        let model_labels = info
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect::<Vec<_>>()
            .join(",");
        Self {
            requests: Mutex::new(BTreeMap::new()),
            latency: routes::labels()
                .map(|_| Histogram::new(LATENCY_BOUNDS))
                .collect(),
            batch_sizes: Histogram::new(BATCH_BOUNDS),
            connections: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            timeouts: Default::default(),
            model_labels,
        }
    }

    /// Counts one answered request.
    pub fn request(&self, route: &'static str, status: u16, seconds: f64) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((route, status))
            .or_default() += 1;
        let i = routes::labels().position(|r| r == route).unwrap_or(0);
        self.latency[i].observe(seconds);
    }

    /// Counts one accepted connection.
    pub fn connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one connection refused at the bound.
    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one connection closed for `timeout`.
    pub fn timed_out(&self, timeout: Timeout) {
        let i = Timeout::ALL.iter().position(|t| *t == timeout).unwrap_or(0);
        self.timeouts[i].fetch_add(1, Ordering::Relaxed);
    }

    /// The text of `GET /metrics`.
    pub fn render(&self, gauges: Gauges) -> String {
        let mut out = String::with_capacity(8 << 10);
        let head = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        let name = "fashion_mixer_http_requests_total";
        head(
            &mut out,
            name,
            "counter",
            "HTTP requests answered, by route and status.",
        );
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for ((route, status), n) in requests {
            let _ = writeln!(out, "{name}{{route=\"{route}\",status=\"{status}\"}} {n}");
        }
        let name = "fashion_mixer_http_request_duration_seconds";
        head(
            &mut out,
            name,
            "histogram",
            "Time from a request's headers to its answer, by route.",
        );
        for (route, histogram) in routes::labels().zip(&self.latency) {
            histogram.render(&mut out, name, &format!("route=\"{route}\","));
        }
        let name = "fashion_mixer_model_batch_size";
        head(&mut out, name, "histogram", "Images per forward pass.");
        self.batch_sizes.render(&mut out, name, "");
        let gauges = [
            (
                "fashion_mixer_model_queue_depth",
                "Images waiting for the model.",
                gauges.queue_depth,
            ),
            (
                "fashion_mixer_model_queue_capacity",
                "The most images that may wait for the model (--max-queue).",
                gauges.queue_capacity,
            ),
            (
                "fashion_mixer_http_connections_open",
                "Connections open now.",
                gauges.connections_open,
            ),
            (
                "fashion_mixer_http_connections_max",
                "The most connections open at once (--max-connections).",
                gauges.connections_max,
            ),
            (
                "fashion_mixer_http_body_bytes",
                "Request body bytes held in memory now.",
                gauges.body_bytes,
            ),
        ];
        for (name, help, value) in gauges {
            head(&mut out, name, "gauge", help);
            let _ = writeln!(out, "{name} {value}");
        }
        let counters = [
            (
                "fashion_mixer_http_connections_total",
                "Connections accepted.",
                &self.connections,
            ),
            (
                "fashion_mixer_http_connections_refused_total",
                "Connections answered 503 and closed at the bound.",
                &self.refused,
            ),
        ];
        for (name, help, value) in counters {
            head(&mut out, name, "counter", help);
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        let name = "fashion_mixer_http_connections_timed_out_total";
        head(
            &mut out,
            name,
            "counter",
            "Connections closed because the client was too slow, by phase.",
        );
        for (timeout, n) in Timeout::ALL.iter().zip(&self.timeouts) {
            let _ = writeln!(
                out,
                "{name}{{phase=\"{}\"}} {}",
                timeout.label(),
                n.load(Ordering::Relaxed)
            );
        }
        let name = "fashion_mixer_model_info";
        head(&mut out, name, "gauge", "The model served.");
        let _ = writeln!(out, "{name}{{{}}} 1", self.model_labels);
        out
    }
}

/// A label value as Prometheus writes it: backslash, double quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_is_cumulative() {
        let h = Histogram::new(&[1.0, 2.0]);
        for v in [0.5, 1.5, 1.5, 7.0] {
            h.observe(v);
        }
        let mut out = String::new();
        h.render(&mut out, "x", "a=\"b\",");
        assert_eq!(
            out,
            "x_bucket{a=\"b\",le=\"1\"} 1\nx_bucket{a=\"b\",le=\"2\"} 3\n\
             x_bucket{a=\"b\",le=\"+Inf\"} 4\nx_sum{a=\"b\"} 10.5\nx_count{a=\"b\"} 4\n"
        );
    }

    #[test]
    fn unknown_paths_share_one_label_and_values_are_escaped() {
        assert_eq!(routes::label("/api/predict"), "/api/predict");
        assert_eq!(routes::label("/../../etc/passwd"), "other");
        let metrics = Metrics::new(&[("run", "a \"b\"\\c".into())]);
        let text = metrics.render(Gauges::default());
        assert!(
            text.contains(r#"fashion_mixer_model_info{run="a \"b\"\\c"} 1"#),
            "{text}"
        );
    }
}
