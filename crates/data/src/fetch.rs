//! Downloads the four IDX files, checked against their published MD5 checksums.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::{Digest, Md5};

use crate::error::DataError;

/// Where Zalando Research publishes Fashion-MNIST.
pub const OFFICIAL_BASE_URL: &str = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/";

/// A mirror of the same four files (Zalando Research's repository on GitHub).
pub const GITHUB_BASE_URL: &str =
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/";

/// Environment variable with base addresses (comma-separated) to download from instead of
/// [`OFFICIAL_BASE_URL`] and [`GITHUB_BASE_URL`].
pub const ENV_MIRROR: &str = "FASHION_MNIST_MIRROR";

/// One file to fetch: its name (appended to the base address) and its MD5 checksum (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// File name, e.g. `train-images-idx3-ubyte.gz`.
    pub name: String,
    /// Lower-case hex MD5 of the file.
    pub md5: String,
}

/// What to download, and from where.
#[derive(Debug, Clone)]
pub struct FetchPlan {
    /// Address the file names are appended to.
    pub base_url: String,
    /// The files.
    pub files: Vec<RemoteFile>,
    /// Draw a progress bar on stderr (only shown when stderr is a terminal).
    pub progress: bool,
}

/// What happened to each file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// Already present with the right checksum; not downloaded.
    Present(PathBuf),
    /// Downloaded and verified.
    Downloaded(PathBuf),
}

impl FetchPlan {
    /// The four official files and their published checksums.
    pub fn official() -> Self {
        let files = [
            (
                "train-images-idx3-ubyte.gz",
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
            ),
            (
                "train-labels-idx1-ubyte.gz",
                "25c81989df183df01b3e8a0aad5dffbe",
            ),
            (
                "t10k-images-idx3-ubyte.gz",
                "bef4ecab320f06d8554ea6380940ec79",
            ),
            (
                "t10k-labels-idx1-ubyte.gz",
                "bb300cfdad3c16e7a12a480ee83cd310",
            ),
        ];
        Self {
            base_url: OFFICIAL_BASE_URL.into(),
            files: files
                .into_iter()
                .map(|(name, md5)| RemoteFile {
                    name: name.into(),
                    md5: md5.into(),
                })
                .collect(),
            progress: true,
        }
    }

    /// The official files from each base address to try, in order: `$FASHION_MNIST_MIRROR`'s
    /// (comma-separated) when set, else the official site, then the GitHub mirror.
    pub fn sources_from_env() -> Vec<Self> {
        let bases: Vec<String> = match std::env::var(ENV_MIRROR) {
            Ok(list) if !list.trim().is_empty() => list
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            _ => vec![OFFICIAL_BASE_URL.into(), GITHUB_BASE_URL.into()],
        };
        bases
            .into_iter()
            .map(|base_url| Self {
                base_url,
                ..Self::official()
            })
            .collect()
    }

    /// Fetches every file into `dest`, skipping those already there and valid.
    ///
    /// Each download goes to a temporary file in `dest`, is verified, and only then renamed to
    /// its final name: an interrupted or corrupt download never leaves a partial file behind.
    pub fn run(&self, dest: &Path) -> Result<Vec<FetchOutcome>, DataError> {
        std::fs::create_dir_all(dest).map_err(|e| DataError::io(dest, e))?;
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .timeout_connect(Some(Duration::from_secs(30)))
                .timeout_per_read(Some(Duration::from_secs(60)))
                .build(),
        );
        self.files
            .iter()
            .map(|file| self.fetch_one(&agent, file, dest))
            .collect()
    }

    fn fetch_one(
        &self,
        agent: &ureq::Agent,
        file: &RemoteFile,
        dest: &Path,
    ) -> Result<FetchOutcome, DataError> {
        let path = dest.join(&file.name);
        if path.is_file() && md5_file(&path)? == file.md5 {
            return Ok(FetchOutcome::Present(path));
        }
        let url = format!("{}/{}", self.base_url.trim_end_matches('/'), file.name);
        let download_error = |message: String| DataError::Download {
            url: url.clone(),
            message,
        };
        let mut response = agent
            .get(&url)
            .call()
            .map_err(|e| download_error(e.to_string()))?;
        let body = response.body_mut();
        let bar = self.progress_bar(body.content_length(), &file.name);

        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{}.", file.name))
            .suffix(".partial")
            .tempfile_in(dest)
            .map_err(|e| DataError::io(dest, e))?;
        let mut reader = body.as_reader();
        let mut hasher = Md5::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| download_error(e.to_string()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n])
                .map_err(|e| DataError::io(tmp.path(), e))?;
            bar.inc(n as u64);
        }
        bar.finish_and_clear();
        let found = hex(&hasher.finalize());
        if found != file.md5 {
            return Err(DataError::ChecksumMismatch {
                path,
                expected: file.md5.clone(),
                found,
            });
        }
        tmp.as_file()
            .sync_all()
            .map_err(|e| DataError::io(tmp.path(), e))?;
        tmp.persist(&path)
            .map_err(|e| DataError::io(&path, e.error))?;
        Ok(FetchOutcome::Downloaded(path))
    }

    fn progress_bar(&self, len: Option<u64>, name: &str) -> indicatif::ProgressBar {
        if !self.progress {
            return indicatif::ProgressBar::hidden();
        }
        let bar =
            indicatif::ProgressBar::with_draw_target(len, indicatif::ProgressDrawTarget::stderr());
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg:28} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(name.to_string());
        bar
    }
}

/// The MD5 checksum of a file, as lower-case hex.
pub fn md5_file(path: &Path) -> Result<String, DataError> {
    let mut file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut hasher = Md5::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| DataError::io(path, e))?;
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
