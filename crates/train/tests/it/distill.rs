//! Distillation in a real training: the teacher (a finished run) is loaded and sees the same
//! batches as the student, and a teacher that cannot be loaded stops the run before it starts.

use fashion_mixer_data::synthetic;
use fashion_mixer_run::RunError;
use fashion_mixer_run::{RunDir, TrainingConfig};
use fashion_mixer_train::TrainError;
use fashion_mixer_train::training::train;

/// A student that starts as its teacher, with all of the loss on the teacher's soft targets
/// and a learning rate too small to move it, has a training loss of about 0 (the two agree on
/// every augmented batch), where the labels alone give the teacher's cross-entropy.
#[test]
fn a_student_that_is_its_teacher_has_nothing_to_learn() {
    let _rng = crate::flex_rng();
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    synthetic::write_idx_dir(&data_dir, 400, 100).unwrap();
    let base = TrainingConfig::new()
        .with_epochs(1)
        .with_batch_size(50)
        .with_crop_padding(2)
        .with_horizontal_flip(true);
    let teacher = RunDir::new(tmp.path().join("teacher"));
    train(base.clone(), &crate::quiet(&teacher, &data_dir)).unwrap();

    let student = |name: &str, weight: f64| {
        let run = RunDir::new(tmp.path().join(name));
        let config = base
            .clone()
            .with_lr(1e-9)
            .with_init_from(Some(teacher.root().to_path_buf()))
            .with_distill_from(Some(teacher.root().to_path_buf()))
            .with_distill_weight(weight)
            .with_distill_temperature(3.0);
        train(config, &crate::quiet(&run, &data_dir))
            .unwrap()
            .history[0]
            .train_loss
    };
    let soft = student("soft", 1.0);
    let hard = student("hard", 0.0);
    assert!(soft.abs() < 1e-4, "the student is its teacher: {soft}");
    assert!(hard > 0.5, "the labels' loss: {hard}");

    // A teacher that is not a finished run: refused, nothing written.
    let run = RunDir::new(tmp.path().join("orphan"));
    let missing = tmp.path().join("no-such-run");
    let error = train(
        base.with_distill_from(Some(missing.clone())),
        &crate::quiet(&run, &data_dir),
    )
    .unwrap_err();
    assert!(
        matches!(&error, TrainError::Teacher(cause) if matches!(**cause, TrainError::Run(RunError::NotARun { .. })))
            && error.to_string().contains("no-such-run"),
        "{error}"
    );
    assert!(!run.root().exists());
}
