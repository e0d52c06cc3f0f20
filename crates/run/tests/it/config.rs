//! The configuration: partial JSON, presets, and the checks of option values.

use fashion_mixer_model::ModelConfig;
use fashion_mixer_run::{OptimizerKind, PRESETS, TEACHER_RUN, TrainingConfig};

#[test]
fn partial_json_keeps_the_other_defaults() {
    let config = TrainingConfig::from_partial_json(
        r#"{"epochs": 5, "model": {"depth": 4}, "limit_train": 9}"#,
    )
    .unwrap();
    let expected = TrainingConfig::new()
        .with_epochs(5)
        .with_limit_train(Some(9))
        .with_model(ModelConfig::new().with_depth(4));
    assert_eq!(config, expected);
}

#[test]
fn unknown_and_mistyped_fields_are_errors() {
    let err = TrainingConfig::from_partial_json(r#"{"model": {"dept": 4}}"#)
        .unwrap_err()
        .to_string();
    assert_eq!(err, "unknown field `model.dept`");
    let err = TrainingConfig::from_partial_json(r#"{"epochs": "x"}"#)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("epochs: invalid type"), "{err}");
    let err = TrainingConfig::from_partial_json(r#"{"optimizer": "rmsprop"}"#)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("optimizer: unknown variant"), "{err}");
    // The field is named at any depth, and among fields that fit.
    let err =
        TrainingConfig::from_partial_json(r#"{"epochs": 3, "model": {"depth": 2, "dim": -1}}"#)
            .unwrap_err()
            .to_string();
    assert_eq!(
        err,
        "model.dim: invalid value: integer `-1`, expected usize"
    );
    let err = TrainingConfig::from_partial_json(r#"{"model": 3}"#)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "model: invalid type: integer `3`, expected an object of fields"
    );
    let err = TrainingConfig::from_partial_json("[1, 2]")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        r#"expected a JSON object of fields, e.g. {"epochs": 5}, found an array"#
    );
}

#[test]
fn a_saved_config_reads_back_whole() {
    let config = TrainingConfig::new()
        .with_optimizer(OptimizerKind::Sgd)
        .with_momentum(0.9);
    let json = serde_json::to_string(&config).unwrap();
    assert_eq!(TrainingConfig::from_partial_json(&json).unwrap(), config);
}

/// A config.json written before the options beyond the coursework existed loads, with
/// every option off: the run it describes is unchanged.
#[test]
fn configs_from_before_the_options_load_as_they_ran() {
    let old = include_str!("../../../../docs/results/coursework-default/config.json");
    assert!(!old.contains("residual"));
    assert_eq!(
        TrainingConfig::from_partial_json(old).unwrap(),
        TrainingConfig::new()
    );
}

#[test]
fn presets_are_valid_and_coursework_is_the_default() {
    for name in PRESETS {
        TrainingConfig::preset(name).unwrap().validate().unwrap();
    }
    assert_eq!(
        TrainingConfig::preset("coursework"),
        Some(TrainingConfig::new())
    );
    assert_eq!(TrainingConfig::preset("fastest"), None);
    let teacher = TrainingConfig::teacher();
    assert!(teacher.model.residual && teacher.model.layer_norm && teacher.horizontal_flip);
    assert_eq!((teacher.epochs, &teacher.distill_from), (50, &None));
    // `best` is its teacher's recipe, longer, with erasing, mixup and the teacher's targets.
    let best = TrainingConfig::best();
    assert_eq!(best.model, teacher.model);
    assert_eq!(best.distill_from, Some(TEACHER_RUN.into()));
    assert_eq!(
        (best.epochs, best.random_erasing, best.mixup),
        (100, 0.25, 0.2)
    );
    assert_eq!(
        TrainingConfig::preset("best"),
        Some(
            teacher
                .with_distill_from(Some(TEACHER_RUN.into()))
                .with_random_erasing(0.25)
                .with_mixup(0.2)
                .with_epochs(100)
        )
    );
}

#[test]
fn bad_option_values_are_errors() {
    let cases = [
        (
            TrainingConfig::new().with_label_smoothing(1.0),
            "label_smoothing",
        ),
        (TrainingConfig::new().with_min_lr(-1.0), "min_lr"),
        (
            TrainingConfig::new().with_warmup_epochs(31),
            "warmup_epochs",
        ),
        (TrainingConfig::new().with_crop_padding(15), "crop_padding"),
        (
            TrainingConfig::new().with_random_erasing(1.5),
            "random_erasing",
        ),
    ];
    for (config, field) in cases {
        let err = config.validate().unwrap_err().to_string();
        assert!(err.starts_with(field), "{err}");
    }
}

#[test]
fn differences_name_each_setting_that_differs() {
    let saved = TrainingConfig::new();
    assert_eq!(saved.differences(&TrainingConfig::new()), []);
    let asked = TrainingConfig::new()
        .with_epochs(5)
        .with_distill_from(Some("artifacts/teacher".into()))
        .with_model(ModelConfig::new().with_dim(64));
    let words: Vec<String> = saved
        .differences(&asked)
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(
        words,
        [
            "distill_from null (asked: \"artifacts/teacher\")",
            "epochs 30 (asked: 5)",
            "model.dim 128 (asked: 64)",
        ]
    );
}
