//! `cargo xtask report`: a run's pictures and report.md, again (any finished or interrupted run).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use fashion_mixer_train::RunDir;
use fashion_mixer_train::inference::record_path;
use fashion_mixer_train::report::{current_evaluation, report_run};
use fashion_mixer_train::training::{load_config, load_splits};

use crate::data::DataDirArg;

#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// The run's folder (holds config.json and metrics.csv)
    #[arg(long, value_name = "DIR")]
    pub artifacts: PathBuf,
    /// Where the IDX files are, when the record must be scored (no up-to-date eval.json).
    #[command(flatten)]
    pub data: DataDirArg,
}

pub fn run(args: &ReportArgs) -> Result<()> {
    let run = RunDir::new(&args.artifacts);
    let config = load_config(&run)?;
    // The data is read only when there is a record whose evaluation is missing or stale.
    let needs_data = record_path(&run).is_ok() && current_evaluation(&run).is_none();
    let splits = if needs_data {
        Some(load_splits(&args.data.locate()?, &config)?)
    } else {
        None
    };
    let files = report_run(&run, splits.as_ref().map(|(train, test)| (train, test)))?;
    for picture in &files.pictures {
        println!("wrote {}", picture.display());
    }
    println!("wrote {}", files.report.display());
    Ok(())
}
