//! The model as the Learner trains it: the classifier with its training loss's setting and,
//! when asked, the moving average of its weights and a teacher. Its steps (burn-train's
//! `TrainStep`, `InferenceStep`) are in `step.rs`. Its record is a training checkpoint's, which
//! the run crate loads for inference (`fashion_mixer_run::inference::load_record`).

use burn::prelude::*;
use fashion_mixer_model::Model;
use fashion_mixer_run::TrainingConfig;

use crate::distill::Distill;
use crate::distributed::Distributed;
use crate::ema::Ema;

/// The model as the Learner trains it: the classifier, its training loss and, when on, the
/// exponential moving average of its weights.
#[derive(Module, Debug)]
pub struct TrainingModel {
    /// The classifier.
    pub model: Model,
    /// Label smoothing of the training loss (0 = plain cross-entropy); the test loss is always
    /// plain.
    pub label_smoothing: f32,
    /// The moving average of `model`'s weights: validated and saved in its place when present.
    pub ema: Option<Ema>,
    /// The teacher whose soft targets join the training loss, when distilling (not recorded).
    #[module(skip)]
    pub distill: Option<Distill>,
    /// The other ranks, when training is spread over processes (not recorded).
    #[module(skip)]
    pub distributed: Option<Distributed>,
}

impl TrainingModel {
    /// The model `config` describes, freshly initialised on `device` (an autodiff one), with
    /// the training loss's label smoothing. On flex the model runs its own kernels
    /// (`fashion_mixer_model::Kernels::for_device`).
    pub fn init(
        config: &TrainingConfig,
        device: &Device,
    ) -> Result<Self, fashion_mixer_model::ModelConfigError> {
        Ok(Self::new(
            config.model.init(device)?,
            config.label_smoothing as f32,
        ))
    }

    /// `model`, trained with label smoothing `alpha` (0 = none).
    pub fn new(model: Model, label_smoothing: f32) -> Self {
        Self {
            model,
            label_smoothing,
            ema: None,
            distill: None,
            distributed: None,
        }
    }

    /// The same, keeping a moving average of the weights with `decay` per step (from the
    /// current weights); `decay` 0 keeps none.
    pub fn with_ema(mut self, decay: f64) -> Self {
        self.ema = (decay > 0.0).then(|| Ema::new(&self.model, decay as f32));
        self
    }

    /// The same, each step over this rank's slice of the batch and its gradients summed over
    /// the ranks of `distributed`.
    pub fn with_distributed(mut self, distributed: Option<Distributed>) -> Self {
        self.distributed = distributed;
        self
    }

    /// The same, learning from `distill`'s teacher too.
    pub fn with_distill(mut self, distill: Option<Distill>) -> Self {
        self.distill = distill;
        self
    }

    /// The model to score and to save: the moving average when there is one.
    pub fn scored(&self) -> &Model {
        self.ema.as_ref().map_or(&self.model, |ema| &ema.model)
    }

    /// [`Self::scored`], taken.
    pub fn into_scored(self) -> Model {
        match self.ema {
            Some(ema) => ema.model,
            None => self.model,
        }
    }
}
