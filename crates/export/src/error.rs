//! The export crate's errors; each names the file at fault.

use std::path::PathBuf;

use fashion_mixer_run::RunError;

/// What can go wrong while writing or reading a model in another format.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The run, its files or a file written could not be read or written.
    #[error(transparent)]
    Run(#[from] RunError),
    /// A safetensors file is not one, or does not hold the model its configuration describes.
    #[error("{}: {message}", path.display())]
    BadSafetensors {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the tensor where one is at fault.
        message: String,
    },
    /// A `README.md` where `export` would write its model card, not written by `export`.
    #[error("{}: a README.md that is not a model card written by export; it is left as it is: choose another --out folder", .0.display())]
    CardInTheWay(PathBuf),
}

impl ExportError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Run(RunError::io(path, source))
    }
}
