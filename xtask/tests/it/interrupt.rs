//! Interrupted and failing training runs, through the real binary: SIGKILL and SIGINT in the
//! middle of an epoch, a loss that becomes NaN, a full disk and logs that cannot be written.
//! Nothing completed is lost, nothing torn is left, and `--resume` carries on.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use burn::prelude::Device;
use fashion_mixer_data::synthetic;
use fashion_mixer_run::RunDir;
use fashion_mixer_run::inference::load_record;
use fashion_mixer_run::metrics::{EpochMetrics, read_metrics};
use fashion_mixer_run::run_dir::TEMP_PREFIX;
use fashion_mixer_run::run_dir::load_config;

fn xtask() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.env_remove("FASHION_MNIST_DIR");
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

struct Fixture {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    run: RunDir,
}

impl Fixture {
    fn new(n_train: usize, n_test: usize) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        synthetic::write_idx_dir(&data, n_train, n_test).unwrap();
        let run = RunDir::new(tmp.path().join("run"));
        Self {
            _tmp: tmp,
            data,
            run,
        }
    }

    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> = [
            "train",
            "--no-tui",
            "--data-dir",
            self.data.to_str().unwrap(),
            "--artifacts",
            self.run.root().to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec();
        if !extra.contains(&"--resume") {
            // A resumed run takes everything from its config.json.
            args.extend(["--backend".to_string(), "flex".to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    fn spawn(&self, extra: &[&str]) -> Child {
        xtask()
            .args(self.args(extra))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn run(&self, extra: &[&str]) -> Output {
        xtask().args(self.args(extra)).output().unwrap()
    }

    /// Waits until epoch 1's row and checkpoint are on disk, then a further 40% of epoch 1's
    /// duration, so that the child is in the middle of epoch 2.
    fn wait_into_epoch_two(&self, child: &mut Child) -> EpochMetrics {
        let deadline = Instant::now() + Duration::from_secs(600);
        let first = loop {
            let rows = read_metrics(&self.run.metrics()).unwrap_or_default();
            if rows.len() == 1 && self.run.last_checkpoint() == Some(1) {
                break rows[0];
            }
            assert!(child.try_wait().unwrap().is_none(), "training ended early");
            assert!(Instant::now() < deadline, "epoch 1 never completed");
            std::thread::sleep(Duration::from_millis(10));
        };
        std::thread::sleep(Duration::from_secs_f64(first.epoch_seconds * 0.4));
        assert!(child.try_wait().unwrap().is_none(), "training ended early");
        first
    }
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    files(dir)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(TEMP_PREFIX))
        })
        .collect()
}

/// The record at `path` (a checkpoint or `model.bpk`) loads into the run's model.
fn assert_record_loads(run: &RunDir, path: &Path) {
    let config = load_config(run).unwrap();
    let model = config.model.init(&Device::flex()).unwrap();
    load_record(model, path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Epochs of about a second or two here: long enough to stop the run inside one.
const ITEMS: usize = 6000;

#[test]
fn sigkill_in_the_middle_of_an_epoch_then_resume() {
    let f = Fixture::new(ITEMS, 500);
    let mut child = f.spawn(&["--epochs", "3", "--batch-size", "64"]);
    let first = f.wait_into_epoch_two(&mut child);
    child.kill().unwrap(); // SIGKILL: no handler runs
    assert!(!child.wait().unwrap().success());

    // Everything on disk is whole: metrics.csv parses with epoch 1 only, the checkpoint
    // loads; a temporary file may remain only if the kill hit a write, and resume removes it.
    let rows = read_metrics(&f.run.metrics()).unwrap();
    assert_eq!(rows, vec![first], "killed inside epoch 2");
    assert_record_loads(&f.run, &f.run.checkpoint_model(1));
    assert!(!f.run.model().exists());
    // The killed process's lock went with it.
    assert!(f.run.lock_file().is_file());
    drop(f.run.lock().expect("the lock is free after SIGKILL"));

    let out = f.run(&["--resume"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // On flex, nothing else speaks: no GPU or GL driver was woken (their messages go to stderr).
    assert_eq!(text(&out.stderr), "", "stderr of a flex --resume");
    let rows = read_metrics(&f.run.metrics()).unwrap();
    assert_eq!(rows.iter().map(|r| r.epoch).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(rows[0], first, "row 1 is kept exactly");
    assert_record_loads(&f.run, &f.run.model());
    let temps = temp_files(f.run.root());
    assert!(temps.is_empty(), "half-written files left: {temps:?}");
}

#[test]
fn sigint_stops_cleanly_and_resume_continues() {
    let f = Fixture::new(ITEMS, 500);
    let mut child = f.spawn(&["--epochs", "3", "--batch-size", "64"]);
    let first = f.wait_into_epoch_two(&mut child);
    let pid = child.id().to_string();
    let status = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stdout.contains("stopped after epoch 1/3"), "{stdout}");
    assert!(stdout.contains("--resume"), "{stdout}");

    // Epoch 1 is saved whole; the abandoned epoch 2 left no row, no checkpoint, no record.
    assert_eq!(read_metrics(&f.run.metrics()).unwrap(), vec![first]);
    assert_eq!(f.run.last_checkpoint(), Some(1));
    assert_record_loads(&f.run, &f.run.checkpoint_model(1));
    assert!(!f.run.model().exists());
    assert!(f.run.root().join("report.md").is_file());
    assert!(temp_files(f.run.root()).is_empty());

    let out = f.run(&["--resume"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows = read_metrics(&f.run.metrics()).unwrap();
    assert_eq!(rows.iter().map(|r| r.epoch).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(rows[0], first);
    assert!(f.run.model().is_file());
}

#[test]
fn a_diverging_loss_stops_with_a_clear_message() {
    // From scratch: SGD at lr 1e3 blows up within the first epoch; there is no checkpoint.
    let f = Fixture::new(512, 64);
    let out = f.run(&[
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--optimizer",
        "sgd",
        "--lr",
        "1000",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    for needle in [
        "training diverged",
        "at epoch 1, training step",
        "no checkpoint",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?}: {stderr}");
    }
    assert!(read_metrics(&f.run.metrics()).unwrap().is_empty());
    assert!(!f.run.model().exists());
}

#[test]
fn divergence_after_a_good_epoch_keeps_its_checkpoint() {
    let f = Fixture::new(512, 64);
    let out = f.run(&["--epochs", "1", "--batch-size", "16"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let good = read_metrics(&f.run.metrics()).unwrap();
    let record_before = std::fs::read(f.run.model()).unwrap();

    // The user raises the learning rate absurdly and asks for one more epoch.
    let mut config = load_config(&f.run).unwrap();
    config.epochs = 2;
    config.lr = 1e3;
    config.optimizer = fashion_mixer_run::OptimizerKind::Sgd;
    std::fs::write(
        f.run.config(),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();
    let out = f.run(&["--resume"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for needle in [
        "training diverged",
        "at epoch 2, training step",
        "model-1.bpk",
        "loads",
    ] {
        assert!(stderr.contains(needle), "missing {needle:?}: {stderr}");
    }
    assert_eq!(read_metrics(&f.run.metrics()).unwrap(), good);
    assert_record_loads(&f.run, &f.run.checkpoint_model(1));
    assert_eq!(std::fs::read(f.run.model()).unwrap(), record_before);
}

/// Two `--resume` of one run at once: the first trains, the second is refused at once with one
/// line naming the first's process; neither panics, and the run ends whole.
#[test]
fn a_second_writer_is_refused() {
    let f = Fixture::new(ITEMS, 500);
    let out = f.run(&["--epochs", "1", "--batch-size", "64"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut config = load_config(&f.run).unwrap();
    config.epochs = 3;
    std::fs::write(
        f.run.config(),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();

    let first = f.spawn(&["--resume"]);
    let pid = first.id().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(f.run.lock_file()).unwrap_or_default() != pid {
        assert!(
            Instant::now() < deadline,
            "the first --resume never took the lock"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = Instant::now();
    let second = f.run(&["--resume"]);
    super::common::assert_user_error(
        "second writer",
        &second,
        &["in use by another process", &format!("pid {pid}")],
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "not refused at once"
    );

    let out = first.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let rows = read_metrics(&f.run.metrics()).unwrap();
    assert_eq!(rows.iter().map(|r| r.epoch).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(f.run.model().is_file());
}

/// A tmpfs of `mib` MiB mounted at a fresh folder, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` (after `skip`) where this process may not mount (it is not root).
    fn mount(mib: u32) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Self { dir }),
            other => {
                fashion_mixer_data::testing::skip(&format!(
                    "cannot mount a small tmpfs to fill (needs root): {other:?}"
                ));
                None
            }
        }
    }

    fn resize(&self, mib: u32) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={mib}m")])
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// A run on a 3 MiB file system: epoch 1's checkpoint (about 1.7 MB) fits, epoch 2's does not.
/// One line names the checkpoint file (not a temporary one), the cause, what was kept and what
/// to do; metrics.csv holds no row without its checkpoint; after space is freed, --resume ends
/// the run.
#[test]
fn a_full_disk_is_said_plainly_and_resume_continues() {
    let Some(disk) = Tmpfs::mount(3) else { return };
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synthetic::write_idx_dir(&data, 512, 64).unwrap();
    let run = RunDir::new(disk.dir.path().join("run"));
    let args = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--no-tui",
            "--data-dir",
            data.to_str().unwrap(),
            "--artifacts",
            run.root().to_str().unwrap(),
        ];
        args.extend(extra);
        xtask().args(args).output().unwrap()
    };
    let out = args(&["--epochs", "3", "--batch-size", "64", "--backend", "flex"]);
    super::common::assert_user_error(
        "full disk",
        &out,
        &[
            "checkpoint/",
            "-2.bpk: cannot write: no space left on the device",
            "kept: epochs 1 to 1",
            "free space",
            "--resume",
        ],
    );
    assert!(!text(&out.stderr).contains(TEMP_PREFIX));
    let rows = read_metrics(&run.metrics()).unwrap();
    assert_eq!(rows.iter().map(|r| r.epoch).collect::<Vec<_>>(), [1]);
    assert_eq!(run.last_checkpoint(), Some(1));

    disk.resize(64);
    let out = args(&["--resume"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows = read_metrics(&run.metrics()).unwrap();
    assert_eq!(rows.iter().map(|r| r.epoch).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(run.model().is_file());
    assert!(temp_files(run.root()).is_empty());
}

/// Burn's metric logs that cannot be written (a file stands where epoch 2's folder of
/// `logs/train` goes) end the run with one line naming the log file, epoch 1 kept; once the way
/// is clear, --resume ends the run.
#[test]
fn unwritable_logs_are_said_plainly_and_resume_continues() {
    let f = Fixture::new(ITEMS, 500);
    let mut child = f.spawn(&["--epochs", "2", "--batch-size", "64"]);
    let logs = f.run.logs().join("train");
    let deadline = Instant::now() + Duration::from_secs(600);
    while !logs.join("epoch-1").is_dir() {
        assert!(child.try_wait().unwrap().is_none(), "training ended early");
        assert!(Instant::now() < deadline, "epoch 1 never began");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::fs::File::create_new(logs.join("epoch-2")).expect("epoch 2 has not begun");
    let out = child.wait_with_output().unwrap();
    super::common::assert_user_error(
        "unwritable logs",
        &out,
        &[
            "logs/train/epoch-2/",
            ".log: cannot write: ",
            "kept: epochs 1 to 1",
            "--resume",
        ],
    );
    assert_eq!(read_metrics(&f.run.metrics()).unwrap().len(), 1);
    assert_eq!(f.run.last_checkpoint(), Some(1));
    assert!(!f.run.model().exists());

    std::fs::remove_file(logs.join("epoch-2")).unwrap();
    let out = f.run(&["--resume"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows = read_metrics(&f.run.metrics()).unwrap();
    assert_eq!(rows.iter().map(|r| r.epoch).collect::<Vec<_>>(), [1, 2]);
    assert!(f.run.model().is_file());
    assert!(logs.join("epoch-2").join("Loss.log").is_file());
}
