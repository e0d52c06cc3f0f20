//! The stem: KxK patches (non-overlapping by default, or overlapping with a stride below K),
//! each flattened and mapped to a `dim`-feature vector.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

use crate::kernels::Kernels;

/// How many `patch`-pixel patches, `stride` pixels apart, fit along a `side`-pixel edge.
pub fn patches_per_side(side: usize, patch: usize, stride: usize) -> usize {
    side.saturating_sub(patch) / stride.max(1) + 1
}

/// Splits each image into KxK patches (row-major over the patch grid, pixels row-major within
/// a patch) and applies one linear layer `K*K -> dim` to every patch.
#[derive(Module, Debug)]
pub struct PatchStem {
    /// K: the side of a patch.
    pub patch_size: usize,
    /// The step between neighbouring patches: K for non-overlapping tiles, less to overlap.
    pub stride: usize,
    /// `Linear(K*K, dim)`, shared by all patches.
    pub linear: Linear,
    /// The code that runs the patch-major product (chosen for the device it was built on).
    #[module(skip)]
    pub kernels: Kernels,
}

impl PatchStem {
    /// A stem for `patch_size` x `patch_size` tiles (stride = K) and `dim` features.
    pub fn new(patch_size: usize, dim: usize, device: &Device) -> Self {
        Self::with_stride(patch_size, patch_size, dim, device)
    }

    /// A stem whose patches start every `stride` pixels (overlapping when `stride < patch_size`).
    pub fn with_stride(patch_size: usize, stride: usize, dim: usize, device: &Device) -> Self {
        Self {
            patch_size,
            stride,
            linear: LinearConfig::new(patch_size * patch_size, dim).init(device),
            kernels: Kernels::for_device(device),
        }
    }

    /// Patches per row (and per column) of a `side`-pixel image.
    pub fn per_side(&self, side: usize) -> usize {
        patches_per_side(side, self.patch_size, self.stride)
    }

    /// The flattened patches of `images` [batch, H, W]: [batch, patches, K*K].
    pub fn patches(&self, images: Tensor<3>) -> Tensor<3> {
        let [batch, height, width] = images.dims();
        let k = self.patch_size;
        let (rows, cols) = (self.per_side(height), self.per_side(width));
        if self.stride == k {
            // Tiles: a reshape and one transpose, no index arithmetic.
            return images
                .reshape([batch, rows, k, cols, k]) // [batch, rows, k, cols, k]
                .swap_dims(2, 3) // [batch, rows, cols, k, k]
                .reshape([batch, rows * cols, k * k]); // [batch, patches, k*k]
        }
        // Overlapping: gather each patch's pixels by index from the flattened image.
        let mut index = Vec::with_capacity(rows * cols * k * k);
        for r in 0..rows {
            for c in 0..cols {
                for y in 0..k {
                    for x in 0..k {
                        index.push(((r * self.stride + y) * width + c * self.stride + x) as i64);
                    }
                }
            }
        }
        let device = images.device();
        let index =
            Tensor::<1, Int>::from_data(TensorData::new(index, [rows * cols * k * k]), &device);
        images
            .reshape([batch, height * width])
            .select(1, index)
            .reshape([batch, rows * cols, k * k])
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
        if self.stride != k {
            return self.patches(images).swap_dims(0, 1);
        }
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
        let x = self
            .kernels
            .linear(patches.reshape([p * b, kk]), &self.linear);
        x.reshape([p, b, dim])
    }
}
