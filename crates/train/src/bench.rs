//! `bench`: timed training steps (forward, backward, optimizer, through the Learner's own step
//! functions) and inference at batch 1 and batch 1024, each the median of several repetitions.

use std::time::{Duration, Instant};

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::train::Learner;
use fashion_mixer_data::{FashionMnistBatch, FashionMnistBatcher, FashionMnistDataset};
use serde::{Deserialize, Serialize};

use crate::error::TrainError;
use fashion_mixer_model::fpu;
use fashion_mixer_run::metrics::median;
use fashion_mixer_run::{RunError, TrainingConfig};

use crate::distributed::{Distributed, Slicing, StepWork};

/// How much to measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchOptions {
    /// Training steps per repetition.
    pub steps: usize,
    /// Untimed steps first (kernel compilation, allocator warm-up).
    pub warmup: usize,
    /// Repetitions; the median is reported.
    pub repeats: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            steps: 20,
            warmup: 3,
            repeats: 5,
        }
    }
}

/// What `bench` measured; written as `bench.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// What was timed: model, optimizer, schedule, label smoothing, batch size, backend.
    pub config: TrainingConfig,
    /// Threads the CPU backends use (rayon's pool; `RAYON_NUM_THREADS` sets it).
    pub threads: usize,
    /// Backend name.
    pub backend: String,
    /// Training batch size.
    pub batch_size: usize,
    /// Timed training steps per repetition.
    pub steps: usize,
    /// Repetitions (medians are reported).
    pub repeats: usize,
    /// Training throughput: images per second, data assembly included (median).
    pub train_images_per_s: f64,
    /// Milliseconds per training step: forward, backward, optimizer (median, data excluded).
    pub train_step_ms: f64,
    /// Milliseconds to assemble one batch from the dataset (median).
    pub data_ms_per_batch: f64,
    /// Share of a training step's time spent assembling its batch, in [0, 1].
    pub data_share: f64,
    /// Milliseconds to classify one image (median).
    pub infer_batch1_ms: f64,
    /// Images per second classified in batches of 1024 (median).
    pub infer_batch1024_images_per_s: f64,
    /// Processes training together (1: this one alone); each takes its share of every batch,
    /// and the training figures are the whole batch's.
    #[serde(default = "one")]
    pub ranks: usize,
    /// With several ranks: bytes each step's reduction sums (every gradient, the batch's
    /// logits and loss), per rank.
    #[serde(default)]
    pub reduce_bytes_per_step: usize,
    /// With several ranks: milliseconds a step spends in its reduction (the wait for the
    /// slowest rank included), median.
    #[serde(default)]
    pub reduce_ms_per_step: f64,
    /// With several ranks: the part of `reduce_ms_per_step` spent waiting for the last rank to
    /// arrive (a barrier before each reduction times it), median, this rank's (rank 0's in the
    /// report; every rank's in `reduce_wait_ms_by_rank`); the rest is the transfer.
    #[serde(default)]
    pub reduce_wait_ms_per_step: f64,
    /// Milliseconds per step in the optimizer's update (and the moving average's), median;
    /// part of `train_step_ms`. Every rank makes the whole update, so it does not shrink with
    /// more ranks.
    #[serde(default)]
    pub optimizer_ms_per_step: f64,
    /// With several ranks: whether each took an equal slice of every batch (else a slice
    /// sized by its speed over the last steps).
    #[serde(default)]
    pub equal_slices: bool,
    /// With several ranks: the fewest and the most items of a batch this rank (rank 0, in the
    /// report) took over the timed steps.
    #[serde(default)]
    pub slice_items: (usize, usize),
    /// With several ranks: the items of a batch this rank (rank 0) took on average.
    #[serde(default)]
    pub slice_items_mean: f64,
    /// With several ranks: each rank's `reduce_wait_ms_per_step`, in rank order (the slower
    /// rank waits least).
    #[serde(default)]
    pub reduce_wait_ms_by_rank: Vec<f64>,
    /// How the timed steps' times spread: the few steps the machine held up (with several
    /// ranks, a step held up on any rank is slow on all, since they wait for it).
    #[serde(default)]
    pub step_spread: StepSpread,
    /// With several ranks: each timed step's items and work on every rank.
    #[serde(default)]
    pub rank_work: Vec<StepWork>,
    /// With several ranks: how evenly the timed steps' work fell on the ranks.
    #[serde(default)]
    pub work_balance: WorkBalance,
}

/// How a bench's timed steps' times spread (data excluded): the typical step, the slowest, and
/// the steps slowed well past the typical one, over [`StepSpread::SLOW`] times the median.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct StepSpread {
    /// Timed steps (steps x repetitions).
    pub steps: usize,
    /// The median step's milliseconds.
    pub median_ms: f64,
    /// The slowest step's milliseconds.
    pub slowest_ms: f64,
    /// Steps over [`Self::SLOW`] times the median.
    pub slow_steps: usize,
    /// Those steps' milliseconds beyond the median, per timed step: what the slow steps add to
    /// the mean step.
    pub slow_ms_per_step: f64,
    /// The steps' standard deviation over their mean: how much one step's time differs from
    /// the next's.
    #[serde(default)]
    pub variation: f64,
}

impl StepSpread {
    /// A step slower than this many times the median counts as slow.
    pub const SLOW: f64 = 1.25;

    /// The spread of `steps_ms`, each step's milliseconds.
    pub fn of(steps_ms: &[f64]) -> Self {
        if steps_ms.is_empty() {
            return Self::default();
        }
        let median_ms = median(steps_ms.to_vec());
        let slow: Vec<f64> = steps_ms
            .iter()
            .filter(|&&ms| ms > Self::SLOW * median_ms)
            .map(|ms| ms - median_ms)
            .collect();
        Self {
            steps: steps_ms.len(),
            median_ms,
            slowest_ms: steps_ms.iter().copied().fold(0.0, f64::max),
            slow_steps: slow.len(),
            // Folded from +0.0: a sum of no steps would be -0.0.
            slow_ms_per_step: slow.iter().fold(0.0, |sum, ms| sum + ms) / steps_ms.len() as f64,
            variation: variation(steps_ms),
        }
    }
}

/// How evenly the timed steps' work ([`StepWork`]) fell on the ranks: the slowest rank's work
/// against the same steps' items split by each step's own speeds, the least that slices sized
/// before a step (by speed or equal) could reach.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct WorkBalance {
    /// Steps counted (those on which every rank computed something).
    pub steps: usize,
    /// The slowest rank's work, milliseconds a step (mean): how long the work kept the ranks
    /// from each reduction.
    pub slowest_ms: f64,
    /// The same steps' work split by each step's own speeds, milliseconds a step (mean).
    pub balanced_ms: f64,
    /// Each rank's time per item, its standard deviation over its mean across the steps, in
    /// rank order.
    pub per_item_variation: Vec<f64>,
}

impl WorkBalance {
    /// The balance of `steps`.
    pub fn of(steps: &[StepWork]) -> Self {
        let counted: Vec<(&StepWork, f64)> = steps
            .iter()
            .filter_map(|step| Some((step, step.balanced_ms()?)))
            .collect();
        if counted.is_empty() {
            return Self::default();
        }
        let n = counted.len() as f64;
        let ranks = counted[0].0.items.len();
        let per_item = |rank: usize| -> Vec<f64> {
            counted
                .iter()
                .map(|(step, _)| step.work_ms[rank] / step.items[rank] as f64)
                .collect()
        };
        Self {
            steps: counted.len(),
            slowest_ms: counted
                .iter()
                .map(|(step, _)| step.slowest_ms())
                .sum::<f64>()
                / n,
            balanced_ms: counted.iter().map(|(_, balanced)| balanced).sum::<f64>() / n,
            per_item_variation: (0..ranks).map(|rank| variation(&per_item(rank))).collect(),
        }
    }

    /// How much longer the slowest rank worked than the balanced split: 0.05 is 5%.
    pub fn excess(&self) -> f64 {
        if self.balanced_ms > 0.0 {
            self.slowest_ms / self.balanced_ms - 1.0
        } else {
            0.0
        }
    }
}

/// The standard deviation of `values` over their mean (0 for fewer than two values).
fn variation(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    if mean == 0.0 {
        return 0.0;
    }
    let squares = values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>();
    (squares / n).sqrt() / mean
}

fn one() -> usize {
    1
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The items `offset..offset+n` of `data`, wrapping around.
fn items(
    data: &FashionMnistDataset,
    offset: usize,
    n: usize,
) -> Vec<fashion_mixer_data::FashionMnistItem> {
    (0..n)
        .map(|i| data.get((offset + i) % data.len()).expect("in memory"))
        .collect()
}

/// Runs the benchmark for `config` (model, optimizer, backend, batch size, and the moving
/// average and the teacher's forward pass when it has them) on `data`, on threads that flush
/// subnormals as training's do ([`fpu::flushed`]). With `distributed`, every rank runs it: each
/// step takes this rank's share of the batch and the reduction, whose waiting for the slowest
/// rank is timed apart ([`Distributed::measuring_waits`]); inference is timed on rank 0 alone
/// (the others report 0 for it).
pub fn bench(
    config: &TrainingConfig,
    data: &FashionMnistDataset,
    options: BenchOptions,
    distributed: Option<&Distributed>,
) -> Result<BenchReport, TrainError> {
    config.validate().map_err(RunError::from)?;
    fpu::flushed(|| bench_here(config, data, options, distributed))
}

/// [`bench`](fn@bench), on the calling thread.
fn bench_here(
    config: &TrainingConfig,
    data: &FashionMnistDataset,
    options: BenchOptions,
    distributed: Option<&Distributed>,
) -> Result<BenchReport, TrainError> {
    let device = config.backend.device().map_err(RunError::from)?;
    device.seed(config.seed);
    let autodiff = device.clone().autodiff();
    let distributed = distributed.map(|d| d.clone().for_backend(config.backend));
    let distributed = distributed.as_ref();
    let batcher = FashionMnistBatcher::default();
    let batch_size = config.batch_size;

    let mut learner = Learner::new(
        crate::training::training_model(config, &autodiff, false)?
            .with_distributed(distributed.cloned().map(Distributed::measuring_waits)),
        crate::optimizer::optimizer(config),
        crate::schedule::scheduler(config, data.len()),
    );
    let mut offset = 0;
    let mut next_batch = |device: &burn::prelude::Device| -> (FashionMnistBatch, Duration) {
        let start = Instant::now();
        let batch = batcher.batch(items(data, offset, batch_size), device);
        offset += batch_size;
        (batch, start.elapsed())
    };
    // The step's time, and the part of it in the optimizer.
    let step = |learner: &mut Learner<crate::training_model::TrainingModel>,
                batch: FashionMnistBatch| {
        let start = Instant::now();
        learner.lr_step();
        let output = learner.train_step(batch);
        // Reading the loss waits for the device, as the Learner's metrics do every step.
        let _loss: f32 = output.item.loss.clone().into_scalar();
        let optimizer = Instant::now();
        learner.optimizer_step(output.grads);
        (start.elapsed(), optimizer.elapsed())
    };

    for _ in 0..options.warmup {
        let (batch, _) = next_batch(&autodiff);
        let _ = step(&mut learner, batch);
    }
    let (mut throughputs, mut step_ms, mut data_ms) = (Vec::new(), Vec::new(), Vec::new());
    let (mut reduce_ms, mut wait_ms, mut optimizer_ms) = (Vec::new(), Vec::new(), Vec::new());
    let reduced = || distributed.map(Distributed::stats).unwrap_or_default();
    let (mut slice_items, mut sliced) = ((usize::MAX, 0), 0);
    let mut each_step_ms = Vec::new();
    let work_before = distributed.map_or(0, |d| d.work().len());
    for _ in 0..options.repeats.max(1) {
        let (mut data_time, mut step_time) = (Duration::ZERO, Duration::ZERO);
        let mut optimizer_time = Duration::ZERO;
        let before = reduced();
        for _ in 0..options.steps.max(1) {
            if let Some(distributed) = distributed {
                let items = distributed.training_part(batch_size).len();
                slice_items = (slice_items.0.min(items), slice_items.1.max(items));
                sliced += items;
            }
            let (batch, d) = next_batch(&autodiff);
            data_time += d;
            let (s, o) = step(&mut learner, batch);
            each_step_ms.push(ms(s));
            step_time += s;
            optimizer_time += o;
        }
        let steps = options.steps.max(1) as f64;
        let total = (data_time + step_time).as_secs_f64();
        throughputs.push(steps * batch_size as f64 / total);
        step_ms.push(ms(step_time) / steps);
        data_ms.push(ms(data_time) / steps);
        optimizer_ms.push(ms(optimizer_time) / steps);
        let after = reduced();
        reduce_ms.push(ms(after.time - before.time) / steps);
        wait_ms.push(ms(after.wait - before.wait) / steps);
    }
    let stats = reduced();
    // Every rank's work in the timed steps (each rank keeps them all).
    let rank_work = distributed.map_or_else(Vec::new, |d| d.work().split_off(work_before));
    let timed_steps = (options.steps.max(1) * options.repeats.max(1)) as f64;
    let reduce_wait_ms_per_step = median(wait_ms);
    // Every rank's wait, summed from each rank's own slot.
    let waits = distributed.map(|d| {
        let mut waits = vec![0.0; d.size()];
        waits[d.rank()] = reduce_wait_ms_per_step;
        d.sum_f64(&mut waits);
        waits
    });
    let training = BenchReport {
        config: config.clone(),
        threads: rayon::current_num_threads(),
        backend: config.backend.to_string(),
        batch_size,
        steps: options.steps,
        repeats: options.repeats,
        train_images_per_s: median(throughputs),
        train_step_ms: median(step_ms),
        data_ms_per_batch: median(data_ms),
        data_share: 0.0,
        infer_batch1_ms: 0.0,
        infer_batch1024_images_per_s: 0.0,
        ranks: distributed.map_or(1, Distributed::size),
        reduce_bytes_per_step: stats.bytes / stats.count.max(1),
        reduce_ms_per_step: median(reduce_ms),
        reduce_wait_ms_per_step,
        optimizer_ms_per_step: median(optimizer_ms),
        equal_slices: distributed.is_some_and(|d| d.slicing_on(config.backend) == Slicing::Equal),
        slice_items: if distributed.is_some() {
            slice_items
        } else {
            (0, 0)
        },
        slice_items_mean: if distributed.is_some() {
            sliced as f64 / timed_steps
        } else {
            0.0
        },
        reduce_wait_ms_by_rank: waits.unwrap_or_default(),
        step_spread: StepSpread::of(&each_step_ms),
        work_balance: WorkBalance::of(&rank_work),
        rank_work,
    };
    let training = BenchReport {
        data_share: training.data_ms_per_batch
            / (training.data_ms_per_batch + training.train_step_ms),
        ..training
    };
    if distributed.is_some_and(|d| d.rank() != 0) {
        // Inference is rank 0's to time.
        return Ok(training);
    }

    // Inference: a model without autodiff, as `infer` uses.
    let model = config.model.init(&device).map_err(RunError::from)?;
    let infer = |n: usize, offset: usize| {
        let batch = batcher.batch(items(data, offset, n), &device);
        let start = Instant::now();
        let logits = model.forward(batch.images);
        let _ = logits.into_data(); // waits for the device
        start.elapsed()
    };
    infer(1, 0);
    infer(1024, 0);
    let batch1: Vec<f64> = (0..50).map(|i| ms(infer(1, i))).collect();
    let batch1024: Vec<f64> = (0..options.repeats.max(1))
        .map(|i| 1024.0 / infer(1024, i * 1024).as_secs_f64())
        .collect();

    Ok(BenchReport {
        infer_batch1_ms: median(batch1),
        infer_batch1024_images_per_s: median(batch1024),
        ..training
    })
}
