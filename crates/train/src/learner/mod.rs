//! Training: burn-train's `SupervisedTraining` wired to the run's folder, resume and the
//! end-of-run report (`training`); the learning-rate schedule (`schedule`); the line-per-epoch
//! renderer; Ctrl-C and SIGTERM.

mod renderer;
pub mod schedule;
mod signals;
pub mod training;

pub use renderer::PlainRenderer;
