//! Reloading a saved run and predicting: no autodiff, no burn-train.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::*;
use burn::store::ModuleRecord;
use fashion_mixer_data::augment::shift_and_flip;
use fashion_mixer_data::picture::decode_image;
pub use fashion_mixer_data::picture::prepare_image;
use fashion_mixer_data::{FashionMnistBatcher, IMAGE_PIXELS, NUM_CLASSES};
use fashion_mixer_model::{Backend, Model};

use crate::artifacts::{RunDir, load_config};
use crate::config::TrainingConfig;
use crate::error::TrainError;

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
pub fn record_path(run: &RunDir) -> Result<PathBuf, TrainError> {
    if run.model().is_file() {
        return Ok(run.model());
    }
    match run.last_checkpoint() {
        Some(epoch) => Ok(run.checkpoint_model(epoch)),
        None => Err(TrainError::BadRecord {
            path: run.model(),
            message: "not found, and the run has no checkpoint either".into(),
        }),
    }
}

/// Loads a run's `config.json` and model record onto `backend` (default: the run's own).
pub fn load_model(run: &RunDir, backend: Option<Backend>) -> Result<LoadedModel, TrainError> {
    let config = load_config(run)?;
    let backend = backend.unwrap_or(config.backend);
    let device = backend.device()?;
    let path = record_path(run)?;
    let bad = |message: String| TrainError::BadRecord {
        path: path.clone(),
        message,
    };
    let record = ModuleRecord::load(&path).map_err(|e| bad(e.to_string()))?;
    let model = config
        .model
        .init(&device)?
        .try_load_record(record)
        .map_err(|e| {
            bad(format!(
                "{e} (was it trained with another architecture than config.json's?)"
            ))
        })?;
    Ok(LoadedModel {
        config,
        model,
        backend,
        device,
        record: path,
    })
}

impl LoadedModel {
    /// Class probabilities (softmax) for each raw image (0..=255 pixels, dark background).
    pub fn probabilities(&self, images: &[[u8; IMAGE_PIXELS]]) -> Vec<[f32; NUM_CLASSES]> {
        if images.is_empty() {
            return Vec::new();
        }
        let input = FashionMnistBatcher::default().images(images.iter(), &self.device);
        let probs = self.model.probabilities(input); // [n, classes]
        let values = probs
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .expect("probabilities are f32");
        values
            .chunks_exact(NUM_CLASSES)
            .map(|c| c.try_into().expect("NUM_CLASSES per row"))
            .collect()
    }

    /// Class probabilities for outside pictures: the mean of [`Self::probabilities`] for each
    /// image and its left-right mirror. A photo's garment may face either way, while the data
    /// set's shoes all point left; a model trained without flips (as `best` is) would otherwise
    /// misread a boot that points right.
    pub fn probabilities_either_way(
        &self,
        images: &[[u8; IMAGE_PIXELS]],
    ) -> Vec<[f32; NUM_CLASSES]> {
        let mirrored: Vec<_> = images
            .iter()
            .map(|i| shift_and_flip(i, 0, 0, true))
            .collect();
        let both = self.probabilities(&[images, &mirrored[..]].concat());
        let (plain, mirrored) = both.split_at(images.len());
        plain
            .iter()
            .zip(mirrored)
            .map(|(a, b)| std::array::from_fn(|c| 0.5 * (a[c] + b[c])))
            .collect()
    }
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
pub fn load_image(path: &Path) -> Result<[u8; IMAGE_PIXELS], TrainError> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
    decode_image(&bytes).map_err(|message| TrainError::BadImage {
        path: path.to_path_buf(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_an_image_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.png");
        std::fs::write(&path, b"this is text").unwrap();
        let msg = load_image(&path).unwrap_err().to_string();
        assert!(
            msg.contains("notes.png") && msg.contains("not a readable image"),
            "{msg}"
        );
    }

    #[test]
    fn either_way_is_the_mean_over_both_mirrors() {
        let backend = Backend::default();
        let device = backend.device().unwrap();
        let config = TrainingConfig::new();
        let loaded = LoadedModel {
            model: config.model.init(&device).unwrap(),
            config,
            backend,
            device,
            record: PathBuf::new(),
        };
        let image: [u8; IMAGE_PIXELS] = std::array::from_fn(|i| (i * 37 % 251) as u8);
        let mirror = shift_and_flip(&image, 0, 0, true);
        let plain = loaded.probabilities(&[image, mirror]);
        assert!(
            plain[0] != plain[1],
            "the model does not see the mirror as the same"
        );
        let either = loaded.probabilities_either_way(&[image, mirror]);
        for c in 0..NUM_CLASSES {
            let mean = 0.5 * (plain[0][c] + plain[1][c]);
            assert!((either[0][c] - mean).abs() < 1e-5, "{either:?} {plain:?}");
            assert!((either[1][c] - mean).abs() < 1e-5, "{either:?} {plain:?}");
        }
        assert!(loaded.probabilities_either_way(&[]).is_empty());
    }

    #[test]
    fn top_k_orders_by_probability() {
        let mut p = [0.0f32; NUM_CLASSES];
        p[3] = 0.5;
        p[7] = 0.3;
        p[1] = 0.2;
        assert_eq!(top_k(&p, 3), vec![(3, 0.5), (7, 0.3), (1, 0.2)]);
    }
}
