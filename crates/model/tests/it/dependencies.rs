//! The build as `cargo tree` resolves it: the model crate's own (Burn's backends without
//! burn-train, autodiff or the optimizers; the training side adds those in the train crate), and
//! the crates the workspace's profile compiles in one codegen unit.

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

/// Every crate the profile gives one codegen unit is compile-time only (a proc macro, or used only
/// by build scripts and proc macros) or part of the wgpu backend, so no CPU training or inference
/// figure can depend on it; and each is in the build (a stale name would silently do nothing).
#[test]
fn one_codegen_unit_only_where_the_cpu_backends_never_run() {
    let root = fashion_mixer_data::testing::workspace_root();
    let manifest: toml::Table = std::fs::read_to_string(root.join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let named: Vec<&str> = manifest["profile"]["dev"]["package"]
        .as_table()
        .unwrap()
        .iter()
        .filter(|(_, settings)| {
            settings.get("codegen-units").and_then(|c| c.as_integer()) == Some(1)
        })
        .map(|(spec, _)| spec.split('@').next().unwrap())
        .collect();
    assert!(
        named.contains(&"syn") && named.contains(&"cubecl-ir"),
        "{named:?}"
    );

    let mut cpu_args = vec!["--edges", "normal,dev,no-proc-macro"];
    for entry in WGPU_ENTRIES {
        cpu_args.extend(["--prune", entry]);
    }
    let cpu = packages(&root, &["--workspace"], &cpu_args);
    assert!(
        cpu.contains("burn-flex") && cpu.contains("burn-ndarray"),
        "{cpu:?}"
    );
    let built = packages(&root, &["--workspace"], &["--edges", "normal,build,dev"]);
    for name in named {
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
