//! `cargo xtask`: the fashion-mixer command line. It parses arguments and calls the libraries;
//! errors become one line on stderr and exit code 2. Its binaries, `xtask` and (with the `mpi`
//! feature) `xtask-mpi`, each call [`main`].

// The arguments' doc comments are clap's help text, where `<NAME>` is a placeholder, not HTML.
#![allow(rustdoc::invalid_html_tags)]

/// mimalloc keeps freed memory for reuse: the training step's large, short-lived tensors then
/// cost few page faults (with glibc's allocator they took a third of a step; see README), and
/// none in the training commands ([`keep_freed_memory`]).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `println!` that never panics: when stdout is closed early (`cargo xtask bench | head -1`),
/// the rest of the output is dropped and the command still finishes its work (files written,
/// exit code), where std's `println!` would panic with a backtrace.
macro_rules! println {
    () => {
        $crate::print_line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::print_line(format_args!($($arg)*))
    };
}

mod bench;
mod data;
mod distributed;
mod eval;
mod flags;
mod infer;
mod interop;
mod model;
mod report;
mod runs;
mod serve;
mod sweep;
mod train;
mod tune;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Writes one line to stdout; a reader that has gone (a closed pipe) is not an error.
pub(crate) fn print_line(args: std::fmt::Arguments) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    // Nothing to do about a failed write to the terminal or pipe: the output is only a report.
    let _ = out.write_fmt(args).and_then(|()| out.write_all(b"\n"));
}

/// Train, evaluate and serve an all-MLP patch classifier for Fashion-MNIST.
#[derive(Parser, Debug)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Find, inspect or download the Fashion-MNIST IDX files.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Print the model's architecture and parameter count.
    Model(model::ModelArgs),
    /// Train a model (Burn's Learner; dashboard in a terminal); writes a run folder.
    Train(Box<train::TrainArgs>),
    /// Score a saved run on the train and test splits; writes eval.json.
    Eval(eval::EvalArgs),
    /// Predict test-set items or image files with a saved run.
    Infer(infer::InferArgs),
    /// Write a run's pictures (loss, accuracy, confusion) and report.md again.
    Report(report::ReportArgs),
    /// List the runs under artifacts/ (or --root): status, what changed, what they reached.
    Runs(runs::RunsArgs),
    /// Train a grid of runs (named, or any flags' values with --set); writes summary.md and .png.
    Sweep(Box<sweep::SweepArgs>),
    /// Time training steps and inference; writes bench.json.
    Bench(Box<bench::BenchArgs>),
    /// Write a run's model as model.safetensors, in PyTorch's names and layouts.
    Export(interop::ExportArgs),
    /// Make a run folder from a safetensors file (from `export`, or from PyTorch).
    Import(interop::ImportArgs),
    /// Serve the model: a web page and a JSON API (loopback only unless --public).
    Serve(serve::ServeArgs),
    /// Time the server: requests/s and latency at 1, 8 and 32 clients, single and batched.
    BenchServe(serve::BenchServeArgs),
    /// Tune wgpu's kernels on this adapter; writes the bundle wgpu imports when it starts on it.
    TuneWgpu(tune::TuneArgs),
}

/// The environment the libraries read, set before anything else runs.
///
/// Burn's fallback device for what it creates without one is the CPU (flex), not the first GPU
/// API it can start: burn-optim restores optimizer state onto `Device::default()` (then moves it
/// to each parameter's device), and the default would otherwise start wgpu, and with it the
/// machine's Vulkan/GL drivers, in every `--resume`, whatever the backend. `$BURN_DEVICE`, when
/// set, is left alone.
///
/// Mesa's Vulkan device-selection layer asks the Wayland session which GPU it runs on whenever
/// a program enables Wayland surfaces, as wgpu does. Where there is no session (a server, a
/// container, CI: no `$XDG_RUNTIME_DIR`, no display), libwayland prints `error:
/// XDG_RUNTIME_DIR is invalid or not set in the environment.` three or four times each time
/// wgpu starts, though nothing fails. With no session and no display to choose by, the layer is
/// turned off through its own switch (`NODEVICE_SELECT=1`), unless something asks it to choose
/// (`$DRI_PRIME`, `$MESA_VK_DEVICE_SELECT`) or `$NODEVICE_SELECT` is set already. The adapter
/// does not depend on the layer's order: wgpu asks for high performance, which ranks a discrete
/// GPU first and a CPU driver (lavapipe) last whatever order the drivers come in. Under Cargo
/// (`cargo xtask`, the tests), `.cargo/config.toml` turns the layer off for every run; this
/// covers the binary run on its own.
#[allow(unsafe_code)]
fn set_environment() {
    let unset = |name: &str| std::env::var_os(name).is_none();
    let no_session = [
        "XDG_RUNTIME_DIR",
        "WAYLAND_DISPLAY",
        "WAYLAND_SOCKET",
        "DISPLAY",
        "DRI_PRIME",
        "MESA_VK_DEVICE_SELECT",
        "NODEVICE_SELECT",
    ]
    .into_iter()
    .all(unset);
    // SAFETY (both): called first thing in `main`, before any other thread exists, so no
    // thread can read the environment while it changes.
    if unset("BURN_DEVICE") {
        unsafe { std::env::set_var("BURN_DEVICE", "flex") };
    }
    if cfg!(target_os = "linux") && no_session {
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}

/// mimalloc's option for the delay, in milliseconds, before it returns freed memory to the OS
/// (`mi_option_purge_delay`, which the bindings do not name; -1: never).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Training keeps the memory it frees instead of returning it to the OS: a step frees its large
/// tensors and allocates them again in the next, and memory returned in between comes back
/// through page faults, some of them in steps that are held up. Measured (docs/performance.md):
/// one thread 1.06-1.08x as fast, two threads 1.02-1.05x, two MPI ranks 0.99-1.08x (medians of
/// sittings), for a peak resident size about a sixth higher. A `$MIMALLOC_PURGE_DELAY` of the
/// user's is left alone.
#[allow(unsafe_code)]
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one integer option of the allocator, which reads it when it next
        // considers returning memory; no pointer is passed.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    }
}

/// Runs the command the arguments name; any error is one line on stderr and exit code 2.
pub fn main() -> ExitCode {
    set_environment();
    let launched = distributed::launched();
    // Under `mpirun` or `srun` every process has the same arguments and meets the same mistake:
    // rank 0 alone says it (and its exit code ends the job); the others end quietly, as for any
    // error rank 0 reports.
    let quiet = launched.is_some_and(|l| l.rank != 0);
    let mut cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(_) if quiet => return ExitCode::SUCCESS,
        Err(err) => err.exit(),
    };
    if let Some(launched) = launched.filter(|l| l.size > 1)
        && let Err(err) = started_together(&mut cli.command, launched)
    {
        if quiet {
            return ExitCode::SUCCESS;
        }
        eprintln!("error: {err}");
        return ExitCode::from(2);
    }
    if matches!(
        cli.command,
        Command::Train(_) | Command::Sweep(_) | Command::Bench(_)
    ) {
        keep_freed_memory();
    }
    let result = match cli.command {
        Command::Data(cmd) => data::run(cmd),
        Command::Model(args) => model::run(&args),
        Command::Train(args) => train::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Infer(args) => infer::run(&args),
        Command::Export(args) => interop::run_export(&args),
        Command::Import(args) => interop::run_import(&args),
        Command::Serve(args) => serve::run(&args),
        Command::BenchServe(args) => serve::bench(&args),
        Command::Report(args) => report::run(&args),
        Command::Runs(args) => runs::run(&args),
        Command::Sweep(args) => sweep::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::TuneWgpu(args) => tune::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Rank 0 of a distributed training says what went wrong, and ends with exit code 2:
        // this rank ending with an error code first would make `mpirun` stop rank 0 before it
        // has said why.
        #[cfg(feature = "mpi")]
        Err(err) if err.is::<SaidElsewhere>() => ExitCode::SUCCESS,
        // Every error of the libraries states its cause in its own message; printing the chain
        // as well (`{:#}`) would say the cause twice.
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(2)
        }
    }
}

/// A command started as one of several processes (`mpirun -np N`, `srun -n N`): `train` and
/// `bench` need `--distributed` (alone, each process would do the whole work, into the same
/// folder, on the same cores) and the MPI build; a `sweep` without `--shard` trains this
/// process's rank's shard.
fn started_together(command: &mut Command, launched: distributed::Launched) -> anyhow::Result<()> {
    let size = launched.size;
    let (name, alone, distributed) = match command {
        Command::Train(args) => (
            "train",
            "train the whole run alone, into the same folder",
            args.distributed,
        ),
        Command::Bench(args) => (
            "bench",
            "time every step alone, on the same cores",
            args.distributed,
        ),
        Command::Sweep(args) => {
            args.shard
                .get_or_insert(fashion_mixer_experiments::sweep::Shard {
                    index: launched.rank,
                    count: size,
                });
            return Ok(());
        }
        _ => return Ok(()),
    };
    if !distributed {
        anyhow::bail!(
            "started as one of {size} processes (mpirun or srun) without --distributed: each \
             would {alone}; add --distributed to share the work over them (`mpirun -np {size} \
             cargo xtask-mpi {name} --distributed ...`), or start one process"
        );
    }
    #[cfg(not(feature = "mpi"))]
    anyhow::bail!(distributed::NOT_BUILT);
    #[cfg(feature = "mpi")]
    Ok(())
}

/// An error another process reports (rank 0 of a distributed training, which ends with its exit
/// code): this one ends quietly.
#[cfg(feature = "mpi")]
#[derive(Debug, thiserror::Error)]
#[error("reported by another process")]
pub struct SaidElsewhere;

/// The workspace root (where `datasets/` and `artifacts/` live): the parent of xtask's folder,
/// as `cargo xtask` names it when it starts this program (`CARGO_MANIFEST_DIR` at run time), or
/// as compiled in. Checkouts that share a build directory can share this binary, and the path
/// compiled in is then another checkout's.
pub fn project_root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.join("Cargo.toml").is_file() && dir.join("src/main.rs").is_file())
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option's number is mimalloc's purge delay: its default (1000 ms in mimalloc 3) unless
    /// the environment set it, and -1 once training keeps freed memory.
    #[test]
    #[allow(unsafe_code)]
    fn keeping_freed_memory_sets_mimallocs_purge_delay() {
        // SAFETY: reads and sets integer options of the allocator.
        let get = || unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        let from_environment = std::env::var("MIMALLOC_PURGE_DELAY").ok();
        if from_environment.is_none() {
            assert_eq!(get(), 1000, "not mimalloc's purge delay");
        }
        keep_freed_memory();
        match from_environment {
            None => assert_eq!(get(), -1),
            Some(value) => assert_eq!(get().to_string(), value.trim()),
        }
    }
}
