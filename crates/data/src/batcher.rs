//! Turns items into one normalised image tensor and one target tensor per batch.

use burn::data::dataloader::batcher::Batcher;
use burn::prelude::*;

use crate::augment::Augmenter;
use crate::dataset::FashionMnistItem;
use crate::{IMAGE_PIXELS, IMAGE_SIDE};

/// Mean pixel value of the Fashion-MNIST training set, on the [0, 1] scale.
pub const MEAN: f32 = 0.2860;
/// Standard deviation of the Fashion-MNIST training set's pixels, on the [0, 1] scale.
pub const STD: f32 = 0.3530;

/// A batch: `images` `[batch, 28, 28]`, normalised; `targets` `[batch]`, class indices.
#[derive(Clone, Debug)]
pub struct FashionMnistBatch {
    /// Normalised images, `[batch, 28, 28]`.
    pub images: Tensor<3>,
    /// Class indices, `[batch]`.
    pub targets: Tensor<1, Int>,
}

/// Scales pixels to [0, 1], then normalises them with [`MEAN`] and [`STD`]; a training
/// batcher ([`FashionMnistBatcher::augmented`]) first shifts and flips the images at random.
///
/// The whole batch is assembled in one flat buffer and becomes one tensor: one allocation and
/// one host-to-device copy per batch, not one per image.
#[derive(Clone, Debug)]
pub struct FashionMnistBatcher {
    /// The normalised value of each of the 256 pixel values.
    table: [f32; 256],
    /// Augmentation (training batches only).
    augment: Option<Augmenter>,
}

impl Default for FashionMnistBatcher {
    fn default() -> Self {
        Self {
            table: std::array::from_fn(|v| normalise(v as u8)),
            augment: None,
        }
    }
}

/// One pixel value (0..=255) as the model sees it.
pub fn normalise(pixel: u8) -> f32 {
    (f32::from(pixel) / 255.0 - MEAN) / STD
}

impl FashionMnistBatcher {
    /// A batcher that augments every batch with `augmenter` (for the training split only).
    pub fn augmented(augmenter: Augmenter) -> Self {
        Self {
            augment: augmenter.is_active().then_some(augmenter),
            ..Self::default()
        }
    }

    /// Normalises raw images (each `IMAGE_PIXELS` bytes) into one `[n, 28, 28]` tensor.
    pub fn images<'a>(
        &self,
        images: impl ExactSizeIterator<Item = &'a [u8; IMAGE_PIXELS]>,
        device: &Device,
    ) -> Tensor<3> {
        let n = images.len();
        let mut buffer = Vec::with_capacity(n * IMAGE_PIXELS);
        for image in images {
            buffer.extend(image.iter().map(|&p| self.table[p as usize]));
        }
        let data = TensorData::new(buffer, [n, IMAGE_SIDE, IMAGE_SIDE]);
        Tensor::from_data(data, device)
    }
}

impl Batcher<FashionMnistItem, FashionMnistBatch> for FashionMnistBatcher {
    fn batch(&self, items: Vec<FashionMnistItem>, device: &Device) -> FashionMnistBatch {
        let images = match &self.augment {
            Some(augment) => {
                let augmented = augment.batch(items.iter().map(|item| &item.image));
                self.images(augmented.iter(), device)
            }
            None => self.images(items.iter().map(|item| &item.image), device),
        };
        let targets: Vec<i64> = items.iter().map(|item| i64::from(item.label)).collect();
        let targets = Tensor::from_data(TensorData::new(targets, [items.len()]), device);
        FashionMnistBatch { images, targets }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_is_normalised_and_shaped() {
        let mut a = [0u8; IMAGE_PIXELS];
        a[0] = 255;
        let b = [73u8; IMAGE_PIXELS];
        let items = vec![
            FashionMnistItem { image: a, label: 9 },
            FashionMnistItem { image: b, label: 2 },
        ];
        let device = Device::flex();
        let batch = FashionMnistBatcher::default().batch(items, &device);
        assert_eq!(batch.images.dims(), [2, 28, 28]);
        let values = batch.images.into_data().try_to_vec::<f32>().unwrap();
        assert!((values[0] - (1.0 - MEAN) / STD).abs() < 1e-6);
        assert!((values[1] - (-MEAN / STD)).abs() < 1e-6);
        assert!((values[IMAGE_PIXELS] - (73.0 / 255.0 - MEAN) / STD).abs() < 1e-6);
        let targets = batch
            .targets
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>();
        assert_eq!(targets.unwrap(), vec![9, 2]);
    }
}
