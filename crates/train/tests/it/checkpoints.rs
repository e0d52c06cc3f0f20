//! A training checkpoint, as the Learner saves the [`TrainingModel`], loads for inference through the
//! run crate's mirror of its layout (`fashion_mixer_run::inference::load_record`): the live
//! weights, or the moving average when the run keeps one.

use burn::module::Module;
use burn::prelude::*;
use fashion_mixer_model::Model;
use fashion_mixer_run::inference::load_record;
use fashion_mixer_train::TrainingModel;

/// Every float of `model`'s head and stem, in order.
fn weights(model: &Model) -> Vec<f32> {
    [model.head.weight.val(), model.stem.linear.weight.val()]
        .into_iter()
        .flat_map(|t| t.into_data().try_to_vec::<f32>().unwrap())
        .collect()
}

#[test]
fn a_training_models_record_loads_as_the_model_it_scores() {
    let _rng = crate::flex_rng();
    let device = Device::flex();
    let tmp = tempfile::tempdir().unwrap();
    let config = fashion_mixer_model::testing::tiny();
    for averaged in [false, true] {
        device.seed(9);
        let mut model = TrainingModel::new(config.init(&device).unwrap(), 0.1);
        if averaged {
            model = model.with_ema(0.5);
            // An average that differs from the live weights.
            let ema = model.ema.take().unwrap();
            let mut moved = ema.model.clone();
            moved.head.weight = moved.head.weight.map(|w| w + 1.0);
            model.ema = Some(fashion_mixer_train::Ema {
                model: moved,
                ..ema
            });
        }
        let scored = weights(model.scored());
        let path = tmp.path().join(format!("model-{averaged}.bpk"));
        std::fs::write(&path, &*model.into_record().into_bytes().unwrap()).unwrap();
        let loaded = load_record(config.init(&device).unwrap(), &path).unwrap();
        assert_eq!(weights(&loaded), scored, "averaged: {averaged}");
    }
}
