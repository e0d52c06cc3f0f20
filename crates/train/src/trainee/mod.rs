//! The model as the Learner trains it: the classifier with its training loss's setting. Its
//! steps (burn-train's `TrainStep`, `InferenceStep`) are in `step.rs`; loading a training
//! checkpoint needs only this.

pub mod kernels;
pub mod step;

use burn::prelude::*;
use fashion_mixer_model::Model;

/// The model as the Learner trains it: the classifier and its training loss.
#[derive(Module, Debug)]
pub struct Trainee {
    /// The classifier.
    pub model: Model,
    /// Label smoothing of the training loss (0 = plain cross-entropy); the test loss is always
    /// plain.
    pub label_smoothing: f32,
}

impl Trainee {
    /// `model`, trained with label smoothing `alpha` (0 = none). Its LayerNorms record one
    /// autodiff operation each on flex, and so do its hidden layers' bias + ReLU ([`crate::trainee::kernels`]).
    pub fn new(model: Model, label_smoothing: f32) -> Self {
        crate::trainee::kernels::install();
        Self {
            model,
            label_smoothing,
        }
    }
}
