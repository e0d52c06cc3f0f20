//! The train crate's errors; each names the file or setting at fault.

use std::path::{Path, PathBuf};

/// What can go wrong while training, evaluating or predicting.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Reading the data failed.
    #[error(transparent)]
    Data(#[from] fashion_mixer_data::DataError),
    /// The model configuration describes no valid model.
    #[error("invalid model configuration: {0}")]
    Model(#[from] fashion_mixer_model::ModelConfigError),
    /// The backend's device could not be started.
    #[error(transparent)]
    Device(#[from] fashion_mixer_model::DeviceError),
    /// The configuration cannot train.
    #[error("invalid configuration: {0}")]
    Config(#[from] crate::config::TrainingConfigError),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Another process writes this run folder.
    #[error("{}: in use by another process ({}); wait for it to end, or stop it, then try again", path.display(), pid.map_or("its id unknown".to_string(), |p| format!("pid {p}")))]
    RunInUse {
        /// The run folder.
        path: PathBuf,
        /// The process holding its lock, when it could be read.
        pid: Option<u32>,
    },
    /// Training stopped because a file of the run could not be written (a full disk, say).
    #[error("{}", write_failed_message(path, cause, *kept, run))]
    WriteFailed {
        /// The file that could not be written (its final name).
        path: PathBuf,
        /// Why, in words.
        cause: String,
        /// The last epoch whose checkpoint and `metrics.csv` row are complete on disk.
        kept: Option<usize>,
        /// The run folder.
        run: PathBuf,
    },
    /// The run to distill from (`distill_from`) cannot be loaded.
    #[error(
        "the teacher (distill_from): {0}; a teacher is a finished run's folder (`cargo xtask train --preset teacher --artifacts artifacts/teacher` trains the one the `best` preset learns from)"
    )]
    Teacher(Box<TrainError>),
    /// The artifacts path exists and is not a folder.
    #[error("{}: exists and is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// A path given as a run's folder holds no run (no `config.json`).
    #[error("{}", not_a_run_message(path, reason, nearby))]
    NotARun {
        /// The path given.
        path: PathBuf,
        /// What is missing, in words.
        reason: String,
        /// The runs found in it or, when it holds none, beside it: to choose from.
        nearby: Vec<PathBuf>,
    },
    /// A fresh run would overwrite an earlier one.
    #[error("{}: already holds a run (config.json); pass --resume to continue it or choose another --artifacts", .0.display())]
    RunExists(PathBuf),
    /// A fresh run in a folder that holds other files, which the run's would overwrite.
    #[error("{}: not empty and not a run (holds {held}); a run's files would overwrite files there: choose a new or empty --artifacts folder", path.display())]
    NotEmpty {
        /// The folder.
        path: PathBuf,
        /// What it holds, in words: the first few names and how many more.
        held: String,
    },
    /// `--resume` in a folder without a run.
    #[error("{}: nothing to resume: {reason}", path.display())]
    NothingToResume {
        /// The folder.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// `config.json` is not a valid configuration.
    #[error("{}: not a valid training configuration: {message}", path.display())]
    BadConfigFile {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A model record is missing, damaged, or made for another architecture.
    #[error("{}: cannot load the model record: {message}", path.display())]
    BadRecord {
        /// The record file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A safetensors file is not one, or does not hold the model its configuration describes.
    #[error("{}: {message}", path.display())]
    BadSafetensors {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the tensor where one is at fault.
        message: String,
    },
    /// An image file could not be decoded.
    #[error("{}: not a readable image: {message}", path.display())]
    BadImage {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        message: String,
    },
    /// The loss became NaN or infinite; training stopped.
    #[error("{}", diverged_message(at, checkpoint.as_deref()))]
    Diverged {
        /// Where.
        at: Divergence,
        /// The newest checkpoint (from the last completed epoch), if any.
        checkpoint: Option<PathBuf>,
    },
    /// A picture could not be drawn.
    #[error("{}: cannot draw the picture: {message}", path.display())]
    Plot {
        /// The picture file.
        path: PathBuf,
        /// What the plotting library said.
        message: String,
    },
    /// A test-set index beyond the end.
    #[error("test index {index} is out of range (the test set has {len} items)")]
    IndexOutOfRange {
        /// The index given.
        index: usize,
        /// Items in the test set.
        len: usize,
    },
    /// Ctrl-C (SIGINT, SIGTERM) could not be caught, so an interruption could not be clean.
    #[error("cannot install the Ctrl-C handler: {0}")]
    Signals(std::io::Error),
    /// A `README.md` where `export` would write its model card, not written by `export`.
    #[error("{}: a README.md that is not a model card written by export; it is left as it is: choose another --out folder", .0.display())]
    CardInTheWay(PathBuf),
    /// Training stopped on an error inside the Learner (burn-train reports it as text).
    #[error("training failed: {0}")]
    Training(String),
}

/// Where the loss stopped being a finite number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Divergence {
    /// 1-based epoch.
    pub epoch: usize,
    /// 1-based step (batch) within the epoch's pass.
    pub step: usize,
    /// In the training pass (else the test pass).
    pub train: bool,
    /// The loss value (NaN or infinite).
    pub loss: f64,
}

impl TrainError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

fn not_a_run_message(path: &Path, reason: &str, nearby: &[PathBuf]) -> String {
    let runs = if nearby.is_empty() {
        "`cargo xtask train --artifacts <folder>` writes one".to_string()
    } else {
        let names: Vec<String> = nearby.iter().map(|p| p.display().to_string()).collect();
        format!("runs found: {}", names.join(", "))
    };
    format!("{}: not a run folder ({reason}); {runs}", path.display())
}

fn write_failed_message(path: &Path, cause: &str, kept: Option<usize>, run: &Path) -> String {
    let next = match kept {
        Some(epoch) => format!(
            "kept: epochs 1 to {epoch} (checkpoint and metrics.csv row); free space, then \
             continue with `cargo xtask train --artifacts {} --resume`",
            run.display()
        ),
        None => "no epoch was complete, so nothing is kept; free space, then start again".into(),
    };
    format!("{}: cannot write: {cause}; {next}", path.display())
}

fn diverged_message(at: &Divergence, checkpoint: Option<&Path>) -> String {
    let pass = if at.train { "training" } else { "test" };
    let next = match checkpoint {
        Some(path) => format!(
            "the last good checkpoint, {}, is kept and loads (lower `lr` in config.json, then \
             --resume continues from it)",
            path.display()
        ),
        None => "no epoch had completed, so there is no checkpoint; lower the learning rate".into(),
    };
    format!(
        "training diverged: the loss became {} at epoch {}, {pass} step {}; {next}",
        at.loss, at.epoch, at.step
    )
}
