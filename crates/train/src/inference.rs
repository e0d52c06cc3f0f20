//! Reloading a saved run and predicting: no autodiff, no burn-train.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::*;
use burn::store::ModuleRecord;
use fashion_mixer_data::{FashionMnistBatcher, IMAGE_PIXELS, IMAGE_SIDE, NUM_CLASSES};
use fashion_mixer_model::{Backend, Model};

use crate::artifacts::RunDir;
use crate::config::TrainingConfig;
use crate::error::TrainError;
use crate::training::load_config;

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
    let device = backend.device();
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
}

/// The `k` most probable classes, most probable first.
pub fn top_k(probabilities: &[f32; NUM_CLASSES], k: usize) -> Vec<(usize, f32)> {
    let mut ranked: Vec<(usize, f32)> = probabilities.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked.truncate(k);
    ranked
}

/// Reads an image file (PNG or JPEG, any size or colour) as a Fashion-MNIST-like input:
/// transparent parts over white, greyscale, padded to a square with the background colour,
/// resized to 28x28, and inverted when the background is light (Fashion-MNIST's is black).
pub fn load_image(path: &Path) -> Result<[u8; IMAGE_PIXELS], TrainError> {
    let bad = |message: String| TrainError::BadImage {
        path: path.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
    let decoded = image::load_from_memory(&bytes).map_err(|e| bad(e.to_string()))?;
    if decoded.width() == 0 || decoded.height() == 0 {
        return Err(bad("the image has no pixels".into()));
    }
    Ok(prepare_image(&decoded))
}

/// The preparation [`load_image`] applies, on an already decoded image.
pub fn prepare_image(decoded: &image::DynamicImage) -> [u8; IMAGE_PIXELS] {
    use image::{GrayImage, Luma, imageops};

    let rgba = decoded.to_rgba8();
    let (w, h) = rgba.dimensions();
    let grey = GrayImage::from_fn(w, h, |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let luma = 0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b);
        let alpha = f32::from(a) / 255.0;
        Luma([(alpha * luma + (1.0 - alpha) * 255.0).round() as u8])
    });

    // The background is what the border mostly shows.
    let border: Vec<u8> = (0..w)
        .flat_map(|x| [(x, 0), (x, h - 1)])
        .chain((0..h).flat_map(|y| [(0, y), (w - 1, y)]))
        .map(|(x, y)| grey.get_pixel(x, y).0[0])
        .collect();
    let background =
        (border.iter().map(|&v| u32::from(v)).sum::<u32>() / border.len() as u32) as u8;

    let side = w.max(h);
    let mut square = GrayImage::from_pixel(side, side, Luma([background]));
    imageops::overlay(
        &mut square,
        &grey,
        i64::from((side - w) / 2),
        i64::from((side - h) / 2),
    );
    let small = imageops::resize(
        &square,
        IMAGE_SIDE as u32,
        IMAGE_SIDE as u32,
        imageops::FilterType::Triangle,
    );
    let invert = background > 127;
    let mut out = [0u8; IMAGE_PIXELS];
    for (o, p) in out.iter_mut().zip(small.pixels()) {
        *o = if invert { 255 - p.0[0] } else { p.0[0] };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, Rgb, RgbImage};

    #[test]
    fn light_photo_becomes_dark_background_bright_object() {
        // A 90x60 white picture with a dark grey rectangle in the middle.
        let img = RgbImage::from_fn(90, 60, |x, y| {
            if (30..60).contains(&x) && (15..45).contains(&y) {
                Rgb([40, 40, 40])
            } else {
                Rgb([250, 250, 250])
            }
        });
        let out = prepare_image(&DynamicImage::ImageRgb8(img));
        assert!(out[0] < 10, "corner {}", out[0]); // background now near black
        let centre = out[14 * IMAGE_SIDE + 14];
        assert!(centre > 200, "centre {centre}"); // object now bright
    }

    #[test]
    fn dark_background_is_kept() {
        let img = RgbImage::from_fn(28, 28, |x, _| Rgb([if x < 14 { 0 } else { 200 }; 3]));
        let out = prepare_image(&DynamicImage::ImageRgb8(img));
        assert!(out[0] < 5 && out[27] > 150, "{} {}", out[0], out[27]);
    }

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
    fn top_k_orders_by_probability() {
        let mut p = [0.0f32; NUM_CLASSES];
        p[3] = 0.5;
        p[7] = 0.3;
        p[1] = 0.2;
        assert_eq!(top_k(&p, 3), vec![(3, 0.5), (7, 0.3), (1, 0.2)]);
    }
}
