//! The stem: non-overlapping KxK patches, each flattened and mapped to a `dim`-feature vector.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

/// Splits each image into KxK patches (row-major over the patch grid, pixels row-major within
/// a patch) and applies one linear layer `K*K -> dim` to every patch.
#[derive(Module, Debug)]
pub struct PatchStem {
    /// K: the side of a patch.
    pub patch_size: usize,
    /// `Linear(K*K, dim)`, shared by all patches.
    pub linear: Linear,
}

impl PatchStem {
    /// A stem for `patch_size` x `patch_size` patches and `dim` features.
    pub fn new(patch_size: usize, dim: usize, device: &Device) -> Self {
        Self {
            patch_size,
            linear: LinearConfig::new(patch_size * patch_size, dim).init(device),
        }
    }

    /// The flattened patches of `images` [batch, H, W] (H and W multiples of K):
    /// [batch, (H/K)*(W/K), K*K].
    pub fn patches(&self, images: Tensor<3>) -> Tensor<3> {
        let [batch, height, width] = images.dims();
        let k = self.patch_size;
        let (rows, cols) = (height / k, width / k);
        images
            .reshape([batch, rows, k, cols, k]) // [batch, rows, k, cols, k]
            .swap_dims(2, 3) // [batch, rows, cols, k, k]
            .reshape([batch, rows * cols, k * k]) // [batch, patches, k*k]
    }

    /// X = patches · W_stem: [batch, H, W] -> [batch, patches, dim].
    pub fn forward(&self, images: Tensor<3>) -> Tensor<3> {
        self.linear.forward(self.patches(images))
    }

    /// The same patches, patch-major: [batch, H, W] -> [patches, batch, K*K] (contiguous), so
    /// that the blocks can mix tokens and channels with single 2-D matrix products.
    pub fn patches_token_major(&self, images: Tensor<3>) -> Tensor<3> {
        let [batch, height, width] = images.dims();
        let k = self.patch_size;
        let (rows, cols) = (height / k, width / k);
        images
            .reshape([batch, rows, k, cols, k])
            .permute([1, 3, 0, 2, 4]) // [rows, cols, batch, k, k]
            .reshape([rows * cols, batch, k * k])
    }

    /// X for every image, patch-major: [batch, H, W] -> [patches, batch, dim].
    pub fn forward_token_major(&self, images: Tensor<3>) -> Tensor<3> {
        let patches = self.patches_token_major(images);
        let [p, b, kk] = patches.dims();
        let dim = self.linear.weight.dims()[1];
        self.linear
            .forward(patches.reshape([p * b, kk]))
            .reshape([p, b, dim])
    }
}
