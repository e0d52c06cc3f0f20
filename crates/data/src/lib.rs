//! Fashion-MNIST for Burn: an IDX reader (gzip'd or raw), the two splits as a Burn
//! [`Dataset`](burn::data::dataset::Dataset), a
//! [`Batcher`](burn::data::dataloader::batcher::Batcher) that normalises whole batches at once,
//! the code that finds or fetches the files, and the preparation of outside pictures
//! ([`picture`]).

pub mod augment;
#[cfg(feature = "burn")]
mod batcher;
mod dataset;
mod error;
#[cfg(feature = "fetch")]
pub mod fetch;
pub mod idx;
pub mod locate;
pub mod mixing;
pub mod picture;
mod random;
pub mod synthetic;
pub mod testing;

#[cfg(feature = "burn")]
pub use batcher::{FashionMnistBatch, FashionMnistBatcher, MEAN, STD, normalise};
pub use dataset::{FashionMnistDataset, FashionMnistItem, Split, find_file};
pub use error::DataError;

/// Height and width of every image.
pub const IMAGE_SIDE: usize = 28;
/// Pixels per image.
pub const IMAGE_PIXELS: usize = IMAGE_SIDE * IMAGE_SIDE;
/// Number of classes.
pub const NUM_CLASSES: usize = 10;
/// The class names, indexed by label.
pub const CLASS_NAMES: [&str; NUM_CLASSES] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];
