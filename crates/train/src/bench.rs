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
/// subnormals as training's do ([`fpu::flushed`]).
pub fn bench(
    config: &TrainingConfig,
    data: &FashionMnistDataset,
    options: BenchOptions,
) -> Result<BenchReport, TrainError> {
    config.validate().map_err(RunError::from)?;
    fpu::flushed(|| bench_here(config, data, options))
}

/// [`bench`], on the calling thread.
fn bench_here(
    config: &TrainingConfig,
    data: &FashionMnistDataset,
    options: BenchOptions,
) -> Result<BenchReport, TrainError> {
    let device = config.backend.device().map_err(RunError::from)?;
    device.seed(config.seed);
    let autodiff = device.clone().autodiff();
    let batcher = FashionMnistBatcher::default();
    let batch_size = config.batch_size;

    let mut learner = Learner::new(
        crate::training::training_model(config, &autodiff, false)?,
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
    let step = |learner: &mut Learner<crate::training_model::TrainingModel>,
                batch: FashionMnistBatch| {
        let start = Instant::now();
        learner.lr_step();
        let output = learner.train_step(batch);
        // Reading the loss waits for the device, as the Learner's metrics do every step.
        let _loss: f32 = output.item.loss.clone().into_scalar();
        learner.optimizer_step(output.grads);
        start.elapsed()
    };

    for _ in 0..options.warmup {
        let (batch, _) = next_batch(&autodiff);
        step(&mut learner, batch);
    }
    let (mut throughputs, mut step_ms, mut data_ms) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..options.repeats.max(1) {
        let (mut data_time, mut step_time) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..options.steps.max(1) {
            let (batch, d) = next_batch(&autodiff);
            data_time += d;
            step_time += step(&mut learner, batch);
        }
        let steps = options.steps.max(1) as f64;
        let total = (data_time + step_time).as_secs_f64();
        throughputs.push(steps * batch_size as f64 / total);
        step_ms.push(ms(step_time) / steps);
        data_ms.push(ms(data_time) / steps);
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

    let train_step_ms = median(step_ms);
    let data_ms_per_batch = median(data_ms);
    Ok(BenchReport {
        config: config.clone(),
        threads: rayon::current_num_threads(),
        backend: config.backend.to_string(),
        batch_size,
        steps: options.steps,
        repeats: options.repeats,
        train_images_per_s: median(throughputs),
        train_step_ms,
        data_ms_per_batch,
        data_share: data_ms_per_batch / (data_ms_per_batch + train_step_ms),
        infer_batch1_ms: median(batch1),
        infer_batch1024_images_per_s: median(batch1024),
    })
}
