//! Data-parallel training over MPI (`train --distributed`, the `xtask-mpi` build), on generated
//! data: two ranks end with the weights of one process that trains on the same global batches
//! (over shared memory and over TCP, as between machines); the bench over two ranks reports what
//! a step's reduction carries and costs; two ranks train on wgpu. How a job ends when a rank
//! fails or is stopped: [`failure`]; the ranks' bad starts: [`bad_start`]. MPI comes from
//! Debian (`apt-get install -y openmpi-bin libopenmpi-dev libclang-dev`): SKIPPED without it, a
//! failure under CI.
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use fashion_mixer_data::synthetic;
use fashion_mixer_data::testing::{skip, workspace_root};
use fashion_mixer_run::RunDir;
use fashion_mixer_run::inference::load_model;
use fashion_mixer_run::metrics::read_metrics;

use crate::common::in_terminal;

mod bad_start;
mod failure;

/// How to install what these tests need.
const INSTALL: &str = "apt-get install -y openmpi-bin libopenmpi-dev libclang-dev";

/// The `xtask-mpi` binary, built for these tests (the `mpi` feature, into the same target
/// folder, which leaves `xtask` as it is); `None` after [`skip`] when MPI is not installed.
pub fn mpi_xtask() -> Option<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let found = Command::new("mpirun").arg("--version").output();
        if !found.is_ok_and(|o| o.status.success()) {
            return Err(format!("MPI is not installed (no mpirun): `{INSTALL}`"));
        }
        let mut build = Command::new(env!("CARGO"));
        build
            .args([
                "build",
                "-p",
                "xtask",
                "--features",
                "mpi",
                "--bin",
                "xtask-mpi",
            ])
            .arg("--message-format=json")
            .current_dir(workspace_root())
            .stderr(Stdio::inherit());
        // Not the variables Cargo set for this test: build scripts would see another
        // environment than `cargo xtask-mpi`'s and build again.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("CARGO_") && !matches!(&*name, "CARGO_HOME" | "CARGO_TARGET_DIR") {
                build.env_remove(&*name);
            }
        }
        let out = build.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let executable = stdout
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|m| m["target"]["name"] == "xtask-mpi")
            .find_map(|m| m["executable"].as_str().map(PathBuf::from));
        match (out.status.success(), executable) {
            (true, Some(path)) => Ok(path),
            _ => Err(format!(
                "the MPI build (`cargo build -p xtask --features mpi --bin xtask-mpi`) failed; \
                 is MPI installed? `{INSTALL}`"
            )),
        }
    });
    match built {
        Ok(path) => Some(path.clone()),
        Err(missing) => {
            skip(missing);
            None
        }
    }
}

/// `mpirun` for `ranks` processes on this machine (as root too), each with one thread, over
/// the transport the `mca` settings choose (shared memory by default).
pub fn mpirun(ranks: usize, mca: &[&str]) -> Command {
    let mut command = Command::new("mpirun");
    command
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("RAYON_NUM_THREADS", "1")
        .env_remove("FASHION_MNIST_DIR")
        .args([
            "--oversubscribe",
            "--bind-to",
            "none",
            "-x",
            "RAYON_NUM_THREADS",
        ])
        // In containers the kernel may refuse cross-process memory access (CMA).
        .args(["--mca", "btl_vader_single_copy_mechanism", "none"])
        .args(["-np", &ranks.to_string()]);
    for pair in mca.chunks(2) {
        command.args(["--mca", pair[0], pair[1]]);
    }
    command
}

/// A small model and a short run (`epochs` of batches of `batch`) on the generated data in
/// `data`, with every augmentation that draws random numbers on: `train`'s flags.
fn training(data: &Path, epochs: usize, batch: usize) -> Vec<String> {
    [
        "train",
        "--no-tui",
        "--offline",
        "--dim",
        "16",
        "--token-hidden",
        "8",
        "--channel-hidden",
        "16",
        "--batch-size",
        &batch.to_string(),
        "--crop-padding",
        "1",
        "--horizontal-flip",
        "--random-erasing",
        "0.5",
        "--mixup",
        "0.2",
        "--seed",
        "7",
        "--epochs",
        &epochs.to_string(),
        "--data-dir",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([data.display().to_string()])
    .collect()
}

/// Every weight of the run in `run`'s record, by parameter, in the model's order.
fn weights(run: &Path) -> Vec<Vec<f32>> {
    struct Collect(Vec<Vec<f32>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let data = param.val().into_data().convert::<f32>();
            self.0.push(data.try_to_vec::<f32>().unwrap());
        }
    }
    let loaded = load_model(&RunDir::new(run), None).unwrap();
    let mut collect = Collect(Vec::new());
    loaded.model.visit(&mut collect);
    collect.0
}

/// The largest difference between `a` and `b`'s weights, relative to each tensor's largest
/// magnitude in `b`.
fn relative_difference(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let scale = y.iter().fold(f32::MIN_POSITIVE, |m, v| m.max(v.abs()));
            let worst = x
                .iter()
                .zip(y)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0, f32::max);
            worst / scale
        })
        .fold(0.0, f32::max)
}

/// Runs `command`, failing with its output unless it succeeds.
fn succeeds(what: &str, command: &mut Command) -> Output {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `command` as one shell command line, its environment set and removed through `env`.
fn shell_line(command: &Command) -> String {
    let quote = |word: &str| format!("'{}'", word.replace('\'', r"'\''"));
    let mut words = vec!["env".to_string()];
    for (key, value) in command.get_envs() {
        let key = key.to_string_lossy();
        match value {
            Some(value) => words.push(quote(&format!("{key}={}", value.to_string_lossy()))),
            None => words.extend(["-u".to_string(), quote(&key)]),
        }
    }
    words.push(quote(&command.get_program().to_string_lossy()));
    words.extend(command.get_args().map(|a| quote(&a.to_string_lossy())));
    words.join(" ")
}

/// Rank 0 started from a terminal trains with one line per epoch, and says why: `mpirun` gives
/// each rank a terminal of its own but runs it outside the foreground of the user's, where the
/// dashboard would have the kernel stop rank 0 for good.
#[test]
fn rank_0_under_a_terminal_trains_with_lines() {
    let Some(xtask_mpi) = mpi_xtask() else {
        return;
    };
    let (tmp, data) = generated(512, 128);
    let run = tmp.path().join("run");
    let mut args = training(&data, 1, 64);
    args.retain(|a| a != "--no-tui");
    let mut command = mpirun(2, &[]);
    command
        .arg(&xtask_mpi)
        .args(&args)
        .args(["--distributed", "--artifacts"])
        .arg(&run);
    let Some((status, drawn)) = in_terminal(
        &shell_line(&command),
        &run.to_string_lossy(),
        Duration::from_secs(120),
    ) else {
        return;
    };
    assert!(status.success(), "{drawn}");
    assert!(
        drawn.contains("no dashboard: this process is not in its terminal's foreground"),
        "{drawn}"
    );
    assert!(drawn.contains("finished epoch 1/1"), "{drawn}");
    assert_eq!(read_metrics(&run.join("metrics.csv")).unwrap().len(), 1);
}

/// Two ranks, one thread each, end an epoch of four steps (random shifts, flips, erasing and
/// mixup on) with the weights one process of two threads ends it with, over shared memory and
/// over TCP: within 1e-6 of each tensor's largest weight, their slices sized by their speeds
/// (the gradients' sums round in another order where the slices are not the process's two
/// halves); with `--slices equal`, equal to the bit.
#[test]
fn two_ranks_end_with_the_weights_of_one_process() {
    let Some(xtask_mpi) = mpi_xtask() else {
        return;
    };
    let (tmp, data) = generated(512, 128);
    let args = training(&data, 1, 128);
    let one = tmp.path().join("one");
    succeeds(
        "one process",
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(&args)
            .arg("--artifacts")
            .arg(&one)
            .env("RAYON_NUM_THREADS", "2"),
    );
    let alone = weights(&one);
    for (name, mca, slices) in [
        ("shared-memory", &[][..], &[][..]),
        ("tcp", &["btl", "tcp,self"][..], &[][..]),
        ("equal-slices", &[][..], &["--slices", "equal"][..]),
    ] {
        let run = tmp.path().join(name);
        let out = succeeds(
            name,
            mpirun(2, mca)
                .arg(&xtask_mpi)
                .args(&args)
                .arg("--distributed")
                .args(slices)
                .arg("--artifacts")
                .arg(&run),
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("2 ranks"), "{stdout}");
        assert_eq!(
            stdout.matches("finished epoch").count(),
            1,
            "rank 0 alone: {stdout}"
        );
        let difference = relative_difference(&weights(&run), &alone);
        if slices.is_empty() {
            assert!(difference <= 1e-6, "{name}: {difference}");
        } else {
            assert_eq!(difference, 0.0, "{name}");
        }
        // Rank 0 wrote the run as one process does.
        for file in [
            "config.json",
            "metrics.csv",
            "eval.json",
            "report.md",
            "model.bpk",
        ] {
            assert!(run.join(file).is_file(), "{name}: {file}");
        }
    }
}

/// `bench --distributed` over two ranks: rank 0 alone reports, and its report says what a
/// step's reduction carries and costs, each rank's wait for the other timed apart from the
/// transfer, and the slices rank 0 took (sized by speed).
#[test]
fn the_bench_over_two_ranks_splits_the_reduction_into_wait_and_transfer() {
    let Some(xtask_mpi) = mpi_xtask() else {
        return;
    };
    let (tmp, data) = generated(256, 64);
    let out = tmp.path().join("bench.json");
    let output = succeeds(
        "bench over two ranks",
        mpirun(2, &[]).arg(&xtask_mpi).args([
            "bench",
            "--distributed",
            "--offline",
            "--batch-size",
            "32",
            "--steps",
            "3",
            "--repeats",
            "2",
            "--data-dir",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        stdout.matches("wrote ").count(),
        1,
        "rank 0 alone: {stdout}"
    );
    assert!(stdout.contains("waiting for the last rank"), "{stdout}");
    assert!(stdout.contains("slices by speed: rank 0 took"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let number = |field: &str| report[field].as_f64().unwrap_or_else(|| panic!("{field}"));
    assert_eq!(number("ranks"), 2.0);
    // The coursework model's 143,786 gradients and a flag for each of its 20 parameters, the
    // ranks' 2 speeds, the batch's 32 x 10 logits, its loss and the stop requests, as f32.
    assert_eq!(
        number("reduce_bytes_per_step"),
        4.0 * (143_786.0 + 20.0 + 2.0 + 320.0 + 2.0),
        "{report}"
    );
    assert_eq!(report["equal_slices"], false, "{report}");
    let slice = |i: usize| report["slice_items"][i].as_u64().unwrap();
    assert!(
        1 <= slice(0) && slice(0) <= slice(1) && slice(1) < 32,
        "{report}"
    );
    let (total, wait) = (
        number("reduce_ms_per_step"),
        number("reduce_wait_ms_per_step"),
    );
    assert!(total > 0.0 && (0.0..total).contains(&wait), "{report}");
    // Each rank's wait, rank 0's the report's own.
    let waits = numbers(&report["reduce_wait_ms_by_rank"]);
    assert_eq!(waits.len(), 2, "{report}");
    assert_eq!(waits[0], wait, "{report}");
    assert!(waits[1] >= 0.0, "{report}");
    assert!(number("optimizer_ms_per_step") > 0.0, "{report}");
    assert!(number("train_images_per_s") > 0.0, "{report}");
    // Rank 0's six timed steps, a step held up on either rank slow on both.
    assert_eq!(report["step_spread"]["steps"], 6, "{report}");
    assert!(stdout.contains("steps: median "), "{stdout}");
    // Each timed step's work on both ranks: their slices cover the batch, and the slowest
    // rank's work is at least that of the step's items split by its own speeds.
    let work = report["rank_work"].as_array().unwrap();
    assert_eq!(work.len(), 6, "{report}");
    for step in work {
        assert_eq!(numbers(&step["items"]).iter().sum::<f64>(), 32.0, "{step}");
        assert!(numbers(&step["work_ms"]).iter().all(|&w| w > 0.0), "{step}");
    }
    let balance = &report["work_balance"];
    assert_eq!(balance["steps"], 6, "{report}");
    let (slowest, balanced) = (
        balance["slowest_ms"].as_f64().unwrap(),
        balance["balanced_ms"].as_f64().unwrap(),
    );
    assert!(0.0 < balanced && balanced <= slowest, "{balance}");
    assert!(
        stdout.contains("ranks' work: the slowest rank's"),
        "{stdout}"
    );

    // benches/slices.py replays those steps under other slicings: every one of them (and the
    // steps as recorded) at least as slow as each step split by its own speeds.
    let script = workspace_root().join("benches/slices.py");
    let python = std::env::var_os("FASHION_MIXER_PYTHON").unwrap_or_else(|| "python3".into());
    let Ok(replay) = Command::new(&python).arg(&script).arg(&out).output() else {
        skip("no python3 to run benches/slices.py (apt-get install -y python3)");
        return;
    };
    let printed = String::from_utf8_lossy(&replay.stdout);
    assert!(
        replay.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let figure = |row: &str| -> f64 {
        let line = printed
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("{row}: {printed}"));
        line[row.len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let replayed = figure("each step's own speeds");
    assert!((replayed - balanced).abs() < 0.01, "{printed}");
    for row in [
        "as recorded (by speed)",
        "equal",
        "by speed, weight 0.1",
        "by speed, weight 0.3 (the code's)",
        "by speed, weight 1.0",
    ] {
        assert!(figure(row) >= replayed - 0.005, "{row}: {printed}");
    }
}

/// On wgpu (lavapipe where there is no GPU), two ranks of one machine train an epoch together,
/// and rank 0 says how they share the machine's GPUs: in turn where it has several of the kind
/// wgpu prefers, its one adapter otherwise.
#[test]
fn two_ranks_on_wgpu_share_the_machines_gpus() {
    let Some(xtask_mpi) = mpi_xtask() else {
        return;
    };
    if let Err(err) = fashion_mixer_model::Backend::Wgpu.device() {
        return skip(&format!("no wgpu device: {err}"));
    }
    // One step of the coursework model whose slices are the batches of `backend_wgpu`'s run,
    // so both use the kernels the shipped tuning covers: about 20 s on lavapipe even from an
    // empty kernel cache, where a small model of its own took over 2 minutes.
    let (tmp, data) = generated(512, 512);
    let run = tmp.path().join("run");
    let out = succeeds(
        "two ranks on wgpu",
        mpirun(2, &[])
            .env_remove("CUBECL_WGPU_DEFAULT_DEVICE")
            .arg(&xtask_mpi)
            .args(["train", "--no-tui", "--offline", "--backend", "wgpu"])
            .args(["--epochs", "1", "--batch-size", "512", "--distributed"])
            .arg("--data-dir")
            .arg(&data)
            .arg("--artifacts")
            .arg(&run),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let shared = stdout.contains("this machine's 2 ranks share its one wgpu adapter");
    let in_turn =
        stdout.contains("this machine's 2 ranks take its") && stdout.contains("GPUs in turn");
    assert!(shared || in_turn, "{stdout}");
    assert_eq!(read_metrics(&run.join("metrics.csv")).unwrap().len(), 1);
}

/// The numbers of a JSON array.
fn numbers(array: &serde_json::Value) -> Vec<f64> {
    let array = array
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {array}"));
    array.iter().map(|n| n.as_f64().unwrap()).collect()
}

/// A temporary folder holding `data/`, generated IDX files of `train` and `test` items.
fn generated(train: usize, test: usize) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synthetic::write_idx_dir(&data, train, test).unwrap();
    (tmp, data)
}
