//! `cargo xtask runs`: every run under a folder, one row each.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use fashion_mixer_experiments::runs::{RunEntry, RunStatus, list_runs};

use crate::project_root;

#[derive(Args, Debug, Clone)]
pub struct RunsArgs {
    /// The folder whose runs to list (and its sweeps' runs) [default: artifacts]
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// One JSON object per run, a line each
    #[arg(long)]
    pub json: bool,
}

/// A percentage, or `-`.
fn percent(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{:.2}%", 100.0 * v))
}

/// What the run changed from its preset: `best: lr=0.003, epochs=5`.
pub fn changes(run: &RunEntry) -> String {
    let Some(preset) = &run.preset else {
        return String::new();
    };
    let fields: Vec<String> = run
        .differs
        .iter()
        .map(|(name, value)| match value {
            serde_json::Value::String(s) => format!("{name}={s}"),
            other => format!("{name}={other}"),
        })
        .collect();
    if fields.is_empty() {
        preset.clone()
    } else {
        format!("{preset}: {}", fields.join(", "))
    }
}

pub fn run(args: &RunsArgs) -> Result<()> {
    let root = args
        .root
        .clone()
        .unwrap_or_else(|| project_root().join("artifacts"));
    if !root.is_dir() {
        anyhow::bail!("{}: not a folder", root.display());
    }
    let runs = list_runs(&root);
    if args.json {
        for run in &runs {
            println!("{}", serde_json::to_string(run)?);
        }
        return Ok(());
    }
    if runs.is_empty() {
        println!("no runs in {}", root.display());
        return Ok(());
    }
    let width = runs.iter().map(|r| r.name.len()).max().unwrap_or(3).max(3);
    println!(
        "{:<width$}  {:<30}  {:>7}  {:>7}  {:>13}  {:>8}  {:>7}  changed from its preset",
        "run", "status", "epochs", "test", "best (epoch)", "mirrored", "s/epoch"
    );
    for run in &runs {
        let status = match &run.status {
            RunStatus::Damaged { .. } => "damaged".to_string(),
            other => other.to_string(),
        };
        let best = run
            .best_test
            .map_or("-".into(), |(a, e)| format!("{:.2}% ({e})", 100.0 * a));
        println!(
            "{:<width$}  {:<30}  {:>7}  {:>7}  {:>13}  {:>8}  {:>7}  {}",
            run.name,
            status,
            format!("{}/{}", run.epochs_done, run.epochs),
            percent(run.final_test),
            best,
            percent(run.mirrored_test),
            run.epoch_seconds.map_or("-".into(), |s| format!("{s:.1}")),
            match &run.status {
                RunStatus::Damaged { problem } => problem.clone(),
                _ => changes(run),
            }
        );
    }
    Ok(())
}
