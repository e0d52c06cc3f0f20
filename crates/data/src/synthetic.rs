//! Small, learnable stand-ins for Fashion-MNIST that tests write as IDX files: class `k` is a
//! bright horizontal band at a height of its own, on noise.

use std::path::Path;

use crate::dataset::Split;
use crate::error::DataError;
use crate::idx::{encode_images, encode_labels};
use crate::{IMAGE_PIXELS, IMAGE_SIDE, NUM_CLASSES};

/// `n` images (labels cycling through the classes) as `(pixels, labels)`.
pub fn images(n: usize, seed: u32) -> (Vec<u8>, Vec<u8>) {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state % 64) as u8
    };
    let mut pixels = Vec::with_capacity(n * IMAGE_PIXELS);
    let labels: Vec<u8> = (0..n).map(|i| (i % NUM_CLASSES) as u8).collect();
    for &label in &labels {
        let band = 2 + 2 * label as usize..5 + 2 * label as usize;
        for row in 0..IMAGE_SIDE {
            for _ in 0..IMAGE_SIDE {
                let base = if band.contains(&row) { 180 } else { 0 };
                pixels.push(base + noise());
            }
        }
    }
    (pixels, labels)
}

/// Writes the four raw IDX files of a synthetic data set (`n_train` and `n_test` items) into
/// `dir`, which is created if needed.
pub fn write_idx_dir(dir: &Path, n_train: usize, n_test: usize) -> Result<(), DataError> {
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    for (split, n, seed) in [(Split::Train, n_train, 1), (Split::Test, n_test, 2)] {
        let (pixels, labels) = images(n, seed);
        let [images_name, labels_name] = split.file_stems();
        let side = IMAGE_SIDE as u32;
        for (name, bytes) in [
            (images_name, encode_images(n, side, side, &pixels)),
            (labels_name, encode_labels(&labels)),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, bytes).map_err(|e| DataError::io(&path, e))?;
        }
    }
    Ok(())
}
