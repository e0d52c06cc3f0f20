//! `cargo xtask model`: the architecture and its parameter count.

use anyhow::Result;
use burn::module::Module;
use clap::Args;
use fashion_mixer_model::{Activation, Backend, ModelConfig};
use fashion_mixer_train::report::thousands;

/// The architecture's hyperparameters; a flag left out keeps the value it overrides
/// (the coursework model's by default).
#[derive(Args, Debug, Clone, Default)]
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
    #[arg(long, value_parser = parse_activation)]
    pub activation: Option<Activation>,
    /// Dropout on the MLPs' hidden units while training [default: 0]
    #[arg(long, value_name = "P")]
    pub dropout: Option<f64>,
}

fn parse_activation(s: &str) -> Result<Activation, String> {
    match s {
        "relu" => Ok(Activation::Relu),
        "gelu" => Ok(Activation::Gelu),
        _ => Err(format!("unknown activation '{s}' (expected relu or gelu)")),
    }
}

impl ModelArgs {
    /// `config` with these flags applied.
    pub fn apply(&self, mut config: ModelConfig) -> ModelConfig {
        let set = |field: &mut usize, value: Option<usize>| {
            if let Some(v) = value {
                *field = v;
            }
        };
        set(&mut config.patch_size, self.patch_size);
        set(&mut config.dim, self.dim);
        set(&mut config.token_hidden, self.token_hidden);
        set(&mut config.channel_hidden, self.channel_hidden);
        set(&mut config.depth, self.depth);
        if self.patch_stride.is_some() {
            config.patch_stride = self.patch_stride;
        }
        if let Some(v) = self.residual {
            config.residual = v;
        }
        if let Some(v) = self.layer_norm {
            config.layer_norm = v;
        }
        if let Some(v) = self.activation {
            config.activation = v;
        }
        if let Some(v) = self.dropout {
            config.dropout = v;
        }
        config
    }

    /// Whether any flag was given.
    pub fn any(&self) -> bool {
        [
            self.patch_size,
            self.dim,
            self.token_hidden,
            self.channel_hidden,
            self.depth,
            self.patch_stride,
        ]
        .iter()
        .any(Option::is_some)
            || self.residual.is_some()
            || self.layer_norm.is_some()
            || self.activation.is_some()
            || self.dropout.is_some()
    }
}

pub fn run(args: &ModelArgs) -> Result<()> {
    let config = args.apply(ModelConfig::new());
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
