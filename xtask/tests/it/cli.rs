//! Drives the real `xtask` binary: output on success, one-line errors and exit code 2 on failure.

use std::process::Output;

use fashion_mixer_data::{idx, synthetic};

use super::common;
use common::xtask;

fn assert_user_error(out: &Output, needles: &[&str]) {
    common::assert_user_error("cli", out, needles);
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn model_prints_the_coursework_parameter_count() {
    let out = xtask(&["model", "--patch-size", "7"]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("parameters: 143,786"), "{text}");
    assert!(text.contains("patches: 16 of 7x7"), "{text}");
}

/// A reader that goes away (`cargo xtask model | head -0`) is no error: no panic, exit 0.
#[test]
fn a_closed_stdout_is_not_a_panic() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("model")
        .env("RUST_BACKTRACE", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // closes the pipe's only reading end
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn model_rejects_a_patch_size_that_does_not_divide_28() {
    let out = xtask(&["model", "--patch-size", "5"]);
    assert_user_error(&out, &["patch size 5 does not divide the image side 28"]);
}

/// A count of 0 is refused as the flag is read (clap's usage error), never quietly taken as 1.
#[test]
fn counts_of_zero_are_refused() {
    for args in [
        ["bench", "--steps", "0"],
        ["bench", "--repeats", "0"],
        ["serve", "--threads", "0"],
        ["serve", "--max-batch", "0"],
        ["bench-serve", "--requests", "0"],
    ] {
        let out = xtask(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        let expected = format!("invalid value '0' for '{} ", args[1]);
        assert!(stderr.contains(&expected), "{args:?}: {stderr}");
        assert!(stderr.contains("must be at least 1"), "{args:?}: {stderr}");
    }
}

/// `--index` takes several values, so an image named after it is read as one: the error says
/// where image files go.
#[test]
fn an_image_after_index_is_pointed_before_it() {
    let out = xtask(&["infer", "--index", "0", "shirt.png"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let expected = "invalid value 'shirt.png' for '--index <N>...': not a test-set index \
        (an image file goes before --index, or after `--`)";
    assert!(stderr.contains(expected), "{stderr}");
}

#[test]
fn data_info_counts_items_per_class() {
    let dir = tempfile::tempdir().unwrap();
    synthetic::write_idx_dir(dir.path(), 20, 20).unwrap();
    let out = xtask(&["data", "info", "--data-dir", dir.path().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert!(text.contains("train:     20 items"), "{text}");
    assert!(text.contains(" 9  Ankle boot        2      2"), "{text}");
}

#[test]
fn data_info_reports_a_corrupt_file_by_name() {
    let dir = tempfile::tempdir().unwrap();
    synthetic::write_idx_dir(dir.path(), 3, 3).unwrap();
    let path = dir.path().join("t10k-labels-idx1-ubyte");
    std::fs::write(&path, idx::encode_images(1, 28, 28, &[0; 784])).unwrap();
    let out = xtask(&["data", "info", "--data-dir", dir.path().to_str().unwrap()]);
    assert_user_error(
        &out,
        &[
            "t10k-labels-idx1-ubyte",
            "expected magic 0x00000801, found 0x00000803",
        ],
    );
}

#[test]
fn data_info_lists_where_it_looked() {
    let out = xtask(&["data", "info", "--data-dir", "/nonexistent/fashion"]);
    assert_user_error(
        &out,
        &[
            "/nonexistent/fashion (no such directory)",
            "cargo xtask data fetch",
        ],
    );
}

/// With --offline (or FASHION_MNIST_OFFLINE=1) and no data anywhere, the error lists the places
/// searched and the ways to get the data; nothing is downloaded. (An empty --data-dir: a named
/// directory is the only place searched, and is never downloaded into.)
#[test]
fn missing_data_is_not_downloaded_into_a_named_dir_or_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().to_str().unwrap();
    let out = xtask(&["data", "info", "--data-dir", empty, "--offline"]);
    assert_user_error(&out, &["Fashion-MNIST not found", empty, "apt-get install"]);
    let out = xtask(&["data", "info", "--data-dir", empty]);
    assert_user_error(&out, &["Fashion-MNIST not found", empty]);
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

/// An error's cause is said once: a missing image file, given to `infer` or to `bench-serve`, is
/// one line with the OS's words once.
#[test]
fn a_missing_image_is_named_with_its_cause_once() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-photo.png");
    let missing = missing.to_str().unwrap();
    for args in [
        vec!["infer", missing],
        vec!["bench-serve", "--image", missing],
    ] {
        let out = xtask(&args);
        assert_user_error(&out, &["no-such-photo.png"]);
        let stderr = stdout_err(&out);
        assert_eq!(
            stderr.matches("No such file or directory").count(),
            1,
            "{args:?}: {stderr}"
        );
    }
}

fn stdout_err(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
