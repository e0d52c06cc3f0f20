//! Training-time augmentation: a random crop of the image padded with background (a shift of
//! up to `padding` pixels each way), a random horizontal flip, and random erasing (a rectangle
//! of the image set to background, Zhong et al. 2020). Never vertical: garments have an up and a
//! down. Reproducible: the random numbers come from the seed and a batch counter.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::mixing::{Mix, Mixing};
use crate::random::splitmix64;
use crate::{IMAGE_PIXELS, IMAGE_SIDE};

/// The image shifted by (`dx`, `dy`) pixels (right and down when positive), the uncovered part
/// background (0), then mirrored left-right when `flip`. Equals padding by |shift| on each side
/// and cropping 28x28 at the shifted offset.
pub fn shift_and_flip(
    image: &[u8; IMAGE_PIXELS],
    dx: isize,
    dy: isize,
    flip: bool,
) -> [u8; IMAGE_PIXELS] {
    let side = IMAGE_SIDE as isize;
    let mut out = [0u8; IMAGE_PIXELS];
    for y in 0..side {
        let sy = y - dy;
        if !(0..side).contains(&sy) {
            continue;
        }
        for x in 0..side {
            let sx = if flip { side - 1 - x } else { x } - dx;
            if (0..side).contains(&sx) {
                out[(y * side + x) as usize] = image[(sy * side + sx) as usize];
            }
        }
    }
    out
}

/// Draws a shift and a flip per image, from a seed and a count of the batches drawn so far.
#[derive(Debug, Clone)]
pub struct Augmenter {
    /// Largest shift each way (the crop's padding); 0 = no shifts.
    pub padding: usize,
    /// Mirror half of the images left-right.
    pub flip: bool,
    /// The probability that an image has a rectangle erased; 0 = never.
    pub erase: f64,
    /// Mixing pairs of images (mixup, cutmix); off by default.
    pub mixing: Mixing,
    seed: u64,
    batches: Arc<AtomicU64>,
}

impl Augmenter {
    /// An augmenter for `padding` and `flip`, its random numbers seeded by `seed`.
    pub fn new(padding: usize, flip: bool, seed: u64) -> Self {
        Self {
            padding,
            flip,
            erase: 0.0,
            mixing: Mixing::default(),
            seed,
            batches: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The same augmenter erasing a rectangle from an image with probability `erase`.
    pub fn with_erasing(mut self, erase: f64) -> Self {
        self.erase = erase;
        self
    }

    /// The same augmenter mixing pairs of images in each batch as `mixing` says.
    pub fn with_mixing(mut self, mixing: Mixing) -> Self {
        self.mixing = mixing;
        self
    }

    /// The same augmenter with its first `batches` batches already drawn: a run resumed after
    /// that many batches draws what the uninterrupted run would have drawn next.
    pub fn skipping(self, batches: u64) -> Self {
        self.batches.store(batches, Ordering::Relaxed);
        self
    }

    /// Whether it changes anything.
    pub fn is_active(&self) -> bool {
        self.padding > 0 || self.flip || self.erase > 0.0 || self.mixing.is_active()
    }

    /// The augmented copies of one batch of images (the next batch in the seeded sequence).
    pub fn batch<'a>(
        &self,
        images: impl Iterator<Item = &'a [u8; IMAGE_PIXELS]>,
    ) -> Vec<[u8; IMAGE_PIXELS]> {
        self.batch_and_mix(images).0
    }

    /// [`Self::batch`], and how the batch's images are to be mixed (`None`: not at all); the
    /// mixing's draws are apart from the others, so shifts, flips and erasing stay those of
    /// runs without it.
    pub fn batch_and_mix<'a>(
        &self,
        images: impl Iterator<Item = &'a [u8; IMAGE_PIXELS]>,
    ) -> (Vec<[u8; IMAGE_PIXELS]>, Option<Mix>) {
        let batch = self.batches.fetch_add(1, Ordering::Relaxed);
        let mut state = splitmix64(self.seed ^ splitmix64(batch.wrapping_add(0x5eed)));
        let mix = self.mixing.draw(splitmix64(state ^ 0x3A1C_0000_0000_0001));
        let span = 2 * self.padding as u64 + 1;
        let images = images
            .map(|image| {
                let r = splitmix64(state);
                state = r;
                let dx = (r % span) as isize - self.padding as isize;
                let dy = ((r >> 20) % span) as isize - self.padding as isize;
                let flip = self.flip && (r >> 63) == 1;
                let mut out = shift_and_flip(image, dx, dy, flip);
                if self.erase > 0.0 {
                    // Its own draws, so that shifts and flips stay those of runs without it.
                    erase(&mut out, self.erase, splitmix64(r ^ 0xE7A5_E000_0000_0001));
                }
                out
            })
            .collect();
        (images, mix)
    }
}

/// Random erasing, drawn from `r`: with probability `p`, a rectangle of 2% to 33% of the image,
/// its sides' ratio between 1:3 and 3:1, set to background (0).
fn erase(image: &mut [u8; IMAGE_PIXELS], p: f64, r: u64) {
    let unit = |bits: u64| (bits & 0xFFFF) as f64 / 65_536.0;
    if unit(r) >= p {
        return;
    }
    let side = IMAGE_SIDE as f64;
    let area = side * side * (0.02 + 0.31 * unit(r >> 16));
    let ratio = (3f64.ln() * (2.0 * unit(r >> 32) - 1.0)).exp(); // 1/3 .. 3, log-uniform
    let h = ((area * ratio).sqrt().round() as usize).clamp(1, IMAGE_SIDE);
    let w = ((area / ratio).sqrt().round() as usize).clamp(1, IMAGE_SIDE);
    let top = ((r >> 48) & 0xFF) as usize % (IMAGE_SIDE - h + 1);
    let left = ((r >> 56) & 0xFF) as usize % (IMAGE_SIDE - w + 1);
    for row in image.chunks_exact_mut(IMAGE_SIDE).skip(top).take(h) {
        row[left..left + w].fill(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered() -> [u8; IMAGE_PIXELS] {
        std::array::from_fn(|i| (i % 251) as u8 + 1)
    }

    #[test]
    fn shift_moves_pixels_and_fills_with_background() {
        let image = numbered();
        let same = shift_and_flip(&image, 0, 0, false);
        assert_eq!(same, image);
        let moved = shift_and_flip(&image, 2, 1, false);
        // Pixel (y, x) comes from (y - 1, x - 2); the first row and two columns are background.
        assert_eq!(moved[5 * 28 + 7], image[4 * 28 + 5]);
        assert!(moved[..28].iter().all(|&p| p == 0));
        assert!((0..28).all(|y| moved[y * 28] == 0 && moved[y * 28 + 1] == 0));
        let back = shift_and_flip(&image, -3, -3, false);
        assert_eq!(back[0], image[3 * 28 + 3]);
        assert_eq!(back[27 * 28 + 27], 0);
    }

    #[test]
    fn flip_is_horizontal_only() {
        let image = numbered();
        let flipped = shift_and_flip(&image, 0, 0, true);
        for y in 0..28 {
            for x in 0..28 {
                assert_eq!(flipped[y * 28 + x], image[y * 28 + 27 - x]);
            }
        }
        assert_eq!(shift_and_flip(&flipped, 0, 0, true), image);
    }

    #[test]
    fn same_seed_same_augmentations_and_both_kinds_happen() {
        let images = vec![numbered(); 64];
        let a = Augmenter::new(2, true, 7);
        let b = Augmenter::new(2, true, 7);
        let first = a.batch(images.iter());
        assert_eq!(first, b.batch(images.iter()));
        // The next batch differs from the first; another seed differs too.
        assert_ne!(first, a.batch(images.iter()));
        assert_ne!(first, Augmenter::new(2, true, 8).batch(images.iter()));
        // Over a batch: some images flipped, some shifted, some left where they were.
        let plain = numbered();
        let flipped = first
            .iter()
            .filter(|im| im[0] == plain[27] || im[0] == 0)
            .count();
        assert!(first.iter().any(|im| *im != plain));
        assert!(flipped > 0);
        // Shifts stay within the padding: a 2-pixel border at most is background.
        for im in &first {
            let blank_rows = (0..28).filter(|y| im[y * 28..y * 28 + 28].iter().all(|&p| p == 0));
            assert!(blank_rows.count() <= 2);
        }
        // Skipping batches lands where drawing them would have.
        let c = Augmenter::new(2, true, 7);
        c.batch(images.iter());
        let second = c.batch(images.iter());
        let skipped = Augmenter::new(2, true, 7).skipping(1);
        assert_eq!(skipped.batch(images.iter()), second);
        // Erasing on top draws the same shifts and flips, and blanks rectangles of some images.
        let erasing = Augmenter::new(2, true, 7).with_erasing(0.5);
        let erased = erasing.batch(images.iter());
        let mut changed = 0;
        for (with, without) in erased.iter().zip(&first) {
            // Only pixels set to background differ.
            assert!(with.iter().zip(without).all(|(a, b)| a == b || *a == 0));
            changed += usize::from(with != without);
        }
        assert!((10..=54).contains(&changed), "{changed} of 64 erased");
        assert!(erasing.is_active() && Augmenter::new(0, false, 7).with_erasing(0.1).is_active());
        // Nothing asked, nothing changed.
        let none = Augmenter::new(0, false, 7);
        assert!(!none.is_active());
        assert!(none.batch(images.iter()).iter().all(|im| *im == plain));
    }
}
