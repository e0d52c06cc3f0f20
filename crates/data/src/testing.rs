//! For the project's tests that need what a fresh machine may lack (the real data set, a
//! Vulkan device): outside CI they say so in one loud line and pass; under CI they fail.

use std::io::Write;
use std::path::PathBuf;

use crate::locate;

/// Whether this is a CI run (`CI` set to anything but empty, `0` or `false`; `.ci/run` sets it).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// A test cannot run because `missing` (what is missing and how to install it) is missing:
/// under CI this panics with that text; elsewhere it prints `SKIPPED: <test>: <missing>` on
/// the process's stderr, where `cargo test` shows it (the test harness keeps what `eprintln!`
/// prints, and shows it only for a test that fails). Call it, then return from the test.
pub fn skip(missing: &str) {
    if in_ci() {
        panic!("CI must run this test, but {missing}");
    }
    // The harness names each test's thread after the test.
    let thread = std::thread::current();
    let line = match thread.name() {
        Some(test) if test != "main" => format!("SKIPPED: {test}: {missing}\n"),
        _ => format!("SKIPPED: {missing}\n"),
    };
    // One write, so that tests running in parallel do not interleave their lines.
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// The workspace root, for tests that read the repository's files. Found from the manifest
/// directory cargo names when it runs the test (`CARGO_MANIFEST_DIR` at run time), not from the
/// one compiled in: checkouts that share a build directory share test binaries, and a binary
/// compiled in another checkout keeps that checkout's path, which may no longer exist.
pub fn workspace_root() -> PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    start
        .ancestors()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|t| t.contains("[workspace]"))
        })
        .unwrap_or(&start)
        .to_path_buf()
}

/// The real Fashion-MNIST, found where `cargo xtask` looks (never downloaded); `None` after
/// [`skip`] when it is not installed.
pub fn real_data_dir() -> Option<PathBuf> {
    match locate::locate(&locate::search_dirs(None, &workspace_root())) {
        Ok(dir) => Some(dir),
        Err(err) => {
            // The error names where it looked and how to get the data.
            skip(&format!("the real Fashion-MNIST is not installed: {err}"));
            None
        }
    }
}

/// A copy of the shipped run (`artifacts/pretrained/`) in `dir`, for the tests of run listings
/// and pages; with `epochs`, its `metrics.csv` cut to that many rows and its record and
/// evaluation left out, as an interrupted run (or one still training) would be.
pub fn copy_shipped_run(dir: &std::path::Path, epochs: Option<usize>) {
    let shipped = workspace_root().join("artifacts/pretrained");
    std::fs::create_dir_all(dir).unwrap();
    for entry in std::fs::read_dir(&shipped).unwrap().flatten() {
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    if let Some(epochs) = epochs {
        let metrics = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
        let kept: Vec<&str> = metrics.lines().take(epochs + 1).collect();
        std::fs::write(dir.join("metrics.csv"), kept.join("\n") + "\n").unwrap();
        for file in ["model.bpk", "eval.json"] {
            std::fs::remove_file(dir.join(file)).unwrap();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Output};

    /// Skips; run only by [`skip_shows_through_the_harness_capture`].
    #[test]
    #[ignore = "run by skip_shows_through_the_harness_capture"]
    fn skipping_helper() {
        super::skip("a thing for the test (`apt-get install thing`)");
    }

    /// This test binary again, running only [`skipping_helper`] with the harness's capture on
    /// (no `--nocapture`), and `CI` set to `ci` or unset.
    fn run_helper(ci: Option<&str>) -> Output {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command.args(["--exact", "testing::tests::skipping_helper", "--ignored"]);
        match ci {
            Some(value) => command.env("CI", value),
            None => command.env_remove("CI"),
        };
        command.output().unwrap()
    }

    #[test]
    fn skip_shows_through_the_harness_capture() {
        let out = run_helper(None);
        assert!(out.status.success(), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(
                "SKIPPED: testing::tests::skipping_helper: a thing for the test (`apt-get install thing`)\n"
            ),
            "stderr: {stderr}"
        );
    }

    #[test]
    fn skip_fails_under_ci() {
        let out = run_helper(Some("true"));
        assert!(!out.status.success(), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("CI must run this test, but a thing for the test"),
            "stdout: {stdout}"
        );
    }
}
