//! Training (burn-train's `SupervisedTraining` and `Learner`), evaluation and inference for the
//! Fashion-MNIST Mixer, and the run folder they share.
//!
//! Inference ([`inference`]) uses neither autodiff nor the Learner.

// Foundations: the configuration, the errors, where messages go.
pub mod config;
mod error;
mod progress;
// The model as the Learner trains it: its loss, its steps over the cores, its kernels.
mod trainee;
// The run's folder and its files.
mod run;
// A saved run put to use: inference and evaluation.
mod predict;
// Pictures and `report.md`.
pub mod report;
// Weights in and out: safetensors in PyTorch's names, ONNX, and the model card.
pub mod interop;
// The Learner wiring.
mod learner;
// Sweeps and benchmarks.
mod experiments;

pub use config::{LrSchedule, OptimizerKind, Preset, TrainingConfig, TrainingConfigError};
pub use error::TrainError;
pub use experiments::{bench, runs, sweep};
pub use learner::{PlainRenderer, schedule, training};
pub use predict::{evaluation, inference};
pub use progress::Progress;
pub use report::plot;
pub use run::artifacts::RunDir;
pub use run::{artifacts, metrics};
pub use trainee::Trainee;
pub use trainee::ema::Ema;
