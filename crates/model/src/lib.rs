//! The all-MLP patch classifier ("Mixer") for Fashion-MNIST, as the coursework specifies it:
//! a patch stem, `depth` token-mixing/channel-mixing blocks, and a mean-pooled linear classifier.
//!
//! The same code runs on every backend: model functions take a [`Device`](burn::prelude::Device)
//! and [`Backend`] picks it from the command line.

// The architecture: the patch stem, the blocks, the classifier.
mod block;
mod model;
mod stem;
// What it computes with on the CPU: its kernels (forward and backward), the batch split over
// the cores, and the threads' floating-point mode.
mod batch_split;
pub mod fpu;
pub mod kernels;
// Where it runs.
mod device;
// A setting's name that is none of its choices.
mod unknown_name;

pub use batch_split::BatchSplit;
pub use block::{Activation, MixerBlock, MixerBlockConfig};
pub use device::{
    Backend, DeviceError, WGPU_START_TIMEOUT, gpus, kernel_cache_file, tuning, wgpu_adapter,
};
pub use kernels::Kernels;
pub use model::{Model, ModelConfig, ModelConfigError};
pub use stem::{PatchStem, patches_per_side};
pub use unknown_name::UnknownName;

/// A helper for the workspace's tests: tensors equal within the tolerance they all use.
pub mod testing {
    use burn::tensor::TensorData;

    /// A model small enough for tests to build and run in milliseconds: the default
    /// architecture with d 8, token hidden 4, channel hidden 8.
    pub fn tiny() -> crate::ModelConfig {
        crate::ModelConfig::new()
            .with_dim(8)
            .with_token_hidden(4)
            .with_channel_hidden(8)
    }

    /// Asserts `fast` equals `reference` within `1e-4` of `reference`'s largest magnitude
    /// (at least 1); `what` names the pair in the message.
    pub fn assert_close(fast: &TensorData, reference: &TensorData, what: &str) {
        let a = fast.clone().try_to_vec::<f32>().unwrap();
        let b = reference.clone().try_to_vec::<f32>().unwrap();
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(
            worst <= 1e-4 * scale,
            "{what}: max diff {worst} (scale {scale})"
        );
    }
}
