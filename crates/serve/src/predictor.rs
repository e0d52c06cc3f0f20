//! The model on a thread of its own, fed by a queue: whatever queues while it is busy goes
//! through in one forward pass (up to `max_batch` images), so concurrent clients share the work.

use std::sync::mpsc;

use fashion_mixer_data::IMAGE_PIXELS;
use fashion_mixer_train::inference::{LoadedModel, Prediction};

/// A 28x28 input, as `decode_image` prepares it.
pub type Image = [u8; IMAGE_PIXELS];

/// The model's thread has stopped (it panicked): no prediction can be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the model is not running")]
pub struct PredictorGone;

struct Job {
    images: Vec<Image>,
    reply: mpsc::Sender<Vec<Prediction>>,
}

/// A handle on the model's thread; cheap to clone.
#[derive(Debug, Clone)]
pub struct Predictor {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Job({} images)", self.images.len())
    }
}

impl Predictor {
    /// Starts the model's thread. `max_batch` caps the images of one forward pass; 1 runs each
    /// request on its own.
    pub fn spawn(model: LoadedModel, max_batch: usize) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let max_batch = max_batch.max(1);
        std::thread::Builder::new()
            .name("mixer-predictor".into())
            .spawn(move || {
                fashion_mixer_model::fpu::install();
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
        Self { jobs }
    }

    /// The predictions for `images`, in order (waits for the model's thread).
    pub fn predict(&self, images: Vec<Image>) -> Result<Vec<Prediction>, PredictorGone> {
        let (reply, answer) = mpsc::channel();
        self.jobs
            .send(Job { images, reply })
            .map_err(|_| PredictorGone)?;
        answer.recv().map_err(|_| PredictorGone)
    }
}
