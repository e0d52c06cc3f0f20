//! A load generator for the server: `clients` threads each send requests one after another;
//! requests per second and latency percentiles. What `cargo xtask bench-serve` reports. And
//! hostile clients ([`SlowClients`]): connections that send slowly or not at all.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::LoadError;

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
) -> Result<LoadReport, LoadError> {
    let start = Instant::now();
    let latencies: Result<Vec<Vec<Duration>>, LoadError> = std::thread::scope(|scope| {
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
                            .map_err(|e| LoadError::Request {
                                url: url.to_string(),
                                source: Box::new(e),
                            })?;
                        let _ = response.body_mut().read_to_vec();
                        if response.status() != 200 {
                            return Err(LoadError::Status {
                                url: url.to_string(),
                                status: response.status().as_u16(),
                            });
                        }
                        times.push(sent.elapsed());
                    }
                    Ok(times)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| LoadError::ClientPanicked)?)
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

/// How a hostile client misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slow {
    /// Sends part of a request's headers, then nothing.
    Headers,
    /// Sends a POST's headers announcing 100,000 bytes of body, and 3 of them, then nothing.
    Body,
    /// Opens the connection and sends nothing.
    Idle,
}

impl Slow {
    /// What it sends once connected.
    fn opening(self) -> &'static [u8] {
        match self {
            Slow::Headers => b"POST /api/predict HTTP/1.1\r\nHost: localhost\r\nContent-Ty",
            Slow::Body => {
                b"POST /api/predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: image/png\r\n\
                  Content-Length: 100000\r\n\r\n\x89PN"
            }
            Slow::Idle => b"",
        }
    }
}

/// Connections to a server that misbehave, each as its [`Slow`], held open until dropped: one
/// that the server closes is opened again (at most every 100 ms), as an attacker would.
#[derive(Debug)]
pub struct SlowClients {
    stop: Arc<AtomicBool>,
    reopened: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SlowClients {
    /// Opens `n` connections to `addr`, misbehaving as `kinds` in turn; returns once all are
    /// open.
    pub fn open(addr: SocketAddr, n: usize, kinds: &[Slow]) -> std::io::Result<Self> {
        let connect = move |kind: Slow| -> std::io::Result<TcpStream> {
            let mut stream = TcpStream::connect(addr)?;
            stream.write_all(kind.opening())?;
            stream.set_nonblocking(true)?;
            Ok(stream)
        };
        let mut held = Vec::with_capacity(n);
        for i in 0..n {
            let kind = kinds[i % kinds.len().max(1)];
            held.push((kind, connect(kind)?));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let reopened = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, reopened) = (Arc::clone(&stop), Arc::clone(&reopened));
            std::thread::spawn(move || {
                let mut sink = [0u8; 1024];
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(100));
                    for (kind, stream) in &mut held {
                        let closed = match stream.read(&mut sink) {
                            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                            Ok(_) => true, // an answer (408) or the end: the server let go
                        };
                        if closed && let Ok(fresh) = connect(*kind) {
                            *stream = fresh;
                            reopened.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            })
        };
        Ok(Self {
            stop,
            reopened,
            thread: Some(thread),
        })
    }

    /// Connections the server closed (each was opened again).
    pub fn reopened(&self) -> usize {
        self.reopened.load(Ordering::SeqCst)
    }
}

impl Drop for SlowClients {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// This process's threads and resident memory (MB), where the system says (Linux).
pub fn process_footprint() -> Option<(usize, f64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    Some((field("Threads:")? as usize, field("VmRSS:")? / 1024.0))
}
