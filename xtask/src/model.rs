//! `cargo xtask model`: the architecture and its parameter count.

use anyhow::Result;
use burn::module::Module;
use clap::Args;
use fashion_mixer_model::{Backend, ModelConfig};
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
        ]
        .iter()
        .any(Option::is_some)
    }
}

pub fn run(args: &ModelArgs) -> Result<()> {
    let config = args.apply(ModelConfig::new());
    let model = config.init(&Backend::Flex.device())?;
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
