//! One training run of the Fashion-MNIST Mixer as it lives on disk, and everything read from it:
//! its configuration (`config.json`, the presets), its folder (paths, atomic writes, the
//! one-writer lock, a temporary one for a rank other than 0), its per-epoch `metrics.csv`, the
//! model it saved put to use (inference, evaluation) and its report (`report.md` and the
//! pictures).
//!
//! Neither burn-train nor the optimizers are in its build: serving, inference and export use
//! it without them.
//!
//! ```no_run
//! use fashion_mixer_run::{RunDir, inference::load_model};
//!
//! let run = RunDir::new("artifacts/pretrained");
//! let loaded = load_model(&run, None)?;
//! let image = fashion_mixer_run::inference::load_image("shirt.png".as_ref())?;
//! let prediction = &loaded.predict(&[image])[0];
//! println!("{:?}", prediction.probabilities);
//! # Ok::<(), fashion_mixer_run::RunError>(())
//! ```

// Foundations: the configuration, the errors, where messages go.
pub mod config;
mod error;
mod progress;
// The folder and its files.
pub mod metrics;
pub mod run_dir;
pub mod scratch;
// The saved model put to use.
pub mod evaluation;
pub mod inference;
// Pictures and `report.md`.
pub mod report;

pub use config::{
    ConfigDifference, ConfigJsonError, LrSchedule, OptimizerKind, PRESETS, Preset, TEACHER_RUN,
    TrainingConfig, TrainingConfigError, load_splits,
};
pub use error::RunError;
pub use progress::Progress;
pub use run_dir::RunDir;
