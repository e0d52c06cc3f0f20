//! The HTTP side: hyper's HTTP/1.1 on a tokio runtime of a few threads, which holds any number
//! of open connections without a thread each. Every connection has deadlines (headers, body,
//! idle keep-alive: [`ServerConfig`]), connections beyond a bound are answered 503 at once, and
//! request bodies held in memory are bounded in total. A [`Stopper`] ends it cleanly: requests
//! in flight are answered, then [`Server::run`] returns.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::api::{AppState, Ask, MAX_BODY_BYTES, Reply, Route, route};
use crate::metrics::{Gauges, Timeout, route_label};

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

/// What every connection shares.
struct Shared {
    state: AppState,
    config: ServerConfig,
    open: AtomicUsize,
    /// Connections refused at the bound and still being closed.
    lingering: AtomicUsize,
    body_memory: Arc<Semaphore>,
    stopping: AtomicBool,
    shutdown: Notify,
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

/// A listening server, not yet answering.
pub struct Server {
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
}

/// Stops a running [`Server`]: requests in flight are answered, then [`Server::run`] returns.
#[derive(Clone)]
pub struct Stopper {
    shared: Arc<Shared>,
}

impl Stopper {
    /// Asks the server to stop.
    pub fn stop(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.shutdown.notify_waiters();
    }
}

impl Server {
    /// Listens on `addr` (port 0: any free port).
    pub fn bind(
        addr: SocketAddr,
        state: AppState,
        config: ServerConfig,
    ) -> Result<Self, ServeError> {
        let fail = |e: io::Error| ServeError::Bind {
            addr,
            kind: e.kind(),
            message: e.to_string(),
        };
        let listener = std::net::TcpListener::bind(addr).map_err(fail)?;
        listener.set_nonblocking(true).map_err(fail)?;
        let mut config = config;
        config.threads = config.threads.max(1);
        config.max_connections = config.max_connections.max(1);
        config.max_body_memory = config.max_body_memory.clamp(
            MAX_BODY_BYTES,
            Semaphore::MAX_PERMITS.min(u32::MAX as usize),
        );
        Ok(Self {
            listener,
            shared: Arc::new(Shared {
                body_memory: Arc::new(Semaphore::new(config.max_body_memory)),
                state,
                config,
                open: AtomicUsize::new(0),
                lingering: AtomicUsize::new(0),
                stopping: AtomicBool::new(false),
                shutdown: Notify::new(),
            }),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound socket has an address")
    }

    /// A handle that stops the server from another thread.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Answers requests until stopped; then waits for the requests in flight (connections
    /// still open after the longest deadline are dropped).
    pub fn run(self) -> Result<(), ServeError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.shared.config.threads)
            .max_blocking_threads(1)
            .thread_name("http")
            .enable_io()
            .enable_time()
            .build()
            .map_err(ServeError::Runtime)?;
        let shared = self.shared;
        let listener = self.listener;
        runtime.block_on(async move {
            let listener = TcpListener::from_std(listener).map_err(ServeError::Runtime)?;
            accept(&listener, &shared).await;
            drop(listener);
            let config = &shared.config;
            let grace = config
                .header_timeout
                .max(config.body_timeout)
                .max(config.idle_timeout);
            let until = Instant::now() + grace + Duration::from_secs(1);
            while shared.open.load(Ordering::SeqCst) > 0 && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok::<_, ServeError>(())
        })?;
        runtime.shutdown_timeout(Duration::from_millis(100));
        Ok(())
    }
}

/// Accepts connections until the server is stopped.
async fn accept(listener: &TcpListener, shared: &Arc<Shared>) {
    let mut stop = pin!(shared.shutdown.notified());
    stop.as_mut().enable();
    loop {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let accepted = std::future::poll_fn(|cx| {
            if stop.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            listener.poll_accept(cx).map(Some)
        })
        .await;
        match accepted {
            None => return,
            Some(Ok((stream, peer))) => {
                let _ = stream.set_nodelay(true);
                if shared.open.load(Ordering::SeqCst) >= shared.config.max_connections {
                    refuse(stream, shared);
                    continue;
                }
                shared.open.fetch_add(1, Ordering::SeqCst);
                shared.state.metrics.connection();
                tokio::spawn(connection(Arc::clone(shared), stream, peer));
            }
            // Out of file descriptors, or a connection reset before it was accepted: the
            // waiting connections stay queued; try again shortly.
            Some(Err(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Connections refused at the bound that may still be closing gently; beyond it they are
/// closed at once.
const MAX_LINGERING: usize = 256;

/// Answers a connection over the bound with 503 and closes it: at once when many are closing,
/// else after reading (and dropping) what the client sends for up to a second, so that its
/// request does not reset the connection before it has read the answer.
fn refuse(stream: TcpStream, shared: &Arc<Shared>) {
    shared.state.metrics.refused();
    let body = format!(
        "{{\"error\":\"the server has {} connections open, its bound (--max-connections); try again\"}}",
        shared.config.max_connections
    );
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(answer.as_bytes());
    if shared.lingering.fetch_add(1, Ordering::SeqCst) >= MAX_LINGERING {
        shared.lingering.fetch_sub(1, Ordering::SeqCst);
        return;
    }
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let mut stream = stream;
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
async fn connection(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
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
            let reply = Reply::error(
                408,
                format!("the request's headers did not arrive within {seconds} s"),
            );
            let answer = format!(
                "HTTP/1.1 408 Request Timeout\r\ncontent-type: {}\r\nconnection: close\r\n\
                 content-length: {}\r\n\r\n",
                reply.content_type,
                reply.body.len()
            );
            let stream = conn.into_parts().io.into_inner().stream;
            let _ = stream.try_write(&[answer.as_bytes(), &reply.body].concat());
            shared.log(Access {
                peer,
                method: "-".into(),
                path: "-".into(),
                status: 408,
                bytes: reply.body.len(),
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
            let ask = Ask {
                method: &method,
                path: &path,
                query: &query,
                content_type: &content_type,
                body: &body,
            };
            (answer(&shared, ask).await, false)
        }
        // The body was not read to its end: the connection cannot carry another request.
        Err(reply) => (reply, true),
    };
    let elapsed = started.elapsed();
    shared
        .state
        .metrics
        .request(route_label(&path), reply.status, elapsed.as_secs_f64());
    shared.log(Access {
        peer,
        method,
        path: path.chars().take(200).collect(),
        status: reply.status,
        bytes: reply.body.len(),
        elapsed,
    });
    state.enter(Phase::Idle);
    let mut response = Response::builder()
        .status(reply.status)
        .header(CONTENT_TYPE, reply.content_type);
    if let Some(seconds) = reply.retry_after {
        response = response.header(RETRY_AFTER, seconds);
    }
    if close {
        response = response.header(CONNECTION, "close");
    }
    Ok(response
        .body(Full::new(Bytes::from(reply.body)))
        .expect("a status and headers that are valid"))
}

/// The answer to a request whose body has been read.
async fn answer(shared: &Shared, ask: Ask<'_>) -> Reply {
    match route(&shared.state, ask) {
        Route::Reply(reply) => reply,
        Route::Metrics => Reply {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: shared.state.metrics.render(shared.gauges()).into_bytes(),
            retry_after: None,
        },
        Route::Predict(upload) => match upload.predictor.submit(upload.images.clone()) {
            Ok(pending) => match pending.wait().await {
                Ok(predictions) => upload.answer(&predictions),
                Err(refused) => Reply::busy(refused.to_string()),
            },
            Err(refused) => Reply::busy(refused.to_string()),
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
) -> Result<(Vec<u8>, Option<OwnedSemaphorePermit>), Reply> {
    let config = &shared.config;
    let deadline = tokio::time::Instant::now() + config.body_timeout;
    let late = || {
        shared.state.metrics.timed_out(Timeout::Body);
        Reply::error(
            408,
            format!(
                "the request's body did not arrive within {} s",
                config.body_timeout.as_secs_f64()
            ),
        )
    };
    let too_large = || {
        Reply::error(
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
        let frame = frame.map_err(|e| Reply::error(400, format!("cannot read the body: {e}")))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if bytes.len() + data.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        let share = Arc::clone(&shared.body_memory)
            .try_acquire_many_owned(data.len() as u32)
            .map_err(|_| {
                Reply::busy(format!(
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
