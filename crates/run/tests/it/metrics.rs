//! `metrics.csv`: rows written, replaced by epoch and read back; a bad file named.

use fashion_mixer_run::metrics::{EpochMetrics, METRICS_HEADER, read_metrics, record_epoch};

fn row(epoch: usize) -> EpochMetrics {
    EpochMetrics {
        epoch,
        train_loss: 0.5,
        train_accuracy: 0.8125,
        test_loss: 0.625,
        test_accuracy: 0.75,
        learning_rate: 1e-3,
        epoch_seconds: 12.5,
    }
}

#[test]
fn rows_round_trip_and_replace_by_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.csv");
    assert!(read_metrics(&path).unwrap().is_empty());
    record_epoch(&path, row(2)).unwrap();
    record_epoch(&path, row(1)).unwrap();
    let mut again = row(2);
    again.test_loss = 0.25;
    record_epoch(&path, again).unwrap();
    let rows = read_metrics(&path).unwrap();
    assert_eq!(rows, vec![row(1), again]);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with(&format!("{METRICS_HEADER}\n1,0.500000,0.812500,")));
}

#[test]
fn a_bad_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metrics.csv");
    std::fs::write(&path, "a,b\n").unwrap();
    let msg = read_metrics(&path).unwrap_err().to_string();
    assert!(
        msg.contains("metrics.csv") && msg.contains("expected header"),
        "{msg}"
    );
}
