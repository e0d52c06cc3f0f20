//! The learning-rate schedule: an optional linear warm-up, then constant or cosine decay.

use burn::lr_scheduler::{LrScheduler, LrSchedulerRecord};

use fashion_mixer_run::{LrSchedule, TrainingConfig};

/// The learning-rate schedule of `config` for a training set of `train_items`: a plain constant
/// rate stays a bare number (as runs before schedules existed saved it).
pub fn scheduler(
    config: &TrainingConfig,
    train_items: usize,
) -> burn::lr_scheduler::module_lr_scheduler::ModuleLrScheduler {
    if config.lr_schedule == LrSchedule::Constant && config.warmup_epochs == 0 {
        config.lr.into()
    } else {
        WarmupCosine::new(config, train_items).into()
    }
}

/// Linear warm-up from near 0 to `lr` over `warmup` steps, then `lr` (constant) or a cosine from
/// `lr` down to `min_lr` at the last step. Steps count optimizer updates (batches).
#[derive(Debug, Clone, PartialEq)]
pub struct WarmupCosine {
    /// The peak learning rate.
    pub lr: f64,
    /// Where the cosine ends.
    pub min_lr: f64,
    /// Warm-up steps.
    pub warmup: usize,
    /// All the run's steps.
    pub total: usize,
    /// Cosine decay after the warm-up (otherwise constant).
    pub cosine: bool,
    /// Steps taken so far.
    pub step: usize,
}

impl WarmupCosine {
    /// The schedule `config` describes, for `train_items` training items per epoch.
    pub fn new(config: &TrainingConfig, train_items: usize) -> Self {
        let per_epoch = train_items.div_ceil(config.batch_size).max(1);
        Self {
            lr: config.lr,
            min_lr: config.min_lr,
            warmup: config.warmup_epochs * per_epoch,
            total: config.epochs * per_epoch,
            cosine: config.lr_schedule == LrSchedule::Cosine,
            step: 0,
        }
    }

    /// The learning rate of step `step` (1-based).
    pub fn lr_at(&self, step: usize) -> f64 {
        if step <= self.warmup {
            return self.lr * step as f64 / self.warmup as f64;
        }
        if !self.cosine {
            return self.lr;
        }
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        let t = ((step - self.warmup) as f64 / span).min(1.0);
        self.min_lr + (self.lr - self.min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

impl LrScheduler for WarmupCosine {
    fn step(&mut self) -> f64 {
        self.step += 1;
        self.lr_at(self.step)
    }

    fn to_record(&self) -> LrSchedulerRecord {
        LrSchedulerRecord::new().with_scalar("step", self.step as u64)
    }

    fn load_record(&mut self, record: LrSchedulerRecord) {
        if let Some(step) = record.scalar::<u64>("step") {
            self.step = step as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_then_follows_a_cosine_to_min_lr() {
        let config = TrainingConfig::new()
            .with_lr(1e-3)
            .with_min_lr(1e-5)
            .with_epochs(10)
            .with_warmup_epochs(2)
            .with_batch_size(100)
            .with_lr_schedule(LrSchedule::Cosine);
        let mut s = WarmupCosine::new(&config, 1000); // 10 steps per epoch, 100 in all
        assert_eq!((s.warmup, s.total), (20, 100));
        let lrs: Vec<f64> = (0..100).map(|_| s.step()).collect();
        assert!((lrs[0] - 5e-5).abs() < 1e-12); // 1/20 of the peak
        assert!((lrs[19] - 1e-3).abs() < 1e-12); // the peak at the end of warm-up
        assert!(lrs[..20].windows(2).all(|w| w[0] < w[1]));
        assert!(lrs[20..].windows(2).all(|w| w[0] > w[1]));
        assert!((lrs[59] - (1e-5 + (1e-3 - 1e-5) * 0.5)).abs() < 1e-12); // half-way down
        assert!((lrs[99] - 1e-5).abs() < 1e-12);
        // The record holds the step: a resumed schedule goes on where it stopped.
        let mut resumed = WarmupCosine::new(&config, 1000);
        resumed.load_record(s.to_record());
        assert_eq!(resumed.step, 100);
    }

    #[test]
    fn without_cosine_it_is_constant_after_warm_up() {
        let config = TrainingConfig::new().with_epochs(3).with_warmup_epochs(1);
        let mut s = WarmupCosine::new(&config, 512); // 2 steps per epoch
        let lrs: Vec<f64> = (0..6).map(|_| s.step()).collect();
        assert_eq!(lrs, vec![5e-4, 1e-3, 1e-3, 1e-3, 1e-3, 1e-3]);
    }
}
