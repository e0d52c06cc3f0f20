//! `cargo xtask bench`: training and inference speed; writes bench.json.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use fashion_mixer_data::FashionMnistDataset;
use fashion_mixer_model::Backend;
use fashion_mixer_run::run_dir::{prepare_output, write_atomic};
use fashion_mixer_run::{TrainingConfig, load_splits};
use fashion_mixer_train::bench::{BenchOptions, BenchReport, StepSpread, bench};

use crate::data::DataDirArg;
use crate::distributed::SlicesArg;
use crate::flags::at_least_one;
use crate::project_root;
use crate::train::BaseConfigArgs;

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    #[command(flatten)]
    pub base: BaseConfigArgs,
    /// flex, ndarray or wgpu [default: the configuration's, flex]
    #[arg(long)]
    pub backend: Option<Backend>,
    /// Training batch size [default: the configuration's]
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Timed training steps per repetition
    #[arg(long, default_value_t = 20, value_parser = at_least_one)]
    pub steps: usize,
    /// Repetitions (the median is reported)
    #[arg(long, default_value_t = 5, value_parser = at_least_one)]
    pub repeats: usize,
    /// Where to write the report [default: artifacts/bench.json]
    #[arg(long, value_name = "PATH")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataDirArg,
    /// Time the training step over the ranks `mpirun -np N` started (the `mpi` build): each
    /// its share of every batch, and the reduction; rank 0 reports, with each step's work on
    /// every rank
    #[arg(long)]
    pub distributed: bool,
    /// With --distributed, how the ranks share each batch: `speed`, each rank's slice sized by
    /// its speed over the last steps, so a slower rank takes fewer items; or `equal`, so the
    /// weights are one process's to the bit [default: speed on flex and ndarray, equal on wgpu,
    /// which compiles its kernels for each new slice size]
    #[arg(long, value_enum, requires = "distributed")]
    pub slices: Option<SlicesArg>,
}

/// What a bench runs: the configuration, where its report goes, the training items, the
/// options.
type Prepared = (TrainingConfig, PathBuf, FashionMnistDataset, BenchOptions);

pub fn run(args: &BenchArgs) -> Result<()> {
    if args.distributed {
        return distributed_bench(args);
    }
    let (config, out, train, options) = prepare(args)?;
    let report = bench(&config, &train, options, None)?;
    say(&report, &out)
}

/// The configuration, the output and the data, from the flags.
fn prepare(args: &BenchArgs) -> Result<Prepared> {
    let mut config = crate::flags::teacher_found(args.base.load()?);
    if let Some(backend) = args.backend {
        config.backend = backend;
    }
    if let Some(batch_size) = args.batch_size {
        config.batch_size = batch_size;
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| project_root().join("artifacts").join("bench.json"));
    prepare_output(&out)?;
    let (train, _) = load_splits(&args.data.locate()?, &config)?;
    let options = BenchOptions {
        steps: args.steps,
        repeats: args.repeats,
        ..BenchOptions::default()
    };
    Ok((config, out, train, options))
}

/// Prints `report` and writes it to `out`.
fn say(report: &BenchReport, out: &Path) -> Result<()> {
    if report.ranks > 1 {
        let (fewest, most) = report.slice_items;
        let taken = if fewest == most {
            fewest.to_string()
        } else {
            format!("{fewest}-{most}")
        };
        let how = if report.equal_slices {
            "equal slices"
        } else {
            "slices by speed"
        };
        let slices = format!(
            "{how}: rank 0 took {taken} of {} items, {:.1} on average",
            report.batch_size, report.slice_items_mean
        );
        let waits: Vec<String> = report
            .reduce_wait_ms_by_rank
            .iter()
            .map(|w| format!("{w:.2}"))
            .collect();
        println!(
            "{} ranks ({slices}): each step reduces {} bytes in {:.2} ms ({:.2} ms of it waiting for the last rank; by rank {} ms)",
            report.ranks,
            report.reduce_bytes_per_step,
            report.reduce_ms_per_step,
            report.reduce_wait_ms_per_step,
            waits.join(", ")
        );
    }
    println!(
        "{} on {} thread{}, batch {}: training {:.0} images/s ({:.1} ms/step, optimizer {:.2} ms of it; data {:.2} ms/batch = {:.1}%)",
        report.backend,
        report.threads,
        if report.threads == 1 { "" } else { "s" },
        report.batch_size,
        report.train_images_per_s,
        report.train_step_ms,
        report.optimizer_ms_per_step,
        report.data_ms_per_batch,
        100.0 * report.data_share
    );
    let spread = &report.step_spread;
    println!(
        "steps: median {:.1} ms, slowest {:.1} ms, varying {:.1}% from step to step; {} of {} over {}x the median, adding {:.2} ms to the mean step",
        spread.median_ms,
        spread.slowest_ms,
        100.0 * spread.variation,
        spread.slow_steps,
        spread.steps,
        StepSpread::SLOW,
        spread.slow_ms_per_step
    );
    let balance = &report.work_balance;
    if report.ranks > 1 && balance.steps > 0 {
        let varying: Vec<String> = balance
            .per_item_variation
            .iter()
            .map(|v| format!("{:.1}%", 100.0 * v))
            .collect();
        println!(
            "ranks' work: the slowest rank's {:.1} ms a step, {:.1}% over {:.1} ms, each step's items split by that step's own speeds; a rank's time per item varies {} from step to step (by rank)",
            balance.slowest_ms,
            100.0 * balance.excess(),
            balance.balanced_ms,
            varying.join(", ")
        );
    }
    println!(
        "inference: batch 1 {:.2} ms; batch 1024 {:.0} images/s",
        report.infer_batch1_ms, report.infer_batch1024_images_per_s
    );
    let json = serde_json::to_string_pretty(&report)?;
    write_atomic(out, json.as_bytes())?;
    println!("wrote {}", out.display());
    Ok(())
}

/// `bench --distributed` in a build without MPI.
#[cfg(not(feature = "mpi"))]
fn distributed_bench(_: &BenchArgs) -> Result<()> {
    anyhow::bail!(crate::distributed::NOT_BUILT)
}

/// `bench --distributed`: this rank's part (each batch shared as `--slices` says); rank 0
/// reports, and says what was wrong if any rank's flags or files were.
#[cfg(feature = "mpi")]
fn distributed_bench(args: &BenchArgs) -> Result<()> {
    let rank = crate::distributed::Rank::join()?;
    let (config, out, train, options) = rank.agree(prepare(args))?;
    let distributed = rank.distributed(args.slices);
    let report = bench(&config, &train, options, Some(&distributed)).map_err(|e| rank.fail(e))?;
    if rank.leads() {
        say(&report, &out)?;
    }
    Ok(())
}
