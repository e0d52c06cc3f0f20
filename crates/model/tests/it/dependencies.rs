//! The model crate's own build: Burn's backends without burn-train, autodiff or the optimizers
//! (the training side adds those in the train crate), as `cargo tree` resolves it.

use std::process::Command;

#[test]
fn the_model_builds_without_training_crates() {
    let manifest = fashion_mixer_data::testing::workspace_root().join("crates/model/Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "--edges", "normal", "--prefix", "none"])
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["-p", "fashion-mixer-model"])
        .output()
        .unwrap();
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(tree.contains("burn-flex v"), "{tree}");
    for training in ["burn-train v", "burn-autodiff v", "burn-optim v"] {
        assert!(
            !tree.lines().any(|l| l.starts_with(training)),
            "{training} in the model crate's build:\n{tree}"
        );
    }
}
