//! A load generator for the server: `clients` threads each send requests one after another;
//! requests per second and latency percentiles. What `cargo xtask bench-serve` reports.

use std::time::{Duration, Instant};

use serde::Serialize;

/// What one load run measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadReport {
    /// Clients sending at once.
    pub clients: usize,
    /// Requests answered with 200.
    pub requests: usize,
    /// Answered requests per second over the whole run.
    pub requests_per_s: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th-percentile latency, milliseconds.
    pub p99_ms: f64,
}

/// Sends `per_client` POSTs of `body` (as `content_type`) to `url` from each of `clients`
/// threads at once. A request that fails or answers other than 200 is an error.
pub fn drive(
    url: &str,
    content_type: &str,
    body: &[u8],
    clients: usize,
    per_client: usize,
) -> Result<LoadReport, String> {
    let start = Instant::now();
    let latencies: Result<Vec<Vec<Duration>>, String> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .build()
                        .into();
                    let mut times = Vec::with_capacity(per_client);
                    for _ in 0..per_client {
                        let sent = Instant::now();
                        let mut response = agent
                            .post(url)
                            .header("Content-Type", content_type)
                            .send(body)
                            .map_err(|e| format!("{url}: {e}"))?;
                        let _ = response.body_mut().read_to_vec();
                        if response.status() != 200 {
                            return Err(format!("{url}: status {}", response.status()));
                        }
                        times.push(sent.elapsed());
                    }
                    Ok(times)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| "a client panicked".to_string())?)
            .collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let mut all: Vec<f64> = latencies?
        .into_iter()
        .flatten()
        .map(|d| d.as_secs_f64() * 1e3)
        .collect();
    all.sort_by(f64::total_cmp);
    let at = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    Ok(LoadReport {
        clients,
        requests: all.len(),
        requests_per_s: all.len() as f64 / elapsed,
        p50_ms: at(0.5),
        p99_ms: at(0.99),
    })
}
