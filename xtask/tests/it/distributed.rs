//! Data-parallel training over MPI (`train --distributed`, the `xtask-mpi` build), on generated
//! data: two ranks end with the weights of one process that trains on the same global batches
//! (over shared memory and over TCP, as between machines), Ctrl-C stops both ranks cleanly and
//! a killed rank ends the job within seconds, the run resuming from its last checkpoint either
//! way (over two ranks, three, or one process without MPI); the ranks' bad starts are one line each with nothing written; the bench over two ranks
//! reports what a step's reduction carries and costs. MPI comes from Debian
//! (`apt-get install -y openmpi-bin libopenmpi-dev libclang-dev`): SKIPPED without it, a
//! failure under CI.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use fashion_mixer_data::synthetic;
use fashion_mixer_data::testing::{skip, workspace_root};
use fashion_mixer_run::RunDir;
use fashion_mixer_run::inference::load_model;
use fashion_mixer_run::metrics::read_metrics;

use crate::common::{assert_user_error, in_terminal, xtask};

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

/// The pid of rank `rank` of the job training into `run` (its environment names its rank).
fn rank_pid(run: &Path, rank: usize) -> Option<u32> {
    let wanted = format!("OMPI_COMM_WORLD_RANK={rank}");
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline);
            if !cmdline.contains("xtask-mpi") || !cmdline.contains(&*run.to_string_lossy()) {
                return None;
            }
            let environ = std::fs::read(entry.path().join("environ")).ok()?;
            let environ = String::from_utf8_lossy(&environ);
            environ.split('\0').any(|v| v == wanted).then_some(pid)
        })
}

/// Waits until `run` holds the checkpoint of `epoch` (at most a minute).
fn wait_for_checkpoint(run: &Path, epoch: usize) {
    let record = run.join(format!("checkpoint/model-{epoch}.bpk"));
    let start = Instant::now();
    while !record.is_file() {
        assert!(start.elapsed() < Duration::from_secs(60), "no {record:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits for `child` (at most `limit`); its stderr and how long it took.
fn finish(mut child: Child, limit: Duration) -> (std::process::ExitStatus, String, Duration) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
            return (status, stderr, start.elapsed());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("the job still runs after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The temporary folder of the ranks training into `run` (`TMPDIR`): `run`'s sibling `tmp/`.
fn temp_of(run: &Path) -> PathBuf {
    let temp = run.parent().unwrap().join("tmp");
    std::fs::create_dir_all(&temp).unwrap();
    temp
}

/// The folders that ranks other than 0 train into, left in `temp`.
fn rank_folders(temp: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(temp)
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("fashion-mixer-rank")
        })
        .map(|e| e.path())
        .collect()
}

/// Two ranks training `epochs` of 64-image batches into `run`, on the data in `run`'s folder's
/// `data/`, with `extra` flags (stderr piped; stdout piped when `stdout`), until the first
/// epoch's checkpoint is written.
fn started_job(xtask_mpi: &Path, run: &Path, epochs: usize, extra: &[&str], stdout: bool) -> Child {
    let data = run.parent().unwrap().join("data");
    let child = mpirun(2, &[])
        .env("TMPDIR", temp_of(run))
        .arg(xtask_mpi)
        .args(training(&data, epochs, 64))
        .args(extra)
        .args(["--distributed", "--artifacts"])
        .arg(run)
        .stdout(if stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_checkpoint(run, 1);
    child
}

/// The run in `run` resumes over `ranks` ranks (0: in one process without MPI, the plain
/// `xtask`) and finishes its `epochs`: a run's folder does not depend on how many processes
/// trained it, as every rank assembles every global batch whole.
fn resumes(xtask_mpi: &Path, run: &Path, epochs: usize, ranks: usize) {
    let mut command = if ranks == 0 {
        let mut plain = Command::new(env!("CARGO_BIN_EXE_xtask"));
        plain.env_remove("FASHION_MNIST_DIR");
        plain
    } else {
        let mut command = mpirun(ranks, &[]);
        command.env("TMPDIR", temp_of(run)).arg(xtask_mpi);
        command
    };
    command.args(["train", "--no-tui", "--resume", "--offline"]);
    if ranks > 0 {
        command.arg("--distributed");
    }
    let out = succeeds(
        "resume",
        command
            .arg("--artifacts")
            .arg(run)
            .arg("--data-dir")
            .arg(run.parent().unwrap().join("data")),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("finished epoch"), "{stdout}");
    let rows = read_metrics(&run.join("metrics.csv")).unwrap();
    assert_eq!(rows.len(), epochs, "{rows:?}");
    assert!(run.join("model.bpk").is_file());
    assert_eq!(rank_folders(&temp_of(run)), Vec::<PathBuf>::new());
}

/// A job of two ranks after rank 1 was sent a signal in its second epoch.
struct Signalled {
    /// The folder holding the data and the run.
    _tmp: tempfile::TempDir,
    run: PathBuf,
    /// `mpirun`'s status and stderr.
    status: std::process::ExitStatus,
    stderr: String,
    /// How long after the signal the job ended.
    took: Duration,
    /// Rank 1's pid.
    pid: String,
}

/// Two ranks training 3 epochs of generated data (with `extra` flags); rank 1 sent `signal`
/// (`kill`'s) once the first epoch's checkpoint is written; the job waited for (at most 30 s).
fn rank_1_signalled(xtask_mpi: &Path, extra: &[&str], signal: &str) -> Signalled {
    let (tmp, _) = generated(2048, 128);
    let run = tmp.path().join("run");
    let child = started_job(xtask_mpi, &run, 3, extra, false);
    let pid = rank_pid(&run, 1).expect("rank 1 runs").to_string();
    let sent = Instant::now();
    assert!(
        Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success()
    );
    let (status, stderr, _) = finish(child, Duration::from_secs(30));
    Signalled {
        _tmp: tmp,
        run,
        status,
        stderr,
        took: sent.elapsed(),
        pid,
    }
}

/// Killed in the middle of its second epoch, one rank takes the job down within 10 s, with a
/// line naming the rank; the run then resumes from its first epoch's checkpoint over three
/// ranks (a job may resume over another number of ranks) and finishes, its rank 1 removing
/// the folder that the killed rank 1 left.
#[test]
fn a_killed_rank_ends_the_job_and_the_run_resumes() {
    let Some(xtask_mpi) = mpi_xtask() else {
        return;
    };
    let job = rank_1_signalled(&xtask_mpi, &[], "-KILL");
    let (run, stderr, took) = (&job.run, &job.stderr, job.took);
    let status = job.status;
    assert!(!status.success(), "{stderr}");
    assert!(
        took < Duration::from_secs(10),
        "the job ended {took:?} after the kill"
    );
    assert!(stderr.contains("rank 1"), "{stderr}");
    let kept = read_metrics(&run.join("metrics.csv")).unwrap().len();
    assert!((1..3).contains(&kept), "{kept} epochs kept");
    assert_eq!(rank_folders(&temp_of(run)).len(), 1, "the killed rank's");
    resumes(&xtask_mpi, run, 3, 3);
}

/// Paused in the middle of its second epoch (SIGSTOP: as a rank whose machine hangs), one rank
/// leaves the other waiting at the next reduction, which MPI alone would do for ever: after
/// `--stall-timeout` (5 s here) rank 0 ends the job with one line saying why; the run then
/// resumes over two ranks from its first epoch's checkpoint.
#[test]
fn a_paused_rank_ends_the_job_after_the_stall_timeout() {
    let Some(xtask_mpi) = mpi_xtask() else {
        return;
    };
    let job = rank_1_signalled(&xtask_mpi, &["--stall-timeout", "5"], "-STOP");
    let (run, stderr, took) = (&job.run, &job.stderr, job.took);
    let (status, pid) = (job.status, &job.pid);
    // Should mpirun have left it, the paused rank is ended here.
    let _ = Command::new("kill").args(["-KILL", pid]).status();
    assert!(!status.success(), "{stderr}");
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(15),
        "the job ended {took:?} after the pause"
    );
    let ours: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(ours.len(), 1, "{stderr}");
    assert!(ours[0].starts_with("error: rank 0: "), "{stderr}");
    assert!(ours[0].contains("--stall-timeout"), "{stderr}");
    let kept = read_metrics(&run.join("metrics.csv")).unwrap().len();
    assert!((1..3).contains(&kept), "{kept} epochs kept");
    resumes(&xtask_mpi, run, 3, 2);
}

/// Ctrl-C (SIGINT to `mpirun`, which passes it on as SIGTERM a second later and kills the ranks
/// a second after that) stops both ranks after the same step, in time: rank 0 says the run was
/// interrupted and how to score its record, and writes its report; no rank reports an error;
/// the folder holds the epochs done (fewer than asked); rank 1 removes its folder; the run
/// resumes in one process without MPI, the plain `xtask`. (`mpirun` itself ends with its own
/// status for a job it was asked to stop.)
#[test]
fn ctrl_c_stops_every_rank_and_the_run_resumes() {
    let Some(xtask_mpi) = mpi_xtask() else {
        return;
    };
    let (tmp, _) = generated(8192, 128);
    let run = tmp.path().join("run");
    const EPOCHS: usize = 10;
    let mut child = started_job(&xtask_mpi, &run, EPOCHS, &[], true);
    let mpirun_pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &mpirun_pid])
            .status()
            .unwrap()
            .success()
    );
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let (_, stderr, _) = finish(child, Duration::from_secs(60));
    assert!(stdout.contains("interrupted"), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("cargo xtask report --artifacts"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "continue with: mpirun -np 2 cargo xtask-mpi train --distributed --artifacts"
        ),
        "{stdout}"
    );
    assert!(!stderr.contains("error:"), "{stderr}");
    assert!(run.join("report.md").is_file());
    assert_eq!(rank_folders(&temp_of(&run)), Vec::<PathBuf>::new());
    let kept = read_metrics(&run.join("metrics.csv")).unwrap().len();
    assert!((1..EPOCHS).contains(&kept), "{kept} epochs kept");
    assert!(
        !run.join("model.bpk").exists(),
        "an interrupted run has no final record"
    );
    resumes(&xtask_mpi, &run, EPOCHS, 0);
}

/// Bad starts, each one line on stderr (rank 0's) with nothing written: `--distributed` in a
/// build without MPI (alone, and as two processes of `mpirun`); two processes of `mpirun`
/// without `--distributed`; ranks given other flags (`--slices equal` among them), other data, other
/// starting weights or another teacher (the same flags, each rank in its own folder) than rank
/// 0; a global batch smaller than the ranks; a flag no rank knows.
#[test]
fn bad_starts_are_one_line_each_and_write_nothing() {
    let (tmp, data) = generated(256, 64);
    let run = tmp.path().join("run");
    let out = xtask(&[
        "train",
        "--distributed",
        "--data-dir",
        data.to_str().unwrap(),
        "--artifacts",
        run.to_str().unwrap(),
    ]);
    assert_user_error(
        "without the mpi feature",
        &out,
        &["xtask-mpi", "mpirun", "apt-get install -y openmpi-bin"],
    );
    assert!(!run.exists());

    let Some(xtask_mpi) = mpi_xtask() else {
        return;
    };
    let other_data = tmp.path().join("other-data");
    synthetic::write_idx_dir(&other_data, 256, 65).unwrap();
    let base = |data: &Path, batch: usize| -> Vec<String> {
        let mut args = training(data, 1, batch);
        args.extend(["--distributed", "--artifacts"].map(String::from));
        args.push(run.display().to_string());
        args
    };
    let mut other_lr = base(&data, 128);
    other_lr.extend(["--lr", "0.002"].map(String::from));
    let small_batch = base(&data, 1);
    let mut equal_slices = base(&data, 128);
    equal_slices.extend(["--slices", "equal"].map(String::from));
    let mut too_short = base(&data, 128);
    too_short.extend(["--warmup-epochs", "2"].map(String::from));
    let mut misspelled = base(&data, 128);
    misspelled.extend(["--epoch", "2"].map(String::from));
    let missing = tmp.path().join("no-data");
    let no_data = base(&missing, 128);
    // Each rank in a folder of its own whose `t` is another finished run (one epoch, two).
    let homes = ["home0", "home1"].map(|home| tmp.path().join(home));
    for (epochs, home) in [1, 2].into_iter().zip(&homes) {
        let mut args = training(&data, epochs, 128);
        args.extend(["--artifacts".into(), home.join("t").display().to_string()]);
        let out = xtask(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut init_from = base(&data, 128);
    init_from.extend(["--init-from", "t"].map(String::from));
    let mut distill_from = base(&data, 128);
    distill_from.extend(["--distill-from", "t"].map(String::from));
    let at_home = |args: &[String], home: &Path| -> Vec<String> {
        let mut with = vec!["-wdir".to_string(), home.display().to_string()];
        with.push(xtask_mpi.display().to_string());
        with.extend(args.iter().cloned());
        with
    };
    let anywhere = |args: Vec<String>| -> Vec<String> {
        let mut with = vec![xtask_mpi.display().to_string()];
        with.extend(args);
        with
    };
    let mut alone = training(&data, 1, 128);
    alone.extend(["--artifacts".into(), run.display().to_string()]);
    let mut plain = vec![env!("CARGO_BIN_EXE_xtask").to_string()];
    plain.extend(base(&data, 128));
    for (case, rank0, rank1, needle) in [
        (
            "different flags",
            anywhere(base(&data, 128)),
            anywhere(other_lr),
            "different configurations: rank 1 differs",
        ),
        (
            "equal slices on one rank",
            anywhere(base(&data, 128)),
            anywhere(equal_slices),
            "different configurations: rank 1 differs",
        ),
        (
            "different data",
            anywhere(base(&data, 128)),
            anywhere(base(&other_data, 128)),
            "different data: the IDX files of rank 1 differ",
        ),
        (
            "a batch of 1",
            anywhere(small_batch.clone()),
            anywhere(small_batch),
            "global batch of 1 is smaller than the 2 ranks",
        ),
        // Every rank meets it alike, before training: said once, by rank 0.
        (
            "a configuration every rank refuses",
            anywhere(too_short.clone()),
            anywhere(too_short),
            "warmup_epochs (2) must be at most epochs (1)",
        ),
        // A flag the command line does not know, met before MPI starts: said by rank 0.
        (
            "a misspelled flag",
            anywhere(misspelled.clone()),
            anywhere(misspelled),
            "unexpected argument '--epoch'",
        ),
        // Started together without --distributed, each would train the run alone.
        (
            "no --distributed",
            anywhere(alone.clone()),
            anywhere(alone),
            "started as one of 2 processes (mpirun or srun) without --distributed",
        ),
        // The build without MPI, started by mpirun.
        (
            "the build without MPI",
            plain.clone(),
            plain,
            "--distributed needs the MPI build",
        ),
        // Rank 1 alone meets it: rank 0 says it, naming the rank.
        (
            "no data on rank 1",
            anywhere(base(&data, 128)),
            anywhere(no_data),
            "rank 1: ",
        ),
        // The same flags, but rank 1's `t` holds other weights.
        (
            "other starting weights",
            at_home(&init_from, &homes[0]),
            at_home(&init_from, &homes[1]),
            "start from different weights: rank 1 differs",
        ),
        (
            "another teacher",
            at_home(&distill_from, &homes[0]),
            at_home(&distill_from, &homes[1]),
            "different teachers: the teacher (distill_from) of rank 1 differs",
        ),
    ] {
        // One program per rank (MPI's ":" between them), each with its own arguments.
        let out = mpirun(1, &[])
            .args(&rank0)
            .args([":", "-np", "1", "-x", "RAYON_NUM_THREADS"])
            .args(&rank1)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{case}: {stderr}");
        let ours: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(ours.len(), 1, "{case}: {stderr}");
        assert!(ours[0].contains(needle), "{case}: {stderr}");
        if case == "no data on rank 1" {
            assert!(ours[0].contains(&*missing.to_string_lossy()), "{stderr}");
        }
        for bad in ["panicked", "backtrace"] {
            assert!(!stderr.contains(bad), "{case}: {stderr}");
        }
        assert!(!run.exists(), "{case}: nothing is written");
    }
}
