//! Answers: a [`ApiResponse`] (status, content type, body, `Retry-After`) and the one way it becomes
//! HTTP, hyper's. An answer that must go before a request has been read (503 at the connection
//! bound, 408 when a request's headers never complete) is written by hyper too: it serves the
//! connection as if the client had asked, and the reply answers that ([`answer_unasked`]).

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{CONNECTION, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponse {
    /// The status code.
    pub status: u16,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its body.
    pub body: Vec<u8>,
    /// `Retry-After`, seconds (with 503).
    pub retry_after: Option<u32>,
}

impl ApiResponse {
    /// `value` as JSON with `status`.
    pub fn json(status: u16, value: &Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: value.to_string().into_bytes(),
            retry_after: None,
        }
    }

    /// A page.
    pub fn html(text: &str) -> Self {
        Self {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: text.as_bytes().to_vec(),
            retry_after: None,
        }
    }

    /// 200 with Prometheus' text format.
    pub fn metrics(text: String) -> Self {
        Self {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: text.into_bytes(),
            retry_after: None,
        }
    }

    /// 503 with `Retry-After: 1`: the server cannot take the request now.
    pub fn busy(message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(1),
            ..Self::error(503, message)
        }
    }

    /// `{"error": message}` with `status`.
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        Self::json(status, &json!({ "error": message.into() }))
    }

    /// The answer as hyper writes it; with `close`, the connection ends after it.
    pub fn into_response(self, close: bool) -> Response<Full<Bytes>> {
        let mut response = Response::builder()
            .status(self.status)
            .header(CONTENT_TYPE, self.content_type);
        if let Some(seconds) = self.retry_after {
            response = response.header(RETRY_AFTER, seconds);
        }
        if close {
            response = response.header(CONNECTION, "close");
        }
        response
            .body(Full::new(Bytes::from(self.body)))
            .expect("a status and headers that are valid")
    }
}

/// The request hyper reads on a connection answered before the client's own was read.
const UNASKED: &[u8] = b"GET / HTTP/1.1\r\nhost: unasked\r\nconnection: close\r\n\r\n";

/// Writes `reply` on `stream` (with `Connection: close`) without reading a request from it,
/// through hyper as every other answer; gives the stream back, its writing side still open.
/// Nothing the client sent is read.
pub async fn answer_unasked(stream: TcpStream, reply: ApiResponse) -> TcpStream {
    // Hyper reads the canned request, then the end of input, and writes on the socket.
    let io = TokioIo::new(tokio::io::join(UNASKED, stream));
    let service = hyper::service::service_fn(move |_: Request<hyper::body::Incoming>| {
        std::future::ready(Ok::<_, Infallible>(reply.clone().into_response(true)))
    });
    // The canned request ends in the reader's end of input: `half_close` keeps hyper answering
    // it rather than taking that for a client gone.
    let mut conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .half_close(true)
        .serve_connection(io, service);
    // The answer is in memory: written at once, or the client is gone (then nothing to do).
    let _ = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)).await;
    conn.into_parts().io.into_inner().into_inner().1
}
