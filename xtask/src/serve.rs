//! `cargo xtask serve`: the trained model behind a web page and a JSON API.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use clap::Args;
use fashion_mixer_model::Backend;
use fashion_mixer_serve::load::drive;
use fashion_mixer_serve::{AppState, Predictor, ServeError, Server, model_info, page_gaps};
use fashion_mixer_train::RunDir;
use fashion_mixer_train::inference::load_model;
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::flags::{at_least_one, listen_addr};

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
    /// Threads reading and answering requests (each holds one connection at a time)
    #[arg(long, default_value_t = 32, value_name = "N", value_parser = at_least_one)]
    pub threads: usize,
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
    let state = AppState {
        model_info: model_info(&run, &loaded),
        predictor: Predictor::spawn(loaded, args.max_batch),
    };
    let server = Server::bind(args.addr, state, args.threads).map_err(|e| match e {
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
        run.root().display(),
        server.local_addr()
    );
    server.run();
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
        default_value = "crates/train/tests/images/ankle-boot.png"
    )]
    pub image: PathBuf,
    /// Requests per number of clients
    #[arg(long, default_value_t = 640, value_parser = at_least_one)]
    pub requests: usize,
    /// Where to write the report [default: artifacts/bench-serve.json]
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
}

/// `cargo xtask bench-serve`: the server on a free loopback port, each request on its own
/// (`--max-batch 1`) and batched (64), driven by 1, 8 and 32 clients at once.
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
    fashion_mixer_train::artifacts::prepare_output(&out)?;
    let mut rows = Vec::new();
    for max_batch in [1, 64] {
        let loaded = load_model(&run, None)?;
        let state = AppState {
            model_info: model_info(&run, &loaded),
            predictor: Predictor::spawn(loaded, max_batch),
        };
        let server = Server::bind("127.0.0.1:0".parse()?, state, 32)?;
        let url = format!("http://{}/api/predict", server.local_addr());
        let stopper = server.stopper();
        let thread = std::thread::spawn(move || server.run());
        for clients in [1, 8, 32] {
            let per_client = (args.requests / clients).max(1);
            let report =
                drive(&url, "image/png", &body, clients, per_client).map_err(anyhow::Error::msg)?;
            println!(
                "max batch {max_batch:>2}, {clients:>2} clients: {:>6.0} requests/s, p50 {:>6.1} ms, p99 {:>6.1} ms",
                report.requests_per_s, report.p50_ms, report.p99_ms
            );
            rows.push(serde_json::json!({ "max_batch": max_batch, "report": report }));
        }
        stopper.stop();
        let _ = thread.join();
    }
    let json = serde_json::to_string_pretty(&rows)?;
    fashion_mixer_train::artifacts::write_atomic(&out, json.as_bytes())?;
    println!("wrote {}", out.display());
    Ok(())
}
