//! The server: a listening socket, and hyper's HTTP/1.1 on a tokio runtime of a few threads,
//! which holds any number of open connections without a thread each ([`crate::connection`]
//! serves each one). A [`Stopper`] ends it cleanly: requests in flight are answered, then
//! [`Server::run`] returns.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};

use crate::app::{AppState, MAX_BODY_BYTES};
use crate::config::ServerConfig;
use crate::connection::{self, Shared};
use crate::error::ServeError;

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
                    connection::refuse(stream, shared);
                    continue;
                }
                shared.open.fetch_add(1, Ordering::SeqCst);
                shared.state.metrics.connection();
                tokio::spawn(connection::serve(Arc::clone(shared), stream, peer));
            }
            // Out of file descriptors, or a connection reset before it was accepted: the
            // waiting connections stay queued; try again shortly.
            Some(Err(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}
