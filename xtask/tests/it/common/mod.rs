//! Helpers shared by the integration tests that drive the `xtask` binary.

use std::process::{Command, Output};

/// Runs the binary with `args` (no `$FASHION_MNIST_DIR`, backtraces on, so none may show).
pub fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .env_remove("FASHION_MNIST_DIR")
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap()
}

/// Exit code 2, exactly one line on stderr holding every needle, no panic, no backtrace.
pub fn assert_user_error(case: &str, out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{case}: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{case}: {stderr}");
    assert!(stderr.starts_with("error: "), "{case}: {stderr}");
    for bad in ["panicked", "backtrace", "RUST_BACKTRACE", "stack backtrace"] {
        assert!(!stderr.contains(bad), "{case}: {stderr}");
    }
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{case}: missing {needle:?} in: {stderr}"
        );
    }
}
