//! The Learner's steps of [`TrainingModel`]: its training step (the loss, its gradients) and its
//! inference step (the validation pass). The model crate holds only the model, so inference
//! needs neither burn-train nor the optimizers.
//!
//! On the CPU backends a training step is split across the cores ([`BatchSplit`]): each core
//! takes an equal part of the batch through its own forward and backward pass (one autodiff
//! graph per part, each on a single-threaded pool, so the parts do not contend for threads),
//! and the parts' gradients are summed. Each part's loss is weighted by its share of the batch,
//! so the sum is the gradient of the whole batch's mean loss: the same maths as one pass over
//! the batch.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::optim::{GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::train::{ClassificationOutput, InferenceStep, TrainOutput, TrainStep};
use fashion_mixer_data::FashionMnistBatch;
use fashion_mixer_model::BatchSplit;

use crate::distributed::Distributed;
use crate::training_model::TrainingModel;

/// Mixed images' second labels: the batch's targets reversed (each image `i` of `n` is mixed
/// with image `n - 1 - i`), and the share of the loss that goes to the images' own labels.
type Partners = Option<(Tensor<1, Int>, f32)>;

impl TrainingModel {
    /// Logits, targets and the cross-entropy loss, as the Learner's metrics expect them; with
    /// `smoothing`, the targets are smoothed by that amount.
    pub fn forward_classification(
        &self,
        images: Tensor<3>,
        targets: Tensor<1, Int>,
        smoothing: f32,
    ) -> ClassificationOutput {
        classify(&self.model, images, targets, None, smoothing)
    }

    /// The training loss of `images`: the labels' (smoothed, mixed with `partners` when
    /// mixed), and the teacher's soft targets' when distilling.
    fn classify_training(
        &self,
        images: Tensor<3>,
        targets: Tensor<1, Int>,
        partners: Partners,
    ) -> ClassificationOutput {
        let teacher_input = self.distill.as_ref().map(|_| images.clone());
        let mut item = classify(&self.model, images, targets, partners, self.label_smoothing);
        if let (Some(distill), Some(images)) = (&self.distill, teacher_input) {
            item.loss = distill.blend(item.loss, images, item.output.clone());
        }
        item
    }

    /// The training step on `images` split into `split`'s parts, one per pool, each part's loss
    /// weighted by its share of `total` items (the batch's, or with other ranks the global
    /// batch's).
    fn split_step(
        &self,
        images: Tensor<3>,
        targets: Tensor<1, Int>,
        partners: Partners,
        split: BatchSplit,
        total: usize,
    ) -> TrainOutput<ClassificationOutput> {
        let items = total;
        let device = images.device();
        let results = split.run(|part| {
            // Its own copy of the parameters (same ids): one autodiff graph per part.
            let model = self.clone().fork(&device);
            let cut = |t: &Tensor<1, Int>| t.clone().narrow(0, part.start, part.len());
            let mut item = model.classify_training(
                images.clone().narrow(0, part.start, part.len()),
                cut(&targets),
                partners.as_ref().map(|(p, lambda)| (cut(p), *lambda)),
            );
            let weighted = item.loss.clone() * (part.len() as f64 / items as f64);
            let grads = GradientsParams::from_grads(weighted.backward(), &model);
            item.loss = weighted.detach();
            item.output = item.output.detach();
            (grads, item)
        });
        let mut accumulator = GradientsAccumulator::<TrainingModel>::new();
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
            .expect("at least one part");
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

/// `model`'s logits for `images`, with `targets` and the cross-entropy loss (targets smoothed
/// by `smoothing`), as the Learner's metrics expect them. Mixed images (`partners`) take
/// `lambda` of the loss against their own labels and the rest against their partners'.
fn classify(
    model: &fashion_mixer_model::Model,
    images: Tensor<3>,
    targets: Tensor<1, Int>,
    partners: Partners,
    smoothing: f32,
) -> ClassificationOutput {
    let output = model.forward(images);
    let loss = CrossEntropyLossConfig::new()
        .with_smoothing((smoothing > 0.0).then_some(smoothing))
        .init(&output.device());
    let own = loss.forward(output.clone(), targets.clone());
    let loss = match partners {
        None => own,
        Some((partners, lambda)) => {
            own * lambda + loss.forward(output.clone(), partners) * (1.0 - lambda)
        }
    };
    ClassificationOutput {
        loss,
        output,
        targets,
    }
}

impl TrainingModel {
    /// The training step of this rank of `distributed`: its slice of the batch (sized by the
    /// ranks' speeds, or equal) through [`Self::split_step`] (over its cores), its loss weighted
    /// by the slice's share of the whole batch; then the gradients summed and the logits
    /// gathered over the ranks.
    fn distributed_step(
        &self,
        distributed: &Distributed,
        images: Tensor<3>,
        targets: Tensor<1, Int>,
        partners: Partners,
    ) -> TrainOutput<ClassificationOutput> {
        let started = std::time::Instant::now();
        let items = images.dims()[0];
        let mine = distributed.training_part(items);
        let cut = |t: &Tensor<1, Int>| t.clone().narrow(0, mine.start, mine.len());
        // Nothing of this batch (a last batch smaller than the ranks): no gradient, no logits.
        let local = (!mine.is_empty()).then(|| {
            let images = images.narrow(0, mine.start, mine.len());
            let partners = partners.as_ref().map(|(p, lambda)| (cut(p), *lambda));
            let split = BatchSplit::over_cores(mine.len(), &images.device());
            self.split_step(images, cut(&targets), partners, split, items)
        });
        let classes = self.model.head.weight.dims()[1];
        distributed.reduce_training(self, local, targets, classes, mine, started)
    }
}

impl TrainStep for TrainingModel {
    type Input = FashionMnistBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: FashionMnistBatch) -> TrainOutput<ClassificationOutput> {
        let items = batch.images.dims()[0];
        let partners = batch
            .mix
            .map(|lambda| (batch.targets.clone().flip([0]), lambda));
        if let Some(distributed) = &self.distributed {
            return self.distributed_step(distributed, batch.images, batch.targets, partners);
        }
        let split = BatchSplit::over_cores(items, &batch.images.device());
        if !split.is_whole() {
            return self.split_step(batch.images, batch.targets, partners, split, items);
        }
        let item = self.classify_training(batch.images, batch.targets, partners);
        TrainOutput::new(self, item.loss.backward(), item)
    }

    /// The optimizer's step, then (when kept) the moving average's.
    fn optimize(
        self,
        optim: &mut ModuleOptimizer,
        lr: ModuleLearningRate,
        grads: GradientsParams,
    ) -> Self {
        let mut next = optim.step(lr, self, grads);
        if let Some(ema) = next.ema.take() {
            next.ema = Some(ema.update(&next.model));
        }
        next
    }
}

impl InferenceStep for TrainingModel {
    type Input = FashionMnistBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: FashionMnistBatch) -> ClassificationOutput {
        // The moving average, when kept, is the model being validated.
        let Some(distributed) = &self.distributed else {
            return classify(self.scored(), batch.images, batch.targets, None, 0.0);
        };
        // This rank's slice, its loss weighted by its share; the batch's gathered.
        let items = batch.targets.dims()[0];
        let mine = distributed.part(items);
        let local = (!mine.is_empty()).then(|| {
            let mut local = classify(
                self.scored(),
                batch.images.narrow(0, mine.start, mine.len()),
                batch.targets.clone().narrow(0, mine.start, mine.len()),
                None,
                0.0,
            );
            local.loss = local.loss * (mine.len() as f64 / items as f64);
            local
        });
        let classes = self.scored().head.weight.dims()[1];
        distributed.reduce_inference(local, batch.targets, classes)
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;

    use super::*;
    use fashion_mixer_model::{Backend, ModelConfig};

    /// The batch split into parts (3: more than this machine may have cores, so pools are
    /// shared too) gives the same loss, logits and every parameter's gradient as one pass over
    /// the whole batch, within 1e-4, with label smoothing, LayerNorm and residuals on, with
    /// mixed images (each part takes its cut of the reversed targets) and without.
    #[test]
    fn parts_give_the_whole_batch_gradient() {
        let cases = [Backend::Flex, Backend::Ndarray].map(|b| [(b, None), (b, Some(0.3))]);
        for (backend, lambda) in cases.into_iter().flatten() {
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
            let model = TrainingModel::new(config.init(&device).unwrap(), 0.1);
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
            let partners = lambda.map(|l| (targets.clone().flip([0]), l));
            let whole = {
                let item = classify(
                    &model.model,
                    images.clone(),
                    targets.clone(),
                    partners.clone(),
                    0.1,
                );
                TrainOutput::new(&model, item.loss.backward(), item)
            };
            let split = model.split_step(images, targets, partners, BatchSplit::new(50, 3), 50);
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

    /// A mixed batch's loss is its own labels' loss at lambda 1, and whatever lambda when each
    /// image's partner has its label; between, it lies between the two losses.
    #[test]
    fn the_mixed_loss_shares_the_two_labels() {
        let device = Device::flex();
        let model = fashion_mixer_model::testing::tiny().init(&device).unwrap();
        let images = Tensor::<3>::random([6, 28, 28], Distribution::Normal(0.0, 1.0), &device);
        let ints = |v: [i64; 6]| Tensor::<1, Int>::from_data(TensorData::from(v), &device);
        let (targets, palindrome) = (ints([1, 2, 3, 4, 5, 6]), ints([1, 2, 3, 3, 2, 1]));
        let loss = |targets: &Tensor<1, Int>, partners: Partners| {
            classify(&model, images.clone(), targets.clone(), partners, 0.1)
                .loss
                .into_scalar::<f32>()
        };
        let own = loss(&targets, None);
        let partners = loss(&targets.clone().flip([0]), None);
        assert!((loss(&targets, Some((targets.clone().flip([0]), 1.0))) - own).abs() < 1e-6);
        let same = loss(&palindrome, Some((palindrome.clone().flip([0]), 0.3)));
        assert!((same - loss(&palindrome, None)).abs() < 1e-5);
        let mixed = loss(&targets, Some((targets.clone().flip([0]), 0.3)));
        assert!(
            (mixed - (0.3 * own + 0.7 * partners)).abs() < 1e-5,
            "{mixed}"
        );
    }
}
