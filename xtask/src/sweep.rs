//! `cargo xtask sweep --grid NAME`: a named grid of training runs and their summary.

use std::path::PathBuf;

use anyhow::{Result, anyhow};
use clap::Args;
use fashion_mixer_model::Backend;
use fashion_mixer_train::Progress;
use fashion_mixer_train::sweep::{GRIDS, SweepOverrides, grid, sweep};

use crate::data::DataDirArg;
use crate::project_root;

#[derive(Args, Debug, Clone)]
pub struct SweepArgs {
    /// The grid: optimizers, batch or smoke
    #[arg(long, value_name = "NAME")]
    pub grid: String,
    /// Epochs for every run [default: the grid's, 30]
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Use only the first N training items in every run
    #[arg(long, value_name = "N")]
    pub limit_train: Option<usize>,
    /// Backend for every run: flex, ndarray or wgpu [default: flex]
    #[arg(long)]
    pub backend: Option<Backend>,
    /// The sweep's folder [default: artifacts/sweep-<NAME>]
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataDirArg,
}

pub fn run(args: &SweepArgs) -> Result<()> {
    let runs = grid(&args.grid).ok_or_else(|| {
        anyhow!(
            "unknown grid '{}' (expected one of: {})",
            args.grid,
            GRIDS.join(", ")
        )
    })?;
    if args.epochs == Some(0) || args.limit_train == Some(0) {
        return Err(anyhow!("--epochs and --limit-train must be at least 1"));
    }
    let root = args.artifacts.clone().unwrap_or_else(|| {
        project_root()
            .join("artifacts")
            .join(format!("sweep-{}", args.grid))
    });
    let overrides = SweepOverrides {
        epochs: args.epochs,
        limit_train: args.limit_train,
        backend: args.backend,
    };
    let progress = Progress::new(|line| println!("{line}"));
    let report = sweep(&root, &runs, &overrides, &args.data.locate()?, &progress)?;
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
