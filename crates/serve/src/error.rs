//! The serve crate's errors: the server's start, the load generator's requests, a malformed
//! form.

use std::io;
use std::net::SocketAddr;

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address cannot be listened on (in use, not this machine's, no permission).
    #[error("{addr}: cannot listen: {message}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The kind of failure (`AddrInUse`: another program listens there).
        kind: io::ErrorKind,
        /// Why.
        message: String,
    },
    /// The runtime's threads could not start.
    #[error("cannot start the server's threads: {0}")]
    Runtime(io::Error),
}

/// A load run (`load::drive`) that could not finish.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A request could not be sent or its answer read.
    #[error("{url}: {source}")]
    Request {
        /// Where it went.
        url: String,
        /// What the HTTP client said.
        source: Box<ureq::Error>,
    },
    /// A request was answered with another status than 200.
    #[error("{url}: status {status}")]
    Status {
        /// Where it went.
        url: String,
        /// The status answered.
        status: u16,
    },
    /// A client's thread panicked.
    #[error("a client panicked")]
    ClientPanicked,
}

/// A `multipart/form-data` body that does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    /// No part begins with the boundary.
    #[error("no part starts with the form's boundary")]
    NoBoundary,
    /// A part's headers have no end.
    #[error("a part's headers do not end")]
    HeadersDoNotEnd,
    /// The body stops before the closing boundary.
    #[error("the form does not end with its boundary (truncated?)")]
    Truncated,
}
