//! Named grids of training runs (the reference report's comparisons), each run its own folder,
//! then `summary.md` and `summary.png` comparing them. An interrupted sweep, run again, skips
//! the runs that finished and resumes the one that did not.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use fashion_mixer_model::Backend;
use fashion_mixer_run::metrics::{EpochMetrics, RunSummary, is_finished, read_metrics};
use fashion_mixer_run::report::plot::{Series, line_chart, y_range};
use fashion_mixer_run::run_dir::{check_same_settings, load_config, write_atomic};
use fashion_mixer_run::{OptimizerKind, Progress, RunDir, RunError, TrainingConfig};

/// The grids `sweep --grid` knows.
pub const GRIDS: [&str; 3] = ["optimizers", "batch", "smoke"];

/// One run of a grid.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepRun {
    /// Its folder's name inside the sweep's folder.
    pub name: String,
    /// The settings the grid varies, as (name, value) for the summary table.
    pub varied: Vec<(String, String)>,
    /// The full configuration.
    pub config: TrainingConfig,
}

fn run(name: &str, config: TrainingConfig) -> SweepRun {
    let mut varied = vec![
        ("optimizer".to_string(), config.optimizer.name().to_string()),
        ("lr".to_string(), format!("{}", config.lr)),
    ];
    if config.optimizer == OptimizerKind::Sgd {
        varied.push(("momentum".to_string(), format!("{}", config.momentum)));
    }
    if config.weight_decay > 0.0 {
        varied.push((
            "weight decay".to_string(),
            format!("{}", config.weight_decay),
        ));
    }
    varied.push(("batch".to_string(), config.batch_size.to_string()));
    SweepRun {
        name: name.to_string(),
        varied,
        config,
    }
}

/// The runs of grid `name` (the coursework model throughout), or `None` for an unknown name.
pub fn grid(name: &str) -> Option<Vec<SweepRun>> {
    let base = TrainingConfig::new;
    let runs = match name {
        "optimizers" => vec![
            run(
                "sgd-lr0.01",
                base()
                    .with_optimizer(OptimizerKind::Sgd)
                    .with_lr(0.01)
                    .with_momentum(0.0),
            ),
            run(
                "sgd-lr0.01-momentum0.9",
                base()
                    .with_optimizer(OptimizerKind::Sgd)
                    .with_lr(0.01)
                    .with_momentum(0.9),
            ),
            run("adam-lr0.001", base().with_lr(1e-3)),
            run("adam-lr0.01", base().with_lr(1e-2)),
            run(
                "adamw-lr0.001",
                base()
                    .with_optimizer(OptimizerKind::AdamW)
                    .with_lr(1e-3)
                    .with_weight_decay(1e-2),
            ),
        ],
        "batch" => [64, 256, 1024]
            .into_iter()
            .map(|b| run(&format!("adam-batch{b}"), base().with_batch_size(b)))
            .collect(),
        "smoke" => vec![
            run(
                "adam",
                base()
                    .with_epochs(1)
                    .with_limit_train(Some(1024))
                    .with_limit_test(Some(1024)),
            ),
            run(
                "sgd-momentum0.9",
                base()
                    .with_optimizer(OptimizerKind::Sgd)
                    .with_lr(0.01)
                    .with_momentum(0.9)
                    .with_epochs(1)
                    .with_limit_train(Some(1024))
                    .with_limit_test(Some(1024)),
            ),
        ],
        _ => return None,
    };
    Some(runs)
}

/// A grid over settings: each point's settings (name, value, in order) and configuration
/// become a run whose folder is named after them (`lr1e-3-weight-decay0`).
pub fn point(settings: Vec<(String, String)>, config: TrainingConfig) -> SweepRun {
    let name = settings
        .iter()
        .map(|(k, v)| format!("{k}{v}"))
        .collect::<Vec<_>>()
        .join("-")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    SweepRun {
        name,
        varied: settings,
        config,
    }
}

/// Settings applied to every run of a grid.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SweepOverrides {
    /// Epochs per run.
    pub epochs: Option<usize>,
    /// Training items per run.
    pub limit_train: Option<usize>,
    /// Backend.
    pub backend: Option<Backend>,
}

impl SweepOverrides {
    /// Sets what is given on `config`.
    pub fn apply(&self, config: &mut TrainingConfig) {
        if let Some(epochs) = self.epochs {
            config.epochs = epochs;
        }
        if self.limit_train.is_some() {
            config.limit_train = self.limit_train;
        }
        if let Some(backend) = self.backend {
            config.backend = backend;
        }
    }
}

/// How one run of a sweep went.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepOutcome {
    /// The run.
    pub run: SweepRun,
    /// Its folder.
    pub dir: PathBuf,
    /// `skipped` (finished before), `resumed`, `trained`, `interrupted`, `in use` (another
    /// process trains it), or, in the summary, `other shard` (another shard's, as on disk).
    pub status: &'static str,
    /// Its `metrics.csv`.
    pub history: Vec<EpochMetrics>,
}

/// What [`sweep`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepReport {
    /// One entry per run of this shard reached, in grid order.
    pub outcomes: Vec<SweepOutcome>,
    /// A run was interrupted; the ones after it did not start.
    pub interrupted: bool,
    /// `summary.md`.
    pub summary: PathBuf,
    /// `summary.png`.
    pub picture: PathBuf,
}

fn finished(run: &RunDir) -> bool {
    load_config(run).is_ok_and(|config| is_finished(run, config.epochs))
}

/// How a training of a sweep's ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trained {
    /// Every epoch is done.
    Finished,
    /// Stopped before its last epoch (Ctrl-C): the sweep stops too.
    Interrupted,
    /// Another process holds the run's folder (another shard, or the same sweep started
    /// twice): left to it.
    InUse,
}

/// How a sweep trains one of its runs: the run's configuration, its folder, and whether to
/// resume it (its `config.json` exists).
pub trait Trainer {
    /// The trainer's error; a sweep's own (folders, the summary) convert into it.
    type Error: From<RunError>;

    /// Trains (or resumes) the run in `run`.
    fn train(
        &mut self,
        config: TrainingConfig,
        run: &RunDir,
        resume: bool,
    ) -> Result<Trained, Self::Error>;
}

/// Which points of a grid one of several processes trains (`--shard K/N`): every `count`th
/// point from the `index`th, in grid order. Every shard computes the grid alike from the same
/// flags, so the shards share the points out without talking to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, from 0.
    pub index: usize,
    /// How many shards.
    pub count: usize,
}

impl Shard {
    /// The whole grid, in one process.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Whether the point at `position` in the grid is this shard's.
    pub fn takes(&self, position: usize) -> bool {
        position % self.count == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// A `--shard` that is not `K/N` with `0 <= K < N`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "expected K/N, shard K of N with 0 <= K < N (e.g. 0/4; Slurm: $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)"
)]
pub struct BadShard;

impl std::str::FromStr for Shard {
    type Err = BadShard;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (index, count) = s.split_once('/').ok_or(BadShard)?;
        let index: usize = index.trim().parse().map_err(|_| BadShard)?;
        let count: usize = count.trim().parse().map_err(|_| BadShard)?;
        if index >= count {
            return Err(BadShard);
        }
        Ok(Self { index, count })
    }
}

/// Runs this `shard`'s runs of `runs` (all of them with [`Shard::ALL`]) in `root/<run.name>/` in
/// turn with `trainer`, skipping finished ones, resuming a started one, and leaving one that
/// another process holds to it; then writes `root/summary.md` and `root/summary.png` over every
/// run of the grid, as the folders hold them (so the shard that ends last writes the whole
/// sweep's).
pub fn sweep<T: Trainer>(
    root: &Path,
    runs: &[SweepRun],
    overrides: &SweepOverrides,
    shard: Shard,
    trainer: &mut T,
    progress: &Progress,
) -> Result<SweepReport, T::Error> {
    std::fs::create_dir_all(root).map_err(|e| T::Error::from(RunError::io(root, e)))?;
    // A point whose folder holds a run started with other settings (the same grid with another
    // --epochs, say) stops the sweep before anything trains: skipped or continued, that run
    // would be reported as this sweep's.
    for sweep_run in runs {
        let mut asked = sweep_run.config.clone();
        overrides.apply(&mut asked);
        let run = RunDir::new(root.join(&sweep_run.name));
        if let Ok(saved) = load_config(&run) {
            check_same_settings(&run, &saved, &asked).map_err(T::Error::from)?;
        }
    }
    let mut outcomes = Vec::new();
    let mut interrupted = false;
    let mine: Vec<usize> = (0..runs.len()).filter(|&i| shard.takes(i)).collect();
    for (n, &i) in mine.iter().enumerate() {
        let mut sweep_run = runs[i].clone();
        overrides.apply(&mut sweep_run.config);
        let dir = root.join(&sweep_run.name);
        let run = RunDir::new(&dir);
        let of = if shard == Shard::ALL {
            String::new()
        } else {
            format!(" (shard {shard}, point {} of {})", i + 1, runs.len())
        };
        progress.emit(&format!(
            "== run {}/{}: {}{of} ==",
            n + 1,
            mine.len(),
            sweep_run.name
        ));
        let status = if finished(&run) {
            progress.emit("finished before; skipped");
            "skipped"
        } else {
            let resume = run.config().is_file();
            match trainer.train(sweep_run.config.clone(), &run, resume)? {
                Trained::Interrupted => {
                    interrupted = true;
                    "interrupted"
                }
                Trained::InUse => {
                    progress.emit("another process trains it; left to it");
                    "in use"
                }
                Trained::Finished if resume => "resumed",
                Trained::Finished => "trained",
            }
        };
        // The config that ran (a resumed run keeps its own).
        if let Ok(config) = load_config(&run) {
            sweep_run.config = config;
        }
        outcomes.push(SweepOutcome {
            history: read_metrics(&run.metrics()).map_err(T::Error::from)?,
            run: sweep_run,
            dir,
            status,
        });
        if interrupted {
            break;
        }
    }
    let every = on_disk(root, runs, overrides, &outcomes);
    let (summary, picture) = write_summary(root, &every).map_err(T::Error::from)?;
    Ok(SweepReport {
        outcomes,
        interrupted,
        summary,
        picture,
    })
}

/// Every run of the grid as its folder under `root` holds it: this process's `outcomes` where
/// it has one, the others (another shard's, or not started) read from disk.
fn on_disk(
    root: &Path,
    runs: &[SweepRun],
    overrides: &SweepOverrides,
    outcomes: &[SweepOutcome],
) -> Vec<SweepOutcome> {
    runs.iter()
        .map(|sweep_run| {
            if let Some(outcome) = outcomes.iter().find(|o| o.run.name == sweep_run.name) {
                return outcome.clone();
            }
            let mut sweep_run = sweep_run.clone();
            overrides.apply(&mut sweep_run.config);
            let dir = root.join(&sweep_run.name);
            let run = RunDir::new(&dir);
            if let Ok(config) = load_config(&run) {
                sweep_run.config = config;
            }
            SweepOutcome {
                history: read_metrics(&run.metrics()).unwrap_or_default(),
                run: sweep_run,
                dir,
                status: "other shard",
            }
        })
        .collect()
}

/// Writes `summary.md` (one row per run) and `summary.png` (test accuracy per epoch).
pub fn write_summary(
    root: &Path,
    outcomes: &[SweepOutcome],
) -> Result<(PathBuf, PathBuf), RunError> {
    let series: Vec<Series> = outcomes
        .iter()
        .map(|o| Series {
            label: o.run.name.clone(),
            points: o
                .history
                .iter()
                .map(|m| (m.epoch as f64, 100.0 * m.test_accuracy))
                .collect(),
        })
        .collect();
    let picture = root.join("summary.png");
    let png = line_chart(
        "Test accuracy per epoch",
        "test accuracy (%)",
        &series,
        y_range(&series, 0.0..100.0),
    )
    .map_err(|source| RunError::Plot {
        path: picture.clone(),
        source,
    })?;
    write_atomic(&picture, &png)?;

    let mut keys: Vec<&str> = Vec::new();
    for o in outcomes {
        for (k, _) in &o.run.varied {
            if !keys.contains(&k.as_str()) {
                keys.push(k);
            }
        }
    }
    let mut md = String::from("# Sweep summary\n\n");
    let _ = writeln!(
        md,
        "One row per run: the settings the sweep varies (every other setting is in the run's \
         `config.json`), and accuracies from its `metrics.csv`.\n"
    );
    let _ = write!(md, "| run |");
    for k in &keys {
        let _ = write!(md, " {k} |");
    }
    let _ = writeln!(
        md,
        " epochs | final test acc | best test acc (epoch) | final train acc | s/epoch |"
    );
    let _ = writeln!(md, "|{}", "---|".repeat(keys.len() + 6));
    for o in outcomes {
        let _ = write!(md, "| {} |", o.run.name);
        for k in &keys {
            let value = o
                .run
                .varied
                .iter()
                .find(|(name, _)| name == k)
                .map_or("-", |(_, v)| v.as_str());
            let _ = write!(md, " {value} |");
        }
        match RunSummary::of(&o.history) {
            Some(RunSummary {
                last,
                best_test: best,
                median_epoch_seconds,
                ..
            }) => {
                let _ = writeln!(
                    md,
                    " {}/{} | {:.2}% | {:.2}% ({}) | {:.2}% | {:.1} |",
                    last.epoch,
                    o.run.config.epochs,
                    100.0 * last.test_accuracy,
                    100.0 * best.test_accuracy,
                    best.epoch,
                    100.0 * last.train_accuracy,
                    median_epoch_seconds
                );
            }
            None => {
                let _ = writeln!(md, " 0/{} | - | - | - | - |", o.run.config.epochs);
            }
        }
    }
    let _ = writeln!(md, "\n![test accuracy per epoch](summary.png)");
    let summary = root.join("summary.md");
    write_atomic(&summary, md.as_bytes())?;
    Ok((summary, picture))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_share_the_points_out_once() {
        let shards: Vec<Shard> = ["0/3", "1/3", "2/3"].map(|s| s.parse().unwrap()).to_vec();
        for position in 0..10 {
            assert_eq!(shards.iter().filter(|s| s.takes(position)).count(), 1);
        }
        for bad in ["3/3", "1", "a/2", "1/0", "-1/2"] {
            assert_eq!(bad.parse::<Shard>(), Err(BadShard), "{bad}");
        }
        assert!((0..5).all(|p| Shard::ALL.takes(p)));
    }
}
