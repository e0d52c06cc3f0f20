//! Training the Fashion-MNIST Mixer with burn-train: the model as the Learner trains it
//! ([`TrainingModel`]: its loss, steps, moving average and teacher), the optimizer and schedule a
//! configuration names, the Learner wiring with resume and Ctrl-C ([`training`]), the run's
//! checkpoints and per-epoch rows as they land, and the training benchmark ([`bench`](mod@bench)).
//!
//! A run's files, its configuration and the model it saves are [`fashion_mixer_run`]'s; this
//! crate writes them while training.
//!
//! ```no_run
//! use fashion_mixer_run::{Progress, RunDir, TrainingConfig};
//! use fashion_mixer_train::training::{Resume, TrainOptions, train};
//!
//! let options = TrainOptions {
//!     run: RunDir::new("artifacts/run1"),
//!     data_dir: "/usr/share/datasets/fashion-mnist".into(),
//!     resume: Resume::No,
//!     tui: false,
//!     progress: Progress::new(|line| println!("{line}")),
//!     distributed: None,
//!     experiment_log: true,
//! };
//! let report = train(TrainingConfig::new().with_epochs(1), &options)?;
//! println!("{:?}", report.history.last());
//! # Ok::<(), fashion_mixer_train::TrainError>(())
//! ```

// Foundations: the errors.
mod error;
// The model as the Learner trains it: its loss, its steps over the cores, its moving average
// and its teacher.
mod distill;
mod ema;
mod step;
mod training_model;
// What the configuration names: the optimizer and the learning-rate schedule.
mod optimizer;
pub mod schedule;
// The run's files as training writes them: checkpoints, the rows of `metrics.csv`, and Burn's
// per-epoch metric logs.
mod checkpoint;
mod epoch_logs;
mod ledger;
mod metric_logger;
// The Learner wiring: the plain renderer, Ctrl-C, the terminal, training and resume; over
// several processes, data parallelism (MPI behind the `mpi` feature).
pub mod distributed;
#[cfg(feature = "mpi")]
pub mod mpi;
mod renderer;
mod signals;
mod slices;
mod terminal;
pub mod training;
// Timed training steps.
pub mod bench;

pub use distill::Distill;
pub use ema::Ema;
pub use error::{DistributedError, Divergence, TrainError};
pub use optimizer::optimizer;
pub use renderer::PlainRenderer;
pub use training_model::TrainingModel;
