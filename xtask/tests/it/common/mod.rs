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

/// Runs the shell command line `command` in a terminal of its own (util-linux's `script`, as a
/// user's terminal would), for at most `limit`; its exit status and all it drew. Past the limit
/// it is killed, with every process whose command line holds `marker`: a process the kernel
/// stopped for touching the terminal outlives `script`. `None` (after a SKIP) without `script`.
pub fn in_terminal(
    command: &str,
    marker: &str,
    limit: std::time::Duration,
) -> Option<(std::process::ExitStatus, String)> {
    use std::io::Read;
    use std::time::Instant;

    let mut child = match Command::new("script")
        .args(["-q", "-e", "-c", command, "/dev/null"])
        .env("TERM", "xterm-256color")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        Ok(child) => child,
        Err(_) => {
            fashion_mixer_data::testing::skip(
                "no `script` (util-linux's bsdutils) to give the command a terminal",
            );
            return None;
        }
    };
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut drawn = Vec::new();
        let _ = stdout.read_to_end(&mut drawn);
        String::from_utf8_lossy(&drawn).into_owned()
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = Command::new("pkill").args(["-KILL", "-f", marker]).status();
            let _ = child.wait();
            panic!("`{command}` still runs after {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Some((status, reader.join().unwrap()))
}
