//! `--preset`, the options beyond the coursework from the command line, and the shipped
//! pretrained model (`artifacts/pretrained/`): inference with no run named, and its test
//! accuracy reproduced exactly.

use super::common;

use std::path::{Path, PathBuf};

use burn::lr_scheduler::LrScheduler;
use common::{assert_user_error, xtask};
use fashion_mixer_data::synthetic;
use fashion_mixer_model::Activation;
use fashion_mixer_run::metrics::read_metrics;
use fashion_mixer_run::run_dir::load_config;
use fashion_mixer_run::{LrSchedule, RunDir, TrainingConfig};
use fashion_mixer_train::schedule::WarmupCosine;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A generated data set in a temporary folder.
fn data() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synthetic::write_idx_dir(&data, 512, 128).unwrap();
    (tmp, data)
}

/// Equal to 4 significant digits (metrics.csv's precision).
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-4 * b.abs()
}

/// `train --no-tui --data-dir DATA --artifacts RUN` with `flags`.
fn train(data: &Path, run: &Path, flags: &[&str]) -> std::process::Output {
    let mut args = vec!["train", "--no-tui"];
    args.extend(flags);
    args.extend([
        "--data-dir",
        data.to_str().unwrap(),
        "--artifacts",
        run.to_str().unwrap(),
    ]);
    xtask(&args)
}

fn root() -> PathBuf {
    fashion_mixer_data::testing::workspace_root()
}

/// `train --preset best` trains (every option of the preset on: LayerNorm, residuals,
/// overlapping-free 4x4 patches, AdamW, warm-up, label smoothing, augmentation), saves the
/// preset's configuration with the flags' overrides, and the record serves inference.
#[test]
fn preset_best_trains_and_flags_override_it() {
    let (tmp, data) = data();
    let run = tmp.path().join("best");
    let (data_s, run_s) = (data.to_str().unwrap(), run.to_str().unwrap());
    let out = train(
        &data,
        &run,
        &["--preset", "best", "--epochs", "2", "--batch-size", "64"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The teacher, `artifacts/teacher`, is found in the project from the test's folder (xtask/).
    let saved = load_config(&RunDir::new(&run)).unwrap();
    assert_eq!(
        saved,
        TrainingConfig::best()
            .with_epochs(2)
            .with_batch_size(64)
            .with_distill_from(Some(root().join("artifacts/teacher")))
    );
    // Two warm-up epochs of 8 steps (metrics.csv holds each epoch's mean rate): steps 1-8
    // average 4.5/16 of the peak 2e-3, steps 9-16 average 12.5/16.
    let rows = read_metrics(&RunDir::new(&run).metrics()).unwrap();
    assert_eq!(rows.len(), 2);
    assert!(close(rows[0].learning_rate, 2e-3 * 4.5 / 16.0), "{rows:?}");
    assert!(close(rows[1].learning_rate, 2e-3 * 12.5 / 16.0), "{rows:?}");
    assert!(rows[1].test_loss < 10f64.ln(), "{rows:?}");
    let out = xtask(&[
        "infer",
        "--artifacts",
        run_s,
        "--data-dir",
        data_s,
        "--index",
        "3",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("test[3]"));

    let out = xtask(&["train", "--preset", "fastest", "--artifacts", run_s]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .contains("unknown preset 'fastest' (expected one of: coursework, teacher, best)")
    );
}

/// Every switch from the command line lands in config.json, and the run trains.
#[test]
fn every_option_from_the_command_line() {
    let (tmp, data) = data();
    let run = tmp.path().join("options");
    #[rustfmt::skip]
    let flags = [
        "--epochs", "2", "--batch-size", "64",
        "--patch-size", "7", "--patch-stride", "3", "--residual", "--layer-norm",
        "--activation", "gelu", "--dropout", "0.1",
        "--optimizer", "adamw", "--weight-decay", "0.05",
        "--lr-schedule", "cosine", "--warmup-epochs", "1", "--min-lr", "1e-5",
        "--label-smoothing", "0.1", "--crop-padding", "3", "--horizontal-flip",
        "--random-erasing", "0.25", "--mixup", "0.2", "--cutmix", "1", "--ema-decay", "0.99",
    ];
    let out = train(&data, &run, &flags);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let c = load_config(&RunDir::new(&run)).unwrap();
    assert_eq!(c.model.patch_stride, Some(3));
    assert!(c.model.residual && c.model.layer_norm);
    assert_eq!(c.model.activation, Activation::Gelu);
    assert_eq!(c.model.dropout, 0.1);
    assert_eq!(c.lr_schedule, LrSchedule::Cosine);
    assert_eq!(
        (c.warmup_epochs, c.min_lr, c.label_smoothing),
        (1, 1e-5, 0.1)
    );
    assert_eq!(
        (c.crop_padding, c.horizontal_flip, c.random_erasing),
        (3, true, 0.25)
    );
    assert_eq!((c.mixup, c.cutmix, c.ema_decay), (0.2, 1.0, 0.99));
    let rows = read_metrics(&RunDir::new(&run).metrics()).unwrap();
    // Warm-up over epoch 1, then the cosine over epoch 2 (each row the epoch's mean rate).
    let mut schedule = WarmupCosine::new(&c, 512);
    let lrs: Vec<f64> = (0..16).map(|_| schedule.step()).collect();
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    assert!(close(rows[0].learning_rate, mean(&lrs[..8])), "{rows:?}");
    assert!(close(rows[1].learning_rate, mean(&lrs[8..])), "{rows:?}");
    assert!(lrs[8..].windows(2).all(|w| w[1] < w[0]) && close(lrs[15], 1e-5));
    assert!(rows.iter().all(|r| r.train_loss.is_finite()), "{rows:?}");

    // Distilling from that run (another architecture): the teacher's flags land too.
    let student = tmp.path().join("student");
    let teacher = run.to_str().unwrap();
    #[rustfmt::skip]
    let flags = [
        "--epochs", "1", "--limit-train", "64", "--distill-from", teacher,
        "--distill-weight", "0.3", "--distill-temperature", "4",
    ];
    let out = train(&data, &student, &flags);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let c = load_config(&RunDir::new(&student)).unwrap();
    assert_eq!(
        (
            c.distill_from.as_deref(),
            c.distill_weight,
            c.distill_temperature
        ),
        (Some(run.as_path()), 0.3, 4.0)
    );

    // A switch turned off again after a preset.
    let run2 = tmp.path().join("no-flip");
    let flags = [
        "--preset",
        "best",
        "--horizontal-flip",
        "false",
        "--epochs",
        "2",
    ];
    let out = train(
        &data,
        &run2,
        &[&flags[..], &["--limit-train", "64"]].concat(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!load_config(&RunDir::new(&run2)).unwrap().horizontal_flip);

    // The preset's 2 warm-up epochs do not fit in 1: a clear error, no run folder.
    let run3 = tmp.path().join("too-short");
    let out = train(&data, &run3, &["--preset", "best", "--epochs", "1"]);
    assert_user_error(
        "warm-up longer than the run",
        &out,
        &[
            "warmup_epochs (2) must be at most epochs (1)",
            "--warmup-epochs",
        ],
    );
    assert!(!run3.exists());
}

/// `infer` with no `--artifacts` uses the shipped model, and on the product photos in
/// crates/data/tests/images/ names the garment each shows.
#[test]
fn infer_uses_the_pretrained_model_by_default() {
    let images = root().join("crates/data/tests/images");
    let labels = std::fs::read_to_string(images.join("labels.csv")).unwrap();
    let expected: Vec<(&str, &str)> = labels
        .lines()
        .skip(1)
        .map(|line| line.split_once(',').unwrap())
        .collect();
    let paths: Vec<String> = expected
        .iter()
        .map(|(f, _)| images.join(f).to_str().unwrap().to_string())
        .collect();
    // The shipped model is the `best` preset, trained as it stands.
    let shipped = load_config(&RunDir::new(root().join("artifacts/pretrained"))).unwrap();
    assert_eq!(shipped, TrainingConfig::best());
    // Its teacher, shipped beside it, is the `teacher` preset.
    let teacher = load_config(&RunDir::new(root().join("artifacts/teacher"))).unwrap();
    assert_eq!(teacher, TrainingConfig::teacher());
    let mut args = vec!["infer", "--json"];
    args.extend(paths.iter().map(String::as_str));
    let out = xtask(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), expected.len());
    for (line, (file, class)) in lines.iter().zip(&expected) {
        assert_eq!(line["predicted"], *class, "{file}: {line}");
    }
    // The folder gives its pictures (not labels.csv), by name, predicted the same.
    let out = xtask(&["infer", "--json", images.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut by_name: Vec<_> = paths.iter().zip(&lines).collect();
    by_name.sort_by_key(|(path, _)| path.as_str());
    let folder: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(folder.len(), by_name.len());
    for (line, (path, alone)) in folder.iter().zip(by_name) {
        assert_eq!(line["source"], path.as_str());
        assert_eq!(line["probabilities"], alone["probabilities"], "{path}");
    }
    // A folder without pictures is one line naming it.
    let empty = tempfile::tempdir().unwrap();
    std::fs::write(empty.path().join("notes.txt"), "x").unwrap();
    let out = xtask(&["infer", empty.path().to_str().unwrap()]);
    assert_user_error(
        "a folder without pictures",
        &out,
        &[&empty.path().display().to_string(), "no PNG or JPEG files"],
    );
}

/// `eval` of the shipped model, and of the teacher it learnt from, gives exactly the test
/// accuracy, as given and mirrored, that its eval.json (and README) state.
#[test]
fn shipped_models_reproduce_their_stated_test_accuracy() {
    let Some(data) = fashion_mixer_data::testing::real_data_dir() else {
        return;
    };
    for run in ["pretrained", "teacher"] {
        reproduces_its_stated_accuracy(&root().join("artifacts").join(run), &data);
    }
}

fn reproduces_its_stated_accuracy(shipped: &Path, data: &Path) {
    let stated: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(shipped.join("eval.json")).unwrap()).unwrap();
    // Evaluate a copy: eval writes eval.json beside the record. Its config scores 256 train
    // items instead of 60,000 (three quarters of the work), which this test does not check.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(shipped.join("model.bpk"), tmp.path().join("model.bpk")).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(shipped.join("config.json")).unwrap())
            .unwrap();
    config["limit_train"] = 256.into();
    std::fs::write(tmp.path().join("config.json"), config.to_string()).unwrap();
    let out = xtask(&[
        "eval",
        "--artifacts",
        tmp.path().to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--backend",
        "flex",
        "--tta",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("eval.json")).unwrap())
            .unwrap();
    assert_eq!(got["test"]["items"], 10_000);
    assert_eq!(got["train"]["items"], 256);
    assert_eq!(got["test"]["confusion"], stated["test"]["confusion"]);
    assert_eq!(got["test"]["accuracy"], stated["test"]["accuracy"]);
    // `--tta`'s flip-averaged figure is a figure of its own, beside the plain one.
    let tta = &got["test_flip_averaged"];
    assert_eq!(tta["items"], 10_000);
    let tta_accuracy = tta["accuracy"].as_f64().unwrap();
    assert!((0.9..1.0).contains(&tta_accuracy), "{tta}");
    assert!(
        text(&out.stdout).contains(&format!(
            "flip-averaged (TTA: each image and its mirror): accuracy {:.2}%",
            100.0 * tta_accuracy
        )),
        "{}",
        text(&out.stdout)
    );
    let percent = format!(
        "{:.2}%",
        100.0 * stated["test"]["accuracy"].as_f64().unwrap()
    );
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.contains(&percent),
        "README does not state {percent} ({})",
        shipped.display()
    );
    assert!(text(&out.stdout).contains(&format!("test: accuracy {percent}")));
    // The mirrored test set is scored too (a different figure), and it is the one stated.
    assert_ne!(got["test_mirrored"]["confusion"], got["test"]["confusion"]);
    assert_eq!(
        got["test_mirrored"]["confusion"],
        stated["test_mirrored"]["confusion"]
    );
    let mirrored = format!(
        "{:.2}%",
        100.0 * stated["test_mirrored"]["accuracy"].as_f64().unwrap()
    );
    assert!(
        readme.contains(&mirrored),
        "README does not state {mirrored}"
    );
    assert!(
        text(&out.stdout).contains(&format!("test, mirrored left-right: accuracy {mirrored}")),
        "{}",
        text(&out.stdout)
    );
}
