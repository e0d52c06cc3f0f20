//! Data parallelism across processes: every process (a rank) trains the same model from the
//! same seed on the same global batches, takes its slice of each, and the slices' gradients are
//! summed with one reduction per step, so every rank applies the update of the whole batch.
//!
//! The transport is a [`Collective`] (MPI in `mpi.rs`, behind the `mpi` feature); this module
//! holds what does not depend on it: the one flat buffer a step reduces (every gradient, the
//! ranks' speeds, which size their next slices (`slices.rs`), the batch's logits and loss, the
//! ranks' stop requests); how the ranks start together, and the checks that they started alike,
//! are `start.rs`'s.
//!
//! A step's buffer carries each rank's stop request (Ctrl-C, a file that could not be written,
//! a diverged loss): a request on any rank stops every rank after that same step, so no rank
//! waits for a reduction the others never join.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::train::{ClassificationOutput, Interrupter, TrainOutput};
use fashion_mixer_model::Backend;
use fashion_mixer_run::evaluation::Reduce;
use serde::{Deserialize, Serialize};

use crate::slices::Speeds;
pub use crate::slices::{Slicing, part};

mod start;
pub(crate) use start::Start;

/// The processes training together, as a step meets them. Every method is a collective: every
/// rank calls it, in the same order, with buffers of the same length.
pub trait Collective: Send + Sync {
    /// This process's place among them, 0 first; rank 0 writes the run's files.
    fn rank(&self) -> usize;
    /// How many processes train together.
    fn size(&self) -> usize;
    /// `values` summed over every rank, on every rank (the buffer moves to the transport and
    /// back, uncopied).
    fn sum_f32(&self, values: Vec<f32>) -> Vec<f32>;
    /// `values` summed over every rank, on every rank.
    fn sum_f64(&self, values: Vec<f64>) -> Vec<f64>;
    /// Returns once every rank has called it.
    fn barrier(&self);
    /// Rank 0's `bytes` on every rank (the others' are replaced).
    fn broadcast(&self, bytes: &mut Vec<u8>);
    /// Every rank's `bytes`, all of the same length, in rank order.
    fn gather(&self, bytes: &[u8]) -> Vec<Vec<u8>>;
    /// Ends every process of the job now, with `code` (after a failure this rank alone met).
    fn abort(&self, code: i32) -> !;
}

/// Locks `mutex`, whether or not a thread panicked holding it (its values stay usable).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the reductions of a run have cost: how many, their bytes and their time (waiting for
/// the slowest rank included).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReduceStats {
    /// Reductions made.
    pub count: usize,
    /// `f32` bytes reduced, all of them together.
    pub bytes: usize,
    /// Time in them, waiting included.
    pub time: Duration,
    /// The part of `time` spent waiting for the last rank to arrive; measured only where
    /// [`Distributed::measuring_waits`] asked for it (zero otherwise).
    pub wait: Duration,
}

/// One training step's work on each rank: its items of the batch and the time it took to
/// compute them (forward and backward, before the reduction; its wait for the others not
/// counted), in rank order. Recorded where [`Distributed::measuring_waits`] asked for it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepWork {
    /// Each rank's items.
    pub items: Vec<usize>,
    /// Each rank's milliseconds of work (0 for a rank with no items).
    pub work_ms: Vec<f64>,
}

impl StepWork {
    /// The slowest rank's work: how long the step's work kept the ranks from the reduction.
    pub fn slowest_ms(&self) -> f64 {
        self.work_ms.iter().fold(0.0, |a, &b| a.max(b))
    }

    /// How long the step's work would have taken with its items split in proportion to each
    /// rank's speed in this very step (the ranks then arrive together): the least any slicing
    /// decided before the step could reach. `None` where a rank computed nothing.
    pub fn balanced_ms(&self) -> Option<f64> {
        let mut speed = 0.0; // items a millisecond, all ranks together
        for (&items, &ms) in self.items.iter().zip(&self.work_ms) {
            if items == 0 || ms <= 0.0 {
                return None;
            }
            speed += items as f64 / ms;
        }
        (speed > 0.0).then(|| self.items.iter().sum::<usize>() as f64 / speed)
    }
}

/// A training's place among the ranks, as the model being trained holds it: the collective,
/// the stop requests of this rank, and the Learner's stop, which every rank sets after the same
/// step.
#[derive(Clone)]
pub struct Distributed {
    collective: Arc<dyn Collective>,
    /// Stop requests of this rank (Ctrl-C, a failed write, divergence): carried by the next
    /// reduction.
    requests: Interrupter,
    /// The Learner's interrupter: stopped on every rank once any rank has asked.
    learner: Interrupter,
    stats: Arc<Mutex<ReduceStats>>,
    /// Whether each reduction first waits at a barrier, timed apart, and each step's work is
    /// recorded (see [`Self::measuring_waits`]).
    measure_waits: bool,
    /// Each training step's work on every rank, where measured.
    work: Arc<Mutex<Vec<StepWork>>>,
    /// How the ranks share a training batch; `None` until chosen or set for the backend
    /// ([`Self::for_backend`]), and equal meanwhile.
    slicing: Option<Slicing>,
    /// The ranks' training speeds, alike on every rank, that size their slices by speed.
    speeds: Arc<Mutex<Speeds>>,
}

impl fmt::Debug for Distributed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Distributed")
            .field("rank", &self.rank())
            .field("size", &self.size())
            .finish_non_exhaustive()
    }
}

impl Distributed {
    /// Training over `collective`: stop requests go to [`Self::requests`], and the Learner
    /// watches [`Self::learner`].
    pub fn new(collective: Arc<dyn Collective>) -> Self {
        Self {
            collective,
            requests: Interrupter::new(),
            learner: Interrupter::new(),
            stats: Arc::default(),
            measure_waits: false,
            work: Arc::default(),
            slicing: None,
            speeds: Arc::default(),
        }
    }

    /// This training, with every reduction preceded by a barrier whose time is counted as
    /// [`ReduceStats::wait`]: the reduction's time then splits into waiting for the slowest
    /// rank and the transfer itself (the bench's figures). Each training step's reduction also
    /// carries every rank's speed (as it does with slices by speed), and each step's work on
    /// every rank is kept ([`Self::work`]). The barrier costs one more tiny collective per step;
    /// the stats stay shared with `self`.
    pub fn measuring_waits(self) -> Self {
        Self {
            measure_waits: true,
            ..self
        }
    }

    /// This training, its batches shared as `slicing` says.
    pub fn with_slicing(self, slicing: Slicing) -> Self {
        Self {
            slicing: Some(slicing),
            ..self
        }
    }

    /// This training on `backend`: its batches shared as chosen, else as is the default there
    /// ([`Slicing::default_for`]).
    pub fn for_backend(self, backend: Backend) -> Self {
        let slicing = self.slicing_on(backend);
        self.with_slicing(slicing)
    }

    /// How the ranks share each training batch on `backend`.
    pub fn slicing_on(&self, backend: Backend) -> Slicing {
        self.slicing.unwrap_or(Slicing::default_for(backend))
    }

    /// Whether slices follow the ranks' speeds (chosen, or set for the backend).
    fn by_speed(&self) -> bool {
        self.slicing == Some(Slicing::BySpeed)
    }

    /// This rank.
    pub fn rank(&self) -> usize {
        self.collective.rank()
    }

    /// How many ranks.
    pub fn size(&self) -> usize {
        self.collective.size()
    }

    /// The collective itself.
    pub fn collective(&self) -> &Arc<dyn Collective> {
        &self.collective
    }

    /// Where this rank's stop requests go.
    pub fn requests(&self) -> &Interrupter {
        &self.requests
    }

    /// The interrupter the Learner watches.
    pub fn learner(&self) -> &Interrupter {
        &self.learner
    }

    /// The reductions so far.
    pub fn stats(&self) -> ReduceStats {
        *lock(&self.stats)
    }

    /// Each training step's work on every rank so far, where measured
    /// ([`Self::measuring_waits`]; empty otherwise).
    pub fn work(&self) -> Vec<StepWork> {
        lock(&self.work).clone()
    }

    /// This rank's slice of `items`.
    pub fn part(&self, items: usize) -> Range<usize> {
        part(items, self.rank(), self.size())
    }

    /// This rank's slice of a training batch of `items`: sized by the ranks' speeds over the
    /// last steps, or equal ([`Self::with_slicing`]).
    pub fn training_part(&self, items: usize) -> Range<usize> {
        if !self.by_speed() {
            return self.part(items);
        }
        self.training_parts(items).swap_remove(self.rank())
    }

    /// Every rank's slice of a training batch of `items`, in rank order.
    fn training_parts(&self, items: usize) -> Vec<Range<usize>> {
        if !self.by_speed() {
            return (0..self.size())
                .map(|rank| part(items, rank, self.size()))
                .collect();
        }
        lock(&self.speeds).parts(items, self.size())
    }

    /// Sums `buffer` over the ranks, with this rank's stop request as its last value; after it,
    /// stops the Learner when any rank asked.
    fn reduce(&self, buffer: &mut Vec<f32>) {
        buffer.push(if self.requests.should_stop() {
            1.0
        } else {
            0.0
        });
        let start = Instant::now();
        let wait = if self.measure_waits {
            self.collective.barrier();
            start.elapsed()
        } else {
            Duration::ZERO
        };
        *buffer = self.collective.sum_f32(std::mem::take(buffer));
        let mut stats = lock(&self.stats);
        stats.count += 1;
        stats.bytes += buffer.len() * size_of::<f32>();
        stats.time += start.elapsed();
        stats.wait += wait;
        drop(stats);
        if buffer.pop().is_some_and(|stops| stops > 0.0) && !self.learner.should_stop() {
            self.learner.stop(Some(
                "stopped on a rank (Ctrl-C, a failed write or divergence)",
            ));
        }
    }

    /// The whole batch's training output from this rank's, `local` (the gradients of its
    /// slice's loss, weighted by the slice's share of the batch; its logits of `classes` classes
    /// and weighted loss), for `model` (whose parameters say the gradients' order): every
    /// gradient summed over the ranks, the batch's logits gathered, its loss summed; `targets`
    /// are the whole batch's, `mine` this rank's slice of them.
    /// `local` is `None` where this rank's slice is empty (a batch smaller than the ranks).
    /// With slices sized by speed, the reduction also carries each rank's speed (its items
    /// a second since the step `started`), from which every rank sizes the next step's slices;
    /// measured ([`Self::measuring_waits`]), it carries them too, and the step's work is kept.
    pub fn reduce_training<M: Module>(
        &self,
        model: &M,
        local: Option<TrainOutput<ClassificationOutput>>,
        targets: Tensor<1, Int>,
        classes: usize,
        mine: Range<usize>,
        started: Instant,
    ) -> TrainOutput<ClassificationOutput> {
        let (mut grads, item) = match local {
            Some(TrainOutput { grads, item }) => (grads, Some(item)),
            None => (GradientsParams::new(), None),
        };
        let mut flat = Flatten {
            grads: &mut grads,
            values: Vec::new(),
            layout: Vec::new(),
        };
        model.visit(&mut flat);
        let Flatten {
            values: mut buffer,
            layout,
            ..
        } = flat;
        let gradients = buffer.len();
        let speeds_travel = self.by_speed() || self.measure_waits;
        // The slices of this step, before its speeds resize the next step's.
        let parts = self
            .measure_waits
            .then(|| self.training_parts(targets.dims()[0]));
        if speeds_travel {
            // This rank's speed, items a second, in its own slot of one per rank.
            let mut speeds = vec![0.0; self.size()];
            let seconds = started.elapsed().as_secs_f64();
            if !mine.is_empty() && seconds > 0.0 {
                speeds[self.rank()] = (mine.len() as f64 / seconds) as f32;
            }
            buffer.extend(speeds);
        }
        let offset = buffer.len();
        let item = self.reduce_item(item, targets, &mut buffer, offset, classes, mine);
        let speeds = &buffer[gradients..offset];
        if let Some(parts) = parts {
            let items: Vec<usize> = parts.iter().map(Range::len).collect();
            let work_ms = items
                .iter()
                .zip(speeds)
                .map(|(&n, &speed)| {
                    if speed > 0.0 {
                        1e3 * n as f64 / f64::from(speed)
                    } else {
                        0.0
                    }
                })
                .collect();
            lock(&self.work).push(StepWork { items, work_ms });
        }
        if self.by_speed() {
            lock(&self.speeds).update(speeds);
        }
        let mut grads = GradientsParams::new();
        model.visit(&mut Unflatten {
            grads: &mut grads,
            values: &buffer[..gradients],
            layout: &layout,
        });
        TrainOutput { grads, item }
    }

    /// The whole batch's validation output from this rank's slice's, `local` (its logits of
    /// `classes` classes and its loss weighted by its share of the batch; `None` for an empty
    /// slice); `targets` are the whole batch's.
    pub fn reduce_inference(
        &self,
        local: Option<ClassificationOutput>,
        targets: Tensor<1, Int>,
        classes: usize,
    ) -> ClassificationOutput {
        let mine = self.part(targets.dims()[0]);
        self.reduce_item(local, targets, &mut Vec::new(), 0, classes, mine)
    }

    /// Appends this rank's logits (in its slice's rows, `mine`, of a zeroed `[items, classes]`)
    /// and loss to `buffer` (which holds `offset` values before them), reduces it, and reads the
    /// whole batch's logits and loss back.
    fn reduce_item(
        &self,
        local: Option<ClassificationOutput>,
        targets: Tensor<1, Int>,
        buffer: &mut Vec<f32>,
        offset: usize,
        classes: usize,
        mine: Range<usize>,
    ) -> ClassificationOutput {
        let device = targets.device();
        let items = targets.dims()[0];
        buffer.resize(offset + items * classes, 0.0);
        let mut loss = 0.0f32;
        if let Some(local) = local {
            let logits = local.output.into_data().convert::<f32>();
            let logits = logits.as_slice::<f32>().expect("f32 logits");
            buffer[offset + mine.start * classes..][..mine.len() * classes].copy_from_slice(logits);
            loss = local.loss.into_scalar::<f32>();
        }
        buffer.push(loss);
        self.reduce(buffer);
        let loss = buffer[offset + items * classes];
        let output = buffer[offset..offset + items * classes].to_vec();
        ClassificationOutput {
            loss: Tensor::from_data(TensorData::new(vec![loss], [1]), &device),
            output: Tensor::from_data(TensorData::new(output, [items, classes]), &device),
            targets,
        }
    }

    /// Sums `values` over the ranks (an evaluation's counts and losses).
    pub fn sum_f64(&self, values: &mut [f64]) {
        let sum = self.collective.sum_f64(values.to_vec());
        values.copy_from_slice(&sum);
    }
}

impl Reduce for Distributed {
    fn part(&self, items: usize) -> Range<usize> {
        Distributed::part(self, items)
    }

    fn sum(&self, values: &mut [f64]) {
        self.sum_f64(values);
    }
}

/// Appends each parameter's gradient (zeros where this rank has none) to `values`, in the
/// model's order, with one more value per parameter saying whether it had one: a parameter no
/// rank has a gradient for gets none back.
struct Flatten<'a> {
    grads: &'a mut GradientsParams,
    values: Vec<f32>,
    /// Each parameter: its id, shape and device, and where its gradient begins in `values`.
    layout: Vec<(ParamId, Vec<usize>, Device, usize)>,
}

impl ModuleVisitor for Flatten<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if !param.is_require_grad() {
            return;
        }
        let start = self.values.len();
        let value = param.val();
        let (dims, numel) = (value.dims().to_vec(), value.shape().num_elements());
        match self.grads.remove::<D>(param.id) {
            Some(grad) => {
                let device = grad.device();
                let data = grad.into_data().convert::<f32>();
                self.values
                    .extend_from_slice(data.as_slice::<f32>().expect("f32 gradients"));
                self.values.push(1.0);
                self.layout.push((param.id, dims, device, start));
            }
            None => {
                let device = value.device().without_autodiff();
                self.values.extend(std::iter::repeat_n(0.0, numel));
                self.values.push(0.0);
                self.layout.push((param.id, dims, device, start));
            }
        }
    }
}

/// Registers each parameter's summed gradient from `values`, as [`Flatten`] laid them out.
struct Unflatten<'a> {
    grads: &'a mut GradientsParams,
    values: &'a [f32],
    layout: &'a [(ParamId, Vec<usize>, Device, usize)],
}

impl ModuleVisitor for Unflatten<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some((_, dims, device, start)) = self.layout.iter().find(|(id, ..)| *id == param.id)
        else {
            return;
        };
        let numel: usize = dims.iter().product();
        if self.values[start + numel] == 0.0 {
            return; // no rank had a gradient for it
        }
        let values = self.values[*start..start + numel].to_vec();
        let grad = Tensor::<D>::from_data(TensorData::new(values, dims.clone()), device);
        self.grads.register::<D>(param.id, grad);
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::LinearConfig;

    use super::*;

    /// A rank of two (rank 0 unless said), the other ranks pretended: a sum adds `other` to the
    /// values at its offsets (the other rank's contribution), and records the buffer it was
    /// given; a gather returns `gathered` after this rank's bytes (three or more ranks), or this
    /// rank's bytes twice where it is empty.
    #[derive(Default)]
    pub(super) struct PretendPair {
        pub rank: usize,
        pub other: Vec<(usize, f32)>,
        pub gathered: Vec<Vec<u8>>,
        pub seen: Mutex<Vec<f32>>,
    }

    impl Collective for PretendPair {
        fn rank(&self) -> usize {
            self.rank
        }
        fn size(&self) -> usize {
            1 + self.gathered.len().max(1)
        }
        fn sum_f32(&self, mut values: Vec<f32>) -> Vec<f32> {
            *lock(&self.seen) = values.clone();
            for &(at, value) in &self.other {
                values[at] += value;
            }
            values
        }
        fn sum_f64(&self, values: Vec<f64>) -> Vec<f64> {
            values
        }
        fn barrier(&self) {}
        fn broadcast(&self, _: &mut Vec<u8>) {}
        fn gather(&self, bytes: &[u8]) -> Vec<Vec<u8>> {
            let mut all = vec![bytes.to_vec()];
            if self.gathered.is_empty() {
                all.push(bytes.to_vec());
            }
            all.extend(self.gathered.iter().cloned());
            all
        }
        fn abort(&self, code: i32) -> ! {
            panic!("abort {code}")
        }
    }

    /// One training step's reduction on rank 0 of `distributed`, for a linear layer of 3 inputs
    /// and 2 classes (6 weights, 2 biases and a flag for each come first in the buffer) over a batch of 4, rank
    /// 0's slice the first 2 items, the step begun `ago`.
    fn step(distributed: &Distributed, ago: Duration) -> TrainOutput<ClassificationOutput> {
        let device = Backend::Flex.device().unwrap().autodiff();
        let layer = LinearConfig::new(3, 2).init(&device);
        let logits = layer.forward(Tensor::<2>::ones([2, 3], &device));
        let loss = logits.clone().sum();
        let targets = Tensor::<1, Int>::from_data([0, 1, 0, 1], &device);
        let item = ClassificationOutput {
            loss: loss.clone(),
            output: logits,
            targets: targets.clone().narrow(0, 0, 2),
        };
        let local = TrainOutput::new(&layer, loss.backward(), item);
        let started = Instant::now() - ago;
        distributed.reduce_training(&layer, Some(local), targets, 2, 0..2, started)
    }

    /// Two ranks that built the same model from one seed each draw their own dropout masks
    /// from there on. (The device's generator is the process's: other tests drawing at the
    /// same time can only make the masks differ more.)
    #[test]
    fn each_rank_draws_its_own_dropout_masks() {
        let device = Backend::Flex.device().unwrap();
        let masks = |rank: usize| {
            device.seed(5);
            let pair = Arc::new(PretendPair {
                rank,
                ..PretendPair::default()
            });
            Distributed::new(pair).seed_draws(&device, 5);
            let dropout = burn::nn::DropoutConfig::new(0.5).init();
            let ones = Tensor::<2>::ones([32, 32], &device.clone().autodiff());
            dropout.forward(ones).into_data()
        };
        assert_ne!(masks(0), masks(1));
    }

    /// A slicing chosen holds on every backend; otherwise it is the backend's default.
    #[test]
    fn a_chosen_slicing_holds_on_every_backend() {
        let pair = || -> Arc<dyn Collective> { Arc::new(PretendPair::default()) };
        for backend in Backend::ALL {
            let default = Distributed::new(pair()).for_backend(backend);
            assert_eq!(default.slicing, Some(Slicing::default_for(backend)));
            for chosen in [Slicing::BySpeed, Slicing::Equal] {
                let distributed = Distributed::new(pair()).with_slicing(chosen);
                assert_eq!(distributed.slicing_on(backend), chosen);
                assert_eq!(distributed.for_backend(backend).slicing, Some(chosen));
            }
        }
        // Not yet set for a backend: equal.
        assert!(!Distributed::new(pair()).by_speed());
    }

    /// The reduction carries each rank's speed after the gradients; every rank sizes the next
    /// slices from them. Rank 0 computed 2 items in at least 20 ms (at most 100 a second), the
    /// other rank reports 300 a second: rank 0 then takes at most a quarter of a batch.
    #[test]
    fn slices_follow_the_speeds_the_reduction_carries() {
        let pair = Arc::new(PretendPair {
            other: vec![(11, 300.0)],
            ..PretendPair::default()
        });
        let distributed =
            Distributed::new(Arc::clone(&pair) as Arc<dyn Collective>).for_backend(Backend::Flex);
        assert_eq!(
            distributed.training_part(400),
            0..200,
            "equal before any step"
        );
        let output = step(&distributed, Duration::from_millis(20));
        let seen = lock(&pair.seen).clone();
        // 8 gradients and 2 flags, 2 speeds, 4x2 logits, the loss, the stop request.
        assert_eq!(seen.len(), 10 + 2 + 8 + 1 + 1);
        assert!(
            seen[10] > 0.0 && seen[10] <= 100.0,
            "rank 0's speed: {}",
            seen[10]
        );
        assert_eq!(seen[11], 0.0, "rank 1's slot is rank 1's to fill");
        let mine = distributed.training_part(400);
        assert_eq!(mine.start, 0);
        assert!((1..=100).contains(&mine.len()), "{mine:?}");
        // The logits are rank 0's rows of the batch's; the other rank's are its own (zero here).
        let logits = output
            .item
            .output
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(logits.len(), 8);
        assert!(logits[4..].iter().all(|&v| v == 0.0), "{logits:?}");

        // Equal slices (chosen, over the backend's default): no speeds travel, the slices stay
        // equal.
        let pair = Arc::new(PretendPair::default());
        let distributed = Distributed::new(Arc::clone(&pair) as Arc<dyn Collective>)
            .with_slicing(Slicing::Equal)
            .for_backend(Backend::Flex);
        step(&distributed, Duration::from_millis(20));
        assert_eq!(lock(&pair.seen).len(), 10 + 8 + 1 + 1);
        assert_eq!(distributed.training_part(400), 0..200);
        assert!(distributed.work().is_empty(), "kept only where measured");
    }

    /// Measured, equal slices too carry the speeds, and each step's work on both ranks is
    /// kept: rank 0's 2 items in at least 20 ms, the other rank's 2 at 50 a second (40 ms), the
    /// slices staying equal.
    #[test]
    fn a_measured_reduction_keeps_each_steps_work_on_every_rank() {
        let pair = Arc::new(PretendPair {
            other: vec![(11, 50.0)],
            ..PretendPair::default()
        });
        let distributed = Distributed::new(Arc::clone(&pair) as Arc<dyn Collective>)
            .with_slicing(Slicing::Equal)
            .for_backend(Backend::Flex)
            .measuring_waits();
        step(&distributed, Duration::from_millis(20));
        step(&distributed, Duration::from_millis(20));
        assert_eq!(lock(&pair.seen).len(), 10 + 2 + 8 + 1 + 1, "speeds travel");
        assert_eq!(distributed.training_part(400), 0..200, "still equal");
        let work = distributed.work();
        assert_eq!(work.len(), 2);
        for step in work {
            assert_eq!(step.items, vec![2, 2]);
            assert!(step.work_ms[0] >= 20.0, "{step:?}");
            assert!((step.work_ms[1] - 40.0).abs() < 1e-3, "{step:?}");
        }
    }
}
