//! The moving average of the weights (`ema_decay`) in a real training: it is what validation
//! scores and what `model.bpk` holds, the checkpoints carry it with its update count, and a
//! resumed run continues it rather than starting it again.

use burn::module::Module;
use burn::prelude::*;
use burn::store::ModuleRecord;
use fashion_mixer_data::synthetic;
use fashion_mixer_model::Model;
use fashion_mixer_run::evaluation::evaluate;
use fashion_mixer_run::inference::load_model;
use fashion_mixer_run::load_splits;
use fashion_mixer_run::metrics::read_metrics;
use fashion_mixer_run::{RunDir, TrainingConfig};
use fashion_mixer_train::TrainingModel;
use fashion_mixer_train::training::{Resume, TrainOptions, train};

/// The training model (model, average and its count) in the checkpoint of `epoch`.
fn checkpoint(run: &RunDir, config: &TrainingConfig, epoch: usize) -> TrainingModel {
    let model = config.model.init(&Device::flex()).unwrap();
    let record = ModuleRecord::load(run.checkpoint_model(epoch)).unwrap();
    TrainingModel::new(model, 0.0)
        .with_ema(0.5)
        .try_load_record(record)
        .unwrap()
}

fn values(model: &Model) -> Vec<f32> {
    model
        .head
        .weight
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

#[test]
fn the_moving_average_is_validated_saved_and_resumed() {
    let _rng = crate::flex_rng();
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    // 600 items in batches of 50: 12 optimizer steps an epoch.
    synthetic::write_idx_dir(&data_dir, 600, 200).unwrap();
    let run = RunDir::new(tmp.path().join("run"));
    let config = TrainingConfig::new()
        .with_epochs(2)
        .with_batch_size(50)
        .with_ema_decay(0.9);
    let options = crate::quiet(&run, &data_dir);
    let report = train(config.clone(), &options).unwrap();
    assert!(!report.interrupted);

    // The checkpoint holds the live weights and the average, updated once per step.
    let trained = checkpoint(&run, &config, 2);
    let ema = trained
        .ema
        .as_ref()
        .expect("the checkpoint keeps the average");
    assert_eq!(
        ema.updates.val().into_data().try_to_vec::<f32>().unwrap(),
        [24.0]
    );
    assert_ne!(values(&trained.model), values(&ema.model));

    // model.bpk is the average, and scores what the last epoch's validation measured.
    let loaded = load_model(&run, None).unwrap();
    assert_eq!(values(&loaded.model), values(&ema.model));
    let (train_set, test_set) = load_splits(&data_dir, &loaded.config).unwrap();
    let eval = evaluate(&run, &loaded, &train_set, &test_set).unwrap();
    let last = report.history.last().unwrap();
    assert!(
        (eval.test.accuracy - last.test_accuracy).abs() < 1e-9
            && (eval.test.loss - last.test_loss).abs() < 1e-4,
        "eval {:?} against the last epoch {last:?}",
        eval.test
    );

    // Cut the run back to epoch 1 (as a kill during epoch 2 leaves it) and resume: the average
    // goes on from the checkpoint's 12 updates to 24, not from a fresh copy.
    for kind in ["model", "optim", "scheduler"] {
        let file = run.checkpoint_model(2);
        let name = file
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .replacen("model", kind, 1);
        std::fs::remove_file(file.with_file_name(name)).unwrap();
    }
    std::fs::remove_file(run.model()).unwrap();
    let csv = std::fs::read_to_string(run.metrics()).unwrap();
    let kept: Vec<&str> = csv.lines().take(2).collect();
    std::fs::write(run.metrics(), kept.join("\n") + "\n").unwrap();
    assert_eq!(read_metrics(&run.metrics()).unwrap().len(), 1);
    let once = checkpoint(&run, &config, 1);
    assert_eq!(
        once.ema
            .unwrap()
            .updates
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap(),
        [12.0]
    );
    let resumed = train(
        TrainingConfig::new(),
        &TrainOptions {
            resume: Resume::AsSaved,
            ..options
        },
    )
    .unwrap();
    assert!(!resumed.interrupted);
    let again = checkpoint(&run, &config, 2);
    let ema = again.ema.unwrap();
    assert_eq!(
        ema.updates.val().into_data().try_to_vec::<f32>().unwrap(),
        [24.0]
    );
    assert_eq!(
        values(&load_model(&run, None).unwrap().model),
        values(&ema.model)
    );
}
