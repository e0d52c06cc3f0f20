//! The temporary run folders of ranks other than 0: removed when dropped, and those that killed
//! processes left (their lock free) removed by the next one made with the same prefix.

use std::path::Path;

use fashion_mixer_run::scratch::ScratchRun;

/// What a killed process leaves: the folder, its files and its `.lock`, unlocked.
fn left_by_a_killed_process(parent: &Path, name: &str) -> std::path::PathBuf {
    let dir = parent.join(name);
    std::fs::create_dir_all(dir.join("run/checkpoint")).unwrap();
    std::fs::write(dir.join("run/checkpoint/model-1.bpk"), b"weights").unwrap();
    std::fs::write(dir.join(".lock"), b"").unwrap();
    dir
}

#[test]
fn a_scratch_run_is_removed_when_dropped() {
    let parent = tempfile::tempdir().unwrap();
    let scratch = ScratchRun::new(parent.path(), "fashion-mixer-rank1-").unwrap();
    let run = scratch.run();
    run.create().unwrap();
    assert!(run.root().starts_with(scratch.path()));
    let path = scratch.path().to_path_buf();
    drop(scratch);
    assert!(!path.exists());
}

#[test]
fn only_the_folders_of_killed_processes_with_the_prefix_are_removed() {
    let parent = tempfile::tempdir().unwrap();
    let live = ScratchRun::new(parent.path(), "fashion-mixer-rank1-").unwrap();
    let killed = left_by_a_killed_process(parent.path(), "fashion-mixer-rank1-killed");
    let other_rank = left_by_a_killed_process(parent.path(), "fashion-mixer-rank2-killed");
    let no_lock = parent.path().join("fashion-mixer-rank1-no-lock");
    std::fs::create_dir(&no_lock).unwrap();

    let next = ScratchRun::new(parent.path(), "fashion-mixer-rank1-").unwrap();

    assert!(!killed.exists(), "a killed process's folder is removed");
    assert!(live.path().join(".lock").is_file(), "a live one stays");
    assert!(other_rank.is_dir(), "another prefix's stays");
    assert!(no_lock.is_dir(), "no .lock: not one of these");
    assert!(next.path().join(".lock").is_file());
}
