//! Short real trainings (Burn's Learner) on a small generated data set: the run folder's files,
//! falling loss, and reloading the record for eval and inference. flex and wgpu (lavapipe on a
//! machine without a GPU: `apt-get install mesa-vulkan-drivers`).

use burn::data::dataset::Dataset;
use fashion_mixer_data::{FashionMnistDataset, Split, synthetic};
use fashion_mixer_model::Backend;
use fashion_mixer_run::evaluation::evaluate;
use fashion_mixer_run::inference::load_model;
use fashion_mixer_run::load_splits;
use fashion_mixer_run::metrics::METRICS_HEADER;
use fashion_mixer_run::{RunDir, TrainingConfig};
use fashion_mixer_train::training::train;

fn smoke(backend: Backend, n_train: usize, n_test: usize, batch_size: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    synthetic::write_idx_dir(&data_dir, n_train, n_test).unwrap();
    let run = RunDir::new(tmp.path().join("run"));
    let config = TrainingConfig::new()
        .with_backend(backend)
        .with_epochs(2)
        .with_batch_size(batch_size);
    let options = crate::quiet(&run, &data_dir);
    let report = train(config, &options).unwrap();
    assert!(!report.interrupted);

    for path in [
        run.config(),
        run.model(),
        run.metrics(),
        run.checkpoint_model(2),
        run.eval(),
        run.root().join("report.md"),
        run.root().join("loss.png"),
        run.root().join("accuracy.png"),
        run.root().join("confusion.png"),
    ] {
        assert!(path.is_file(), "missing {}", path.display());
    }
    assert_eq!(run.last_checkpoint(), Some(2));
    let csv = std::fs::read_to_string(run.metrics()).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert_eq!(lines[0], METRICS_HEADER);
    let h = &report.history;
    assert_eq!(h.len(), 2);
    assert!(
        h[1].train_loss < h[0].train_loss,
        "{backend}: loss did not fall: {csv}"
    );
    for row in h {
        assert!(
            (0.0..=1.0).contains(&row.train_accuracy) && (0.0..=1.0).contains(&row.test_accuracy)
        );
        assert!(row.epoch_seconds > 0.0 && row.learning_rate > 0.0, "{csv}");
    }

    // The saved record reloads (no autodiff) and scores exactly what the last epoch measured.
    let loaded = load_model(&run, None).unwrap();
    let (train_set, test_set) = load_splits(&data_dir, &loaded.config).unwrap();
    let eval = evaluate(&run, &loaded, &train_set, &test_set).unwrap();
    assert!(run.eval().is_file());
    assert_eq!(eval.test.items, n_test);
    assert!(
        (eval.test.accuracy - h[1].test_accuracy).abs() < 1e-6,
        "eval {} vs training {}",
        eval.test.accuracy,
        h[1].test_accuracy
    );
    // Inference on test items agrees with eval's count of correct answers.
    let test = FashionMnistDataset::load(&data_dir, Split::Test).unwrap();
    let images: Vec<_> = (0..test.len())
        .map(|i| test.get(i).unwrap().image)
        .collect();
    let probs = loaded.probabilities(&images);
    let correct = probs
        .iter()
        .zip(test.labels())
        .filter(|(p, l)| fashion_mixer_run::inference::top_k(p, 1)[0].0 == **l as usize)
        .count();
    assert_eq!(correct as f64 / n_test as f64, eval.test.accuracy);
}

#[test]
fn flex_trains_two_epochs_and_reloads() {
    let _rng = super::flex_rng();
    smoke(Backend::Flex, 400, 100, 32);
}

#[test]
fn wgpu_trains_two_epochs_and_reloads() {
    if let Err(err) = Backend::Wgpu.device() {
        return fashion_mixer_data::testing::skip(&err.to_string());
    }
    // Full batches of the default size, as in `cargo xtask train --backend wgpu` (xtask's
    // wgpu test): the kernels this run compiles and tunes on a fresh machine serve that one.
    smoke(Backend::Wgpu, 512, 256, 256);
}
