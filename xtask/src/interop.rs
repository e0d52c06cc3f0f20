//! `cargo xtask export` and `cargo xtask import`: a run's model as `model.safetensors` in
//! PyTorch's names and layouts, and such a file as a new run.

use std::path::PathBuf;

use anyhow::Result;
use burn::module::Module;
use clap::Args;
use fashion_mixer_train::artifacts::prepare_output;
use fashion_mixer_train::inference::load_model;
use fashion_mixer_train::interop::{default_export_path, export, import};
use fashion_mixer_train::{RunDir, TrainingConfig};

#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    /// The run's folder [default: artifacts/pretrained]
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
    /// Where to write (its folder is made if need be) [default: model.safetensors in the run's
    /// folder]
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

pub fn run_export(args: &ExportArgs) -> Result<()> {
    let run = RunDir::new(
        args.artifacts
            .clone()
            .unwrap_or_else(crate::infer::pretrained),
    );
    let loaded = load_model(&run, Some(fashion_mixer_model::Backend::Flex))?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_export_path(&run));
    prepare_output(&out)?;
    export(&loaded, &out)?;
    println!(
        "wrote {} ({} parameters, from {})",
        out.display(),
        loaded.model.num_params(),
        loaded.record.display()
    );
    Ok(())
}

#[derive(Args, Debug, Clone)]
pub struct ImportArgs {
    /// A safetensors file from `export`, or from PyTorch with the same names and shapes
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The new run's folder (must not hold a run yet)
    #[arg(long, value_name = "DIR")]
    pub artifacts: PathBuf,
    /// The configuration (a run's config.json, or only the fields that differ from the
    /// coursework's) [default: the one in the file's metadata]
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

pub fn run_import(args: &ImportArgs) -> Result<()> {
    let config = match &args.config {
        Some(path) => Some(crate::train::read_config(&TrainingConfig::new(), path)?),
        None => None,
    };
    let run = RunDir::new(&args.artifacts);
    let config = import(&args.file, config, &run)?;
    println!(
        "imported {} into {} ({} parameters): config.json, model.bpk",
        args.file.display(),
        run.root().display(),
        config
            .model
            .init(&burn::prelude::Device::flex())?
            .num_params()
    );
    Ok(())
}
