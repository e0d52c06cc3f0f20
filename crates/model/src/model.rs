//! The whole classifier and its configuration.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use fashion_mixer_data::IMAGE_SIDE;

use crate::block::MixerBlock;
use crate::stem::PatchStem;

/// The architecture's hyperparameters; the defaults are the coursework model (143,786 parameters).
#[derive(Config, Debug, PartialEq)]
pub struct ModelConfig {
    /// K: the side of a square patch; must divide 28 (K=7 gives 16 patches).
    #[config(default = 7)]
    pub patch_size: usize,
    /// d: features per patch.
    #[config(default = 128)]
    pub dim: usize,
    /// Hidden width of the token-mixing MLP (across patches).
    #[config(default = 64)]
    pub token_hidden: usize,
    /// Hidden width of the channel-mixing MLP (across features).
    #[config(default = 256)]
    pub channel_hidden: usize,
    /// N: the number of blocks.
    #[config(default = 2)]
    pub depth: usize,
    /// Number of classes.
    #[config(default = 10)]
    pub num_classes: usize,
}

/// A [`ModelConfig`] that describes no valid model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelConfigError {
    /// K does not tile the image.
    #[error(
        "patch size {patch_size} does not divide the image side {image_side} (use one of 1, 2, 4, 7, 14, 28)"
    )]
    PatchSize {
        /// The patch size given.
        patch_size: usize,
        /// The image side.
        image_side: usize,
    },
    /// A width or count that must be positive is zero.
    #[error("{field} must be at least 1")]
    Zero {
        /// The field's name.
        field: &'static str,
    },
}

impl ModelConfig {
    /// Checks the configuration describes a model that can be built.
    pub fn validate(&self) -> Result<(), ModelConfigError> {
        for (field, value) in [
            ("dim", self.dim),
            ("token_hidden", self.token_hidden),
            ("channel_hidden", self.channel_hidden),
            ("num_classes", self.num_classes),
        ] {
            if value == 0 {
                return Err(ModelConfigError::Zero { field });
            }
        }
        if self.patch_size == 0 || !IMAGE_SIDE.is_multiple_of(self.patch_size) {
            return Err(ModelConfigError::PatchSize {
                patch_size: self.patch_size,
                image_side: IMAGE_SIDE,
            });
        }
        Ok(())
    }

    /// N_p: the number of patches per image.
    pub fn num_patches(&self) -> usize {
        let per_side = IMAGE_SIDE / self.patch_size.max(1);
        per_side * per_side
    }

    /// Builds the model with freshly initialised weights on `device`.
    pub fn init(&self, device: &Device) -> Result<Model, ModelConfigError> {
        self.validate()?;
        let patches = self.num_patches();
        Ok(Model {
            stem: PatchStem::new(self.patch_size, self.dim, device),
            blocks: (0..self.depth)
                .map(|_| {
                    MixerBlock::new(
                        patches,
                        self.dim,
                        self.token_hidden,
                        self.channel_hidden,
                        device,
                    )
                })
                .collect(),
            head: LinearConfig::new(self.dim, self.num_classes).init(device),
        })
    }
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// The classifier: stem, `depth` Mixer blocks, mean over patches, linear head (logits).
#[derive(Module, Debug)]
pub struct Model {
    /// Patches -> features.
    pub stem: PatchStem,
    /// The backbone.
    pub blocks: Vec<MixerBlock>,
    /// Softmax regression's linear part: dim -> classes (the softmax is in the loss).
    pub head: Linear,
}

impl Model {
    /// Class logits: [batch, 28, 28] -> [batch, num_classes].
    ///
    /// Activations are kept patch-major ([patches, batch, dim]) so that every layer is one 2-D
    /// matrix product; [`Model::forward_reference`] is the same model written batch-major,
    /// transposes and all, and the tests check the two agree.
    pub fn forward(&self, images: Tensor<3>) -> Tensor<2> {
        let mut x = self.stem.forward_token_major(images); // [patches, batch, dim]
        for block in &self.blocks {
            x = block.forward(x); // [patches, batch, dim]
        }
        let [_, batch, dim] = x.dims();
        let pooled = x.mean_dim(0).reshape([batch, dim]); // mean over patches: [batch, dim]
        self.head.forward(pooled) // [batch, classes]
    }

    /// The spec's equations as written, one image after another: [batch, 28, 28] ->
    /// [batch, num_classes]. Slower than [`Model::forward`]; kept as its reference.
    pub fn forward_reference(&self, images: Tensor<3>) -> Tensor<2> {
        let mut x = self.stem.forward(images); // [batch, patches, dim]
        for block in &self.blocks {
            x = block.forward_reference(x); // [batch, patches, dim]
        }
        let [batch, _, dim] = x.dims();
        let pooled = x.mean_dim(1).reshape([batch, dim]); // [batch, dim]
        self.head.forward(pooled) // [batch, classes]
    }

    /// Class probabilities (softmax of the logits): [batch, 28, 28] -> [batch, num_classes].
    pub fn probabilities(&self, images: Tensor<3>) -> Tensor<2> {
        burn::tensor::activation::softmax(self.forward(images), 1)
    }

    /// Logits, targets and the cross-entropy loss, as the Learner's metrics expect them.
    #[cfg(feature = "train")]
    pub fn forward_classification(
        &self,
        images: Tensor<3>,
        targets: Tensor<1, Int>,
    ) -> burn::train::ClassificationOutput {
        let output = self.forward(images);
        let loss = burn::nn::loss::CrossEntropyLossConfig::new()
            .init(&output.device())
            .forward(output.clone(), targets.clone());
        burn::train::ClassificationOutput {
            loss,
            output,
            targets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_coursework_model() {
        let model = ModelConfig::new().init(&Device::flex()).unwrap();
        assert_eq!(model.num_params(), 143_786);
        assert_eq!(ModelConfig::new().num_patches(), 16);
    }

    #[test]
    fn output_shapes_for_each_patch_size() {
        let device = Device::flex();
        for (k, patches) in [(4, 49), (7, 16), (14, 4)] {
            let config = ModelConfig::new()
                .with_patch_size(k)
                .with_dim(8)
                .with_token_hidden(5)
                .with_channel_hidden(6);
            assert_eq!(config.num_patches(), patches);
            let model = config.init(&device).unwrap();
            let images = Tensor::<3>::zeros([3, 28, 28], &device);
            assert_eq!(model.stem.forward(images.clone()).dims(), [3, patches, 8]);
            assert_eq!(model.forward(images).dims(), [3, 10], "K={k}");
        }
    }

    #[test]
    fn bad_patch_size_is_an_error_not_a_panic() {
        for k in [0, 5, 9, 29] {
            let err = ModelConfig::new()
                .with_patch_size(k)
                .init(&Device::flex())
                .unwrap_err();
            assert!(matches!(err, ModelConfigError::PatchSize { .. }));
            assert!(
                err.to_string()
                    .contains(&format!("patch size {k} does not divide"))
            );
        }
        let err = ModelConfig::new().with_dim(0).validate().unwrap_err();
        assert_eq!(err.to_string(), "dim must be at least 1");
    }

    #[test]
    fn patches_are_row_major_tiles() {
        let device = Device::flex();
        let stem = PatchStem::new(14, 2, &device);
        let pixels: Vec<f32> = (0..784).map(|i| i as f32).collect();
        let images = Tensor::<3>::from_data(TensorData::new(pixels, [1, 28, 28]), &device);
        let patches = stem.patches(images);
        assert_eq!(patches.dims(), [1, 4, 196]);
        let v = patches.into_data().try_to_vec::<f32>().unwrap();
        // Patch 1 is the top-right tile: its first pixel is (row 0, col 14), its second
        // row starts at (row 1, col 14).
        assert_eq!(v[196], 14.0);
        assert_eq!(v[196 + 14], 28.0 + 14.0);
        // Patch 2 is the bottom-left tile: (row 14, col 0).
        assert_eq!(v[2 * 196], 14.0 * 28.0);
    }

    #[test]
    fn probabilities_sum_to_one() {
        let device = Device::flex();
        let model = ModelConfig::new().init(&device).unwrap();
        let p = model.probabilities(Tensor::<3>::ones([2, 28, 28], &device));
        let sums = p.sum_dim(1).into_data().try_to_vec::<f32>().unwrap();
        assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-5), "{sums:?}");
    }

    /// The fast patch-major forward against the spec written out batch-major: logits and the
    /// stem's and head's weight gradients agree within 1e-4, for several patch sizes and depths.
    #[test]
    fn fast_forward_matches_reference() {
        use burn::tensor::Distribution;
        for backend in [crate::Backend::Flex, crate::Backend::Ndarray] {
            for (k, depth) in [(7, 2), (4, 1), (14, 3)] {
                let device = backend.device();
                device.seed(11);
                let device = device.autodiff();
                let config = ModelConfig::new().with_patch_size(k).with_depth(depth);
                let model = config.init(&device).unwrap();
                let images =
                    Tensor::<3>::random([5, 28, 28], Distribution::Normal(0.0, 1.0), &device);
                let run = |logits: Tensor<2>| {
                    let grads = (logits.clone() * logits.clone()).sum().backward();
                    [
                        logits.into_data(),
                        model.stem.linear.weight.grad(&grads).unwrap().into_data(),
                        model.head.weight.grad(&grads).unwrap().into_data(),
                    ]
                };
                let fast = run(model.forward(images.clone()));
                let reference = run(model.forward_reference(images));
                for (a, b) in fast.iter().zip(&reference) {
                    crate::testing::assert_close(a, b, &format!("{backend} K={k}"));
                }
            }
        }
    }
}
