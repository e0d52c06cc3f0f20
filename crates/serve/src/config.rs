//! How the server treats its clients ([`ServerConfig`]: threads, bounds, deadlines) and what it
//! tells an access log of each answer ([`Access`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// One answered request, for an access log.
#[derive(Debug, Clone)]
pub struct Access {
    /// The client's address.
    pub peer: SocketAddr,
    /// `GET`, `POST`, ...; `-` for a request whose headers never arrived.
    pub method: String,
    /// The path, without the query (at most 200 characters); `-` when unknown.
    pub path: String,
    /// The status answered.
    pub status: u16,
    /// The answer's body, bytes.
    pub bytes: usize,
    /// From the request's headers to its answer.
    pub elapsed: Duration,
}

/// Receives an [`Access`] for every request answered.
pub type AccessLog = Arc<dyn Fn(&Access) + Send + Sync>;

/// How the server treats its clients.
#[derive(Clone)]
pub struct ServerConfig {
    /// Threads running the connections (reading, decoding pictures, writing answers); the
    /// model has its own.
    pub threads: usize,
    /// The most connections open at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// A request's headers must arrive within this time of its first byte (of the connection's
    /// opening, for its first request); else 408 and the connection is closed.
    pub header_timeout: Duration,
    /// A request's body must arrive within this time of its headers; else 408 and the
    /// connection is closed.
    pub body_timeout: Duration,
    /// A kept-alive connection with no new request for this long is closed.
    pub idle_timeout: Duration,
    /// The most request body bytes held in memory at once, all connections together; a body
    /// that would go over is answered 503.
    pub max_body_memory: usize,
    /// Called for each request answered (the CLI prints a line).
    pub access_log: Option<AccessLog>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(15),
            max_body_memory: 256 << 20,
            access_log: None,
        }
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("threads", &self.threads)
            .field("max_connections", &self.max_connections)
            .field("header_timeout", &self.header_timeout)
            .field("body_timeout", &self.body_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_body_memory", &self.max_body_memory)
            .field("access_log", &self.access_log.is_some())
            .finish()
    }
}
