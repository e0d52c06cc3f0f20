//! Training (burn-train's `SupervisedTraining` and `Learner`), evaluation and inference for the
//! Fashion-MNIST Mixer, and the run folder they share.
//!
//! Inference ([`inference`]) uses neither autodiff nor the Learner.

pub mod artifacts;
pub mod bench;
pub mod checkpoint;
pub mod config;
mod error;
pub mod evaluation;
pub mod inference;
pub mod interop;
pub mod kernels;
pub mod metrics;
pub mod plot;
pub mod progress;
mod renderer;
pub mod report;
pub mod schedule;
mod signals;
pub mod step;
pub mod sweep;
pub mod trainee;
pub mod training;

pub use artifacts::RunDir;
pub use config::{LrSchedule, OptimizerKind, Preset, TrainingConfig, TrainingConfigError};
pub use error::TrainError;
pub use progress::Progress;
pub use renderer::PlainRenderer;
