//! The build as `cargo tree` resolves it: inference's crates' own (Burn's backends without
//! burn-train or the optimizers; the train crate adds those), and the crates the workspace's
//! profile compiles in one codegen unit or without optimisation.

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

/// The lines `cargo tree` prints for the workspace's `selection` (`--workspace`, or `-p` and a
/// package) with `args`, one package a line in `format`.
fn tree_lines(root: &Path, selection: &[&str], args: &[&str], format: &str) -> Vec<String> {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--prefix", "none", "--format", format])
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
        .map(str::to_owned)
        .collect()
}

/// The packages `cargo tree` prints for the workspace's `selection` with `args`: name and
/// version.
fn tree(root: &Path, selection: &[&str], args: &[&str]) -> BTreeSet<(String, String)> {
    let mut args = args.to_vec();
    args.push("--offline");
    tree_lines(root, selection, &args, "{p}")
        .iter()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next()?.to_owned();
            let version = words.next()?.trim_start_matches('v').to_owned();
            Some((name, version))
        })
        .collect()
}

/// The names of the packages `cargo tree` prints for `selection` with `args`.
fn packages(root: &Path, selection: &[&str], args: &[&str]) -> BTreeSet<String> {
    tree(root, selection, args)
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

/// The model crate builds without burn-train and the optimizers (its kernels' backward passes
/// need burn-autodiff's operation API, nothing of training).
#[test]
fn the_model_builds_without_training_crates() {
    let root = fashion_mixer_data::testing::workspace_root();
    let model = ["-p", "fashion-mixer-model"];
    let tree = packages(&root, &model, &["--edges", "normal"]);
    assert!(tree.contains("burn-flex"), "{tree:?}");
    for training in ["burn-train", "burn-optim"] {
        assert!(
            !tree.contains(training),
            "{training} in the model crate's build: {tree:?}"
        );
    }
}

/// What inference, export, the runs listing and the server build: no burn-train, no
/// optimizers.
#[test]
fn inference_export_and_serving_build_without_training_crates() {
    let root = fashion_mixer_data::testing::workspace_root();
    for name in [
        "fashion-mixer-run",
        "fashion-mixer-export",
        "fashion-mixer-experiments",
        "fashion-mixer-serve",
    ] {
        let tree = packages(&root, &["-p", name], &["--edges", "normal"]);
        assert!(tree.contains("fashion-mixer-model"), "{name}: {tree:?}");
        for training in ["burn-train", "burn-optim", "fashion-mixer-train"] {
            assert!(!tree.contains(training), "{training} in {name}'s build");
        }
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

/// `cargo tree` arguments: the linked edges, with the wgpu backend's entry points pruned.
fn without_wgpu() -> Vec<&'static str> {
    let mut args = vec!["--edges", LINKED_EDGES];
    for entry in WGPU_ENTRIES {
        args.extend(["--prune", entry]);
    }
    args
}

/// Every crate the workspace builds, for the host or the binaries.
fn built_packages(root: &Path) -> BTreeSet<String> {
    packages(root, &["--workspace"], &["--edges", "normal,build,dev"])
}

/// What the CPU backends' code can reach: every crate linked into a binary, less what only the
/// wgpu backend reaches.
fn cpu_packages(root: &Path) -> BTreeSet<String> {
    let cpu = packages(root, &["--workspace"], &without_wgpu());
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

/// The crates the workspace's profile names at opt-level `level`.
fn packages_at_opt_level(root: &Path, level: i64) -> Vec<String> {
    profile_packages(root, |settings| {
        settings.get("opt-level").and_then(|o| o.as_integer()) == Some(level)
    })
}

/// The names of the crates outside this workspace that the profile compiles at opt-level 3.
fn optimised_dependencies(root: &Path) -> Vec<String> {
    let named = packages_at_opt_level(root, 3);
    named
        .into_iter()
        .filter(|name| !name.starts_with("fashion-mixer"))
        .collect()
}

/// What the optimised crates' code can call: every crate they reach, less what only the wgpu
/// backend reaches.
fn reached_from_optimised(root: &Path) -> BTreeSet<String> {
    let optimised = optimised_dependencies(root);
    assert!(
        optimised.iter().any(|n| n == "burn-flex") && optimised.iter().any(|n| n == "gemm"),
        "{optimised:?}"
    );
    // `name@version` for each version built (a name alone is ambiguous where two are).
    let specs: Vec<String> = tree(root, &["--workspace"], &["--edges", LINKED_EDGES])
        .into_iter()
        .filter(|(name, _)| optimised.contains(name))
        .map(|(name, version)| format!("{name}@{version}"))
        .collect();
    let mut selection = Vec::new();
    for spec in &specs {
        selection.extend(["-p", spec.as_str()]);
    }
    packages(root, &selection, &without_wgpu())
}

/// Crates at opt-level 0 that crates at opt-level 3 reach but never call in any command:
/// `perf` over `cargo xtask bench` and `bench-serve` finds no samples in them (gemm's kernels
/// for complex, f64 and f16 matrices; image's colour management).
const NEVER_RUN: &[&str] = &[
    "gemm-c32", "gemm-c64", "gemm-f64", "gemm-f16", "moxcms", "pxfm",
];

/// No optimised code calls unoptimised code: every crate the profile leaves at opt-level 0 is
/// compile-time only (a proc macro, or used only by build scripts and proc macros: linked into
/// no binary), or reached from none of the crates at opt-level 3 except through the wgpu
/// backend (its kernels' expansions and cache database, which run once per kernel) or from this
/// workspace's crates alone (argument parsing, the download, the final plots), or never run
/// (`NEVER_RUN`); and each is in the build.
#[test]
fn opt_level_0_only_where_no_optimised_crate_calls() {
    let root = fashion_mixer_data::testing::workspace_root();
    let named = packages_at_opt_level(&root, 0);
    for expected in ["syn", "cubek-matmul", "clap_builder"] {
        assert!(named.iter().any(|n| n == expected), "{named:?}");
    }
    let hot = reached_from_optimised(&root);
    assert!(
        hot.contains("gemm-common") && hot.contains("burn-std"),
        "{hot:?}"
    );
    let built = built_packages(&root);
    for name in &named {
        assert!(
            built.contains(name),
            "{name} is named in the profile but not built"
        );
        assert!(
            NEVER_RUN.contains(&name.as_str()) || !hot.contains(name),
            "{name} is at opt-level 0, but a crate at opt-level 3 reaches it"
        );
    }
}

/// The crates that are at opt-level 0 though optimised crates reach them are named at 0, and only
/// optimised crates (or each other) depend on them: a crate at opt-level 1 would reuse their
/// unoptimised copies of generic code.
#[test]
fn never_run_crates_are_called_only_from_optimised_crates() {
    let root = fashion_mixer_data::testing::workspace_root();
    let at_0 = packages_at_opt_level(&root, 0);
    let optimised = optimised_dependencies(&root);
    for name in NEVER_RUN {
        assert!(
            at_0.iter().any(|n| n == name),
            "{name} is not at opt-level 0"
        );
        let dependents = packages(
            &root,
            &["--workspace"],
            &["--edges", LINKED_EDGES, "--invert", name, "--depth", "1"],
        );
        assert!(dependents.contains(*name), "{name} is not in the build");
        for dependent in dependents.iter().filter(|d| d.as_str() != *name) {
            assert!(
                optimised.contains(dependent) || NEVER_RUN.contains(&dependent.as_str()),
                "{dependent} (not at opt-level 3) depends on {name}, which is at 0"
            );
        }
    }
}

/// `cargo tree -p xtask` with each crate's features (`name version features`, one a line), the
/// `mpi` feature on or not; resolved from the registry where a crate of the MPI build is not in
/// the local cache yet.
fn features(root: &Path, mpi: bool) -> BTreeSet<String> {
    let mut args = vec!["--edges", "normal,build"];
    if mpi {
        args.extend(["--features", "mpi"]);
    }
    tree_lines(root, &["-p", "xtask"], &args, "{p} {f}")
        .into_iter()
        .map(|l| l.trim_end_matches(" (*)").to_string())
        .collect()
}

/// The `mpi` feature (`cargo xtask-mpi`) adds MPI's crates and changes no feature of any crate
/// the default build has (a crate compiled with other features is compiled again, and with it
/// everything above it: Burn), so the MPI build shares the one Burn build.
#[test]
fn the_mpi_build_changes_no_crate_of_the_default_build() {
    let root = fashion_mixer_data::testing::workspace_root();
    let (plain, mpi) = (features(&root, false), features(&root, true));
    let name = |line: &str| {
        line.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let ours = ["fashion-mixer-train", "xtask"];
    for line in &plain {
        if ours.iter().any(|o| line.starts_with(&format!("{o} "))) {
            continue;
        }
        assert!(
            mpi.contains(line),
            "the mpi build changes {}: {line:?} becomes {:?}",
            name(line),
            mpi.iter()
                .filter(|m| name(m) == name(line))
                .collect::<Vec<_>>()
        );
    }
    assert!(mpi.iter().any(|l| l.starts_with("mpi ")), "{mpi:?}");
}
