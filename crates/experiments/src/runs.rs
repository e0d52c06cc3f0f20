//! Every run under a folder, as `cargo xtask runs` and the runs page list them: its status
//! (finished, interrupted, training now), what it changed from its preset, and what it reached.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;

use fashion_mixer_run::evaluation::current_evaluation;
use fashion_mixer_run::metrics::{RunSummary, is_finished, read_metrics};
use fashion_mixer_run::run_dir::load_config;
use fashion_mixer_run::{PRESETS, RunDir, TrainingConfig};

/// Where a run stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum RunStatus {
    /// Every epoch done; `record`: its final `model.bpk` is there (a copied run's folder may
    /// hold only its curves).
    Finished {
        /// Whether `model.bpk` is there.
        record: bool,
    },
    /// Stopped after `epoch` of `epochs`; `--resume` continues it.
    Interrupted {
        /// The last completed epoch (0: none).
        epoch: usize,
        /// The epochs it was to train.
        epochs: usize,
    },
    /// A process holds its lock and writes it now.
    Training {
        /// That process, when the lock file says.
        pid: Option<u32>,
        /// The last completed epoch.
        epoch: usize,
        /// The epochs it is to train.
        epochs: usize,
    },
    /// Its files cannot be read: what is wrong.
    Damaged {
        /// What is wrong, naming the file.
        problem: String,
    },
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunStatus::Finished { record: true } => write!(f, "finished"),
            RunStatus::Finished { record: false } => write!(f, "finished (no record)"),
            RunStatus::Interrupted { epoch, epochs } => {
                write!(f, "interrupted at epoch {epoch} of {epochs}")
            }
            RunStatus::Training { epoch, epochs, .. } => {
                write!(f, "training now (epoch {epoch} of {epochs} done)")
            }
            RunStatus::Damaged { problem } => write!(f, "damaged: {problem}"),
        }
    }
}

/// One run folder, as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunEntry {
    /// Its path under the root (`run1`, `sweep-lr/lr0.001`): the name pages and commands use.
    pub name: String,
    /// Its folder.
    pub path: PathBuf,
    /// Where it stands.
    pub status: RunStatus,
    /// The preset it is closest to (the fewest fields differ).
    pub preset: Option<String>,
    /// The config fields that differ from that preset (`model.depth`, `lr`, ...), as JSON.
    pub differs: Vec<(String, Value)>,
    /// Epochs completed.
    pub epochs_done: usize,
    /// Epochs it was to train.
    pub epochs: usize,
    /// Test accuracy after the last completed epoch.
    pub final_test: Option<f64>,
    /// The best test accuracy of any epoch, and that epoch.
    pub best_test: Option<(f64, usize)>,
    /// The mirrored test set's accuracy, where `eval.json` describes the record.
    pub mirrored_test: Option<f64>,
    /// Median seconds per epoch.
    pub epoch_seconds: Option<f64>,
    /// When it started (its `config.json`'s time), seconds since the Unix epoch.
    pub started: Option<u64>,
}

/// The process that holds `run`'s write lock, if any: `Some(pid)` (the pid when the lock file
/// names it). Linux: read from `/proc/locks`, without touching the lock; elsewhere a shared
/// lock is tried and given back at once.
pub fn writer(run: &RunDir) -> Option<Option<u32>> {
    let path = run.lock_file();
    let file = std::fs::File::open(&path).ok()?;
    let pid = || {
        std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
    };
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let inode = file.metadata().ok()?.ino();
        let locks = std::fs::read_to_string("/proc/locks").ok()?;
        // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"
        let held = locks.lines().any(|line| {
            line.split_whitespace()
                .nth(5)
                .and_then(|id| id.rsplit(':').next())
                .and_then(|i| i.parse::<u64>().ok())
                == Some(inode)
        });
        held.then(pid)
    }
    #[cfg(not(target_os = "linux"))]
    {
        match file.try_lock_shared() {
            Ok(()) => {
                let _ = file.unlock();
                None
            }
            Err(_) => Some(pid()),
        }
    }
}

/// The fields of `config` that differ from `preset`'s, flattened (`model.depth`).
pub fn differences(config: &TrainingConfig, preset: &TrainingConfig) -> Vec<(String, Value)> {
    config
        .differences(preset)
        .into_iter()
        .map(|d| (d.field, d.saved))
        .collect()
}

/// The preset `config` is closest to, and the fields that differ from it.
fn closest_preset(config: &TrainingConfig) -> (String, Vec<(String, Value)>) {
    PRESETS
        .iter()
        .filter_map(|name| Some((name, TrainingConfig::preset(name)?)))
        .map(|(name, preset)| (name.to_string(), differences(config, &preset)))
        .min_by_key(|(_, differs)| differs.len())
        .expect("there are presets")
}

/// What `run` (named `name`) holds, or `None` when it is not a run (no `config.json`, no
/// `metrics.csv`, no checkpoints).
pub fn entry(name: &str, run: &RunDir) -> Option<RunEntry> {
    let holds_run_files =
        run.config().exists() || run.metrics().exists() || run.checkpoints().is_dir();
    if !holds_run_files {
        return None;
    }
    let started = std::fs::metadata(run.config())
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_secs());
    let mut entry = RunEntry {
        name: name.to_string(),
        path: run.root().to_path_buf(),
        status: RunStatus::Finished { record: false },
        preset: None,
        differs: Vec::new(),
        epochs_done: 0,
        epochs: 0,
        final_test: None,
        best_test: None,
        mirrored_test: None,
        epoch_seconds: None,
        started,
    };
    let damaged = |mut entry: RunEntry, problem: String| {
        entry.status = RunStatus::Damaged { problem };
        Some(entry)
    };
    let config = match load_config(run) {
        Ok(config) => config,
        Err(e) => return damaged(entry, e.to_string()),
    };
    let history = match read_metrics(&run.metrics()) {
        Ok(history) => history,
        Err(e) => return damaged(entry, e.to_string()),
    };
    let (preset, differs) = closest_preset(&config);
    entry.preset = Some(preset);
    entry.differs = differs;
    entry.epochs = config.epochs;
    entry.epochs_done = history.last().map_or(0, |m| m.epoch);
    if let Some(summary) = RunSummary::of(&history) {
        entry.final_test = Some(summary.last.test_accuracy);
        entry.best_test = Some((summary.best_test.test_accuracy, summary.best_test.epoch));
        entry.epoch_seconds = Some(summary.median_epoch_seconds);
    }
    entry.status = if let Some(pid) = writer(run) {
        RunStatus::Training {
            pid,
            epoch: entry.epochs_done,
            epochs: config.epochs,
        }
    } else if is_finished(run, config.epochs) || entry.epochs_done >= config.epochs {
        RunStatus::Finished {
            record: run.model().is_file(),
        }
    } else {
        RunStatus::Interrupted {
            epoch: entry.epochs_done,
            epochs: config.epochs,
        }
    };
    entry.mirrored_test = current_evaluation(run)
        .and_then(|e| e.test_mirrored)
        .map(|s| s.accuracy);
    Some(entry)
}

/// Every run under `root`: its folders, and the folders one level further down (a sweep's
/// runs), oldest first (by start; undated ones last, by name). Folders that hold no run are
/// passed over.
pub fn list_runs(root: &Path) -> Vec<RunEntry> {
    let mut found = Vec::new();
    let folders = |dir: &Path| -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default();
        dirs.sort();
        dirs
    };
    let name_of = |path: &Path| {
        path.strip_prefix(root)
            .unwrap_or(path)
            .to_string_lossy()
            .replace('\\', "/")
    };
    for dir in folders(root) {
        match entry(&name_of(&dir), &RunDir::new(&dir)) {
            Some(run) => found.push(run),
            None => found.extend(
                folders(&dir)
                    .into_iter()
                    .filter_map(|sub| entry(&name_of(&sub), &RunDir::new(&sub))),
            ),
        }
    }
    found.sort_by(|a, b| {
        (a.started.is_none(), a.started, &a.name).cmp(&(b.started.is_none(), b.started, &b.name))
    });
    found
}

/// The run called `name` under `root` (as [`list_runs`] names it), refusing names that leave
/// the root.
pub fn find_run(root: &Path, name: &str) -> Option<RunEntry> {
    let safe = !name.is_empty()
        && Path::new(name)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !safe {
        return None;
    }
    entry(name, &RunDir::new(root.join(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_are_flattened_field_names() {
        let config = TrainingConfig::best().with_lr(3e-3).with_epochs(5);
        let differs = differences(&config, &TrainingConfig::best());
        let names: Vec<&str> = differs.iter().map(|(n, _)| n.as_str()).collect();
        assert!(
            names.contains(&"lr") && names.contains(&"epochs"),
            "{names:?}"
        );
        assert_eq!(differs.len(), 2);
        let (preset, differs) = closest_preset(&config);
        assert_eq!(preset, "best");
        assert_eq!(differs.len(), 2);
        let mut deeper = TrainingConfig::new();
        deeper.model.depth = 4;
        let (preset, differs) = closest_preset(&deeper);
        assert_eq!(preset, "coursework");
        assert_eq!(differs, vec![("model.depth".to_string(), Value::from(4))]);
    }

    #[test]
    fn names_that_leave_the_root_are_refused() {
        let root = Path::new("/tmp");
        for name in ["", "..", "../etc", "/etc", "a/../../b"] {
            assert!(find_run(root, name).is_none(), "{name}");
        }
    }
}
