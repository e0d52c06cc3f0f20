//! The saved model put to use: pictures read, batches in order, the mirrored mean, the top classes.

use std::path::PathBuf;

use fashion_mixer_data::augment::shift_and_flip;
use fashion_mixer_data::{IMAGE_PIXELS, NUM_CLASSES};
use fashion_mixer_model::Backend;
use fashion_mixer_run::TrainingConfig;
use fashion_mixer_run::inference::{LoadedModel, PREDICT_BATCH, Prediction, load_image, top_k};

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

/// A randomly initialised coursework model on the default backend.
fn untrained() -> LoadedModel {
    let backend = Backend::default();
    let device = backend.device().unwrap();
    let config = TrainingConfig::new();
    LoadedModel {
        model: config.model.init(&device).unwrap(),
        config,
        backend,
        device,
        record: PathBuf::new(),
    }
}

#[test]
fn more_images_than_a_batch_keep_their_order() {
    let loaded = untrained();
    let images: Vec<[u8; IMAGE_PIXELS]> = (0..PREDICT_BATCH + 3)
        .map(|n| std::array::from_fn(|i| ((i * 37 + n * 11) % 251) as u8))
        .collect();
    let all = loaded.predict(&images);
    assert_eq!(all.len(), images.len());
    for n in [0, 1, PREDICT_BATCH - 1, PREDICT_BATCH, PREDICT_BATCH + 2] {
        let alone = loaded.predict(&images[n..=n]);
        for c in 0..NUM_CLASSES {
            let (a, b) = (all[n].logits[c], alone[0].logits[c]);
            assert!((a - b).abs() < 1e-4, "image {n}, class {c}: {a} vs {b}");
        }
    }
    assert!(loaded.predict(&[]).is_empty());
}

#[test]
fn either_way_is_the_mean_over_both_mirrors() {
    let loaded = untrained();
    let image: [u8; IMAGE_PIXELS] = std::array::from_fn(|i| (i * 37 % 251) as u8);
    let mirror = shift_and_flip(&image, 0, 0, true);
    let plain = loaded.predict(&[image, mirror]);
    assert!(
        plain[0] != plain[1],
        "the model does not see the mirror as the same"
    );
    let either = loaded.predict_either_way(&[image, mirror]);
    for c in 0..NUM_CLASSES {
        for (name, of) in [
            (
                "probabilities",
                (|p: &Prediction| p.probabilities) as fn(&Prediction) -> _,
            ),
            ("logits", |p: &Prediction| p.logits),
        ] {
            let mean = 0.5 * (of(&plain[0])[c] + of(&plain[1])[c]);
            for e in &either {
                assert!(
                    (of(e)[c] - mean).abs() < 1e-5,
                    "{name}: {either:?} {plain:?}"
                );
            }
        }
    }
    // The probabilities are the softmax of the logits.
    let p = &plain[0];
    let sum: f32 = p.logits.iter().map(|l| l.exp()).sum();
    for c in 0..NUM_CLASSES {
        assert!(
            (p.probabilities[c] - p.logits[c].exp() / sum).abs() < 1e-6,
            "{p:?}"
        );
    }
    assert!(loaded.predict_either_way(&[]).is_empty());
}

#[test]
fn top_k_orders_by_probability() {
    let mut p = [0.0f32; NUM_CLASSES];
    p[3] = 0.5;
    p[7] = 0.3;
    p[1] = 0.2;
    assert_eq!(top_k(&p, 3), vec![(3, 0.5), (7, 0.3), (1, 0.2)]);
}
