//! The benchmark measures something real on a small generated data set.

use fashion_mixer_data::{FashionMnistDataset, Split, synthetic};
use fashion_mixer_run::TrainingConfig;
use fashion_mixer_train::bench::{BenchOptions, bench};

#[test]
fn bench_reports_positive_rates() {
    let _rng = super::flex_rng();
    let tmp = tempfile::tempdir().unwrap();
    synthetic::write_idx_dir(tmp.path(), 200, 10).unwrap();
    let data = FashionMnistDataset::load(tmp.path(), Split::Train).unwrap();
    let config = TrainingConfig::new().with_batch_size(32);
    let options = BenchOptions {
        steps: 3,
        warmup: 1,
        repeats: 2,
    };
    let report = bench(&config, &data, options, None).unwrap();
    assert_eq!(report.backend, "flex");
    assert_eq!(report.batch_size, 32);
    for value in [
        report.train_images_per_s,
        report.train_step_ms,
        report.data_ms_per_batch,
        report.infer_batch1_ms,
        report.infer_batch1024_images_per_s,
    ] {
        assert!(value.is_finite() && value > 0.0, "{report:?}");
    }
    assert!((0.0..1.0).contains(&report.data_share), "{report:?}");
    let json = serde_json::to_value(&report).unwrap();
    for field in [
        "backend",
        "batch_size",
        "train_images_per_s",
        "infer_batch1_ms",
        "infer_batch1024_images_per_s",
    ] {
        assert!(json.get(field).is_some(), "bench.json lacks {field}");
    }
}
