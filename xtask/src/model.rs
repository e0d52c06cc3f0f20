//! `cargo xtask model`: the architecture and its parameter count.

use anyhow::Result;
use burn::module::Module;
use clap::Args;
use fashion_mixer_model::{Activation, Backend, ModelConfig};
use fashion_mixer_run::TrainingConfig;
use fashion_mixer_run::report::thousands;
use serde::Serialize;

use crate::flags::finite;

/// The architecture's hyperparameters; a flag left out keeps the value it overrides
/// (the coursework model's by default).
#[derive(Args, Serialize, Debug, Clone, Default)]
pub struct ModelArgs {
    /// K: side of a square patch, must divide 28 [default: 7]
    #[arg(long)]
    pub patch_size: Option<usize>,
    /// d: features per patch [default: 128]
    #[arg(long)]
    pub dim: Option<usize>,
    /// Hidden width of the token-mixing MLP [default: 64]
    #[arg(long)]
    pub token_hidden: Option<usize>,
    /// Hidden width of the channel-mixing MLP [default: 256]
    #[arg(long)]
    pub channel_hidden: Option<usize>,
    /// N: number of Mixer blocks [default: 2]
    #[arg(long)]
    pub depth: Option<usize>,
    /// Step between patches; below the patch size they overlap [default: the patch size]
    #[arg(long, value_name = "S")]
    pub patch_stride: Option<usize>,
    /// Residual connections around both halves of every block (--residual false: off)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub residual: Option<bool>,
    /// LayerNorm before each half of every block and before the pooling
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub layer_norm: Option<bool>,
    /// g: relu or gelu [default: relu]
    #[arg(long)]
    pub activation: Option<Activation>,
    /// Dropout on the MLPs' hidden units while training [default: 0]
    #[arg(long, value_name = "P", value_parser = finite, allow_negative_numbers = true)]
    pub dropout: Option<f64>,
}

impl ModelArgs {
    /// `config` with these flags applied.
    pub fn apply(&self, config: ModelConfig) -> Result<ModelConfig> {
        #[derive(Serialize)]
        struct Flags<'a> {
            model: &'a ModelArgs,
        }
        let base = TrainingConfig::new().with_model(config);
        Ok(crate::flags::overlay(&base, &Flags { model: self })?.model)
    }
}

pub fn run(args: &ModelArgs) -> Result<()> {
    let config = args.apply(ModelConfig::new())?;
    config.validate()?;
    let model = config.init(&Backend::Flex.device()?)?;
    println!("{model}");
    println!();
    println!(
        "patches: {} of {}x{} pixels; parameters: {}",
        config.num_patches(),
        config.patch_size,
        config.patch_size,
        thousands(model.num_params())
    );
    Ok(())
}
