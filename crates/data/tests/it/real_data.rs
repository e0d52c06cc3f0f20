//! Reads the real Fashion-MNIST when it is installed (Debian's `dataset-fashion-mnist`, or
//! `$FASHION_MNIST_DIR`, or `datasets/fashion-mnist/`); when it is not, says so and passes (fails under CI).

use burn::data::dataset::Dataset;
use fashion_mixer_data::{CLASS_NAMES, FashionMnistDataset, Split};

fn data_dir() -> Option<std::path::PathBuf> {
    fashion_mixer_data::testing::real_data_dir()
}

#[test]
fn real_data_has_the_published_shape() {
    let Some(dir) = data_dir() else { return };
    let train = FashionMnistDataset::load(&dir, Split::Train).unwrap();
    let test = FashionMnistDataset::load(&dir, Split::Test).unwrap();
    assert_eq!(train.len(), 60_000);
    assert_eq!(test.len(), 10_000);
    let first = train.get(0).unwrap();
    assert_eq!(first.label, 9);
    assert_eq!(CLASS_NAMES[first.label as usize], "Ankle boot");
    assert_eq!(train.class_counts(), [6_000; 10]);
    assert_eq!(test.class_counts(), [1_000; 10]);
}
