//! The model on a thread of its own, fed by a bounded queue: whatever queues while it is busy
//! goes through in one forward pass (up to `max_batch` images), so concurrent clients share the
//! work; a request that would overfill the queue is refused at once ([`Refused::Full`]), never
//! left waiting without bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use fashion_mixer_data::IMAGE_PIXELS;
use fashion_mixer_run::inference::{LoadedModel, Prediction};
use tokio::sync::oneshot;

use crate::metrics::Metrics;

/// A 28x28 input, as `decode_image` prepares it.
pub type Image = [u8; IMAGE_PIXELS];

/// Why the model did not take a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The queue holds as many images as it may.
    #[error("the model is busy: {queued} images wait for it (at most {capacity}); try again")]
    Full {
        /// Images waiting.
        queued: usize,
        /// The bound.
        capacity: usize,
    },
    /// The model's thread has stopped (it panicked): no prediction can be made.
    #[error("the model is not running")]
    Gone,
}

struct Job {
    images: Vec<Image>,
    reply: oneshot::Sender<Vec<Prediction>>,
}

/// A handle on the model's thread; cheap to clone.
#[derive(Debug, Clone)]
pub struct Predictor {
    jobs: mpsc::Sender<Job>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
}

/// The predictions for one accepted request, once the model has made them.
#[derive(Debug)]
pub struct Pending(oneshot::Receiver<Vec<Prediction>>);

impl Pending {
    /// Waits for the predictions (without blocking a thread).
    pub async fn wait(self) -> Result<Vec<Prediction>, Refused> {
        self.0.await.map_err(|_| Refused::Gone)
    }

    /// Waits for the predictions, blocking this thread.
    pub fn wait_blocking(self) -> Result<Vec<Prediction>, Refused> {
        self.0.blocking_recv().map_err(|_| Refused::Gone)
    }
}

impl Predictor {
    /// Starts the model's thread. `max_batch` caps the images of one forward pass (1 runs each
    /// request on its own); `capacity` caps the images that may wait for it. Each forward
    /// pass's size goes to `metrics`.
    pub fn spawn(
        model: LoadedModel,
        max_batch: usize,
        capacity: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let max_batch = max_batch.max(1);
        let queued = Arc::new(AtomicUsize::new(0));
        let waiting = Arc::clone(&queued);
        std::thread::Builder::new()
            .name("mixer-predictor".into())
            .spawn(move || {
                // Each forward pass runs on the threads that flush subnormals
                // (`LoadedModel::predict`).
                while let Ok(first) = queue.recv() {
                    let mut count = first.images.len();
                    let mut batch = vec![first];
                    while count < max_batch {
                        match queue.try_recv() {
                            Ok(job) => {
                                count += job.images.len();
                                batch.push(job);
                            }
                            Err(_) => break,
                        }
                    }
                    waiting.fetch_sub(count, Ordering::SeqCst);
                    metrics.batch_sizes.observe(count as f64);
                    let images: Vec<Image> = batch
                        .iter()
                        .flat_map(|j| j.images.iter().copied())
                        .collect();
                    // As `infer` does for pictures: both left-right orientations, averaged.
                    let mut predictions = model.predict_either_way(&images).into_iter();
                    for job in batch {
                        let mine = predictions.by_ref().take(job.images.len()).collect();
                        // The client may have gone; nothing to do then.
                        let _ = job.reply.send(mine);
                    }
                }
            })
            .expect("the model's thread starts");
        Self {
            jobs,
            queued,
            capacity: capacity.max(1),
        }
    }

    /// Queues `images` for the model, unless that would put more than the capacity in the
    /// queue (a request larger than the capacity is taken when the queue is empty). Each
    /// accepted request is answered once.
    pub fn submit(&self, images: Vec<Image>) -> Result<Pending, Refused> {
        let n = images.len();
        let capacity = self.capacity;
        self.queued
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |queued| {
                (queued == 0 || queued + n <= capacity).then_some(queued + n)
            })
            .map_err(|queued| Refused::Full { queued, capacity })?;
        let (reply, answer) = oneshot::channel();
        if self.jobs.send(Job { images, reply }).is_err() {
            self.queued.fetch_sub(n, Ordering::SeqCst);
            return Err(Refused::Gone);
        }
        Ok(Pending(answer))
    }

    /// Images waiting for the model now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// The most images that may wait.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}
