//! The run crate's errors; each names the file or setting at fault.

use std::path::{Path, PathBuf};

/// What can go wrong with a run's folder, its files or the model it saved.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
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
    /// A run continued (`train --resume` with training flags, a sweep's point) whose
    /// `config.json` holds other settings than the ones asked for.
    #[error("{}: holds a run started with other settings: {}; choose another --artifacts folder, or continue that run as it was started: `cargo xtask train --artifacts {} --resume` (no training flags)", path.display(), list(differences), path.display())]
    OtherSettings {
        /// The run's folder.
        path: PathBuf,
        /// The settings that differ (at least one).
        differences: Vec<crate::config::ConfigDifference>,
    },
    /// `config.json` is not a valid configuration.
    #[error("{}: not a valid training configuration: {source}", path.display())]
    BadConfigFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: crate::config::ConfigJsonError,
    },
    /// A model record is missing, damaged, or made for another architecture.
    #[error("{}: cannot load the model record: {message}", path.display())]
    BadRecord {
        /// The record file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// An image file could not be decoded.
    #[error("{}: not a readable image: {source}", path.display())]
    BadImage {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        source: fashion_mixer_data::picture::PictureError,
    },
    /// A picture could not be drawn.
    #[error("{}: cannot draw the picture: {source}", path.display())]
    Plot {
        /// The picture file.
        path: PathBuf,
        /// What the plotting library said.
        source: crate::report::plot::PlotError,
    },
    /// A test-set index beyond the end.
    #[error("test index {index} is out of range (the test set has {len} items)")]
    IndexOutOfRange {
        /// The index given.
        index: usize,
        /// Items in the test set.
        len: usize,
    },
}

impl RunError {
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

/// The differences in words, the first five of them and how many more.
fn list(differences: &[crate::config::ConfigDifference]) -> String {
    let mut words: Vec<String> = differences.iter().take(5).map(|d| d.to_string()).collect();
    if differences.len() > 5 {
        words.push(format!("and {} more", differences.len() - 5));
    }
    words.join(", ")
}
