//! `cargo xtask export` and `cargo xtask import`: a run's model as `model.safetensors` in
//! PyTorch's names and layouts, and such a file as a new run.

use std::path::PathBuf;

use anyhow::Result;
use burn::module::Module;
use clap::Args;
use fashion_mixer_export::safetensors::import;
use fashion_mixer_export::{ExportFormat, export_with_card};
use fashion_mixer_run::inference::load_model;
use fashion_mixer_run::run_dir::prepare_output;
use fashion_mixer_run::{RunDir, TrainingConfig};

#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    /// The run's folder [default: artifacts/pretrained]
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
    /// Where to write (its folder is made if need be); the model card, README.md, goes beside
    /// it [default: model.safetensors or model.onnx in the run's folder]
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// safetensors (PyTorch's names and layouts) or onnx (the whole forward pass, pixels 0-255
    /// in, logits out)
    #[arg(long, default_value = "safetensors", value_name = "FORMAT")]
    pub format: ExportFormat,
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
        .unwrap_or_else(|| run.root().join(args.format.file_name()));
    prepare_output(&out)?;
    let card = export_with_card(&run, &loaded, &out, args.format, &run.name())?;
    println!(
        "wrote {} ({} parameters, from {}) and its model card {}",
        out.display(),
        loaded.model.num_params(),
        loaded.record.display(),
        card.display()
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
