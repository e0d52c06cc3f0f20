//! Distillation (Hinton et al. 2015): a trained teacher's class probabilities, softened by a
//! temperature, as a second target of the training loss. The teacher sees the same training
//! batch (augmented and mixed as the student's) in its forward pass only; its weights never
//! change and are not part of the student's checkpoints (a resumed run loads it again).

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use fashion_mixer_model::Model;

/// The teacher and how much its soft targets weigh.
#[derive(Debug, Clone)]
pub struct Distill {
    /// The trained model whose probabilities the student learns (no gradients).
    pub teacher: Model,
    /// The soft targets' share of the loss, 0..=1; the labels' loss has the rest.
    pub weight: f32,
    /// The temperature dividing both models' logits in the soft loss (above 1: softer).
    pub temperature: f32,
}

impl Distill {
    /// The distillation loss of `logits` (the student's, for `images`): the Kullback-Leibler
    /// divergence of the student's probabilities at the temperature from the teacher's, times
    /// its square (so the gradients' scale does not depend on it), averaged over the batch; 0
    /// when the two agree.
    pub fn soft_loss(&self, images: Tensor<3>, logits: Tensor<2>) -> Tensor<1> {
        let t = self.temperature;
        let teacher = log_softmax(self.teacher.forward(images).detach() / t, 1);
        let student = log_softmax(logits / t, 1);
        (teacher.clone().exp() * (teacher - student))
            .sum_dim(1)
            .mean()
            * (t * t)
    }

    /// `hard` (the labels' loss) and the soft loss of `logits`, each by its share.
    pub fn blend(&self, hard: Tensor<1>, images: Tensor<3>, logits: Tensor<2>) -> Tensor<1> {
        hard * (1.0 - self.weight) + self.soft_loss(images, logits) * self.weight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The soft loss is 0 when the student's logits are the teacher's (or shifted: the same
    /// probabilities), positive otherwise; weight 0 leaves the labels' loss as it was.
    #[test]
    fn the_soft_loss_pulls_towards_the_teacher() {
        let device = Device::flex();
        let config = fashion_mixer_model::testing::tiny();
        let teacher = config.init(&device).unwrap();
        let images = Tensor::<3>::random(
            [5, 28, 28],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            &device,
        );
        let distill = Distill {
            teacher: teacher.clone(),
            weight: 0.5,
            temperature: 2.0,
        };
        let same = teacher.forward(images.clone());
        let loss = |logits: Tensor<2>| {
            distill
                .soft_loss(images.clone(), logits)
                .into_scalar::<f32>()
        };
        assert!(loss(same.clone()).abs() < 1e-6);
        assert!(loss(same.clone() + 1.0).abs() < 1e-5);
        assert!(loss(same.clone() * 3.0) > 1e-4);
        assert!(loss(same.clone().neg()) > 1e-4);
        let hard = Tensor::<1>::from_floats([0.7], &device);
        let off = Distill {
            weight: 0.0,
            ..distill.clone()
        };
        let kept = off.blend(hard.clone(), images, same).into_scalar::<f32>();
        assert!((kept - 0.7).abs() < 1e-6);
    }
}
