//! Connections: each one's deadlines (headers, body, idle keep-alive, kept by a watchdog over
//! its phase), its requests read, routed, answered and logged, and the answer to one over the
//! bound. What every connection shares ([`Shared`]) is here too.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::app::{AppState, MAX_BODY_BYTES};
use crate::config::{Access, ServerConfig};
use crate::metrics::{Gauges, Timeout};
use crate::request::ApiRequest;
use crate::response::{ApiResponse, answer_unasked};
use crate::router::{Routed, route};
use crate::routes;

/// What every connection shares.
pub(crate) struct Shared {
    /// What the routes reach.
    pub(crate) state: AppState,
    /// The bounds and deadlines.
    pub(crate) config: ServerConfig,
    /// Connections open now (refused ones aside).
    pub(crate) open: AtomicUsize,
    /// Connections refused at the bound and still being closed.
    pub(crate) lingering: AtomicUsize,
    /// Request body bytes that may still be held in memory, all connections together.
    pub(crate) body_memory: Arc<Semaphore>,
    /// Set when the server is asked to stop.
    pub(crate) stopping: AtomicBool,
    /// Wakes the accept loop and every connection when the server is asked to stop.
    pub(crate) shutdown: Notify,
}

impl Shared {
    fn gauges(&self) -> Gauges {
        Gauges {
            connections_open: self.open.load(Ordering::Relaxed),
            connections_max: self.config.max_connections,
            queue_depth: self.state.queued(),
            queue_capacity: self.state.predictor.capacity(),
            body_bytes: self.config.max_body_memory - self.body_memory.available_permits(),
        }
    }

    fn log(&self, access: Access) {
        if let Some(log) = &self.config.access_log {
            log(&access);
        }
    }
}

/// Connections refused at the bound that may still be closing gently; beyond it they are
/// closed at once.
const MAX_LINGERING: usize = 256;

/// Answers a connection over the bound with 503 (through [`answer_unasked`], before reading
/// anything) and closes it: at once when many are closing, else after reading (and dropping)
/// what the client sends for up to a second, so that its request does not reset the connection
/// before it has read the answer.
pub(crate) fn refuse(stream: TcpStream, shared: &Arc<Shared>) {
    shared.state.metrics.refused();
    let reply = ApiResponse::busy(format!(
        "the server has {} connections open, its bound (--max-connections); try again",
        shared.config.max_connections
    ));
    let lingers = shared
        .lingering
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < MAX_LINGERING).then_some(n + 1)
        })
        .is_ok();
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        // The answer is a few hundred bytes: the socket takes it at once, or the client is gone.
        let answered =
            tokio::time::timeout(Duration::from_secs(1), answer_unasked(stream, reply)).await;
        let (Ok(mut stream), true) = (answered, lingers) else {
            if lingers {
                shared.lingering.fetch_sub(1, Ordering::SeqCst);
            }
            return;
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let _ = stream.shutdown().await;
            let mut sink = [0u8; 4096];
            let mut read = 0;
            while read < 64 << 10 {
                match stream.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => read += n,
                }
            }
        })
        .await;
        shared.lingering.fetch_sub(1, Ordering::SeqCst);
    });
}

/// Where a connection is in its request cycle, for its deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    /// Just opened: nothing received yet.
    Fresh,
    /// Between requests.
    Idle,
    /// Part of a request's headers received.
    Head,
    /// Headers received; the body is being read (the handler keeps that deadline).
    Body,
    /// The request is being answered.
    Busy,
}

/// A connection's phase and when it began, shared by its socket, its handler and its
/// watchdog.
struct ConnState {
    opened: Instant,
    phase: AtomicU8,
    /// When the phase began, milliseconds after `opened`.
    since: AtomicU64,
}

impl ConnState {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            phase: AtomicU8::new(Phase::Fresh as u8),
            since: AtomicU64::new(0),
        }
    }

    fn phase(&self) -> Phase {
        match self.phase.load(Ordering::SeqCst) {
            0 => Phase::Fresh,
            1 => Phase::Idle,
            2 => Phase::Head,
            3 => Phase::Body,
            _ => Phase::Busy,
        }
    }

    fn enter(&self, phase: Phase) {
        self.since
            .store(self.opened.elapsed().as_millis() as u64, Ordering::SeqCst);
        self.phase.store(phase as u8, Ordering::SeqCst);
    }

    /// Bytes came in: a request has begun (for a fresh connection its header deadline still
    /// counts from the opening).
    fn bytes_arrived(&self) {
        match self.phase() {
            Phase::Fresh => self.phase.store(Phase::Head as u8, Ordering::SeqCst),
            Phase::Idle => self.enter(Phase::Head),
            _ => {}
        }
    }

    /// The phase and when its deadline falls (none while a request is being answered; the
    /// body's is the handler's, with a second's grace here).
    fn deadline(&self, config: &ServerConfig) -> (Phase, Option<Instant>) {
        let phase = self.phase();
        let limit = match phase {
            Phase::Fresh | Phase::Head => Some(config.header_timeout),
            Phase::Idle => Some(config.idle_timeout),
            Phase::Body => Some(config.body_timeout + Duration::from_secs(1)),
            Phase::Busy => None,
        };
        let since = self.opened + Duration::from_millis(self.since.load(Ordering::SeqCst));
        (phase, limit.map(|limit| since + limit))
    }
}

/// A connection's socket, noting when a request's first bytes arrive.
struct Watched {
    stream: TcpStream,
    state: Arc<ConnState>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.bytes_arrived();
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Counts a connection as open until dropped.
struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How a connection ended.
enum End {
    /// The client closed it, or it was done (an error or a `Connection: close`).
    Done,
    /// A deadline passed in this phase.
    Late(Phase),
}

/// Serves one connection until it ends, keeping its deadlines.
pub(crate) async fn serve(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let _open = OpenGuard(Arc::clone(&shared));
    let state = Arc::new(ConnState::new());
    let io = TokioIo::new(Watched {
        stream,
        state: Arc::clone(&state),
    });
    let service = {
        let (shared, state) = (Arc::clone(&shared), Arc::clone(&state));
        hyper::service::service_fn(move |request| {
            handle(Arc::clone(&shared), Arc::clone(&state), peer, request)
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .keep_alive(true)
        .header_read_timeout(None) // the watchdog below keeps the deadlines
        .max_buf_size(64 << 10);
    let mut conn = builder.serve_connection(io, service);
    let mut stop = pin!(shared.shutdown.notified());
    stop.as_mut().enable();
    let mut stopping = false;
    let mut timer = pin!(tokio::time::sleep(Duration::from_secs(3600)));
    let end = std::future::poll_fn(|cx| {
        if !stopping
            && (shared.stopping.load(Ordering::SeqCst) || stop.as_mut().poll(cx).is_ready())
        {
            stopping = true;
            Pin::new(&mut conn).graceful_shutdown();
        }
        if Pin::new(&mut conn).poll(cx).is_ready() {
            return Poll::Ready(End::Done);
        }
        // Whatever the connection did in that poll (bytes read, a request begun or answered)
        // has moved its phase: the deadline follows.
        let (phase, deadline) = state.deadline(&shared.config);
        if stopping && matches!(phase, Phase::Fresh | Phase::Idle) {
            return Poll::Ready(End::Done); // no request in flight: nothing to finish
        }
        if let Some(deadline) = deadline {
            let deadline = tokio::time::Instant::from_std(deadline);
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(End::Late(phase));
            }
        }
        Poll::Pending
    })
    .await;
    let End::Late(phase) = end else {
        return;
    };
    let metrics = &shared.state.metrics;
    match phase {
        Phase::Head => {
            metrics.timed_out(Timeout::Header);
            let seconds = shared.config.header_timeout.as_secs_f64();
            let reply = ApiResponse::error(
                408,
                format!("the request's headers did not arrive within {seconds} s"),
            );
            let bytes = reply.body.len();
            let stream = conn.into_parts().io.into_inner().stream;
            // The answer is small: the socket takes it at once, or the client is gone.
            let _ =
                tokio::time::timeout(Duration::from_secs(1), answer_unasked(stream, reply)).await;
            shared.log(Access {
                peer,
                method: "-".into(),
                path: "-".into(),
                status: 408,
                bytes,
                elapsed: state.opened.elapsed(),
            });
        }
        Phase::Fresh => metrics.timed_out(Timeout::Header),
        Phase::Idle => metrics.timed_out(Timeout::Idle),
        Phase::Body | Phase::Busy => metrics.timed_out(Timeout::Body),
    }
}

/// Reads, answers and logs one request.
async fn handle(
    shared: Arc<Shared>,
    state: Arc<ConnState>,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let started = Instant::now();
    state.enter(Phase::Body);
    let method = request.method().as_str().to_string();
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or_default().to_string();
    let header = |name| {
        request
            .headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header(CONTENT_TYPE).unwrap_or_default();
    let declared = header(CONTENT_LENGTH).and_then(|v| v.trim().parse::<u64>().ok());
    let (reply, close) = match read_body(&shared, request.into_body(), declared).await {
        Ok((body, _held)) => {
            state.enter(Phase::Busy);
            let request = ApiRequest {
                method: &method,
                path: &path,
                query: &query,
                content_type: &content_type,
                body: &body,
            };
            (answer(&shared, request).await, false)
        }
        // The body was not read to its end: the connection cannot carry another request.
        Err(reply) => (reply, true),
    };
    let elapsed = started.elapsed();
    shared
        .state
        .metrics
        .request(routes::label(&path), reply.status, elapsed.as_secs_f64());
    shared.log(Access {
        peer,
        method,
        path: path.chars().take(200).collect(),
        status: reply.status,
        bytes: reply.body.len(),
        elapsed,
    });
    state.enter(Phase::Idle);
    Ok(reply.into_response(close))
}

/// The answer to a request whose body has been read.
async fn answer(shared: &Shared, request: ApiRequest<'_>) -> ApiResponse {
    match route(&shared.state, request).await {
        Routed::ApiResponse(reply) => reply,
        Routed::Metrics => ApiResponse::metrics(shared.state.metrics.render(shared.gauges())),
        Routed::Predict(upload) => match upload.predictor.submit(upload.images.clone()) {
            Ok(pending) => match pending.wait().await {
                Ok(predictions) => upload.answer(&predictions),
                Err(refused) => ApiResponse::busy(refused.to_string()),
            },
            Err(refused) => ApiResponse::busy(refused.to_string()),
        },
    }
}

/// A body that declares more than this is answered 413 at once, without reading it.
const MAX_DRAINED_BYTES: u64 = 64 << 20;

/// The body (at most [`MAX_BODY_BYTES`]) and the share of the body memory it holds; or the
/// answer that says why not: 408 when it does not arrive within the body deadline, 413 when it
/// is larger than the limit (read and dropped, up to [`MAX_DRAINED_BYTES`], so that the client
/// reads the answer), 503 when the bodies held in memory are at their bound.
async fn read_body(
    shared: &Shared,
    mut body: Incoming,
    declared: Option<u64>,
) -> Result<(Vec<u8>, Option<OwnedSemaphorePermit>), ApiResponse> {
    let config = &shared.config;
    let deadline = tokio::time::Instant::now() + config.body_timeout;
    let late = || {
        shared.state.metrics.timed_out(Timeout::Body);
        ApiResponse::error(
            408,
            format!(
                "the request's body did not arrive within {} s",
                config.body_timeout.as_secs_f64()
            ),
        )
    };
    let too_large = || {
        ApiResponse::error(
            413,
            format!(
                "the body is larger than the {} MiB limit",
                MAX_BODY_BYTES >> 20
            ),
        )
    };
    if let Some(declared) = declared.filter(|&n| n > MAX_BODY_BYTES as u64) {
        if declared <= MAX_DRAINED_BYTES {
            while let Some(frame) = tokio::time::timeout_at(deadline, body.frame())
                .await
                .map_err(|_| late())?
            {
                if frame.is_err() {
                    break;
                }
            }
        }
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    let mut held: Option<OwnedSemaphorePermit> = None;
    while let Some(frame) = tokio::time::timeout_at(deadline, body.frame())
        .await
        .map_err(|_| late())?
    {
        let frame =
            frame.map_err(|e| ApiResponse::error(400, format!("cannot read the body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if bytes.len() + data.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        let share = Arc::clone(&shared.body_memory)
            .try_acquire_many_owned(data.len() as u32)
            .map_err(|_| {
                ApiResponse::busy(format!(
                    "request bodies in memory are at the server's bound ({} MiB); try again",
                    config.max_body_memory >> 20
                ))
            })?;
        match &mut held {
            Some(held) => held.merge(share),
            None => held = Some(share),
        }
        bytes.extend_from_slice(&data);
    }
    Ok((bytes, held))
}
