//! The benchmark measures something real on a small generated data set.

use fashion_mixer_data::{FashionMnistDataset, Split, synthetic};
use fashion_mixer_run::TrainingConfig;
use fashion_mixer_train::bench::{BenchOptions, StepSpread, WorkBalance, bench};
use fashion_mixer_train::distributed::StepWork;

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
    let spread = report.step_spread;
    assert_eq!(spread.steps, 6, "{report:?}");
    assert!(
        0.0 < spread.median_ms && spread.median_ms <= spread.slowest_ms,
        "{report:?}"
    );
    assert!(spread.slow_steps < spread.steps, "{report:?}");
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

/// The spread of step times counts the steps over 1.25x the median and what they add to the
/// mean step; steady steps have none.
#[test]
fn the_step_spread_finds_the_steps_held_up() {
    let steady = StepSpread::of(&[10.0, 11.0, 12.0, 10.5, 12.4]);
    assert_eq!(steady.steps, 5);
    assert_eq!((steady.median_ms, steady.slowest_ms), (11.0, 12.4));
    assert_eq!(steady.slow_steps, 0);
    // Zero, not -0.0 (which bench.json and the summary line would show as such).
    assert!(steady.slow_ms_per_step.to_bits() == 0.0f64.to_bits());

    // Two of nine steps held up: 30 and 14 ms against a median of 10; 12.5, exactly 1.25x, is
    // not slow.
    let held = StepSpread::of(&[10.0, 9.0, 30.0, 10.0, 10.0, 14.0, 11.0, 10.0, 12.5]);
    assert_eq!((held.median_ms, held.slowest_ms), (10.0, 30.0));
    assert_eq!(held.slow_steps, 2);
    assert!((held.slow_ms_per_step - (20.0 + 4.0) / 9.0).abs() < 1e-12);

    assert_eq!(StepSpread::of(&[]), StepSpread::default());
    // 9 and 11 ms: a standard deviation of 1 over a mean of 10.
    assert!((StepSpread::of(&[9.0, 11.0]).variation - 0.1).abs() < 1e-12);
    assert_eq!(StepSpread::of(&[5.0]).variation, 0.0);
}

/// A step's slowest rank against its items split by that step's own speeds, and the balance of
/// several steps: the means, and each rank's time per item varying from step to step.
#[test]
fn the_work_balance_compares_the_slowest_rank_with_each_steps_own_speeds() {
    let step = |items: [usize; 2], work_ms: [f64; 2]| StepWork {
        items: items.to_vec(),
        work_ms: work_ms.to_vec(),
    };
    // 64 items each in 80 and 40 ms: together 2.4 items a ms, so 128 items in 53.3 ms.
    let uneven = step([64, 64], [80.0, 40.0]);
    assert_eq!(uneven.slowest_ms(), 80.0);
    assert!((uneven.balanced_ms().unwrap() - 128.0 / 2.4).abs() < 1e-9);
    // Already split by its speeds: nothing to gain.
    let even = step([40, 80], [50.0, 50.0]);
    assert!((even.balanced_ms().unwrap() - 50.0).abs() < 1e-9);
    // A rank with nothing to do: not counted.
    let idle = step([0, 128], [0.0, 90.0]);
    assert_eq!(idle.balanced_ms(), None);

    let balance = WorkBalance::of(&[uneven, even, idle]);
    assert_eq!(balance.steps, 2);
    assert!((balance.slowest_ms - 65.0).abs() < 1e-9, "{balance:?}");
    assert!((balance.balanced_ms - (128.0 / 2.4 + 50.0) / 2.0).abs() < 1e-9);
    assert!((balance.excess() - (65.0 / balance.balanced_ms - 1.0)).abs() < 1e-12);
    // Rank 0's time per item: 1.25 and 1.25 ms (steady); rank 1's 0.625 and 0.625 ms.
    assert_eq!(balance.per_item_variation, vec![0.0, 0.0]);
    let varying = WorkBalance::of(&[step([10, 10], [9.0, 5.0]), step([10, 10], [11.0, 5.0])]);
    assert!(
        (varying.per_item_variation[0] - 0.1).abs() < 1e-12,
        "{varying:?}"
    );
    assert_eq!(WorkBalance::of(&[]), WorkBalance::default());
    assert_eq!(WorkBalance::default().excess(), 0.0);
}
