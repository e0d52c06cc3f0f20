//! Bad input, through the real `xtask` binary: every case ends with exit code 2 and one line on
//! stderr naming the file (or setting) and the problem; no panic text, no backtrace.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::Device;
use fashion_mixer_data::{idx, synthetic};
use fashion_mixer_model::ModelConfig;
use fashion_mixer_run::run_dir::save_config;
use fashion_mixer_run::run_dir::write_atomic;
use fashion_mixer_run::{RunDir, TrainingConfig};

use super::common;
use common::{assert_user_error, xtask};

#[test]
fn broken_idx_files_are_named_with_their_defect() {
    const IMAGES: &str = "train-images-idx3-ubyte";
    const LABELS: &str = "train-labels-idx1-ubyte";
    type Breaker = fn(&Path);
    let cases: Vec<(&str, Breaker, &str, &str)> = vec![
        (
            "wrong magic",
            |d| {
                std::fs::write(d.join(LABELS), idx::encode_images(4, 28, 28, &[0; 4 * 784]))
                    .unwrap()
            },
            LABELS,
            "expected magic 0x00000801, found 0x00000803",
        ),
        (
            "truncated payload",
            |d| {
                let bytes = std::fs::read(d.join(IMAGES)).unwrap();
                std::fs::write(d.join(IMAGES), &bytes[..bytes.len() - 100]).unwrap();
            },
            IMAGES,
            "truncated payload",
        ),
        (
            "truncated header",
            |d| std::fs::write(d.join(IMAGES), [0u8, 0, 8, 3, 0, 0]).unwrap(),
            IMAGES,
            "truncated header",
        ),
        (
            "trailing bytes",
            |d| {
                let mut bytes = std::fs::read(d.join(LABELS)).unwrap();
                bytes.extend([1, 2, 3]);
                std::fs::write(d.join(LABELS), bytes).unwrap();
            },
            LABELS,
            "3 trailing bytes",
        ),
        (
            "count mismatch",
            |d| std::fs::write(d.join(LABELS), idx::encode_labels(&[1, 2, 3])).unwrap(),
            IMAGES,
            "4 images but",
        ),
        (
            "label out of range",
            |d| std::fs::write(d.join(LABELS), idx::encode_labels(&[1, 2, 10, 3])).unwrap(),
            LABELS,
            "label 10 at index 2 is out of range",
        ),
        (
            "not 28x28",
            |d| {
                let bytes = idx::encode_images(4, 27, 27, &[0; 4 * 27 * 27]);
                std::fs::write(d.join(IMAGES), bytes).unwrap();
            },
            IMAGES,
            "images are 27x27, expected 28x28",
        ),
        (
            "empty file",
            |d| std::fs::write(d.join(IMAGES), b"").unwrap(),
            IMAGES,
            "the file is empty",
        ),
        (
            ".gz that is not gzip",
            |d| {
                std::fs::remove_file(d.join(IMAGES)).unwrap();
                std::fs::write(d.join(format!("{IMAGES}.gz")), b"plain text, not gzip").unwrap();
            },
            "train-images-idx3-ubyte.gz",
            "named .gz but is not gzip data",
        ),
        (
            "corrupt gzip",
            |d| {
                std::fs::remove_file(d.join(IMAGES)).unwrap();
                let mut bytes = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
                bytes.extend([0xff; 20]);
                std::fs::write(d.join(format!("{IMAGES}.gz")), bytes).unwrap();
            },
            "train-images-idx3-ubyte.gz",
            "corrupt gzip data",
        ),
    ];
    for (case, breaker, file, problem) in cases {
        let tmp = tempfile::tempdir().unwrap();
        synthetic::write_idx_dir(tmp.path(), 4, 4).unwrap();
        breaker(tmp.path());
        let dir = tmp.path().to_str().unwrap();
        for command in [
            vec!["data", "info", "--data-dir", dir],
            vec!["train", "--no-tui", "--epochs", "1", "--data-dir", dir],
        ] {
            let mut args = command.clone();
            let run = tmp.path().join("run");
            if command[0] == "train" {
                args.extend(["--artifacts", run.to_str().unwrap()]);
            }
            let out = xtask(&args);
            assert_user_error(&format!("{case} ({})", command[0]), &out, &[file, problem]);
            assert!(
                !run.exists(),
                "{case}: a failed start left {}",
                run.display()
            );
        }
    }
}

#[test]
fn a_missing_data_directory_says_where_it_looked() {
    let out = xtask(&["data", "info", "--data-dir", "/nonexistent/fashion"]);
    assert_user_error(
        "missing dir",
        &out,
        &["/nonexistent/fashion (no such directory)"],
    );
}

/// A run folder with config.json (model of width `dim`) and a freshly initialised record.
fn make_run(dir: &Path, dim: usize) -> RunDir {
    let run = RunDir::new(dir);
    run.create().unwrap();
    let config = TrainingConfig::new().with_model(
        ModelConfig::new()
            .with_dim(dim)
            .with_token_hidden(8)
            .with_channel_hidden(16),
    );
    save_config(&run, &config).unwrap();
    let model = config.model.init(&Device::flex()).unwrap();
    write_atomic(&run.model(), &model.into_record().into_bytes().unwrap()).unwrap();
    run
}

/// Runs `eval` and `infer` on the run in `dir` and expects the same error from both.
fn assert_run_error(case: &str, dir: &Path, needles: &[&str]) {
    let data = dir.parent().unwrap().join("data");
    if !data.exists() {
        synthetic::write_idx_dir(&data, 16, 16).unwrap();
    }
    let (dir_s, data_s) = (dir.to_str().unwrap(), data.to_str().unwrap());
    for args in [
        vec!["eval", "--artifacts", dir_s, "--data-dir", data_s],
        vec![
            "infer",
            "--artifacts",
            dir_s,
            "--data-dir",
            data_s,
            "--index",
            "0",
        ],
    ] {
        assert_user_error(&format!("{case} ({})", args[0]), &xtask(&args), needles);
    }
}

/// A path that holds no run (a typo, the artifacts folder itself) names the runs to choose from.
#[test]
fn a_folder_without_a_run_names_the_runs_there() {
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("artifacts");
    let run = make_run(&runs.join("run"), 8);
    let run_s = run.root().to_str().unwrap();
    let typo = runs.join("rnu");
    assert_run_error(
        "a missing run folder",
        &typo,
        &[
            typo.to_str().unwrap(),
            "not a run folder (no such folder)",
            run_s,
        ],
    );
    assert_run_error(
        "the folder above the runs",
        &runs,
        &["not a run folder (no config.json)", run_s],
    );
}

#[test]
fn broken_config_json() {
    let tmp = tempfile::tempdir().unwrap();
    let run = make_run(&tmp.path().join("run"), 8);
    std::fs::write(run.config(), "{ this is not json").unwrap();
    assert_run_error(
        "config not JSON",
        run.root(),
        &["config.json", "not a valid training configuration"],
    );
    std::fs::write(run.config(), r#"{"epochs": "three"}"#).unwrap();
    assert_run_error(
        "config field of the wrong type",
        run.root(),
        &["config.json", "epochs: invalid type"],
    );
    // A misspelt field is an error, not silently the default (missing fields are defaults:
    // runs saved before a field existed keep loading).
    std::fs::write(run.config(), r#"{"epohcs": 3}"#).unwrap();
    assert_run_error(
        "config with an unknown field",
        run.root(),
        &["config.json", "unknown field `epohcs`"],
    );
}

#[test]
fn records_that_do_not_fit() {
    let tmp = tempfile::tempdir().unwrap();
    // A record trained with dim 16 beside a config.json that says dim 8.
    let run = make_run(&tmp.path().join("run"), 8);
    let other = make_run(&tmp.path().join("other"), 16);
    std::fs::copy(other.model(), run.model()).unwrap();
    assert_run_error(
        "config/record mismatch",
        run.root(),
        &["model.bpk", "cannot load the model record"],
    );

    let bytes = std::fs::read(other.model()).unwrap();
    let run = make_run(&tmp.path().join("truncated"), 16);
    std::fs::write(run.model(), &bytes[..bytes.len() / 2]).unwrap();
    assert_run_error(
        "truncated record",
        run.root(),
        &["model.bpk", "cannot load the model record"],
    );

    let run = make_run(&tmp.path().join("empty"), 16);
    std::fs::write(run.model(), b"").unwrap();
    assert_run_error(
        "zero-byte record",
        run.root(),
        &["model.bpk", "cannot load the model record"],
    );
}

#[test]
fn a_file_that_is_not_an_image() {
    let tmp = tempfile::tempdir().unwrap();
    let run = make_run(&tmp.path().join("run"), 8);
    let fake = tmp.path().join("shirt.png");
    std::fs::write(&fake, "definitely not a PNG").unwrap();
    let out = xtask(&[
        "infer",
        "--artifacts",
        run.root().to_str().unwrap(),
        fake.to_str().unwrap(),
    ]);
    assert_user_error("not an image", &out, &["shirt.png", "not a readable image"]);
}

#[test]
fn bad_settings_and_unusable_artifacts_dirs() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    synthetic::write_idx_dir(&data, 16, 16).unwrap();
    let data_s = data.to_str().unwrap();
    let a_file = tmp.path().join("a-file");
    std::fs::write(&a_file, "x").unwrap();
    let run = tmp.path().join("run");
    let run_s = run.to_str().unwrap();
    let unwritable = unwritable_dir(tmp.path());
    let not_a_run = tmp.path().join("notes");
    std::fs::create_dir(&not_a_run).unwrap();
    std::fs::write(not_a_run.join("report.md"), "mine").unwrap();
    let cases: Vec<(Vec<&str>, Vec<String>)> = vec![
        (
            vec!["--batch-size", "0", "--artifacts", run_s],
            vec!["batch_size must be at least 1".into()],
        ),
        (
            vec!["--lr", "-1", "--artifacts", run_s],
            vec!["lr must be a positive number, got -1".into()],
        ),
        (
            vec!["--dropout", "-0.5", "--artifacts", run_s],
            vec!["dropout must be at least 0".into()],
        ),
        (
            vec!["--patch-size", "5", "--artifacts", run_s],
            vec!["patch size 5 does not divide the image side 28".into()],
        ),
        (
            vec!["--artifacts", a_file.to_str().unwrap()],
            vec!["a-file".into(), "not a directory".into()],
        ),
        (
            vec!["--artifacts", unwritable.to_str().unwrap()],
            vec![unwritable.display().to_string()],
        ),
        (
            vec!["--artifacts", not_a_run.to_str().unwrap()],
            vec![
                not_a_run.display().to_string(),
                "not empty and not a run (holds report.md)".into(),
            ],
        ),
    ];
    for (flags, needles) in cases {
        let mut args = vec!["train", "--no-tui", "--epochs", "1", "--data-dir", data_s];
        args.extend(&flags);
        let out = xtask(&args);
        let needles: Vec<&str> = needles.iter().map(String::as_str).collect();
        assert_user_error(&format!("train {flags:?}"), &out, &needles);
    }
    // NaN and the infinities are refused as the flag is read (clap's usage error), never
    // dropped as if the flag had been left out.
    for (flag, value) in [
        ("--lr", "nan"),
        ("--weight-decay", "inf"),
        ("--dropout", "NaN"),
    ] {
        let out = xtask(&[
            "train",
            "--no-tui",
            "--data-dir",
            data_s,
            "--artifacts",
            run_s,
            flag,
            value,
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        let expected = format!("invalid value '{value}' for '{flag} ");
        assert!(stderr.contains(&expected), "{flag} {value}: {stderr}");
        assert!(
            stderr.contains("not a finite number"),
            "{flag} {value}: {stderr}"
        );
    }
    assert!(!run.exists());
    assert_eq!(std::fs::read(&a_file).unwrap(), b"x");
    let left: Vec<_> = std::fs::read_dir(&not_a_run).unwrap().flatten().collect();
    assert_eq!(left.len(), 1);
    assert_eq!(std::fs::read(not_a_run.join("report.md")).unwrap(), b"mine");
}

/// A path where the artifacts folder cannot be created: under a read-only folder, or (where
/// permissions do not bind, as for root) under `/proc`, which refuses new folders to everyone.
#[cfg(unix)]
fn unwritable_dir(tmp: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let locked = tmp.join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o500)).unwrap();
    if std::fs::create_dir(locked.join("probe")).is_err() {
        return locked.join("run");
    }
    PathBuf::from("/proc/fashion-mixer-run")
}

/// A path where the artifacts folder cannot be created: under a file.
#[cfg(not(unix))]
fn unwritable_dir(tmp: &Path) -> PathBuf {
    let file = tmp.join("unwritable");
    std::fs::write(&file, "x").unwrap();
    file.join("run")
}
