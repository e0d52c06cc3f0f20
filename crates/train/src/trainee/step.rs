//! The Learner's view of the model: [`Trainee`], the model with its training loss (label
//! smoothing), and its training and inference steps. The model crate holds only the model, so
//! inference needs neither burn-train nor autodiff.
//!
//! On the CPU backends a training step is split across the cores: each core takes an equal
//! share of the batch through its own forward and backward pass (one autodiff graph per share,
//! each on a single-threaded pool, so the shares do not contend for threads), and the shares'
//! gradients are summed. Each share's loss is weighted by its share of the batch, so the sum is
//! the gradient of the whole batch's mean loss: the same maths as one pass over the batch.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;
use burn::train::{ClassificationOutput, InferenceStep, TrainOutput, TrainStep};
use fashion_mixer_data::FashionMnistBatch;
use fashion_mixer_model::shares;

pub use crate::trainee::Trainee;

impl Trainee {
    /// Logits, targets and the cross-entropy loss, as the Learner's metrics expect them; with
    /// `smoothing`, the targets are smoothed by that amount.
    pub fn forward_classification(
        &self,
        images: Tensor<3>,
        targets: Tensor<1, Int>,
        smoothing: f32,
    ) -> ClassificationOutput {
        let output = self.model.forward(images);
        let loss = CrossEntropyLossConfig::new()
            .with_smoothing((smoothing > 0.0).then_some(smoothing))
            .init(&output.device())
            .forward(output.clone(), targets.clone());
        ClassificationOutput {
            loss,
            output,
            targets,
        }
    }

    /// The training step on `images` split into `shares` parts, one per pool.
    fn sharded_step(
        &self,
        images: Tensor<3>,
        targets: Tensor<1, Int>,
        count: usize,
    ) -> TrainOutput<ClassificationOutput> {
        let items = images.dims()[0];
        let device = images.device();
        let results = shares::run(items, count, |start, end| {
            // Its own copy of the parameters (same ids): one autodiff graph per share.
            let model = self.clone().fork(&device);
            let mut item = model.forward_classification(
                images.clone().narrow(0, start, end - start),
                targets.clone().narrow(0, start, end - start),
                model.label_smoothing,
            );
            let weighted = item.loss.clone() * ((end - start) as f64 / items as f64);
            let grads = GradientsParams::from_grads(weighted.backward(), &model);
            item.loss = weighted.detach();
            item.output = item.output.detach();
            (grads, item)
        });
        let mut accumulator = GradientsAccumulator::<Trainee>::new();
        let (mut losses, mut outputs, mut targets) = (Vec::new(), Vec::new(), Vec::new());
        for (grads, item) in results {
            accumulator.accumulate(self, grads);
            losses.push(item.loss);
            outputs.push(item.output);
            targets.push(item.targets);
        }
        let loss = losses
            .into_iter()
            .reduce(|a, b| a + b)
            .expect("at least one share");
        TrainOutput {
            grads: accumulator.grads(),
            item: ClassificationOutput {
                loss,
                output: Tensor::cat(outputs, 0),
                targets: Tensor::cat(targets, 0),
            },
        }
    }
}

/// Whether `device` is a CPU backend with autodiff (the batch then splits over the cores).
#[allow(deprecated)] // Device::ndarray: the backend stays a choice while Burn ships it.
fn on_cpu(device: &Device) -> bool {
    [Device::flex(), Device::ndarray()]
        .into_iter()
        .any(|cpu| cpu.autodiff() == *device)
}

impl TrainStep for Trainee {
    type Input = FashionMnistBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: FashionMnistBatch) -> TrainOutput<ClassificationOutput> {
        let count = if on_cpu(&batch.images.device()) {
            shares::count(batch.images.dims()[0])
        } else {
            1
        };
        if count > 1 {
            return self.sharded_step(batch.images, batch.targets, count);
        }
        let item = self.forward_classification(batch.images, batch.targets, self.label_smoothing);
        TrainOutput::new(self, item.loss.backward(), item)
    }
}

impl InferenceStep for Trainee {
    type Input = FashionMnistBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: FashionMnistBatch) -> ClassificationOutput {
        self.forward_classification(batch.images, batch.targets, 0.0)
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;

    use super::*;
    use fashion_mixer_model::{Backend, ModelConfig};

    /// The batch split into shares (3: more than this machine may have cores, so pools are
    /// shared too) gives the same loss, logits and every parameter's gradient as one pass over
    /// the whole batch, within 1e-4, with label smoothing, LayerNorm and residuals on.
    #[test]
    fn shares_give_the_whole_batch_gradient() {
        for backend in [Backend::Flex, Backend::Ndarray] {
            let device = backend.device().unwrap();
            device.seed(3);
            let device = device.autodiff();
            let config = ModelConfig::new()
                .with_patch_size(4)
                .with_dim(16)
                .with_token_hidden(8)
                .with_channel_hidden(24)
                .with_residual(true)
                .with_layer_norm(true);
            let model = Trainee::new(config.init(&device).unwrap(), 0.1);
            let images = Tensor::<3>::random([50, 28, 28], Distribution::Normal(0.0, 1.0), &device);
            let targets = Tensor::<1, Int>::from_data(
                TensorData::from(
                    (0..50)
                        .map(|i| (i * 7 % 10) as i64)
                        .collect::<Vec<_>>()
                        .as_slice(),
                ),
                &device,
            );
            let whole = {
                let item = model.forward_classification(images.clone(), targets.clone(), 0.1);
                TrainOutput::new(&model, item.loss.backward(), item)
            };
            let split = model.sharded_step(images, targets, 3);
            let grad = |out: &TrainOutput<ClassificationOutput>, i: usize| {
                let block = &model.model.blocks[i % 2];
                [
                    out.grads.get::<2>(model.model.stem.linear.weight.id),
                    out.grads.get::<2>(block.w1.weight.id),
                    out.grads.get::<2>(block.w4.weight.id),
                    out.grads.get::<2>(model.model.head.weight.id),
                ]
                .map(|g| g.expect("every parameter has a gradient").into_data())
            };
            let (a, b) = (grad(&whole, 0), grad(&split, 0));
            for (i, (a, b)) in a.iter().zip(&b).enumerate() {
                fashion_mixer_model::testing::assert_close(
                    a,
                    b,
                    &format!("{backend} gradient {i}"),
                );
            }
            assert_eq!(whole.grads.len(), split.grads.len());
            fashion_mixer_model::testing::assert_close(
                &whole.item.loss.into_data(),
                &split.item.loss.into_data(),
                "loss",
            );
            fashion_mixer_model::testing::assert_close(
                &whole.item.output.into_data(),
                &split.item.output.into_data(),
                "logits",
            );
            assert_eq!(
                whole.item.targets.into_data(),
                split.item.targets.into_data()
            );
        }
    }
}
