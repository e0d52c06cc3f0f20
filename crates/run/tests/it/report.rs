//! The run report: pictures and report.md from a hand-written metrics.csv and a tiny record.

use burn::module::Module;
use burn::prelude::Device;
use fashion_mixer_data::synthetic;
use fashion_mixer_run::metrics::METRICS_HEADER;
use fashion_mixer_run::report::plot::{CHART_SIZE, CONFUSION_SIZE};
use fashion_mixer_run::report::report_run;
use fashion_mixer_run::run_dir::write_atomic;
use fashion_mixer_run::{RunDir, TrainingConfig};
use fashion_mixer_run::{load_splits, run_dir::save_config};

const METRICS: &str = "1,1.200000,0.550000,0.900000,0.650000,1.0000e-3,12.500
2,0.800000,0.700000,0.700000,0.720000,1.0000e-3,11.000
3,0.600000,0.781234,0.650000,0.745678,1.0000e-3,11.500
";

fn run_with_history(dir: &std::path::Path, with_record: bool) -> (RunDir, TrainingConfig) {
    let run = RunDir::new(dir.join("run"));
    run.create().unwrap();
    let config = TrainingConfig::new()
        .with_model(fashion_mixer_model::testing::tiny())
        .with_epochs(3)
        .with_batch_size(32);
    save_config(&run, &config).unwrap();
    write_atomic(
        &run.metrics(),
        format!("{METRICS_HEADER}\n{METRICS}").as_bytes(),
    )
    .unwrap();
    if with_record {
        let model = config.model.init(&Device::flex()).unwrap();
        let bytes = model.into_record().into_bytes().unwrap();
        write_atomic(&run.model(), &bytes).unwrap();
    }
    (run, config)
}

fn assert_png(path: &std::path::Path, size: (u32, u32)) {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!((img.width(), img.height()), size, "{}", path.display());
    // Something was drawn: not a blank canvas.
    let rgb = img.to_rgb8();
    let dark = rgb
        .pixels()
        .filter(|p| p.0.iter().all(|&c| c < 100))
        .count();
    assert!(dark > 500, "{}: only {dark} dark pixels", path.display());
}

#[test]
fn report_from_metrics_and_record() {
    let _rng = super::flex_rng();
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    synthetic::write_idx_dir(&data_dir, 64, 40).unwrap();
    let (run, config) = run_with_history(tmp.path(), true);
    let splits = load_splits(&data_dir, &config).unwrap();
    let files = report_run::<fashion_mixer_run::RunError>(&run, |_| Ok(Some(splits))).unwrap();

    assert_eq!(files.pictures.len(), 3);
    assert_png(&run.root().join("loss.png"), CHART_SIZE);
    assert_png(&run.root().join("accuracy.png"), CHART_SIZE);
    assert_png(&run.root().join("confusion.png"), CONFUSION_SIZE);
    assert!(run.eval().is_file(), "the record was scored into eval.json");
    assert!(files.scored);

    let md = std::fs::read_to_string(&files.report).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.config()).unwrap()).unwrap();
    let mut fields = Vec::new();
    for (key, value) in json.as_object().unwrap() {
        match value.as_object() {
            Some(inner) => fields.extend(inner.keys().map(|k| format!("`{key}.{k}`"))),
            None => fields.push(format!("`{key}`")),
        }
    }
    assert!(fields.len() > 15, "{fields:?}");
    for field in &fields {
        assert!(
            md.contains(field.as_str()),
            "report.md lacks {field}:\n{md}"
        );
    }
    for needle in [
        "| final accuracy (epoch 3) | 78.12% | 74.57% |",
        "72.00%",
        "3 of 3 epochs (finished)",
        "![loss](loss.png)",
        "![accuracy](accuracy.png)",
        "![confusion matrix](confusion.png)",
        "**Overfitting:**",
        "| Ankle boot |",
    ] {
        assert!(md.contains(needle), "report.md lacks {needle:?}:\n{md}");
    }

    // Run again: eval.json is current, so no data is needed.
    let again = report_run::<fashion_mixer_run::RunError>(&run, |_| Ok(None)).unwrap();
    assert_eq!(again.pictures.len(), 3);
}

#[test]
fn report_without_record_has_curves_but_no_confusion() {
    let _rng = super::flex_rng();
    let tmp = tempfile::tempdir().unwrap();
    let (run, _) = run_with_history(tmp.path(), false);
    let files = report_run::<fashion_mixer_run::RunError>(&run, |_| Ok(None)).unwrap();
    assert_eq!(files.pictures.len(), 2);
    assert_png(&run.root().join("loss.png"), CHART_SIZE);
    assert!(!run.root().join("confusion.png").exists());
    assert!(!files.scored);
    let md = std::fs::read_to_string(&files.report).unwrap();
    assert!(md.contains("No model record is evaluated"), "{md}");
}

/// A fresh checkout keeps no file times: the shipped `eval.json` counts as current when it
/// names the record by the MD5 of its bytes, whatever the times say, and not once the record
/// changes.
#[test]
fn eval_json_is_matched_to_its_record_by_content() {
    use fashion_mixer_run::evaluation::current_evaluation;
    let shipped = fashion_mixer_data::testing::workspace_root().join("artifacts/pretrained");
    let tmp = tempfile::tempdir().unwrap();
    for file in ["config.json", "model.bpk", "eval.json"] {
        std::fs::copy(shipped.join(file), tmp.path().join(file)).unwrap();
    }
    let run = RunDir::new(tmp.path());
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(run.eval())
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
    let eval = current_evaluation(&run).expect("the shipped eval.json describes model.bpk");
    assert!(eval.record_md5.is_some());
    let mut bytes = std::fs::read(run.model()).unwrap();
    bytes.push(0);
    std::fs::write(run.model(), bytes).unwrap();
    assert!(
        current_evaluation(&run).is_none(),
        "a changed record is not the one scored"
    );
}
