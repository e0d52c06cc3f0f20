//! `cargo xtask tune-wgpu`: tunes wgpu's kernels on this machine's adapter for the project's
//! workloads and writes the results as a bundle in `crates/model/tuning/`, which wgpu imports
//! when it starts on the same adapter (see `fashion_mixer_model::tuning`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow};
use clap::Args;
use fashion_mixer_data::synthetic;
use fashion_mixer_model::tuning::{self, TUNING_BUNDLE_VAR};
use fashion_mixer_run::run_dir::prepare_output;

use crate::project_root;

#[derive(Args, Debug, Clone)]
pub struct TuneArgs {
    /// Where to write the bundle [default: crates/model/tuning/<adapter>.bundle]
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
}

/// Generated training and test items: full batches of 256 and the short last batches the real
/// splits end with (60,000 = 234 x 256 + 96; 10,000 = 39 x 256 + 16).
const TRAIN_ITEMS: usize = 256 + 96;
const TEST_ITEMS: usize = 256 + 16;

/// What is tuned: each preset's training and evaluation (`train`), and its training step and
/// inference at batch 1 and 1024 (`bench`).
fn workloads(data: &Path, scratch: &Path) -> Vec<Vec<String>> {
    let data = data.display().to_string();
    let mut runs = Vec::new();
    for preset in ["coursework", "best"] {
        let run = |command: &str, rest: &[&str], out: PathBuf| {
            let head = [
                command,
                "--preset",
                preset,
                "--backend",
                "wgpu",
                "--data-dir",
                &data,
            ];
            let mut args: Vec<String> = head.iter().chain(rest).map(|s| s.to_string()).collect();
            // `rest` ends with the flag that names where the command writes.
            args.push(out.display().to_string());
            args
        };
        let train = ["--epochs=1", "--warmup-epochs=0", "--no-tui", "--artifacts"];
        runs.push(run("train", &train, scratch.join(format!("run-{preset}"))));
        let bench = ["--steps=2", "--repeats=1", "--out"];
        runs.push(run(
            "bench",
            &bench,
            scratch.join(format!("bench-{preset}.json")),
        ));
    }
    runs
}

/// A file name for the adapter: the first word of its name (`llvmpipe`, `NVIDIA`, ...).
fn adapter_slug(adapter: &str) -> String {
    let word: String = adapter
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    if word.is_empty() {
        "wgpu".into()
    } else {
        word.to_ascii_lowercase()
    }
}

pub fn run(args: &TuneArgs) -> Result<()> {
    let adapter = fashion_mixer_model::wgpu_adapter()?;
    let out = args.out.clone().unwrap_or_else(|| {
        project_root()
            .join("crates/model/tuning")
            .join(format!("{}.bundle", adapter_slug(&adapter)))
    });
    prepare_output(&out)?;
    println!("tuning wgpu's kernels on {adapter}");
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let environment = format!("tune-wgpu-{stamp}");
    let cache = fashion_mixer_model::kernel_cache_file(&environment);
    let scratch = std::env::temp_dir().join(&environment);
    let result = tune(&adapter, &environment, &cache, &scratch, &out);
    // The scratch runs and the cache they tuned into are only the bundle's source.
    let _ = std::fs::remove_dir_all(&scratch);
    for suffix in ["", "-wal", "-tshm", "-shm"] {
        let mut file = cache.clone().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
    result
}

fn tune(adapter: &str, environment: &str, cache: &Path, scratch: &Path, out: &Path) -> Result<()> {
    let data = scratch.join("data");
    synthetic::write_idx_dir(&data, TRAIN_ITEMS, TEST_ITEMS)?;
    let exe = std::env::current_exe().map_err(|e| anyhow!("cannot find this program: {e}"))?;
    for run in workloads(&data, scratch) {
        println!("  {}", run[..5].join(" "));
        let output = Command::new(&exe)
            .args(&run)
            // A fresh environment, tuned here, not imported.
            .env("CUBECL_ENVIRONMENT", environment)
            .env(TUNING_BUNDLE_VAR, "off")
            .output()
            .map_err(|e| anyhow!("cannot start {}: {e}", exe.display()))?;
        if !output.status.success() {
            return Err(anyhow!(
                "`cargo xtask {}` failed: {}",
                run.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
    }
    let shapes = tuning::export(cache, adapter, out)?;
    println!("wrote {} ({shapes} tuned shapes)", out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_preset_is_trained_and_benched_on_wgpu_into_the_scratch_folder() {
        let runs = workloads(Path::new("/d"), Path::new("/s"));
        let lines: Vec<String> = runs.iter().map(|r| r.join(" ")).collect();
        let head = |c: &str, p: &str| format!("{c} --preset {p} --backend wgpu --data-dir /d ");
        assert_eq!(
            lines,
            [
                head("train", "coursework")
                    + "--epochs=1 --warmup-epochs=0 --no-tui --artifacts /s/run-coursework",
                head("bench", "coursework")
                    + "--steps=2 --repeats=1 --out /s/bench-coursework.json",
                head("train", "best")
                    + "--epochs=1 --warmup-epochs=0 --no-tui --artifacts /s/run-best",
                head("bench", "best") + "--steps=2 --repeats=1 --out /s/bench-best.json",
            ]
        );
    }

    #[test]
    fn adapter_names_become_file_names() {
        assert_eq!(
            adapter_slug("llvmpipe (LLVM 15.0.6, 256 bits) | llvmpipe | Mesa | Vulkan"),
            "llvmpipe"
        );
        assert_eq!(adapter_slug("NVIDIA H100 | x | y | Vulkan"), "nvidia");
        assert_eq!(adapter_slug("(odd)"), "wgpu");
    }
}
