//! The optimizer a configuration names (SGD with momentum, Adam, AdamW), as the Learner takes it.
//!
//! Adam and AdamW are Burn's, with their update of an `f32` parameter on flex made in one pass
//! ([`fashion_mixer_model::kernels::adam`]): the same arithmetic and the same state, so their
//! records are Burn's and a checkpoint resumes under either.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{
    Adam, AdamConfig, AdamState, AdamW, AdamWConfig, AdamWState, AdaptiveMomentumState,
    LearningRate, ModuleOptimizer, Optimizer, SgdConfig,
};
use burn::prelude::*;
use fashion_mixer_model::kernels::adam::{self, AdamUpdate, Moments, Rule};
use fashion_mixer_run::{OptimizerKind, TrainingConfig};

/// PyTorch's Adam epsilon (1e-8), so results compare with the reference notebook.
const EPSILON: f32 = 1e-8;

/// The optimizer `config` describes, ready for the Learner.
pub fn optimizer(config: &TrainingConfig) -> ModuleOptimizer {
    let l2 =
        (config.weight_decay > 0.0).then(|| WeightDecayConfig::new(config.weight_decay as f32));
    let moments = |rule| AdamUpdate {
        beta_1: 0.9,
        beta_2: 0.999,
        epsilon: EPSILON,
        rule,
    };
    match config.optimizer {
        OptimizerKind::Sgd => SgdConfig::new()
            .with_weight_decay(l2)
            .with_momentum((config.momentum > 0.0).then(|| {
                // PyTorch's SGD: no dampening, no Nesterov.
                MomentumConfig::new()
                    .with_momentum(config.momentum)
                    .with_dampening(0.0)
            }))
            .init(),
        OptimizerKind::Adam => {
            let update = moments(Rule::Adam {
                penalty: l2.as_ref().map(|l2| l2.penalty),
            });
            let burn = AdamConfig::new()
                .with_beta_1(update.beta_1)
                .with_beta_2(update.beta_2)
                .with_epsilon(update.epsilon)
                .with_weight_decay(l2)
                .build();
            ModuleOptimizer::from(OnePass { burn, update })
        }
        OptimizerKind::AdamW => {
            let update = moments(Rule::AdamW {
                weight_decay: config.weight_decay as f32,
            });
            let burn = AdamWConfig::new()
                .with_beta_1(update.beta_1)
                .with_beta_2(update.beta_2)
                .with_epsilon(update.epsilon)
                .with_weight_decay(config.weight_decay as f32)
                .build();
            ModuleOptimizer::from(OnePass { burn, update })
        }
    }
}

/// Burn's Adam or AdamW (`O`), whose update runs in one pass where the kernel takes the tensors
/// and as Burn's elsewhere (other backends and element types).
#[derive(Clone)]
struct OnePass<O> {
    burn: O,
    update: AdamUpdate,
}

impl<O: BurnAdam> Optimizer for OnePass<O> {
    type State<const D: usize> = O::State<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let momentum = state.as_ref().map(O::momentum);
        // AMSGrad's maximum (never configured here) is Burn's alone.
        let takes = momentum.is_none_or(|m| m.max_moment_2.is_none())
            && adam::handles(&tensor, &grad, momentum.map(|m| [&m.moment_1, &m.moment_2]));
        if !takes {
            return self.burn.step(lr, tensor, grad, state);
        }
        let moments = state.map(|state| {
            let m = O::into_momentum(state);
            Moments {
                time: m.time,
                moment_1: m.moment_1,
                moment_2: m.moment_2,
            }
        });
        let (tensor, m) = adam::step(&self.update, lr, tensor, grad, moments);
        let momentum = AdaptiveMomentumState::new(m.time, m.moment_1, m.moment_2);
        (tensor, Some(O::with_momentum(momentum)))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        O::to_device(state, device)
    }
}

/// Burn's two optimizers whose state is the moments alone.
trait BurnAdam: Optimizer {
    /// The moments `state` holds.
    fn momentum<const D: usize>(state: &Self::State<D>) -> &AdaptiveMomentumState<D>;
    /// The moments `state` holds, taken out.
    fn into_momentum<const D: usize>(state: Self::State<D>) -> AdaptiveMomentumState<D>;
    /// The state that holds `momentum`.
    fn with_momentum<const D: usize>(momentum: AdaptiveMomentumState<D>) -> Self::State<D>;
}

/// [`BurnAdam`] for one of Burn's two, whose state is `$state { momentum }`.
macro_rules! burn_adam {
    ($optimizer:ty, $state:ident) => {
        impl BurnAdam for $optimizer {
            fn momentum<const D: usize>(state: &$state<D>) -> &AdaptiveMomentumState<D> {
                &state.momentum
            }
            fn into_momentum<const D: usize>(state: $state<D>) -> AdaptiveMomentumState<D> {
                state.momentum
            }
            fn with_momentum<const D: usize>(momentum: AdaptiveMomentumState<D>) -> $state<D> {
                $state::new(momentum)
            }
        }
    };
}

burn_adam!(Adam, AdamState);
burn_adam!(AdamW, AdamWState);

#[cfg(test)]
mod tests {
    use burn::module::{Module, Param};
    use burn::nn::Linear;
    use burn::optim::GradientsParams;
    use fashion_mixer_model::Backend;

    use super::*;

    /// A weight matrix over the kernel's parallel size, and small ones.
    #[derive(Module, Debug)]
    struct Net {
        big: Linear,
        small: Linear,
    }

    /// `n` values in -1..1 from `seed` (the tests run at once and share the device's random
    /// numbers, so they draw their own).
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    /// `values` as a tensor of `shape` on `device`.
    fn drawn<const D: usize>(shape: [usize; D], seed: u64, device: &Device) -> Tensor<D> {
        let n = shape.iter().product();
        Tensor::from_data(TensorData::new(values(n, seed), shape), device)
    }

    fn net(device: &Device) -> Net {
        let layer = |inputs, outputs, seed| Linear {
            weight: Param::from_tensor(drawn([inputs, outputs], seed, device)),
            bias: Some(Param::from_tensor(drawn([outputs], seed + 1, device))),
        };
        Net {
            big: layer(200, 200, 1),
            small: layer(5, 3, 3),
        }
    }

    /// `net` after `steps` of `optim`, each with gradients drawn from the step's number, on a
    /// pool of three threads (so the kernel splits the large matrix).
    fn stepped(
        optim: &mut ModuleOptimizer,
        mut net: Net,
        steps: std::ops::Range<u64>,
        device: &Device,
    ) -> Net {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let inner = device.clone().inner();
        for s in steps {
            let mut grads = GradientsParams::new();
            for (i, layer) in [&net.big, &net.small].into_iter().enumerate() {
                let seed = 100 * s + 10 * i as u64;
                grads.register(layer.weight.id, drawn(layer.weight.dims(), seed, &inner));
                let bias = layer.bias.as_ref().unwrap();
                grads.register(bias.id, drawn(bias.dims(), seed + 1, &inner));
            }
            net = pool.install(|| optim.step(1e-2, net, grads));
        }
        net
    }

    /// Every weight.
    fn weights(net: &Net) -> Vec<f32> {
        let data = [&net.big, &net.small].into_iter().flat_map(|l| {
            let bias = l.bias.as_ref().unwrap().val().into_data();
            [l.weight.val().into_data(), bias]
        });
        data.flat_map(|d| d.try_into_vec::<f32>().unwrap())
            .collect()
    }

    /// `a`'s weights and `b`'s, equal to the bit (how many differ, and by how much, otherwise).
    fn assert_same(a: &Net, b: &Net, what: &str) {
        let (a, b) = (weights(a), weights(b));
        let differ: Vec<(f32, f32)> = (a.iter().zip(&b))
            .filter(|(x, y)| x.to_bits() != y.to_bits())
            .map(|(x, y)| (*x, *y))
            .collect();
        let largest = differ
            .iter()
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(
            differ.is_empty(),
            "{what}: {} of {} weights differ, by up to {largest:e}; the first {:?}",
            differ.len(),
            a.len(),
            differ.first(),
        );
    }

    /// The configurations' optimizers, ours and Burn's own as the project built them before.
    fn cases() -> Vec<(String, ModuleOptimizer, ModuleOptimizer)> {
        let mut cases = Vec::new();
        for (kind, decay) in [
            (OptimizerKind::Adam, 0.0),
            (OptimizerKind::Adam, 1e-3),
            (OptimizerKind::AdamW, 0.05),
            (OptimizerKind::AdamW, 0.0),
        ] {
            let config = TrainingConfig::new()
                .with_optimizer(kind)
                .with_weight_decay(decay);
            let burn = match kind {
                OptimizerKind::Adam => AdamConfig::new()
                    .with_epsilon(EPSILON)
                    .with_weight_decay((decay > 0.0).then(|| WeightDecayConfig::new(decay as f32)))
                    .init(),
                _ => AdamWConfig::new()
                    .with_epsilon(EPSILON)
                    .with_weight_decay(decay as f32)
                    .init(),
            };
            cases.push((format!("{kind:?}, decay {decay}"), optimizer(&config), burn));
        }
        cases
    }

    /// On flex the one-pass update gives Burn's weights to the bit, step after step from the
    /// first, for Adam and AdamW with and without weight decay, the large matrix split over
    /// threads; on ndarray it is Burn's own.
    #[test]
    fn the_one_pass_update_equals_burns_to_the_bit() {
        for backend in [Backend::Flex, Backend::Ndarray] {
            let device = backend.device().unwrap().autodiff();
            for (what, mut ours, mut burns) in cases() {
                let a = stepped(&mut ours, net(&device), 0..4, &device);
                let b = stepped(&mut burns, net(&device), 0..4, &device);
                assert_same(&a, &b, &format!("{backend}, {what}"));
                let start = weights(&net(&device));
                assert!(weights(&a) != start, "{backend}, {what}: not updated");
            }
        }
    }

    /// The moments are Burn's state: a record either optimizer writes, the other resumes from,
    /// ending where Burn's alone ends.
    #[test]
    fn records_pass_between_burns_optimizer_and_the_one_pass() {
        let device = Backend::Flex.device().unwrap().autodiff();
        for ((what, mut ours, mut burns), (_, ours_after, mut burns_after)) in
            cases().into_iter().zip(cases())
        {
            let alone = stepped(&mut burns, net(&device), 0..4, &device);

            let half = stepped(&mut ours, net(&device), 0..2, &device);
            let mut resumed = burns_after.clone().load_record(ours.to_record());
            let through_burns = stepped(&mut resumed, half, 2..4, &device);
            assert_same(
                &through_burns,
                &alone,
                &format!("{what}: ours, then Burn's"),
            );

            let half = stepped(&mut burns_after, net(&device), 0..2, &device);
            let mut resumed = ours_after.clone().load_record(burns_after.to_record());
            let through_ours = stepped(&mut resumed, half, 2..4, &device);
            assert_same(&through_ours, &alone, &format!("{what}: Burn's, then ours"));
        }
    }
}
