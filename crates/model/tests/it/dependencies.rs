//! The build as `cargo tree` resolves it: the model crate's own (Burn's backends without
//! burn-train, autodiff or the optimizers; the training side adds those in the train crate), and
//! the crates the workspace's profile compiles in one codegen unit or without optimisation.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// The crates through which only the wgpu backend is reached. The CPU backends never call into
/// them: a profile of `cargo xtask bench` on flex and ndarray shows no samples there.
const WGPU_ENTRIES: &[&str] = &[
    "burn-cubecl",
    "burn-wgpu",
    "cubecl-core",
    "cubecl-ir",
    "cubecl-opt",
    "cubecl-runtime",
    "cubecl-server",
    "cubecl-std",
    "cubecl-wgpu",
    "cubecl-monitoring",
    "cubek",
    "wgpu",
    "naga",
    "pliron",
    "turso",
];

/// The names of the packages `cargo tree` prints for the workspace's `selection` (`--workspace`,
/// or `-p` and a package) with `args`.
fn packages(root: &Path, selection: &[&str], args: &[&str]) -> BTreeSet<String> {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "--prefix", "none", "--format", "{p}"])
        .args(selection)
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_model_builds_without_training_crates() {
    let root = fashion_mixer_data::testing::workspace_root();
    let model = ["-p", "fashion-mixer-model"];
    let tree = packages(&root, &model, &["--edges", "normal"]);
    assert!(tree.contains("burn-flex"), "{tree:?}");
    for training in ["burn-train", "burn-autodiff", "burn-optim"] {
        assert!(
            !tree.contains(training),
            "{training} in the model crate's build: {tree:?}"
        );
    }
}

/// The crates the workspace's profile names with a setting that `keep` accepts.
fn profile_packages(root: &Path, keep: impl Fn(&toml::Table) -> bool) -> Vec<String> {
    let manifest: toml::Table = std::fs::read_to_string(root.join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    manifest["profile"]["dev"]["package"]
        .as_table()
        .unwrap()
        .iter()
        .filter(|(_, settings)| settings.as_table().is_some_and(&keep))
        .map(|(spec, _)| spec.split('@').next().unwrap().to_owned())
        .collect()
}

/// The dependency kinds that end up linked into a binary (no build scripts, no proc macros).
const LINKED_EDGES: &str = "normal,dev,no-proc-macro";

/// Every crate the workspace builds, for the host or the binaries.
fn built_packages(root: &Path) -> BTreeSet<String> {
    packages(root, &["--workspace"], &["--edges", "normal,build,dev"])
}

/// What the CPU backends' code can reach: every crate linked into a binary, less what only the
/// wgpu backend reaches.
fn cpu_packages(root: &Path) -> BTreeSet<String> {
    let mut args = vec!["--edges", LINKED_EDGES];
    for entry in WGPU_ENTRIES {
        args.extend(["--prune", entry]);
    }
    let cpu = packages(root, &["--workspace"], &args);
    assert!(
        cpu.contains("burn-flex") && cpu.contains("burn-ndarray"),
        "{cpu:?}"
    );
    cpu
}

/// Every crate the profile gives one codegen unit is part of the wgpu backend, so no CPU training
/// or inference figure can depend on it; and each is in the build (a stale name would silently do
/// nothing).
#[test]
fn one_codegen_unit_only_where_the_cpu_backends_never_run() {
    let root = fashion_mixer_data::testing::workspace_root();
    let named = profile_packages(&root, |settings| {
        settings.get("codegen-units").and_then(|c| c.as_integer()) == Some(1)
    });
    assert!(named.iter().any(|n| n == "cubecl-ir"), "{named:?}");
    let cpu = cpu_packages(&root);
    let built = built_packages(&root);
    for name in &named {
        assert!(
            !cpu.contains(name),
            "{name} has one codegen unit, but the CPU backends' code reaches it"
        );
        assert!(
            built.contains(name),
            "{name} is named in the profile but not built"
        );
    }
}

/// Every crate the profile leaves unoptimised is compile-time only (a proc macro, or used only by
/// build scripts and proc macros: linked into no binary, so no run-time figure can depend on it)
/// or a part of the wgpu backend that runs once per kernel, which the CPU backends never reach;
/// and each is in the build.
#[test]
fn opt_level_0_only_for_compile_time_crates_and_kernel_expansions() {
    let root = fashion_mixer_data::testing::workspace_root();
    let named = profile_packages(&root, |settings| {
        settings.get("opt-level").and_then(|o| o.as_integer()) == Some(0)
    });
    assert!(
        named.iter().any(|n| n == "syn") && named.iter().any(|n| n == "cubek-matmul"),
        "{named:?}"
    );
    let linked = packages(&root, &["--workspace"], &["--edges", LINKED_EDGES]);
    let cpu = cpu_packages(&root);
    let built = built_packages(&root);
    for name in &named {
        assert!(
            built.contains(name),
            "{name} is named in the profile but not built"
        );
        if linked.contains(name) {
            assert!(
                name.starts_with("cubek-") || name.starts_with("turso"),
                "{name} is at opt-level 0 but linked into the binaries"
            );
            assert!(
                !cpu.contains(name),
                "{name} is at opt-level 0, but the CPU backends' code reaches it"
            );
        }
    }
}
