//! The optimizer a configuration names (SGD with momentum, Adam, AdamW), as the Learner takes it.

use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, ModuleOptimizer, SgdConfig};
use fashion_mixer_run::{OptimizerKind, TrainingConfig};

/// The optimizer `config` describes, ready for the Learner.
pub fn optimizer(config: &TrainingConfig) -> ModuleOptimizer {
    let l2 =
        (config.weight_decay > 0.0).then(|| WeightDecayConfig::new(config.weight_decay as f32));
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
        // PyTorch's epsilon (1e-8), so results compare with the reference notebook.
        OptimizerKind::Adam => AdamConfig::new()
            .with_epsilon(1e-8)
            .with_weight_decay(l2)
            .init(),
        OptimizerKind::AdamW => AdamWConfig::new()
            .with_epsilon(1e-8)
            .with_weight_decay(config.weight_decay as f32)
            .init(),
    }
}
