//! Adam's and AdamW's update of one parameter as one pass over its `f32` values on flex.
//!
//! Burn's `Adam` and `AdamW` update a parameter through a dozen or more tensor operations (the
//! two moments, their bias correction, the square root, the quotient, the weight decay and the
//! step), each a serial pass over the parameter's size that reads and writes whole tensors.
//! [`step`] makes one pass (split over the thread pool when the parameter is large), doing on
//! each element the operations Burn's do, in the same order and in `f32`: the parameter and
//! the moments equal Burn's to the last bit.
//!
//! It takes `f32` flex tensors without autodiff, as an optimizer is handed them ([`handles`]).
//! The training crate's optimizer calls it and leaves every other tensor to Burn's own; its
//! tests check the two against each other (both rules, with and without weight decay, from the
//! first step on, a parameter split over threads).

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::prelude::*;
use burn::tensor::DType;
use rayon::prelude::*;

use super::{slice, slice_mut, tensor};

/// Which of Burn's optimizers an update follows: how it applies weight decay and corrects the
/// moments' bias.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    /// Burn's `Adam`: with a penalty, `penalty * w` is added to the gradient (L2).
    Adam {
        /// The L2 penalty, if any.
        penalty: Option<f32>,
    },
    /// Burn's `AdamW`: decoupled weight decay, `w (1 - lr decay)`.
    AdamW {
        /// The decay rate.
        weight_decay: f32,
    },
}

/// The constants of an Adam or AdamW update (Burn's `AdamConfig` or `AdamWConfig`, without
/// `amsgrad`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamUpdate {
    /// The first moment's decay.
    pub beta_1: f32,
    /// The second moment's decay.
    pub beta_2: f32,
    /// Added to the second moment's square root.
    pub epsilon: f32,
    /// Burn's optimizer whose arithmetic it repeats.
    pub rule: Rule,
}

/// A parameter's two moments and the number of updates they hold, as Burn's
/// `AdaptiveMomentumState` keeps them.
#[derive(Debug, Clone)]
pub struct Moments<const D: usize> {
    /// Updates so far.
    pub time: usize,
    /// The gradient's moving average.
    pub moment_1: Tensor<D>,
    /// The squared gradient's moving average.
    pub moment_2: Tensor<D>,
}

/// Parameters with fewer elements are updated on the calling thread alone.
const PARALLEL_FROM: usize = 1 << 15;

/// Whether [`step`] takes these tensors (a parameter, its gradient and its two moments, if
/// any): all `f32` flex tensors without autodiff, of one shape.
pub fn handles<const D: usize>(
    param: &Tensor<D>,
    grad: &Tensor<D>,
    moments: Option<[&Tensor<D>; 2]>,
) -> bool {
    let flex_f32 =
        |t: &Tensor<D>| t.dtype() == DType::F32 && t.clone().try_into_primitive::<Flex>().is_ok();
    let shape = param.shape();
    let mut tensors = vec![param, grad];
    tensors.extend(moments.into_iter().flatten());
    tensors.iter().all(|t| flex_f32(t) && t.shape() == shape)
}

/// `param` updated by `grad` at learning rate `lr`, and the moments after it (`None` before the
/// first update). Panics unless [`handles`] takes the tensors.
pub fn step<const D: usize>(
    update: &AdamUpdate,
    lr: f64,
    param: Tensor<D>,
    grad: Tensor<D>,
    moments: Option<Moments<D>>,
) -> (Tensor<D>, Moments<D>) {
    let checked = "an f32 flex tensor (checked by `handles`)";
    let flex = |t: Tensor<D>| super::contiguous(t.try_into_primitive::<Flex>().expect(checked));
    let shape = param.shape();
    let mut param = flex(param);
    let grad = flex(grad);
    let (time, mut moment_1, mut moment_2) = match moments {
        Some(m) => (m.time + 1, flex(m.moment_1), flex(m.moment_2)),
        None => {
            let zeros = || tensor(vec![0.0; shape.num_elements()], shape.clone());
            (1, zeros(), zeros())
        }
    };
    let constants = Constants::new(update, lr, time);
    let (w, g) = (slice_mut(&mut param), slice(&grad));
    let (m, v) = (slice_mut(&mut moment_1), slice_mut(&mut moment_2));
    if w.len() >= PARALLEL_FROM && rayon::current_num_threads() > 1 {
        let chunk = w.len().div_ceil(rayon::current_num_threads());
        w.par_chunks_mut(chunk)
            .zip(g.par_chunks(chunk))
            .zip(m.par_chunks_mut(chunk))
            .zip(v.par_chunks_mut(chunk))
            .for_each(|(((w, g), m), v)| constants.apply(w, g, m, v));
    } else {
        constants.apply(w, g, m, v);
    }
    let tensor = |t: FlexTensor| Tensor::from_primitive::<Flex>(t);
    let moments = Moments {
        time,
        moment_1: tensor(moment_1),
        moment_2: tensor(moment_2),
    };
    (tensor(param), moments)
}

/// One update's scalars, computed as Burn's optimizers compute them.
#[derive(Debug, Clone, Copy)]
struct Constants {
    rule: Rule,
    /// Whether this is the first update (the moments start from the gradient alone).
    first: bool,
    beta_1: f32,
    beta_2: f32,
    /// `1 - beta_1` and `1 - beta_2`.
    factor_1: f32,
    factor_2: f32,
    /// The learning rate, as the tensors' scalar operations round it.
    lr: f32,
    /// Adam: the first moment's factor and the epsilon, both bias-corrected.
    combined_factor: f32,
    corrected_epsilon: f32,
    /// AdamW: the two moments' bias corrections, the epsilon, and the factor the weights keep
    /// (`None` without decay).
    correction_1: f32,
    correction_2: f32,
    epsilon: f32,
    keep: Option<f32>,
}

impl Constants {
    fn new(update: &AdamUpdate, lr: f64, time: usize) -> Self {
        let t = time as i32;
        let (beta_1, beta_2) = (update.beta_1, update.beta_2);
        let bias_correction2_sqrt = (1.0 - beta_2.powi(t)).sqrt();
        let decay_rate = match update.rule {
            Rule::AdamW { weight_decay } => lr * weight_decay as f64,
            Rule::Adam { .. } => 0.0,
        };
        Self {
            rule: update.rule,
            first: time == 1,
            beta_1,
            beta_2,
            factor_1: 1.0 - beta_1,
            factor_2: 1.0 - beta_2,
            lr: lr as f32,
            combined_factor: bias_correction2_sqrt / (1.0 - beta_1.powi(t)),
            corrected_epsilon: update.epsilon * bias_correction2_sqrt,
            correction_1: 1.0 - beta_1.powi(t),
            correction_2: 1.0 - beta_2.powi(t),
            epsilon: update.epsilon,
            keep: (decay_rate != 0.0).then_some((1.0 - decay_rate) as f32),
        }
    }

    /// The update over the elements of `w` (in place), its gradient `g` and its moments `m`
    /// and `v` (in place).
    fn apply(&self, w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m).zip(v) {
            let g = match self.rule {
                Rule::Adam { penalty: Some(p) } => *w * p + g,
                _ => g,
            };
            let squared = g * g;
            if self.first {
                *m = g * self.factor_1;
                *v = squared * self.factor_2;
            } else {
                *m = *m * self.beta_1 + g * self.factor_1;
                *v = *v * self.beta_2 + squared * self.factor_2;
            }
            *w = match self.rule {
                Rule::Adam { .. } => {
                    let delta = *m * self.combined_factor / (v.sqrt() + self.corrected_epsilon);
                    *w - delta * self.lr
                }
                Rule::AdamW { .. } => {
                    let delta =
                        (*m / self.correction_1) / ((*v / self.correction_2).sqrt() + self.epsilon);
                    self.keep.map_or(*w, |keep| *w * keep) - delta * self.lr
                }
            };
        }
    }
}
