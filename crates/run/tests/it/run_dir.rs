//! The run folder: names, what a path that holds no run says, atomic writes, where a fresh run
//! may start, checkpoints.

use std::path::Path;

use fashion_mixer_run::run_dir::{
    TEMP_PREFIX, checkpoint_file, load_config, prepare_output, save_config, utc_timestamp,
    write_atomic,
};
use fashion_mixer_run::{RunDir, RunError, TrainingConfig};

/// Run names sort by time and hold no character paths dislike.
#[test]
fn run_names_are_utc_timestamps() {
    let name = utc_timestamp();
    assert_eq!(name.len(), "2026-11-26T19-20-05".len(), "{name}");
    assert!(
        name.starts_with("20") && name.as_bytes()[10] == b'T',
        "{name}"
    );
    assert!(
        name.chars()
            .all(|c| c.is_ascii_digit() || c == '-' || c == 'T'),
        "{name}"
    );
}

/// A path that holds no run says why and names the runs in it or beside it.
#[test]
fn a_folder_without_a_run_names_the_runs_in_or_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let good = RunDir::new(dir.path().join("good"));
    std::fs::create_dir(good.root()).unwrap();
    save_config(&good, &TrainingConfig::default()).unwrap();
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    std::fs::write(dir.path().join("file"), b"x").unwrap();
    for (name, reason) in [
        ("missing", "no such folder"),
        ("file", "not a folder"),
        ("empty", "no config.json"),
    ] {
        let path = dir.path().join(name);
        let error = load_config(&RunDir::new(&path)).unwrap_err();
        let RunError::NotARun {
            path: said,
            reason: why,
            nearby,
        } = &error
        else {
            panic!("{name}: {error}");
        };
        assert_eq!((said, why.as_str()), (&path, reason));
        assert_eq!(nearby, &[good.root().to_path_buf()]);
        let message = error.to_string();
        assert!(
            message.contains(&good.root().display().to_string()),
            "{message}"
        );
    }
    assert!(load_config(&good).is_ok());
    // The folder above runs: the runs in it.
    let Err(RunError::NotARun { nearby, .. }) = load_config(&RunDir::new(dir.path())) else {
        panic!("the parent folder loads as a run");
    };
    assert_eq!(nearby, [good.root().to_path_buf()]);
}

#[test]
fn atomic_write_replaces_and_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.txt");
    write_atomic(&path, b"one").unwrap();
    write_atomic(&path, b"two").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"two");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

/// Written files are readable by others as a plain write makes them (0666 less the umask;
/// the usual umask 022 gives 0644), not tempfile's owner-only 0600.
#[cfg(unix)]
#[test]
fn atomic_write_keeps_the_usual_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (atomic, plain) = (dir.path().join("a"), dir.path().join("b"));
    write_atomic(&atomic, b"x").unwrap();
    std::fs::write(&plain, b"x").unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&atomic), mode(&plain));
}

/// A fresh run starts in a missing or empty folder, or one holding only what a start
/// leaves before `config.json`; never over a run, nor over other files.
#[test]
fn a_fresh_run_starts_only_where_it_overwrites_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path().join("run"));
    run.check_fresh().unwrap();
    run.create().unwrap();
    std::fs::write(run.lock_file(), b"").unwrap();
    std::fs::write(run.root().join(".tmp-x"), b"").unwrap();
    run.check_fresh().unwrap();
    for name in ["report.md", "notes", "a", "b"] {
        std::fs::write(run.root().join(name), b"mine").unwrap();
    }
    let message = run.check_fresh().unwrap_err().to_string();
    assert!(
        message.contains("not empty and not a run (holds a, b, notes and 1 more)"),
        "{message}"
    );
    std::fs::write(run.config(), b"{}").unwrap();
    assert!(matches!(run.check_fresh(), Err(RunError::RunExists(_))));
}

#[test]
fn prepare_output_makes_the_folder_and_leaves_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("a/b/bench.json");
    prepare_output(&out).unwrap();
    assert!(out.parent().unwrap().is_dir());
    assert_eq!(std::fs::read_dir(out.parent().unwrap()).unwrap().count(), 0);
    write_atomic(&out, b"x").unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), b"x");
}

/// `/proc` refuses new files to everyone, root included: the error names the file asked
/// for and the system's reason, never the temporary file tried.
#[cfg(target_os = "linux")]
#[test]
fn a_folder_that_refuses_files_is_named_with_the_file() {
    let out = Path::new("/proc/fashion-mixer-bench.json");
    for e in [prepare_output(out), write_atomic(out, b"x")] {
        let message = e.unwrap_err().to_string();
        assert!(
            message.starts_with("/proc/fashion-mixer-bench.json: "),
            "{message}"
        );
        assert!(message.contains("os error"), "{message}");
        assert!(!message.contains(TEMP_PREFIX), "{message}");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let message = prepare_output(&file.join("out.json"))
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with(&format!("{}: ", file.display())),
        "{message}"
    );
}

#[test]
fn last_checkpoint_needs_all_three_records() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::new(dir.path());
    assert_eq!(run.last_checkpoint(), None);
    std::fs::create_dir_all(run.checkpoints()).unwrap();
    for kind in ["model", "optim", "scheduler"] {
        std::fs::write(run.checkpoints().join(checkpoint_file(kind, 3)), b"x").unwrap();
    }
    std::fs::write(run.checkpoint_model(4), b"x").unwrap();
    assert_eq!(run.last_checkpoint(), Some(3));
}
