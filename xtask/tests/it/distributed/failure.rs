//! A rank killed or paused, and Ctrl-C: the job ends within seconds, saying why, and the run
//! resumes from its last checkpoint (over two ranks, three, or one process without MPI).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fashion_mixer_run::metrics::read_metrics;

use super::{generated, mpi_xtask, mpirun, succeeds, training};

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
