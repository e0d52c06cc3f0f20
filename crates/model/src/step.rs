//! The Learner's view of the model: one training step and one inference step per batch.
//! Only built with the `train` feature, so inference needs neither burn-train nor autodiff.

use burn::train::{ClassificationOutput, InferenceStep, TrainOutput, TrainStep};
use fashion_mixer_data::FashionMnistBatch;

use crate::Model;

impl TrainStep for Model {
    type Input = FashionMnistBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: FashionMnistBatch) -> TrainOutput<ClassificationOutput> {
        let item = self.forward_classification(batch.images, batch.targets, self.label_smoothing);
        TrainOutput::new(self, item.loss.backward(), item)
    }
}

impl InferenceStep for Model {
    type Input = FashionMnistBatch;
    type Output = ClassificationOutput;

    fn step(&self, batch: FashionMnistBatch) -> ClassificationOutput {
        self.forward_classification(batch.images, batch.targets, 0.0)
    }
}
