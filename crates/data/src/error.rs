//! The data crate's typed errors: each names the file it is about and what is wrong with it.

use std::path::PathBuf;

/// Everything that can go wrong while finding, reading or fetching Fashion-MNIST.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file has no bytes at all.
    #[error("{}: the file is empty", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// A file named `.gz` does not start with the gzip signature.
    #[error("{}: named .gz but is not gzip data (first bytes {found})", path.display())]
    NotGzip {
        /// The file.
        path: PathBuf,
        /// The first bytes found, in hex.
        found: String,
    },
    /// The gzip stream is damaged or cut short.
    #[error("{}: corrupt gzip data: {message}", path.display())]
    BadGzip {
        /// The file.
        path: PathBuf,
        /// What the decoder reported.
        message: String,
    },
    /// The IDX header is shorter than its magic number and dimensions.
    #[error("{}: truncated header: need {expected} bytes, found {found}", path.display())]
    TruncatedHeader {
        /// The file.
        path: PathBuf,
        /// Header bytes needed.
        expected: usize,
        /// Bytes present.
        found: usize,
    },
    /// The magic number is not the one for this kind of IDX file.
    #[error("{}: expected magic {expected:#010x}, found {found:#010x}", path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The magic number required.
        expected: u32,
        /// The magic number read.
        found: u32,
    },
    /// The payload is shorter than the dimensions say.
    #[error("{}: truncated payload: dimensions {dims:?} need {expected} bytes, found {found}", path.display())]
    TruncatedPayload {
        /// The file.
        path: PathBuf,
        /// The dimensions from the header.
        dims: Vec<u32>,
        /// Payload bytes needed.
        expected: usize,
        /// Payload bytes present.
        found: usize,
    },
    /// The payload is longer than the dimensions say.
    #[error("{}: {extra} trailing bytes after the {expected}-byte payload (dimensions {dims:?})", path.display())]
    TrailingBytes {
        /// The file.
        path: PathBuf,
        /// The dimensions from the header.
        dims: Vec<u32>,
        /// Payload bytes expected.
        expected: usize,
        /// Bytes beyond the payload.
        extra: usize,
    },
    /// Images are not 28x28.
    #[error("{}: images are {rows}x{cols}, expected 28x28", path.display())]
    BadImageSize {
        /// The file.
        path: PathBuf,
        /// Rows per image.
        rows: u32,
        /// Columns per image.
        cols: u32,
    },
    /// A label is not one of the 10 classes.
    #[error("{}: label {label} at index {index} is out of range (expected 0..=9)", path.display())]
    LabelOutOfRange {
        /// The labels file.
        path: PathBuf,
        /// The item's position.
        index: usize,
        /// The label read.
        label: u8,
    },
    /// The images and labels files disagree on the number of items.
    #[error(
        "{}: {images} images but {} has {labels} labels",
        images_path.display(),
        labels_path.display()
    )]
    CountMismatch {
        /// The images file.
        images_path: PathBuf,
        /// The labels file.
        labels_path: PathBuf,
        /// Number of images.
        images: usize,
        /// Number of labels.
        labels: usize,
    },
    /// None of the places searched holds the four IDX files.
    #[error("{}", not_found_message(searched))]
    NotFound {
        /// Each directory searched, with why it was passed over.
        searched: Vec<(PathBuf, String)>,
    },
    /// A download failed.
    #[error("{url}: download failed: {message}")]
    Download {
        /// The address.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The data set is nowhere on this machine and no address could deliver it.
    #[error("{}", download_failed_message(dest, tried))]
    DownloadFailed {
        /// Where it was to be downloaded.
        dest: PathBuf,
        /// Each base address tried, with what went wrong.
        tried: Vec<(String, String)>,
    },
    /// A downloaded file does not match its published checksum.
    #[error("{}: MD5 checksum mismatch: expected {expected}, found {found}", path.display())]
    ChecksumMismatch {
        /// The file (as it would have been named).
        path: PathBuf,
        /// The published checksum.
        expected: String,
        /// The checksum of what arrived.
        found: String,
    },
}

impl DataError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

fn download_failed_message(dest: &std::path::Path, tried: &[(String, String)]) -> String {
    let tried: Vec<String> = tried
        .iter()
        .map(|(url, why)| format!("{url} ({why})"))
        .collect();
    format!(
        "Fashion-MNIST is not on this machine and could not be downloaded into {}; tried: {}. \
         Other ways: `apt-get install dataset-fashion-mnist` (Debian), or `--data-dir DIR` \
         naming a folder that holds the four IDX files",
        dest.display(),
        tried.join("; ")
    )
}

fn not_found_message(searched: &[(PathBuf, String)]) -> String {
    let places: Vec<String> = searched
        .iter()
        .map(|(dir, why)| format!("{} ({why})", dir.display()))
        .collect();
    format!(
        "Fashion-MNIST not found; searched: {}. Get it with `apt-get install dataset-fashion-mnist` \
         (Debian) or `cargo xtask data fetch` (downloads into datasets/fashion-mnist/)",
        places.join("; ")
    )
}
