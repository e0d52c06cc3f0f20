//! For the project's tests that need what a fresh machine may lack (the real data set, a
//! Vulkan device): outside CI they say so in one loud line and pass; under CI they fail.

use std::path::PathBuf;

use crate::locate;

/// Whether this is a CI run (`CI` set to anything but empty, `0` or `false`; `.ci/run` sets it).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

/// A test cannot run because `missing` (what is missing and how to install it) is missing:
/// under CI this panics with that text; elsewhere it prints `SKIPPED: <missing>` on stderr.
/// Call it, then return from the test.
pub fn skip(missing: &str) {
    if in_ci() {
        panic!("CI must run this test, but {missing}");
    }
    eprintln!("SKIPPED: {missing}");
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
            skip(&format!(
                "the real Fashion-MNIST is not installed (`apt-get install dataset-fashion-mnist` \
                 or `cargo xtask data fetch`): {err}"
            ));
            None
        }
    }
}
