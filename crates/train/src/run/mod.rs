//! The run's folder and what is written in it: the paths, `config.json` and atomic writes, the
//! one-writer lock (`artifacts`); `metrics.csv` (`metrics`); the Learner's checkpoints, each
//! written atomically (`checkpoint`).

pub mod artifacts;
pub mod checkpoint;
pub mod metrics;
