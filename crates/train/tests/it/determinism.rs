//! A seed fixes a run: the same config on flex gives the same metrics.csv (timings aside).
//! (It holds `FLEX_RNG`, so no other test reseeds the process-wide RNG meanwhile.)

use fashion_mixer_data::synthetic;
use fashion_mixer_model::Backend;
use fashion_mixer_run::metrics::EpochMetrics;
use fashion_mixer_run::{RunDir, TrainingConfig};
use fashion_mixer_train::training::train;

fn run_once(root: &std::path::Path, data_dir: &std::path::Path) -> Vec<EpochMetrics> {
    let config = TrainingConfig::new()
        .with_backend(Backend::Flex)
        .with_epochs(2)
        .with_batch_size(50);
    let options = crate::quiet(&RunDir::new(root), data_dir);
    let mut history = train(config, &options).unwrap().history;
    for row in &mut history {
        row.epoch_seconds = 0.0;
    }
    history
}

#[test]
fn same_seed_same_metrics_on_flex() {
    let _rng = super::flex_rng();
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    synthetic::write_idx_dir(&data_dir, 300, 100).unwrap();
    let a = run_once(&tmp.path().join("a"), &data_dir);
    let b = run_once(&tmp.path().join("b"), &data_dir);
    assert_eq!(a.len(), 2);
    assert_eq!(a, b);
}
