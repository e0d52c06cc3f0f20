//! The HTTP side: a listening socket and a pool of threads that read requests, ask the routes
//! (`api.rs`) and write the answers; a [`Stopper`] ends it cleanly.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::api::{AppState, Ask, MAX_BODY_BYTES, Reply, respond};

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address cannot be listened on (in use, not this machine's, no permission).
    #[error("{addr}: cannot listen: {message}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The kind of failure (`AddrInUse`: another program listens there).
        kind: std::io::ErrorKind,
        /// Why.
        message: String,
    },
}

/// A listening server, not yet answering.
pub struct Server {
    http: Arc<tiny_http::Server>,
    state: Arc<AppState>,
    threads: usize,
    stopped: Arc<AtomicBool>,
}

/// Stops a running [`Server`]: requests in flight are answered, then [`Server::run`] returns.
#[derive(Clone)]
pub struct Stopper {
    http: Arc<tiny_http::Server>,
    threads: usize,
    stopped: Arc<AtomicBool>,
}

impl Stopper {
    /// Asks the server to stop.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        for _ in 0..self.threads {
            self.http.unblock();
        }
    }
}

impl Server {
    /// Listens on `addr` (port 0: any free port) with `threads` threads answering requests.
    pub fn bind(addr: SocketAddr, state: AppState, threads: usize) -> Result<Self, ServeError> {
        let fail = |e: std::io::Error| ServeError::Bind {
            addr,
            kind: e.kind(),
            message: e.to_string(),
        };
        let listener = std::net::TcpListener::bind(addr).map_err(fail)?;
        // Answers go out at once: with Nagle's algorithm on, tiny_http's second write of an
        // answer waited for the client's delayed ACK (40 ms a request). Accepted connections
        // inherit the option from the listening socket.
        #[cfg(unix)]
        rustix::net::sockopt::set_tcp_nodelay(&listener, true).map_err(|e| fail(e.into()))?;
        let http = tiny_http::Server::from_listener(listener, None)
            .map_err(|e| fail(std::io::Error::other(e.to_string())))?;
        Ok(Self {
            http: Arc::new(http),
            state: Arc::new(state),
            threads: threads.max(1),
            stopped: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.http
            .server_addr()
            .to_ip()
            .expect("a TCP server has an IP address")
    }

    /// A handle that stops the server from another thread.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            http: Arc::clone(&self.http),
            threads: self.threads,
            stopped: Arc::clone(&self.stopped),
        }
    }

    /// Answers requests until stopped.
    pub fn run(self) {
        std::thread::scope(|scope| {
            for i in 0..self.threads {
                let (http, state, stopped) = (&self.http, &self.state, &self.stopped);
                std::thread::Builder::new()
                    .name(format!("http-{i}"))
                    .spawn_scoped(scope, move || {
                        while !stopped.load(Ordering::SeqCst) {
                            match http.recv() {
                                Ok(request) => answer(state, request),
                                Err(_) if stopped.load(Ordering::SeqCst) => break,
                                Err(_) => continue, // a connection that failed; go on
                            }
                        }
                    })
                    .expect("a server thread starts");
            }
        });
    }
}

/// Reads `request` (at most [`MAX_BODY_BYTES`] of body), answers it, writes the answer.
fn answer(state: &AppState, mut request: tiny_http::Request) {
    let reply = read_body(&mut request).map_or_else(
        |error| error,
        |body| {
            let content_type = request
                .headers()
                .iter()
                .find(|h| h.field.equiv("Content-Type"))
                .map(|h| h.value.as_str().to_string())
                .unwrap_or_default();
            let method = request.method().as_str().to_string();
            let path = request.url().split('?').next().unwrap_or("/").to_string();
            respond(
                state,
                Ask {
                    method: &method,
                    path: &path,
                    content_type: &content_type,
                    body: &body,
                },
            )
        },
    );
    let header =
        tiny_http::Header::from_bytes("Content-Type", reply.content_type).expect("a valid header");
    let response = tiny_http::Response::from_data(reply.body)
        .with_status_code(reply.status)
        .with_header(header);
    // The client may have gone; nothing to do then.
    let _ = request.respond(response);
}

/// The body, or the 413 answer when it is larger than the limit (said by its Content-Length,
/// or found while reading).
fn read_body(request: &mut tiny_http::Request) -> Result<Vec<u8>, Reply> {
    let too_large = || {
        Reply::error(
            413,
            format!(
                "the body is larger than the {} MiB limit",
                MAX_BODY_BYTES >> 20
            ),
        )
    };
    if request.body_length().is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    request
        .as_reader()
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| Reply::error(400, format!("cannot read the body: {e}")))?;
    if body.len() > MAX_BODY_BYTES {
        return Err(too_large());
    }
    Ok(body)
}
