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
    /// Mixed images (mixup, cutmix): each image `i` of `n` carries this share of its own label
    /// and the rest of image `n - 1 - i`'s (`targets` reversed). `None`: not mixed.
    pub mix: Option<f32>,
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
        let data = TensorData::new(self.normalised(images), [n, IMAGE_SIDE, IMAGE_SIDE]);
        Tensor::from_data(data, device)
    }

    /// Raw images normalised into one flat buffer, one image after another.
    fn normalised<'a>(
        &self,
        images: impl ExactSizeIterator<Item = &'a [u8; IMAGE_PIXELS]>,
    ) -> Vec<f32> {
        let mut buffer = Vec::with_capacity(images.len() * IMAGE_PIXELS);
        for image in images {
            buffer.extend(image.iter().map(|&p| self.table[p as usize]));
        }
        buffer
    }
}

impl Batcher<FashionMnistItem, FashionMnistBatch> for FashionMnistBatcher {
    fn batch(&self, items: Vec<FashionMnistItem>, device: &Device) -> FashionMnistBatch {
        let (images, mix) = match &self.augment {
            Some(augment) => {
                let (augmented, mix) = augment.batch_and_mix(items.iter().map(|item| &item.image));
                let mut buffer = self.normalised(augmented.iter());
                if let Some(mix) = &mix {
                    mix.apply(&mut buffer);
                }
                (buffer, mix.map(|mix| mix.lambda))
            }
            None => (self.normalised(items.iter().map(|item| &item.image)), None),
        };
        let n = items.len();
        let images =
            Tensor::from_data(TensorData::new(images, [n, IMAGE_SIDE, IMAGE_SIDE]), device);
        let targets: Vec<i64> = items.iter().map(|item| i64::from(item.label)).collect();
        let targets = Tensor::from_data(TensorData::new(targets, [n]), device);
        FashionMnistBatch {
            images,
            targets,
            mix,
        }
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

    /// A mixing batcher mixes the normalised images as the augmenter's draw says and hands
    /// the share on with the batch; the same seed draws the same mixing.
    #[test]
    fn a_mixing_batch_carries_its_share() {
        use crate::augment::Augmenter;
        use crate::mixing::Mixing;
        let items: Vec<_> = (0..4u8)
            .map(|i| FashionMnistItem {
                image: [i * 60; IMAGE_PIXELS],
                label: i,
            })
            .collect();
        let mixing = Mixing {
            mixup: 0.4,
            cutmix: 0.0,
        };
        let batcher = |seed| {
            FashionMnistBatcher::augmented(Augmenter::new(0, false, seed).with_mixing(mixing))
        };
        let device = Device::flex();
        let batch = batcher(5).batch(items.clone(), &device);
        let lambda = batch.mix.expect("mixed");
        assert_eq!(batcher(5).batch(items.clone(), &device).mix, Some(lambda));
        let values = batch.images.into_data().try_to_vec::<f32>().unwrap();
        // Image 0 (pixels 0) with image 3 (pixels 180).
        let want = lambda * normalise(0) + (1.0 - lambda) * normalise(180);
        assert!(
            (values[0] - want).abs() < 1e-5,
            "{} against {want}",
            values[0]
        );
        assert_eq!(
            FashionMnistBatcher::default().batch(items, &device).mix,
            None
        );
    }
}
