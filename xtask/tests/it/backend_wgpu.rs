//! `cargo xtask train --backend wgpu` on the real data (lavapipe where there is no GPU).
//!
//! First by name, so libtest starts it first: on a fresh machine it is this binary's longest
//! test, and the short ones then run beside it on the other core instead of after it.

use std::process::Command;

use fashion_mixer_run::RunDir;
use fashion_mixer_run::metrics::read_metrics;

/// The wgpu smoke command of the issue that asked for it: one epoch of 2,048 items runs, and
/// its test loss is below chance level (ln 10 = 2.3026). Run as on a server, with no desktop
/// session: stderr holds nothing of libwayland's (Mesa's device-selection layer asks Wayland
/// for the session's GPU, and without `$XDG_RUNTIME_DIR` libwayland prints an "error:" line
/// each time).
#[test]
fn smoke_run_on_real_data() {
    let Some(data) = fashion_mixer_data::testing::real_data_dir() else {
        return;
    };
    if let Err(err) = fashion_mixer_model::Backend::Wgpu.device() {
        return fashion_mixer_data::testing::skip(&err.to_string());
    }
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    // A server's environment: no desktop session, no display.
    for name in [
        "XDG_RUNTIME_DIR",
        "WAYLAND_DISPLAY",
        "DISPLAY",
        "NODEVICE_SELECT",
    ] {
        command.env_remove(name);
    }
    command.env_remove("FASHION_MNIST_DIR");
    command.args([
        "train",
        "--backend",
        "wgpu",
        "--epochs",
        "1",
        "--limit-train",
        "2048",
        "--limit-test",
        "512",
        "--no-tui",
        "--data-dir",
        data.to_str().unwrap(),
        "--artifacts",
        run_dir.to_str().unwrap(),
    ]);
    let out = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("XDG_RUNTIME_DIR"), "{stderr}");
    let rows = read_metrics(&RunDir::new(&run_dir).metrics()).unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].test_loss < 10f64.ln(), "{:?}", rows[0]);
}
