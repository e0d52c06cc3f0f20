//! `cargo xtask serve`: the trained model behind a web page and a JSON API; `cargo xtask
//! bench-serve`: its throughput, alone and beside hostile clients.

use std::io::{ErrorKind, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use clap::Args;
use fashion_mixer_model::Backend;
use fashion_mixer_run::RunDir;
use fashion_mixer_run::inference::load_model;
use fashion_mixer_serve::load::{Slow, SlowClients, drive, process_footprint};
use fashion_mixer_serve::{
    Access, AppState, ServeError, Server, ServerConfig, page_gaps, run_name,
};
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::flags::{at_least_one, listen_addr, seconds};

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// The run's folder [default: artifacts/pretrained, the shipped model]
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
    /// Where to listen: HOST:PORT (127.0.0.1:9000, localhost:9000), or a port on 127.0.0.1
    #[arg(long, visible_alias = "port", default_value = "127.0.0.1:8080", value_parser = listen_addr)]
    pub addr: SocketAddr,
    /// Allow an address other machines can reach (anything but loopback)
    #[arg(long)]
    pub public: bool,
    /// Backend to run the model on [default: the run's]
    #[arg(long)]
    pub backend: Option<Backend>,
    /// Most images in one forward pass: requests that queue while the model is busy share
    /// one; 1 runs every request on its own
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = at_least_one)]
    pub max_batch: usize,
    /// Most images waiting for the model; a request that would go over is answered 503 with
    /// Retry-After
    #[arg(long, default_value_t = 256, value_name = "N", value_parser = at_least_one)]
    pub max_queue: usize,
    /// Most connections open at once; one more is answered 503 and closed
    #[arg(long, default_value_t = 1024, value_name = "N", value_parser = at_least_one)]
    pub max_connections: usize,
    /// Seconds a request's headers may take to arrive (408, then closed)
    #[arg(long, default_value = "10", value_name = "S", value_parser = seconds)]
    pub header_timeout: Duration,
    /// Seconds a request's body may take to arrive after its headers (408, then closed)
    #[arg(long, default_value = "30", value_name = "S", value_parser = seconds)]
    pub body_timeout: Duration,
    /// Seconds a kept-alive connection may wait for its next request before it is closed
    #[arg(long, default_value = "15", value_name = "S", value_parser = seconds)]
    pub idle_timeout: Duration,
    /// Threads reading requests, decoding pictures and writing answers (the model has its
    /// own) [default: the number of cores]
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub threads: Option<usize>,
    /// No access log (one line per request on stderr: client, method, path, status, bytes,
    /// milliseconds)
    #[arg(long)]
    pub quiet: bool,
    /// The runs the runs page (/runs) lists and compares, and whose finished models the
    /// prediction page can use [default: artifacts; with --public, none unless given]
    #[arg(long, value_name = "DIR")]
    pub runs: Option<PathBuf>,
}

impl ServeArgs {
    fn server_config(&self) -> ServerConfig {
        let defaults = ServerConfig::default();
        ServerConfig {
            threads: self.threads.unwrap_or(defaults.threads),
            max_connections: self.max_connections,
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            idle_timeout: self.idle_timeout,
            access_log: (!self.quiet).then(|| Arc::new(log_line) as _),
            ..defaults
        }
    }
}

/// One access-log line on stderr.
fn log_line(a: &Access) {
    let _ = writeln!(
        std::io::stderr().lock(),
        "{} {} {} {} {} B {:.1} ms",
        a.peer,
        a.method,
        a.path.escape_debug(),
        a.status,
        a.bytes,
        a.elapsed.as_secs_f64() * 1e3
    );
}

pub fn run(args: &ServeArgs) -> Result<()> {
    if !args.addr.ip().is_loopback() && !args.public {
        bail!(
            "{}: not a loopback address; add --public to serve other machines",
            args.addr
        );
    }
    let run = RunDir::new(
        args.artifacts
            .clone()
            .unwrap_or_else(crate::infer::pretrained),
    );
    let loaded = load_model(&run, args.backend)?;
    let mut state = AppState::new(&run, loaded, args.max_batch, args.max_queue);
    // Served to other machines, the runs are listed only when asked for.
    let runs = match (&args.runs, args.public) {
        (Some(dir), _) => Some(dir.clone()),
        (None, false) => Some(crate::project_root().join("artifacts")),
        (None, true) => None,
    };
    if let Some(runs) = runs {
        state = state.with_runs(runs);
    }
    let server = Server::bind(args.addr, state, args.server_config()).map_err(|e| match e {
        ServeError::Bind {
            kind: ErrorKind::AddrInUse,
            ..
        } => anyhow!("{e}; another program listens there: choose another port (--addr PORT)"),
        e => e.into(),
    })?;
    let stopper = server.stopper();
    // A flag rather than signal-hook's iterator, which Windows lacks.
    let signalled = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&signalled))
            .map_err(|e| anyhow!("cannot install the Ctrl-C handler: {e}"))?;
    }
    std::thread::spawn(move || {
        while !signalled.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(50));
        }
        stopper.stop();
    });
    for gap in page_gaps(&run) {
        eprintln!("warning: {gap}");
    }
    println!(
        "serving {} on http://{} (Ctrl-C stops)",
        run_name(&run),
        server.local_addr()
    );
    server.run()?;
    println!("stopped");
    Ok(())
}

#[derive(Args, Debug, Clone)]
pub struct BenchServeArgs {
    /// The run's folder [default: artifacts/pretrained, the shipped model]
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
    /// The picture every request sends
    #[arg(
        long,
        value_name = "FILE",
        default_value = "crates/data/tests/images/ankle-boot.png"
    )]
    pub image: PathBuf,
    /// Requests per number of clients
    #[arg(long, default_value_t = 640, value_parser = at_least_one)]
    pub requests: usize,
    /// Hostile connections held open for the last row (slow headers, slow bodies and idle,
    /// a third each)
    #[arg(long, default_value_t = 500, value_name = "N", value_parser = at_least_one)]
    pub slow_clients: usize,
    /// Where to write the report [default: artifacts/bench-serve.json]
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
}

/// `cargo xtask bench-serve`: the server (as `serve` starts it, without the access log) on a
/// free loopback port, each request on its own (`--max-batch 1`) and batched (64), driven by
/// 1, 8 and 32 clients at once; then batched at 8 clients while `--slow-clients` hostile
/// connections are held open.
pub fn bench(args: &BenchServeArgs) -> Result<()> {
    let run = RunDir::new(
        args.artifacts
            .clone()
            .unwrap_or_else(crate::infer::pretrained),
    );
    let image = crate::project_root().join(&args.image);
    let body = std::fs::read(&image).map_err(|e| anyhow!("{}: {e}", image.display()))?;
    let out = args.out.clone().unwrap_or_else(|| {
        crate::project_root()
            .join("artifacts")
            .join("bench-serve.json")
    });
    fashion_mixer_run::run_dir::prepare_output(&out)?;
    let mut rows = Vec::new();
    for max_batch in [1, 64] {
        let loaded = load_model(&run, None)?;
        let state = AppState::new(&run, loaded, max_batch, 256);
        let server = Server::bind("127.0.0.1:0".parse()?, state, ServerConfig::default())?;
        let addr = server.local_addr();
        let url = format!("http://{addr}/api/predict");
        let stopper = server.stopper();
        let thread = std::thread::spawn(move || server.run());
        let mut cases: Vec<(usize, usize)> = [1, 8, 32].map(|c| (c, 0)).to_vec();
        if max_batch > 1 {
            cases.push((8, args.slow_clients));
        }
        for (clients, slow) in cases {
            let hostile = (slow > 0)
                .then(|| SlowClients::open(addr, slow, &[Slow::Headers, Slow::Body, Slow::Idle]))
                .transpose()
                .map_err(|e| anyhow!("{addr}: cannot open {slow} slow connections: {e}"))?;
            let per_client = (args.requests / clients).max(1);
            let report =
                drive(&url, "image/png", &body, clients, per_client).map_err(anyhow::Error::msg)?;
            let footprint = hostile.as_ref().and_then(|_| process_footprint());
            let beside = if slow > 0 {
                format!(", beside {slow} slow connections")
            } else {
                String::new()
            };
            println!(
                "max batch {max_batch:>2}, {clients:>2} clients{beside}: {:>6.0} requests/s, p50 {:>6.1} ms, p99 {:>6.1} ms",
                report.requests_per_s, report.p50_ms, report.p99_ms
            );
            if let Some((threads, rss)) = footprint {
                println!(
                    "  the process meanwhile (server, clients and slow connections): {threads} threads, {rss:.0} MB resident"
                );
            }
            rows.push(serde_json::json!({
                "max_batch": max_batch,
                "slow_connections": slow,
                "report": report,
                "threads": footprint.map(|f| f.0),
                "resident_mb": footprint.map(|f| f.1),
            }));
        }
        stopper.stop();
        thread
            .join()
            .map_err(|_| anyhow!("the server's thread panicked"))??;
    }
    let json = serde_json::to_string_pretty(&rows)?;
    fashion_mixer_run::run_dir::write_atomic(&out, json.as_bytes())?;
    println!("wrote {}", out.display());
    Ok(())
}
