//! Fashion-MNIST's two splits as a Burn [`Dataset`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

#[cfg(feature = "burn")]
use burn::data::dataset::{Dataset, DatasetError};

use crate::error::DataError;
use crate::idx;
use crate::{IMAGE_PIXELS, IMAGE_SIDE, NUM_CLASSES};

/// One of the two splits Fashion-MNIST ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// 60,000 training images.
    Train,
    /// 10,000 test images.
    Test,
}

impl Split {
    /// Both splits, train first.
    pub const ALL: [Split; 2] = [Split::Train, Split::Test];

    /// The IDX file name stem of the images and labels files (without `.gz`).
    pub fn file_stems(self) -> [&'static str; 2] {
        match self {
            Split::Train => ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"],
            Split::Test => ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"],
        }
    }

    /// `"train"` or `"test"`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One greyscale 28x28 image (row-major bytes, 0 = black) and its class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FashionMnistItem {
    /// Pixels, row-major, 0..=255.
    pub image: [u8; IMAGE_PIXELS],
    /// Class index, 0..=9 (see [`crate::CLASS_NAMES`]).
    pub label: u8,
}

/// A split of Fashion-MNIST held in memory: one flat pixel buffer and the labels.
#[derive(Debug, Clone)]
pub struct FashionMnistDataset {
    pixels: Arc<[u8]>,
    labels: Arc<[u8]>,
}

impl FashionMnistDataset {
    /// Reads a split from the directory `dir` (which must hold its two IDX files, gzip'd or raw).
    pub fn load(dir: &Path, split: Split) -> Result<Self, DataError> {
        let [images_stem, labels_stem] = split.file_stems();
        let images_path = find_file(dir, images_stem)?;
        let labels_path = find_file(dir, labels_stem)?;
        Self::from_files(&images_path, &labels_path)
    }

    /// Reads an images file and a labels file and checks that they agree.
    pub fn from_files(images_path: &Path, labels_path: &Path) -> Result<Self, DataError> {
        let images = idx::read_images(images_path)?;
        let labels = idx::read_labels(labels_path)?;
        if images.count != labels.len() {
            return Err(DataError::CountMismatch {
                images_path: images_path.into(),
                labels_path: labels_path.into(),
                images: images.count,
                labels: labels.len(),
            });
        }
        Ok(Self {
            pixels: images.pixels.into(),
            labels: labels.into(),
        })
    }

    /// Builds a dataset from pixels (`IMAGE_PIXELS` bytes per item) and labels held in memory.
    ///
    /// # Panics
    /// If the lengths disagree or a label is not below `NUM_CLASSES`: a programming error here.
    pub fn from_raw(pixels: Vec<u8>, labels: Vec<u8>) -> Self {
        assert_eq!(pixels.len(), labels.len() * IMAGE_PIXELS, "pixels/labels");
        assert!(labels.iter().all(|&l| (l as usize) < NUM_CLASSES), "labels");
        Self {
            pixels: pixels.into(),
            labels: labels.into(),
        }
    }

    /// The first `n` items (all of them if `n` is larger): for quick runs.
    pub fn truncated(&self, n: usize) -> Self {
        let n = n.min(self.labels.len());
        Self {
            pixels: self.pixels[..n * IMAGE_PIXELS].into(),
            labels: self.labels[..n].into(),
        }
    }

    /// The same items mirrored left-right (labels unchanged): the test set a garment facing
    /// the other way would make.
    pub fn mirrored(&self) -> Self {
        let pixels: Vec<u8> = self
            .pixels
            .as_chunks::<IMAGE_SIDE>()
            .0
            .iter()
            .flat_map(|row| row.iter().rev().copied())
            .collect();
        Self {
            pixels: pixels.into(),
            labels: self.labels.clone(),
        }
    }

    /// All labels, in order.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The pixels of item `index`.
    pub fn image(&self, index: usize) -> &[u8] {
        &self.pixels[index * IMAGE_PIXELS..(index + 1) * IMAGE_PIXELS]
    }

    /// How many items each class has.
    pub fn class_counts(&self) -> [usize; NUM_CLASSES] {
        let mut counts = [0; NUM_CLASSES];
        for &l in self.labels.iter() {
            counts[l as usize] += 1;
        }
        counts
    }
}

#[cfg(feature = "burn")]
impl Dataset<FashionMnistItem> for FashionMnistDataset {
    fn get(&self, index: usize) -> Result<FashionMnistItem, DatasetError> {
        let mut image = [0u8; IMAGE_PIXELS];
        image.copy_from_slice(self.image(index));
        Ok(FashionMnistItem {
            image,
            label: self.labels[index],
        })
    }

    fn len(&self) -> usize {
        self.labels.len()
    }
}

/// The path of `stem.gz` or `stem` in `dir`, whichever exists (gzip'd preferred).
pub fn find_file(dir: &Path, stem: &str) -> Result<PathBuf, DataError> {
    let gz = dir.join(format!("{stem}.gz"));
    if gz.is_file() {
        return Ok(gz);
    }
    let raw = dir.join(stem);
    if raw.is_file() {
        return Ok(raw);
    }
    Err(DataError::io(
        gz,
        std::io::Error::new(std::io::ErrorKind::NotFound, "not found (nor without .gz)"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idx::{encode_images, encode_labels};

    fn write_split(dir: &Path, split: Split, labels: &[u8], image_count: usize) {
        let [images, labels_name] = split.file_stems();
        let pixels: Vec<u8> = (0..image_count * IMAGE_PIXELS).map(|i| i as u8).collect();
        std::fs::write(
            dir.join(images),
            encode_images(image_count, 28, 28, &pixels),
        )
        .unwrap();
        std::fs::write(dir.join(labels_name), encode_labels(labels)).unwrap();
    }

    #[test]
    fn loads_items_in_order() {
        let dir = tempfile::tempdir().unwrap();
        write_split(dir.path(), Split::Test, &[9, 0, 0, 3], 4);
        let ds = FashionMnistDataset::load(dir.path(), Split::Test).unwrap();
        assert_eq!(ds.len(), 4);
        let item = ds.get(1).unwrap();
        assert_eq!(item.label, 0);
        assert_eq!(item.image[0], (IMAGE_PIXELS % 256) as u8);
        assert_eq!(ds.class_counts()[0], 2);
        assert_eq!(ds.truncated(2).len(), 2);
        assert_eq!(ds.truncated(99).len(), 4);
    }

    /// Mirroring reverses every row of every image, keeps the labels, and twice is the start.
    #[test]
    fn mirrored_reverses_each_row() {
        let pixels: Vec<u8> = (0..2 * IMAGE_PIXELS).map(|i| (i % 251) as u8).collect();
        let ds = FashionMnistDataset::from_raw(pixels, vec![3, 9]);
        let m = ds.mirrored();
        assert_eq!(m.labels(), ds.labels());
        for item in 0..2 {
            for row in 0..IMAGE_SIDE {
                for col in 0..IMAGE_SIDE {
                    assert_eq!(
                        m.image(item)[row * IMAGE_SIDE + col],
                        ds.image(item)[row * IMAGE_SIDE + IMAGE_SIDE - 1 - col]
                    );
                }
            }
        }
        assert_eq!(m.mirrored().image(1), ds.image(1));
    }

    #[test]
    fn count_mismatch_names_both_files() {
        let dir = tempfile::tempdir().unwrap();
        write_split(dir.path(), Split::Train, &[1, 2, 3], 2);
        let msg = FashionMnistDataset::load(dir.path(), Split::Train)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("train-images-idx3-ubyte: 2 images but")
                && msg.contains("train-labels-idx1-ubyte has 3 labels"),
            "{msg}"
        );
    }
}
