//! An exponential moving average (EMA) of the model's weights, kept beside them while training:
//! after every optimizer step, `ema = keep * ema + (1 - keep) * weights`, with `keep` the
//! configured decay, lower over the first steps (`(1 + n) / (10 + n)` after `n` updates, as
//! TensorFlow's `ExponentialMovingAverage` does), so the average is not held back by the
//! initial weights. The average is what validation scores and what a finished run saves; it is
//! part of the training checkpoints (with its update count), so a resumed run continues it.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::prelude::*;
use fashion_mixer_model::Model;

/// The moving average of a model's weights, and how many updates it has had.
#[derive(Module, Debug)]
pub struct Ema {
    /// The averaged weights (their own parameter ids: the optimizer never sees them).
    pub model: Model,
    /// Updates so far, `[1]`, a tensor so that it is checkpointed with the weights.
    pub updates: Param<Tensor<1>>,
    /// The decay per step once warmed up, e.g. 0.999.
    pub decay: f32,
}

impl Ema {
    /// An average that starts at `model`'s weights (copied, with fresh ids, out of autodiff).
    pub fn new(model: &Model, decay: f32) -> Self {
        let device = model.stem.linear.weight.val().device();
        Self {
            model: model.clone().map(&mut Copied),
            updates: Param::initialized(ParamId::new(), Tensor::zeros([1], &device))
                .set_require_grad(false),
            decay,
        }
    }

    /// The average one step on, towards `model`'s weights (the model it was made from, now
    /// updated). Tensor arithmetic only: nothing is read back from the device.
    pub fn update(self, model: &Model) -> Self {
        let mut weights = Weights::default();
        model.visit(&mut weights);
        let (id, updates, mapper) = self.updates.consume();
        let updates = updates + 1.0;
        // min(decay, (1 + n) / (10 + n))
        let keep = ((updates.clone() + 1.0) / (updates.clone() + 10.0)).clamp_max(self.decay);
        let mut blend = Blend {
            sources: weights.0.into_iter(),
            keep,
        };
        let averaged = self.model.map(&mut blend);
        assert!(
            blend.sources.next().is_none(),
            "the average and the model have the same parameters"
        );
        Self {
            model: averaged,
            updates: Param::from_mapped_value(id, updates, mapper),
            decay: self.decay,
        }
    }
}

/// Copies each parameter under a fresh id, detached and not trainable.
struct Copied;

impl ModuleMapper for Copied {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (_, tensor, mapper) = param.consume();
        Param::from_mapped_value(ParamId::new(), tensor.detach(), mapper).set_require_grad(false)
    }
}

/// A model's float parameters in visiting order, flattened and detached.
#[derive(Default)]
struct Weights(Vec<Tensor<1>>);

impl ModuleVisitor for Weights {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(param.val().detach().flatten::<1>(0, D - 1));
    }
}

/// Moves each parameter of the average towards the next of `sources` (same visiting order).
struct Blend {
    sources: std::vec::IntoIter<Tensor<1>>,
    keep: Tensor<1>,
}

impl ModuleMapper for Blend {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let source = self.sources.next().expect("the same parameters");
        param.map(|average| {
            let keep = self.keep.clone().reshape([1; D]);
            let source = source.reshape(average.shape());
            (average.clone() + (source - average) * (keep.neg() + 1.0)).detach()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(model: &Model) -> Vec<Vec<f32>> {
        let mut w = Weights::default();
        model.visit(&mut w);
        w.0.into_iter()
            .map(|t| t.into_data().try_to_vec::<f32>().unwrap())
            .collect()
    }

    /// Each update moves every weight of the average by `1 - keep` of the way to the model's,
    /// `keep` warming up as (1 + n) / (10 + n) to the decay; the ids stay apart from the model's.
    #[test]
    fn the_average_follows_the_weights_at_the_warmed_up_rate() {
        let device = Device::flex();
        let config = fashion_mixer_model::testing::tiny();
        let start = config.init(&device).unwrap();
        let mut ema = Ema::new(&start, 0.5);
        assert_ne!(ema.model.stem.linear.weight.id, start.stem.linear.weight.id);
        assert_eq!(weights(&ema.model), weights(&start));
        let target = config.init(&device).unwrap();
        let (a0, t) = (weights(&start), weights(&target));
        // keep: 2/11 after the first update (below the decay), then min(0.5, 3/12) = 0.25.
        let mut expected = a0.clone();
        for keep in [
            2.0f32 / 11.0,
            0.25,
            4.0 / 13.0,
            5.0 / 14.0,
            0.4,
            7.0 / 16.0,
            8.0 / 17.0,
            0.5,
        ] {
            ema = ema.update(&target);
            for (e, t) in expected.iter_mut().zip(&t) {
                for (e, t) in e.iter_mut().zip(t) {
                    *e = keep * *e + (1.0 - keep) * t;
                }
            }
        }
        for (got, want) in weights(&ema.model).iter().zip(&expected) {
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-5, "{g} against {w}");
            }
        }
        let updates = ema.updates.val().into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(updates, vec![8.0]);
    }
}
