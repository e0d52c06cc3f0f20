//! `cargo xtask sweep`: a grid of training runs (a named one, or any training flags' values
//! with `--set`) and their summary.

use std::path::PathBuf;

use anyhow::{Result, anyhow, bail};
use clap::{Args, Parser};
use fashion_mixer_experiments::sweep::{
    GRIDS, Shard, SweepOverrides, SweepRun, Trained, Trainer, grid, point, sweep,
};
use fashion_mixer_model::Backend;
use fashion_mixer_run::{Progress, RunDir, RunError, TrainingConfig};
use fashion_mixer_train::TrainError;
use fashion_mixer_train::training::{Resume, TrainOptions, train};

use crate::data::DataDirArg;
use crate::flags::overlay;
use crate::project_root;
use crate::train::{BaseConfigArgs, ConfigFlags};

#[derive(Args, Debug, Clone)]
pub struct SweepArgs {
    /// A named grid: optimizers, batch or smoke
    #[arg(long, value_name = "NAME", conflicts_with_all = ["set", "seeds"],
          required_unless_present_any = ["set", "seeds"])]
    pub grid: Option<String>,
    /// A training flag and the values to try, e.g. lr=1e-3,3e-3 or weight-decay=0,1e-4 (the
    /// names `train` takes); repeat it: the grid is every combination
    #[arg(long, value_name = "FLAG=V1,V2,...")]
    pub set: Vec<String>,
    /// Train every point of the grid once per seed, e.g. 1,2,3
    #[arg(long, value_name = "S1,S2,...", value_delimiter = ',')]
    pub seeds: Vec<u64>,
    #[command(flatten)]
    pub base: BaseConfigArgs,
    /// Epochs for every run [default: the grid's or the preset's]
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Use only the first N training items in every run
    #[arg(long, value_name = "N")]
    pub limit_train: Option<usize>,
    /// Backend for every run: flex, ndarray or wgpu [default: flex]
    #[arg(long)]
    pub backend: Option<Backend>,
    /// The sweep's folder [default: artifacts/sweep-<NAME>, or sweep-<the flags set>]
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
    /// Train only shard K of N: every Nth point of the grid from the Kth (0 <= K < N); the
    /// shards, started alike on one shared --artifacts folder (a Slurm job array, say), train
    /// every point once between them [default: 0/1; for N processes started together by `srun
    /// -n N` or `mpirun -np N`, each its rank's shard]
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
    #[command(flatten)]
    pub data: DataDirArg,
}

/// The training flags of one point, read as `train` reads them.
#[derive(Parser, Debug)]
#[command(no_binary_name = true)]
struct PointFlags {
    #[command(flatten)]
    flags: ConfigFlags,
}

/// `--set`'s flags and their values, in order: `("weight-decay", ["0", "1e-4"])`.
fn settings(set: &[String], seeds: &[u64]) -> Result<Vec<(String, Vec<String>)>> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for item in set {
        let (name, values) = item
            .split_once('=')
            .ok_or_else(|| anyhow!("--set {item}: expected FLAG=V1,V2,... (e.g. lr=1e-3,3e-3)"))?;
        let name = name.trim().trim_start_matches("--").replace('_', "-");
        let values: Vec<String> = values
            .split(',')
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect();
        if name.is_empty() || values.is_empty() {
            bail!("--set {item}: expected FLAG=V1,V2,... (e.g. lr=1e-3,3e-3)");
        }
        if out.iter().any(|(n, _)| *n == name) {
            bail!("--set {item}: {name} is set twice");
        }
        out.push((name, values));
    }
    if !seeds.is_empty() {
        if out.iter().any(|(n, _)| n == "seed") {
            bail!("--seeds and --set seed=... name the seeds twice: keep one");
        }
        out.push(("seed".into(), seeds.iter().map(u64::to_string).collect()));
    }
    Ok(out)
}

/// Every combination of `settings`' values, the first setting varying slowest.
fn combinations(settings: &[(String, Vec<String>)]) -> Vec<Vec<(String, String)>> {
    settings
        .iter()
        .fold(vec![Vec::new()], |points, (name, values)| {
            points
                .into_iter()
                .flat_map(|point| {
                    values.iter().map(move |value| {
                        let mut point = point.clone();
                        point.push((name.clone(), value.clone()));
                        point
                    })
                })
                .collect()
        })
}

/// The runs of a `--set` grid over `base`, each point's flags read and its configuration
/// checked before any run starts.
fn set_grid(
    base: &TrainingConfig,
    settings: &[(String, Vec<String>)],
    overrides: &SweepOverrides,
) -> Result<Vec<SweepRun>> {
    combinations(settings)
        .into_iter()
        .map(|settings| {
            let argv: Vec<String> = settings.iter().map(|(k, v)| format!("--{k}={v}")).collect();
            let described = settings
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ");
            let flags = PointFlags::try_parse_from(&argv).map_err(|e| {
                let message = e.to_string();
                let first = message.lines().next().unwrap_or_default();
                anyhow!(
                    "--set {described}: {} (the names are train's flags: cargo xtask train --help)",
                    first.trim_start_matches("error: ")
                )
            })?;
            let mut config =
                overlay(base, &flags.flags).map_err(|e| anyhow!("--set {described}: {e}"))?;
            overrides.apply(&mut config);
            config
                .validate()
                .map_err(|e| anyhow!("--set {described}: {e}"))?;
            Ok(point(settings, config))
        })
        .collect()
}

pub fn run(args: &SweepArgs) -> Result<()> {
    if args.epochs == Some(0) || args.limit_train == Some(0) {
        return Err(anyhow!("--epochs and --limit-train must be at least 1"));
    }
    let overrides = SweepOverrides {
        epochs: args.epochs,
        limit_train: args.limit_train,
        backend: args.backend,
    };
    let (runs, name) = match &args.grid {
        Some(name) => {
            if args.base.preset.is_some() || args.base.config.is_some() {
                bail!("--preset and --config start a --set sweep; a named grid has its own");
            }
            let runs = grid(name).ok_or_else(|| {
                anyhow!(
                    "unknown grid '{name}' (expected one of: {})",
                    GRIDS.join(", ")
                )
            })?;
            (runs, name.clone())
        }
        None => {
            let settings = settings(&args.set, &args.seeds)?;
            let runs = set_grid(&args.base.load()?, &settings, &overrides)?;
            let name = settings
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>()
                .join("-");
            (runs, name)
        }
    };
    let root = args.artifacts.clone().unwrap_or_else(|| {
        project_root()
            .join("artifacts")
            .join(format!("sweep-{name}"))
    });
    let progress = Progress::new(|line| println!("{line}"));
    let mut trainer = Learners {
        data_dir: args.data.locate()?,
        progress: progress.clone(),
    };
    let report = sweep(
        &root,
        &runs,
        &overrides,
        args.shard.unwrap_or(Shard::ALL),
        &mut trainer,
        &progress,
    )?;
    for o in &report.outcomes {
        let last = o.history.last().map_or("no epoch".to_string(), |m| {
            format!("test accuracy {:.2}%", 100.0 * m.test_accuracy)
        });
        println!("{:<28} {:<11} {last}", o.run.name, o.status);
    }
    println!("wrote {}", report.summary.display());
    println!("wrote {}", report.picture.display());
    if report.interrupted {
        println!("interrupted: run the same command again to resume (finished runs are skipped)");
    }
    Ok(())
}

/// How `sweep` trains its runs: each with burn-train's Learner, one line per epoch.
struct Learners {
    data_dir: std::path::PathBuf,
    progress: Progress,
}

impl Trainer for Learners {
    type Error = TrainError;

    fn train(
        &mut self,
        config: TrainingConfig,
        run: &RunDir,
        resume: bool,
    ) -> Result<Trained, TrainError> {
        let options = TrainOptions {
            run: run.clone(),
            data_dir: self.data_dir.clone(),
            // A sweep's point continues only the run it started (the same settings).
            resume: if resume { Resume::Matching } else { Resume::No },
            tui: false,
            progress: self.progress.clone(),
            distributed: None,
            // Burn's logger is process-wide: the first run's file would take every run's log.
            experiment_log: false,
        };
        match train(config, &options) {
            Ok(report) if report.interrupted => Ok(Trained::Interrupted),
            Ok(_) => Ok(Trained::Finished),
            // Another process holds it, or started it between the sweep's look and this start.
            Err(TrainError::Run(RunError::RunInUse { .. } | RunError::RunExists(_))) => {
                Ok(Trained::InUse)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_combination_first_slowest() {
        let s = settings(&["lr=1,2".into(), "weight_decay=0, 3".into()], &[7]).unwrap();
        let points = combinations(&s);
        assert_eq!(points.len(), 4);
        assert_eq!(
            points[1],
            vec![
                ("lr".to_string(), "1".to_string()),
                ("weight-decay".to_string(), "3".to_string()),
                ("seed".to_string(), "7".to_string())
            ]
        );
    }

    #[test]
    fn a_bad_name_or_value_is_refused_before_any_run() {
        let base = TrainingConfig::new();
        let overrides = SweepOverrides::default();
        for (set, needle) in [
            ("lerning-rate=1e-3", "lerning-rate"),
            ("lr=fast", "fast"),
            ("lr=nan", "finite"),
            ("batch-size=0", "batch_size"),
            ("optimizer=rmsprop", "rmsprop"),
        ] {
            let s = settings(&[set.into()], &[]).unwrap();
            let err = set_grid(&base, &s, &overrides).unwrap_err().to_string();
            assert!(err.contains(needle), "{set}: {err}");
            assert!(!err.contains('\n'), "{set}: {err}");
        }
        let s = settings(&["lr=1e-3,3e-3".into(), "residual=true,false".into()], &[]).unwrap();
        let runs = set_grid(&base, &s, &overrides).unwrap();
        assert_eq!(runs.len(), 4);
        assert_eq!(runs[0].name, "lr1e-3-residualtrue");
        assert!(runs[0].config.model.residual && !runs[1].config.model.residual);
        assert_eq!(runs[3].config.lr, 3e-3);
        for bad in ["lr", "=1", "lr="] {
            assert!(settings(&[bad.into()], &[]).is_err(), "{bad}");
        }
    }
}
