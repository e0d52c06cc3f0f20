//! The product photos in `tests/images/` (drawn for these tests: garments on light backgrounds,
//! several sizes, PNG and JPEG; `labels.csv` names each one's class) become inputs like the data set's: a dark background, a bright
//! garment filling the frame, and an overall brightness within the range of the data set's own
//! images.

use std::path::PathBuf;

use burn::data::dataset::Dataset;
use fashion_mixer_data::{FashionMnistDataset, IMAGE_PIXELS, IMAGE_SIDE, Split};
use fashion_mixer_run::inference::load_image;

fn images_dir() -> PathBuf {
    fashion_mixer_data::testing::workspace_root().join("crates/data/tests/images")
}

/// The test images and the class each shows, from `tests/images/labels.csv`.
fn images() -> Vec<(String, String)> {
    let csv = std::fs::read_to_string(images_dir().join("labels.csv")).unwrap();
    csv.lines()
        .skip(1)
        .map(|line| {
            let (file, class) = line.split_once(',').unwrap();
            (file.to_string(), class.to_string())
        })
        .collect()
}

fn mean(image: &[u8; IMAGE_PIXELS]) -> f64 {
    image.iter().map(|&p| f64::from(p)).sum::<f64>() / IMAGE_PIXELS as f64
}

/// The 1st and 99th percentiles of the test images' mean pixel values, when the real data set
/// is installed; otherwise bounds measured on it once (test split: 16.4 and 145.5).
fn brightness_range() -> (f64, f64) {
    let root = fashion_mixer_data::testing::workspace_root();
    let dirs = fashion_mixer_data::locate::search_dirs(None, &root);
    let Ok(dir) = fashion_mixer_data::locate::locate(&dirs) else {
        eprintln!("real Fashion-MNIST not installed: using the recorded brightness range");
        return (16.4, 145.5);
    };
    let test = FashionMnistDataset::load(&dir, Split::Test).unwrap();
    let mut means: Vec<f64> = (0..test.len())
        .map(|i| mean(&test.get(i).expect("in range").image))
        .collect();
    means.sort_by(f64::total_cmp);
    let at = |q: f64| means[((means.len() - 1) as f64 * q) as usize];
    (at(0.01), at(0.99))
}

#[test]
fn product_photos_become_data_set_like_inputs() {
    let _rng = super::flex_rng();
    let (low, high) = brightness_range();
    let images = images();
    assert!(images.len() >= 6);
    for (file, class) in images {
        let image = load_image(&images_dir().join(&file)).unwrap();
        let what = format!("{file} ({class})");
        // The background is dark as in the data set: most corners, and a good part of the
        // frame (the garment fills the frame along its longer side, so it may touch edges).
        let side = IMAGE_SIDE;
        let corners = [0, side - 1, (side - 1) * side, side * side - 1].map(|i| image[i]);
        assert!(
            corners.iter().filter(|&&p| p < 40).count() >= 2,
            "{what}: corners {corners:?}"
        );
        let dark = image.iter().filter(|&&p| p < 40).count();
        assert!(
            dark * 100 >= 15 * IMAGE_PIXELS,
            "{what}: only {dark} dark pixels"
        );
        // The garment is bright and spans the frame along its longer side.
        let bright = |p: u8| p > 80;
        let rows = (0..side).filter(|&r| (0..side).any(|c| bright(image[r * side + c])));
        let cols = (0..side).filter(|&c| (0..side).any(|r| bright(image[r * side + c])));
        let (rows, cols) = (rows.count(), cols.count());
        assert!(
            rows.max(cols) >= 26,
            "{what}: spans {rows} rows, {cols} columns"
        );
        // Overall brightness as the data set's images.
        let m = mean(&image);
        assert!(
            (low..=high).contains(&m),
            "{what}: mean {m:.1} outside {low:.1}..{high:.1}"
        );
    }
}
