//! The whole classifier and its configuration.

use burn::nn::{LayerNorm, Linear, LinearConfig};
use burn::prelude::*;
use fashion_mixer_data::IMAGE_SIDE;

use crate::batch_split::BatchSplit;
use crate::block::{Activation, MixerBlock, MixerBlockConfig};
use crate::kernels::{Kernels, layer_norm};
use crate::stem::{PatchStem, patches_per_side};

/// The architecture's hyperparameters; the defaults are the coursework model (143,786
/// parameters), and every option beyond the coursework is off.
#[derive(Config, Debug, PartialEq)]
pub struct ModelConfig {
    /// K: the side of a square patch. Without `patch_stride` it must divide 28 (K=7 gives 16
    /// patches).
    #[config(default = 7)]
    pub patch_size: usize,
    /// Step between patches; below K the patches overlap. `None`: K (tiles). With a stride S,
    /// (28 - K) must be a multiple of S, and there are ((28 - K) / S + 1)^2 patches.
    #[config(default = "None")]
    pub patch_stride: Option<usize>,
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
    /// Residual connections around both halves of every block.
    #[config(default = false)]
    pub residual: bool,
    /// LayerNorm before each half of every block, and before the pooling.
    #[config(default = false)]
    pub layer_norm: bool,
    /// g, the non-linearity of every hidden layer.
    #[config(default = "Activation::Relu")]
    pub activation: Activation,
    /// Dropout probability on the hidden units of every MLP, while training; 0 = none.
    #[config(default = 0.0)]
    pub dropout: f64,
}

/// A [`ModelConfig`] that describes no valid model.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
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
    /// The stride is 0, above K, or does not step evenly across the image.
    #[error(
        "patch stride {stride} does not fit patch size {patch_size} on a {image_side}-pixel side (need 1 <= stride <= patch size and (side - patch size) a multiple of stride)"
    )]
    PatchStride {
        /// The stride given.
        stride: usize,
        /// The patch size given.
        patch_size: usize,
        /// The image side.
        image_side: usize,
    },
    /// The dropout probability is not in [0, 1).
    #[error("dropout must be at least 0 and below 1, got {0}")]
    Dropout(f64),
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
        let k = self.patch_size;
        match self.patch_stride {
            None if k == 0 || !IMAGE_SIDE.is_multiple_of(k) => {
                return Err(ModelConfigError::PatchSize {
                    patch_size: k,
                    image_side: IMAGE_SIDE,
                });
            }
            Some(stride)
                if k == 0
                    || k > IMAGE_SIDE
                    || stride == 0
                    || stride > k
                    || !(IMAGE_SIDE - k).is_multiple_of(stride) =>
            {
                return Err(ModelConfigError::PatchStride {
                    stride,
                    patch_size: k,
                    image_side: IMAGE_SIDE,
                });
            }
            _ => {}
        }
        if !(self.dropout.is_finite() && (0.0..1.0).contains(&self.dropout)) {
            return Err(ModelConfigError::Dropout(self.dropout));
        }
        Ok(())
    }

    /// The step between patches: `patch_stride`, or K.
    pub fn stride(&self) -> usize {
        self.patch_stride.unwrap_or(self.patch_size)
    }

    /// N_p: the number of patches per image (of a valid configuration).
    pub fn num_patches(&self) -> usize {
        let per_side = patches_per_side(IMAGE_SIDE, self.patch_size, self.stride());
        per_side * per_side
    }

    /// Builds the model with freshly initialised weights on `device`, its kernels chosen for it
    /// ([`Kernels::for_device`]).
    pub fn init(&self, device: &Device) -> Result<Model, ModelConfigError> {
        self.validate()?;
        let block = MixerBlockConfig::new(
            self.num_patches(),
            self.dim,
            self.token_hidden,
            self.channel_hidden,
        )
        .with_layer_norm(self.layer_norm)
        .with_residual(self.residual)
        .with_activation(self.activation)
        .with_dropout(self.dropout);
        Ok(Model {
            stem: PatchStem::with_stride(self.patch_size, self.stride(), self.dim, device),
            blocks: (0..self.depth).map(|_| block.init(device)).collect(),
            norm: self
                .layer_norm
                .then(|| layer_norm::config(self.dim).init(device)),
            head: LinearConfig::new(self.dim, self.num_classes).init(device),
            kernels: Kernels::for_device(device),
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
    /// LayerNorm before the pooling (option `layer_norm`).
    pub norm: Option<LayerNorm>,
    /// Softmax regression's linear part: dim -> classes (the softmax is in the loss).
    pub head: Linear,
    /// The code that runs the final norm (the blocks and the stem hold their own choice).
    #[module(skip)]
    kernels: Kernels,
}

impl Model {
    /// The kernels the model runs (see [`Kernels`]).
    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// The same model running `kernels` in every module (Burn's operations, say, to compare a
    /// training step with and without this crate's).
    pub fn with_kernels(mut self, kernels: Kernels) -> Self {
        self.kernels = kernels;
        self.stem.kernels = kernels;
        for block in &mut self.blocks {
            block.kernels = kernels;
        }
        self
    }

    /// Class logits: [batch, 28, 28] -> [batch, num_classes].
    ///
    /// Activations are kept patch-major ([patches, batch, dim]) so that every layer is one 2-D
    /// matrix product; [`Model::forward_reference`] is the same model written batch-major,
    /// transposes and all, and the tests check the two agree.
    pub fn forward(&self, images: Tensor<3>) -> Tensor<2> {
        // On a CPU backend, the batch is split over the cores.
        let split = BatchSplit::over_cores(images.dims()[0], &images.device());
        if split.is_whole() {
            return self.forward_whole(images);
        }
        let logits = split
            .run(|items| self.forward_whole(images.clone().narrow(0, items.start, items.len())));
        Tensor::cat(logits, 0)
    }

    /// [`Model::forward`] on the whole batch at once.
    fn forward_whole(&self, images: Tensor<3>) -> Tensor<2> {
        let mut x = self.stem.forward_token_major(images); // [patches, batch, dim]
        for block in &self.blocks {
            x = block.forward(x); // [patches, batch, dim]
        }
        let x = self.normed(x);
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
        let x = self.normed(x);
        let [batch, _, dim] = x.dims();
        let pooled = x.mean_dim(1).reshape([batch, dim]); // [batch, dim]
        self.head.forward(pooled) // [batch, classes]
    }

    /// The final LayerNorm, when the model has one (over the last dim, so for either layout).
    fn normed(&self, x: Tensor<3>) -> Tensor<3> {
        match &self.norm {
            Some(norm) => self.kernels.layer_norm(norm, x),
            None => x,
        }
    }

    /// Class probabilities (softmax of the logits): [batch, 28, 28] -> [batch, num_classes].
    pub fn probabilities(&self, images: Tensor<3>) -> Tensor<2> {
        burn::tensor::activation::softmax(self.forward(images), 1)
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
                let device = backend.device().unwrap();
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

    /// Inference split over the cores (as many as there are, and 3 parts explicitly) gives
    /// the logits of one pass over the whole batch.
    #[test]
    fn shared_inference_matches_one_pass() {
        use burn::tensor::Distribution;
        let device = Device::flex();
        device.seed(8);
        let model = ModelConfig::new().init(&device).unwrap();
        let images = Tensor::<3>::random([70, 28, 28], Distribution::Normal(0.0, 1.0), &device);
        let whole = model.forward_whole(images.clone()).into_data();
        let split = Tensor::cat(
            BatchSplit::new(70, 3).run(|items| {
                model.forward_whole(images.clone().narrow(0, items.start, items.len()))
            }),
            0,
        );
        crate::testing::assert_close(&split.into_data(), &whole, "3 parts");
        crate::testing::assert_close(&model.forward(images).into_data(), &whole, "forward");
    }

    /// Every option at once (dropout aside: it is random) still gives the same numbers in the
    /// fast and the reference arrangement, gradients included.
    #[test]
    fn options_keep_fast_and_reference_equal() {
        use burn::tensor::Distribution;
        let device = Device::flex();
        device.seed(5);
        let device = device.autodiff();
        let config = ModelConfig::new()
            .with_patch_size(7)
            .with_patch_stride(Some(3))
            .with_residual(true)
            .with_layer_norm(true)
            .with_activation(Activation::Gelu)
            .with_dim(16)
            .with_token_hidden(8)
            .with_channel_hidden(24)
            .with_depth(2);
        let model = config.init(&device).unwrap();
        let images = Tensor::<3>::random([3, 28, 28], Distribution::Normal(0.0, 1.0), &device);
        let run = |logits: Tensor<2>| {
            let grads = (logits.clone() * logits.clone()).sum().backward();
            let block = &model.blocks[0];
            let gamma = |norm: &Option<LayerNorm>| {
                let norm = norm.as_ref().unwrap();
                norm.gamma.grad(&grads).unwrap().into_data()
            };
            [
                logits.into_data(),
                model.stem.linear.weight.grad(&grads).unwrap().into_data(),
                block.w1.weight.grad(&grads).unwrap().into_data(),
                gamma(&block.norm1),
                gamma(&model.norm),
            ]
        };
        let fast = run(model.forward(images.clone()));
        let reference = run(model.forward_reference(images));
        for (i, (a, b)) in fast.iter().zip(&reference).enumerate() {
            crate::testing::assert_close(a, b, &format!("tensor {i}"));
        }
    }

    /// Each switch changes what it should: parameter counts (norms add 2*dim each), patch
    /// counts (stride), and values (residual, GELU), while the default stays the coursework.
    #[test]
    fn each_switch_has_its_effect() {
        let device = Device::flex();
        let base = ModelConfig::new();
        let params = |c: &ModelConfig| c.init(&device).unwrap().num_params();
        // LayerNorm: two per block and one before pooling, each gamma + beta.
        assert_eq!(
            params(&base.clone().with_layer_norm(true)),
            143_786 + (2 * 2 + 1) * 2 * 128
        );
        // Residual, GELU, dropout: no parameters.
        for c in [
            base.clone().with_residual(true),
            base.clone().with_activation(Activation::Gelu),
            base.clone().with_dropout(0.5),
        ] {
            assert_eq!(params(&c), 143_786, "{c:?}");
        }
        // Overlapping patches: 7x7 every 3 pixels is 8 x 8 = 64 patches.
        let overlapping = base.clone().with_patch_stride(Some(3));
        assert_eq!(overlapping.num_patches(), 64);
        let model = overlapping.init(&device).unwrap();
        let images = Tensor::<3>::zeros([2, 28, 28], &device);
        assert_eq!(model.stem.forward(images.clone()).dims(), [2, 64, 128]);
        assert_eq!(model.forward(images).dims(), [2, 10]);
        // A stride equal to K is the tiling.
        assert_eq!(base.clone().with_patch_stride(Some(7)).num_patches(), 16);

        // Residual and GELU change the outputs of the same weights.
        device.seed(1);
        let plain = base.init(&device).unwrap();
        let images = Tensor::<3>::random(
            [2, 28, 28],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let logits = |m: &Model| {
            m.forward(images.clone())
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        let reference = logits(&plain);
        let mut residual = plain.clone();
        residual.blocks.iter_mut().for_each(|b| b.residual = true);
        let mut gelu = plain.clone();
        gelu.blocks.iter_mut().for_each(|b| b.gelu = true);
        for (name, m) in [("residual", &residual), ("gelu", &gelu)] {
            let other = logits(m);
            let diff = reference
                .iter()
                .zip(&other)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(diff > 1e-3, "{name} changed nothing");
        }
    }

    /// Overlapping patches hold the right pixels: patch (r, c) starts at (r*S, c*S).
    #[test]
    fn overlapping_patches_start_every_stride_pixels() {
        let device = Device::flex();
        let stem = PatchStem::with_stride(4, 2, 1, &device);
        let pixels: Vec<f32> = (0..784).map(|i| i as f32).collect();
        let images = Tensor::<3>::from_data(TensorData::new(pixels, [1, 28, 28]), &device);
        let patches = stem.patches(images.clone());
        assert_eq!(patches.dims(), [1, 13 * 13, 16]);
        let v = patches.into_data().try_to_vec::<f32>().unwrap();
        // Patch 1: row 0, starting at column 2; its second row starts at (1, 2).
        assert_eq!(v[16], 2.0);
        assert_eq!(v[16 + 4], 28.0 + 2.0);
        // Patch 13: the second patch row, starting at (2, 0); last patch ends at (27, 27).
        assert_eq!(v[13 * 16], 2.0 * 28.0);
        assert_eq!(*v.last().unwrap(), 783.0);
        // Patch-major holds the same patches.
        let major = stem.patches_token_major(images).swap_dims(0, 1).into_data();
        assert_eq!(major.try_to_vec::<f32>().unwrap(), v);
    }

    /// Dropout acts only where a backward pass is possible (training), never at inference.
    #[test]
    fn dropout_only_while_training() {
        let device = Device::flex();
        device.seed(2);
        let config = ModelConfig::new().with_dropout(0.5);
        let images = Tensor::<3>::ones([2, 28, 28], &device);
        let model = config.init(&device).unwrap();
        let a = model.forward(images.clone()).into_data();
        let b = model.forward(images.clone()).into_data();
        assert_eq!(a, b, "inference is deterministic");
        let trained = config.init(&device.clone().autodiff()).unwrap();
        let images = images.to_device(&device.autodiff());
        let a = trained.forward(images.clone()).into_data();
        let b = trained.forward(images).into_data();
        assert_ne!(a, b, "training drops units at random");
    }

    #[test]
    fn bad_stride_and_dropout_are_errors() {
        for (k, s) in [(7, 0), (7, 8), (7, 4), (29, 1)] {
            let err = ModelConfig::new()
                .with_patch_size(k)
                .with_patch_stride(Some(s))
                .validate()
                .unwrap_err();
            assert!(
                matches!(err, ModelConfigError::PatchStride { .. }),
                "{k} {s}"
            );
        }
        for p in [1.0, -0.1, f64::NAN] {
            let err = ModelConfig::new().with_dropout(p).validate().unwrap_err();
            assert!(err.to_string().starts_with("dropout must be"), "{err}");
        }
    }
}
