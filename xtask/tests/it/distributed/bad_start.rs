//! The ranks' bad starts: each is one line on stderr, rank 0's, and nothing is written.

use std::path::Path;

use fashion_mixer_data::synthetic;

use super::{generated, mpi_xtask, mpirun, training};
use crate::common::{assert_user_error, xtask};

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
