//! `cargo xtask report`: a run's pictures and report.md, again (any finished or interrupted run).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use fashion_mixer_run::RunDir;
use fashion_mixer_run::load_splits;
use fashion_mixer_run::report::report_run;

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
    // The data is located (and read) only when the record's evaluation is missing or stale.
    let files = report_run::<anyhow::Error>(&run, |config| {
        Ok(Some(load_splits(&args.data.locate()?, config)?))
    })?;
    for picture in &files.pictures {
        println!("wrote {}", picture.display());
    }
    println!("wrote {}", files.report.display());
    Ok(())
}
