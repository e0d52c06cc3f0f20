//! The all-MLP patch classifier ("Mixer") for Fashion-MNIST, as the coursework specifies it:
//! a patch stem, `depth` token-mixing/channel-mixing blocks, and a mean-pooled linear classifier.
//!
//! The same code runs on every backend: model functions take a [`Device`](burn::prelude::Device)
//! and [`Backend`] picks it from the command line.

mod backend;
mod block;
mod model;
mod stem;
#[cfg(feature = "train")]
mod step;

pub use backend::Backend;
pub use block::MixerBlock;
pub use model::{Model, ModelConfig, ModelConfigError};
pub use stem::PatchStem;
