//! `cargo xtask train / eval / infer` as a user runs them, on a generated data set: a run
//! killed with SIGKILL after its first epoch resumes (by the command that started it, with
//! `--resume`; other settings are refused), and the saved record serves eval and infer.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use fashion_mixer_data::synthetic;
use fashion_mixer_data::testing::copy_shipped_run;
use fashion_mixer_run::RunDir;
use fashion_mixer_run::metrics::read_metrics;

use crate::common::in_terminal;

fn xtask() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.env_remove("FASHION_MNIST_DIR");
    cmd
}

fn run(args: &[&str]) -> Output {
    xtask().args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A temporary folder with a generated data set (`data/`) and a path for a run (`run/`).
fn fixture(n_train: usize, n_test: usize) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synthetic::write_idx_dir(&data, n_train, n_test).unwrap();
    let run_dir = tmp.path().join("run");
    (tmp, data, run_dir)
}

/// `train --no-tui --data-dir DATA --artifacts RUN`.
fn base_args<'a>(data: &'a str, run_dir: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--no-tui",
        "--data-dir",
        data,
        "--artifacts",
        run_dir,
    ]
}

/// A short flex run of `epochs`, batch 32.
fn train_args<'a>(data: &'a str, run_dir: &'a str, epochs: &'a str) -> Vec<&'a str> {
    let mut args = base_args(data, run_dir);
    args.extend([
        "--epochs",
        epochs,
        "--batch-size",
        "32",
        "--backend",
        "flex",
    ]);
    args
}

#[test]
fn sigkill_after_epoch_one_then_resume() {
    let (_tmp, data, run_dir) = fixture(3000, 300);
    let (data_s, run_s) = (data.to_str().unwrap(), run_dir.to_str().unwrap());
    let rd = RunDir::new(&run_dir);

    let mut child = xtask()
        .args(train_args(data_s, run_s, "2"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until epoch 1 is complete: its metrics row and its checkpoint are on disk.
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let rows = read_metrics(&rd.metrics()).unwrap_or_default();
        if rows.len() == 1 && rd.last_checkpoint() == Some(1) {
            break;
        }
        assert!(
            rows.len() < 2,
            "epoch 2 finished before the kill; make epochs longer"
        );
        assert!(child.try_wait().unwrap().is_none(), "training exited early");
        assert!(Instant::now() < deadline, "epoch 1 never completed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let resume = || {
        let mut args = base_args(data_s, run_s);
        args.push("--resume");
        run(&args)
    };
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success());
    let before = read_metrics(&rd.metrics()).unwrap();
    assert_eq!(before.len(), 1, "killed during epoch 2: one row");
    assert!(
        !rd.model().exists(),
        "no final record for an unfinished run"
    );

    // Continued by the command that started it, `--resume` added (as a requeued job runs it
    // again): the same settings, so the run goes on.
    let mut again = train_args(data_s, run_s, "2");
    again.push("--resume");
    let out = run(&again);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let after = read_metrics(&rd.metrics()).unwrap();
    assert_eq!(
        after.iter().map(|r| r.epoch).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(after[0], before[0], "row 1 must be kept as it was");
    // `train` keeps Burn's application log of the run, both trainings of it appended.
    let log = std::fs::read_to_string(rd.experiment_log()).unwrap();
    for epoch in [1, 2] {
        let line = format!("Executing training step for epoch {epoch}");
        assert!(log.contains(&line), "{log}");
    }
    // Row 2 is not compared with an uninterrupted run's: Burn's DataLoader forks its shuffle
    // RNG when the Learner moves it to the device, so the resumed epoch 2 sees another
    // (seeded) order of the training items. Model, optimizer and scheduler are restored.
    assert!(after[1].train_loss.is_finite() && after[1].train_loss < before[0].train_loss);
    assert!(rd.model().is_file());

    // Resuming a finished run says so and changes nothing.
    let out = resume();
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("already finished (2/2 epochs)"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(read_metrics(&rd.metrics()).unwrap(), after);
    // Other settings than the run's are refused with one line naming them; nothing changes.
    let mut other = train_args(data_s, run_s, "3");
    other.push("--resume");
    crate::common::assert_user_error(
        "--resume with other settings",
        &run(&other),
        &["other settings", "epochs 2 (asked: 3)", "--resume"],
    );
    assert_eq!(read_metrics(&rd.metrics()).unwrap(), after);

    // eval reloads the record and reports the last epoch's test accuracy.
    let out = run(&["eval", "--artifacts", run_s, "--data-dir", data_s]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let expected = format!("test: accuracy {:.2}%", 100.0 * after[1].test_accuracy);
    assert!(stdout.contains(&expected), "{expected} not in {stdout}");
    assert!(rd.eval().is_file());

    // infer: test items by index, as text and JSON.
    let infer = |extra: &[&str]| {
        let mut args = vec!["infer", "--artifacts", run_s, "--data-dir", data_s];
        args.extend(extra);
        run(&args)
    };
    // --index repeated, several values after one --index, or comma-separated.
    for (indices, expected) in [
        (
            &["--index", "0", "--index", "7"][..],
            ["test[0] (true: T-shirt/top): ", "test[7] (true: Sneaker): "],
        ),
        (
            &["--index", "1", "2"][..],
            ["test[1] (true: Trouser): ", "test[2] (true: Pullover): "],
        ),
        (
            &["--index", "1,2"][..],
            ["test[1] (true: Trouser): ", "test[2] (true: Pullover): "],
        ),
    ] {
        let out = infer(indices);
        assert!(out.status.success(), "{indices:?}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        for needle in expected {
            assert!(stdout.contains(needle), "{indices:?}: {stdout}");
        }
    }
    let out = infer(&["--index", "3", "--json"]);
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["true"], "Dress");
    assert_eq!(line["top3"].as_array().unwrap().len(), 3);
}

#[test]
fn a_fresh_run_never_overwrites_an_old_one() {
    let (_tmp, data, run_dir) = fixture(64, 32);
    let (data_s, run_s) = (data.to_str().unwrap(), run_dir.to_str().unwrap());
    let out = run(&train_args(data_s, run_s, "1"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("epoch   1/1  train loss"), "{stdout}");
    let config_before = std::fs::read(run_dir.join("config.json")).unwrap();

    let out = run(&train_args(data_s, run_s, "1"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("already holds a run"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read(run_dir.join("config.json")).unwrap(),
        config_before
    );
}

/// A run without checkpoints (the shipped run, as shipped; an imported one) is never trained
/// again from its first epoch over what it holds: finished, `--resume` says so and changes
/// nothing; cut short (rows but no checkpoint to go on from) or imported (a record, no epoch),
/// it is one line, and nothing changes.
#[test]
fn a_run_without_checkpoints_is_not_trained_again() {
    let (tmp, data, _) = fixture(64, 32);
    // Every file but the lock, which a writer leaves behind.
    let files = |run: &Path| -> Vec<(String, Vec<u8>)> {
        let mut all: Vec<(String, Vec<u8>)> = std::fs::read_dir(run)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name() != ".lock")
            .map(|e| {
                let bytes = std::fs::read(e.path()).unwrap_or_default();
                (e.file_name().to_string_lossy().into_owned(), bytes)
            })
            .collect();
        all.sort();
        all
    };
    let resume = |folder: &Path| {
        run(&[
            "train",
            "--no-tui",
            "--offline",
            "--data-dir",
            data.to_str().unwrap(),
            "--artifacts",
            folder.to_str().unwrap(),
            "--resume",
        ])
    };

    let finished = tmp.path().join("finished");
    copy_shipped_run(&finished, None);
    let before = files(&finished);
    let out = resume(&finished);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("already finished (100/100 epochs)"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(files(&finished), before);

    let cut = tmp.path().join("cut");
    copy_shipped_run(&cut, Some(3));
    let before = files(&cut);
    crate::common::assert_user_error(
        "rows past every checkpoint",
        &resume(&cut),
        &[
            "nothing to resume",
            "metrics.csv holds epochs up to 3",
            "--init-from",
        ],
    );
    assert_eq!(files(&cut), before);

    let weights = tmp.path().join("export/model.safetensors");
    let imported = tmp.path().join("imported");
    let out = run(&[
        "export",
        "--artifacts",
        finished.to_str().unwrap(),
        "--out",
        weights.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&[
        "import",
        weights.to_str().unwrap(),
        "--artifacts",
        imported.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let before = files(&imported);
    crate::common::assert_user_error(
        "an imported record",
        &resume(&imported),
        &["nothing to resume", "model.bpk", "--init-from"],
    );
    assert_eq!(files(&imported), before);
}

#[test]
fn bad_training_flags_are_one_line_errors() {
    let (_tmp, data, run_dir) = fixture(16, 16);
    let (data_s, run_s) = (data.to_str().unwrap(), run_dir.to_str().unwrap());
    for (flags, needle) in [
        (vec!["--batch-size", "0"], "batch_size must be at least 1"),
        (vec!["--patch-size", "5"], "patch size 5 does not divide"),
        (vec!["--lr", "0"], "lr must be a positive number"),
    ] {
        let mut args = base_args(data_s, run_s);
        args.extend(flags);
        let out = run(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(needle) && stderr.lines().count() == 1,
            "{stderr}"
        );
        assert!(!Path::new(run_s).join("config.json").exists());
    }
}

/// `sweep --grid smoke`: two runs, a summary with two rows and its picture; run again, both
/// are skipped and nothing is retrained.
#[test]
fn sweep_smoke_runs_then_skips() {
    let (tmp, data, _) = fixture(1024, 200);
    let sweep_dir = tmp.path().join("sweep");
    let args = [
        "sweep",
        "--grid",
        "smoke",
        "--data-dir",
        data.to_str().unwrap(),
        "--artifacts",
        sweep_dir.to_str().unwrap(),
    ];
    let out = run(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary = std::fs::read_to_string(sweep_dir.join("summary.md")).unwrap();
    let rows: Vec<&str> = summary
        .lines()
        .filter(|l| l.starts_with("| adam") || l.starts_with("| sgd"))
        .collect();
    assert_eq!(rows.len(), 2, "{summary}");
    assert!(rows.iter().all(|r| r.contains("| 1/1 |")), "{summary}");
    let png = image::open(sweep_dir.join("summary.png")).unwrap();
    assert!(png.width() > 100 && png.height() > 100);
    for name in ["adam", "sgd-momentum0.9"] {
        let rows = read_metrics(&RunDir::new(sweep_dir.join(name)).metrics()).unwrap();
        assert_eq!(rows.len(), 1, "{name}");
        assert!(sweep_dir.join(name).join("report.md").is_file());
    }
    let record = sweep_dir.join("adam").join("model.bpk");
    let modified = std::fs::metadata(&record).unwrap().modified().unwrap();

    let out = run(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout.matches("finished before; skipped").count(),
        2,
        "{stdout}"
    );
    assert_eq!(
        std::fs::metadata(&record).unwrap().modified().unwrap(),
        modified
    );

    let out = run(&["sweep", "--grid", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown grid 'nope'"));
}

/// `--backend wgpu` where no Vulkan driver can be found (hidden through the loader's
/// environment): one line naming the fix, exit code 2, well within 30 seconds, no run folder.
#[test]
fn wgpu_without_a_driver_fails_fast() {
    let (_tmp, data, run_dir) = fixture(16, 16);
    let mut args = base_args(data.to_str().unwrap(), run_dir.to_str().unwrap());
    args.extend(["--backend", "wgpu", "--epochs", "1"]);
    let started = Instant::now();
    let out = xtask()
        .args(&args)
        .env("VK_DRIVER_FILES", "/nonexistent/no-driver.json")
        .env("VK_ICD_FILENAMES", "/nonexistent/no-driver.json")
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let took = started.elapsed();
    super::common::assert_user_error(
        "wgpu without a driver",
        &out,
        &["wgpu", "apt-get install mesa-vulkan-drivers"],
    );
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert!(!run_dir.join("config.json").exists());
}

/// `--backend wgpu` with `CUBECL_WGPU_DEFAULT_DEVICE` naming an adapter this machine lacks (or
/// naming none it understands): one line saying the variable is set and how to let wgpu
/// choose, exit code 2, no run folder.
#[test]
fn wgpu_on_an_adapter_the_machine_lacks_names_the_variable() {
    let (_tmp, data, run_dir) = fixture(16, 16);
    let mut args = base_args(data.to_str().unwrap(), run_dir.to_str().unwrap());
    args.extend(["--backend", "wgpu", "--epochs", "1"]);
    for named in ["DiscreteGpu(99)", "Bogus"] {
        let out = xtask()
            .args(&args)
            .env("CUBECL_WGPU_DEFAULT_DEVICE", named)
            .output()
            .unwrap();
        super::common::assert_user_error(
            named,
            &out,
            &[
                &format!("CUBECL_WGPU_DEFAULT_DEVICE is set: \"{named}\""),
                "unset it to let wgpu choose",
            ],
        );
        assert!(!run_dir.join("config.json").exists());
    }
}

/// In a terminal, `train` draws the dashboard; started in the background of one (a job of its
/// own, `&` in an interactive shell), it trains with one line per epoch and says why: the kernel
/// stops a background process that takes the terminal, and the run would wait forever.
#[test]
fn in_a_terminal_the_dashboard_is_drawn_only_in_the_foreground() {
    let (_tmp, data, run_dir) = fixture(512, 128);
    let binary = env!("CARGO_BIN_EXE_xtask");
    let train = |run: &Path| {
        format!(
            "{binary} train --offline --epochs 1 --batch-size 64 --data-dir '{}' --artifacts '{}'",
            data.display(),
            run.display()
        )
    };
    let limit = Duration::from_secs(300);
    let (foreground, background) = (run_dir.join("foreground"), run_dir.join("background"));

    let Some((status, drawn)) =
        in_terminal(&train(&foreground), &foreground.to_string_lossy(), limit)
    else {
        return;
    };
    assert!(status.success(), "{drawn}");
    assert!(drawn.contains("\x1b[?1049h"), "no dashboard: {drawn}");
    assert!(!drawn.contains("no dashboard"), "{drawn}");
    assert_eq!(
        read_metrics(&RunDir::new(&foreground).metrics())
            .unwrap()
            .len(),
        1
    );

    let job = format!(
        "bash -c 'set -m; {} & wait $!'",
        train(&background).replace('\'', "\"\"")
    );
    let (status, drawn) = in_terminal(&job, &background.to_string_lossy(), limit).unwrap();
    assert!(status.success(), "{drawn}");
    assert!(!drawn.contains("\x1b[?1049h"), "{drawn}");
    assert!(
        drawn.contains("no dashboard: this process is not in its terminal's foreground"),
        "{drawn}"
    );
    assert!(drawn.contains("finished epoch 1/1"), "{drawn}");
}
