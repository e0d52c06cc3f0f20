//! Reloading a saved run and predicting: no burn-train, no optimizers.

use std::path::{Path, PathBuf};

use burn::module::{Module, Param};
use burn::prelude::*;
use burn::store::ModuleRecord;
use fashion_mixer_data::augment::shift_and_flip;
use fashion_mixer_data::picture::decode_image;
pub use fashion_mixer_data::picture::prepare_image;
use fashion_mixer_data::{FashionMnistBatcher, IMAGE_PIXELS, NUM_CLASSES};
use fashion_mixer_model::{Backend, Model, fpu};

use crate::config::TrainingConfig;
use crate::error::RunError;
use crate::run_dir::{RunDir, load_config};

/// A trained model, ready for inference.
#[derive(Debug)]
pub struct LoadedModel {
    /// The run's configuration.
    pub config: TrainingConfig,
    /// The weights.
    pub model: Model,
    /// The backend it runs on.
    pub backend: Backend,
    /// Where the model runs.
    pub device: Device,
    /// The record the weights came from.
    pub record: PathBuf,
}

/// The record to load: `model.bpk`, or for a run that has not finished, its newest checkpoint.
pub fn record_path(run: &RunDir) -> Result<PathBuf, RunError> {
    if run.model().is_file() {
        return Ok(run.model());
    }
    match run.last_checkpoint() {
        Some(epoch) => Ok(run.checkpoint_model(epoch)),
        None => Err(RunError::BadRecord {
            path: run.model(),
            message: "not found, and the run has no checkpoint either".into(),
        }),
    }
}

/// A training checkpoint's model record as the train crate's `TrainingModel` lays it out: the model
/// under `model` and, when the run keeps a moving average of the weights, the average under
/// `ema` (a test in the train crate loads its checkpoints through this layout).
#[derive(Module, Debug)]
struct Checkpoint {
    model: Model,
    ema: Option<Averaged>,
}

/// The moving average in a [`Checkpoint`]: the averaged model and its count of updates.
#[derive(Module, Debug)]
struct Averaged {
    model: Model,
    updates: Param<Tensor<1>>,
}

impl Checkpoint {
    /// `model` in the layout, with an average of the same architecture when `averaged`.
    fn of(model: Model, averaged: bool) -> Self {
        let updates = || {
            let device = model.stem.linear.weight.val().device();
            Param::from_tensor(Tensor::zeros([1], &device))
        };
        let ema = averaged.then(|| Averaged {
            model: model.clone(),
            updates: updates(),
        });
        Self { model, ema }
    }

    /// The model to use: the average, when there is one.
    fn into_scored(self) -> Model {
        self.ema.map_or(self.model, |ema| ema.model)
    }
}

/// `model` with the weights of the Burn record at `path` (made for the same architecture): a
/// finished run's `model.bpk` (the model's own record) or a training checkpoint (the model one
/// level down, in the training crate's layout).
pub fn load_record(model: Model, path: &Path) -> Result<Model, RunError> {
    let bad = |message: String| RunError::BadRecord {
        path: path.to_path_buf(),
        message,
    };
    let record = ModuleRecord::load(path).map_err(|e| bad(e.to_string()))?;
    match model.clone().try_load_record(record.clone()) {
        Ok(model) => Ok(model),
        // A checkpoint: the same tensors, one level down, with or without a moving average of
        // the weights (which then is the model).
        Err(error) => Checkpoint::of(model.clone(), false)
            .try_load_record(record.clone())
            .or_else(|_| Checkpoint::of(model, true).try_load_record(record))
            .map(Checkpoint::into_scored)
            .map_err(|_| {
                bad(format!(
                    "{error} (was it trained with another architecture than config.json's?)"
                ))
            }),
    }
}

/// The model of the run in `source` (its `config.json` says the architecture) on `device`,
/// without gradients: a teacher to distil from.
pub fn load_teacher(source: &Path, device: &Device) -> Result<Model, RunError> {
    let run = RunDir::new(source);
    let config = load_config(&run)?;
    let model = load_record(config.model.init(device)?, &record_path(&run)?)?;
    Ok(model.no_grad())
}

/// Most images in one forward pass of [`LoadedModel::predict`] (the `best` model's activations
/// for 1,024 images take about 50 MB a layer).
pub const PREDICT_BATCH: usize = 1024;

/// Loads a run's `config.json` and model record onto `backend` (default: the run's own).
pub fn load_model(run: &RunDir, backend: Option<Backend>) -> Result<LoadedModel, RunError> {
    let config = load_config(run)?;
    let backend = backend.unwrap_or(config.backend);
    let device = backend.device()?;
    let path = record_path(run)?;
    let model = load_record(config.model.init(&device)?, &path)?;
    Ok(LoadedModel {
        config,
        model,
        backend,
        device,
        record: path,
    })
}

impl LoadedModel {
    /// The logits and class probabilities (softmax) of each raw image (0..=255 pixels, dark
    /// background), in forward passes of at most [`PREDICT_BATCH`] images (one for a batch of
    /// that size or less), so that any number of images fits in memory.
    pub fn predict(&self, images: &[[u8; IMAGE_PIXELS]]) -> Vec<Prediction> {
        images
            .chunks(PREDICT_BATCH)
            .flat_map(|batch| self.forward(batch))
            .collect()
    }

    /// One forward pass over `images`, on threads that flush subnormals ([`fpu::flushed`]).
    fn forward(&self, images: &[[u8; IMAGE_PIXELS]]) -> Vec<Prediction> {
        let values = fpu::flushed(|| {
            let input = FashionMnistBatcher::default().images(images.iter(), &self.device);
            self.model
                .forward(input) // [n, classes]
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .expect("logits are f32")
        });
        let (rows, _) = values.as_chunks::<NUM_CLASSES>();
        rows.iter()
            .map(|&logits| Prediction {
                probabilities: softmax(&logits),
                logits,
            })
            .collect()
    }

    /// Class probabilities (softmax) for each raw image.
    pub fn probabilities(&self, images: &[[u8; IMAGE_PIXELS]]) -> Vec<[f32; NUM_CLASSES]> {
        self.predict(images)
            .into_iter()
            .map(|p| p.probabilities)
            .collect()
    }

    /// [`Self::predict`] for outside pictures: each image and its left-right mirror, the two
    /// probabilities (and logits) averaged. A photo's garment may face either way, while the
    /// data set's shoes all point left: a model trained without flips (as `coursework` is)
    /// would otherwise misread a boot that points right.
    pub fn predict_either_way(&self, images: &[[u8; IMAGE_PIXELS]]) -> Vec<Prediction> {
        let mirrored: Vec<_> = images
            .iter()
            .map(|i| shift_and_flip(i, 0, 0, true))
            .collect();
        let both = self.predict(&[images, &mirrored[..]].concat());
        let (plain, mirrored) = both.split_at(images.len());
        let mean = |a: &[f32; NUM_CLASSES], b: &[f32; NUM_CLASSES]| {
            std::array::from_fn(|c| 0.5 * (a[c] + b[c]))
        };
        plain
            .iter()
            .zip(mirrored)
            .map(|(a, b)| Prediction {
                logits: mean(&a.logits, &b.logits),
                probabilities: mean(&a.probabilities, &b.probabilities),
            })
            .collect()
    }
}

/// What the model says about one image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// The ten logits (the linear head's output).
    pub logits: [f32; NUM_CLASSES],
    /// Their softmax.
    pub probabilities: [f32; NUM_CLASSES],
}

/// The softmax of `logits` (in f64, so it sums to 1 within f32 rounding).
fn softmax(logits: &[f32; NUM_CLASSES]) -> [f32; NUM_CLASSES] {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp = logits.map(|l| (f64::from(l - max)).exp());
    let sum: f64 = exp.iter().sum();
    exp.map(|e| (e / sum) as f32)
}

/// The `k` most probable classes, most probable first.
pub fn top_k(probabilities: &[f32; NUM_CLASSES], k: usize) -> Vec<(usize, f32)> {
    let mut ranked: Vec<(usize, f32)> = probabilities.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked.truncate(k);
    ranked
}

/// Reads an image file (PNG or JPEG, any size or colour) as a Fashion-MNIST-like input:
/// see [`fashion_mixer_data::picture::prepare_image`].
pub fn load_image(path: &Path) -> Result<[u8; IMAGE_PIXELS], RunError> {
    let bytes = std::fs::read(path).map_err(|e| RunError::io(path, e))?;
    decode_image(&bytes).map_err(|source| RunError::BadImage {
        path: path.to_path_buf(),
        source,
    })
}
