//! Where the four IDX files are looked for.

use std::path::{Path, PathBuf};

use crate::dataset::{Split, find_file};
use crate::error::DataError;

/// Environment variable naming a directory that holds the IDX files.
pub const ENV_DIR: &str = "FASHION_MNIST_DIR";
/// Where Debian's `dataset-fashion-mnist` package puts the files.
pub const DEBIAN_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// The project's own data directory, relative to the project root.
pub const PROJECT_DIR: &str = "datasets/fashion-mnist";

/// Environment variable that turns downloading off (any value but empty, `0` or `false`).
pub const ENV_OFFLINE: &str = "FASHION_MNIST_OFFLINE";

/// Whether the user named the data directory (`explicit`, or `$FASHION_MNIST_DIR`): then it
/// is the only place searched, and nothing is downloaded into it behind their back.
pub fn user_named_dir(explicit: Option<&Path>) -> bool {
    explicit.is_some() || std::env::var_os(ENV_DIR).is_some_and(|v| !v.is_empty())
}

/// `$FASHION_MNIST_OFFLINE` asks for no download.
pub fn offline_from_env() -> bool {
    std::env::var(ENV_OFFLINE)
        .map(|v| !matches!(v.trim(), "" | "0" | "false"))
        .unwrap_or(false)
}

/// The directories to search, in order.
///
/// A directory the user named (`explicit`, from `--data-dir`, or else `$FASHION_MNIST_DIR`)
/// is the only candidate: pointing somewhere and silently getting data from elsewhere would
/// hide a mistake. Otherwise: `<project_root>/datasets/fashion-mnist`, then Debian's directory.
pub fn search_dirs(explicit: Option<&Path>, project_root: &Path) -> Vec<PathBuf> {
    if let Some(dir) = explicit {
        return vec![dir.to_path_buf()];
    }
    if let Some(dir) = std::env::var_os(ENV_DIR).filter(|v| !v.is_empty()) {
        return vec![PathBuf::from(dir)];
    }
    vec![project_root.join(PROJECT_DIR), PathBuf::from(DEBIAN_DIR)]
}

/// The first of `dirs` that holds all four files; otherwise an error listing each directory
/// searched and what it lacked.
pub fn locate(dirs: &[PathBuf]) -> Result<PathBuf, DataError> {
    let mut searched = Vec::new();
    for dir in dirs {
        match missing_files(dir) {
            None => return Ok(dir.clone()),
            Some(why) => searched.push((dir.clone(), why)),
        }
    }
    Err(DataError::NotFound { searched })
}

/// The first of `dirs` that holds all four files; where none does, downloads them with the
/// first of `sources` that works into `dest` (`on_download` is told first, with `dest`), as
/// torchvision's `download=True` does. With no `sources`, the same error as [`locate`].
///
/// A failed download is [`DataError::DownloadFailed`]: every address tried, with its error.
#[cfg(feature = "fetch")]
pub fn locate_or_fetch(
    dirs: &[PathBuf],
    dest: &Path,
    sources: &[crate::fetch::FetchPlan],
    on_download: impl FnOnce(&Path),
) -> Result<PathBuf, DataError> {
    let not_found = match locate(dirs) {
        Ok(dir) => return Ok(dir),
        Err(err) => err,
    };
    if sources.is_empty() {
        return Err(not_found);
    }
    on_download(dest);
    let mut tried = Vec::new();
    for plan in sources {
        match plan.run(dest) {
            Ok(_) => return Ok(dest.to_path_buf()),
            Err(err) => tried.push((plan.base_url.clone(), err.to_string())),
        }
    }
    Err(DataError::DownloadFailed {
        dest: dest.to_path_buf(),
        tried,
    })
}

/// `None` when `dir` holds all four files; otherwise what is missing.
fn missing_files(dir: &Path) -> Option<String> {
    if !dir.is_dir() {
        return Some("no such directory".into());
    }
    let missing: Vec<&str> = Split::ALL
        .iter()
        .flat_map(|s| s.file_stems())
        .filter(|stem| find_file(dir, stem).is_err())
        .collect();
    (!missing.is_empty()).then(|| format!("missing {}", missing.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_dir_is_the_only_candidate() {
        let dirs = search_dirs(Some(Path::new("/x")), Path::new("/root"));
        assert_eq!(dirs, vec![PathBuf::from("/x")]);
    }

    #[test]
    fn not_found_lists_places_and_remedies() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("train-images-idx3-ubyte.gz"), b"x").unwrap();
        let dirs = vec![tmp.path().to_path_buf(), PathBuf::from("/nonexistent/fm")];
        let msg = locate(&dirs).unwrap_err().to_string();
        assert!(msg.contains(&tmp.path().display().to_string()), "{msg}");
        assert!(msg.contains("missing train-labels-idx1-ubyte"), "{msg}");
        assert!(!msg.contains("missing train-images"), "{msg}");
        assert!(msg.contains("/nonexistent/fm (no such directory)"), "{msg}");
        assert!(
            msg.contains("apt-get install dataset-fashion-mnist")
                && msg.contains("cargo xtask data fetch"),
            "{msg}"
        );
    }

    #[test]
    fn finds_dir_with_all_four_files() {
        let tmp = tempfile::tempdir().unwrap();
        for stem in Split::ALL.iter().flat_map(|s| s.file_stems()) {
            std::fs::write(tmp.path().join(stem), b"x").unwrap();
        }
        let dirs = vec![PathBuf::from("/nonexistent"), tmp.path().to_path_buf()];
        assert_eq!(locate(&dirs).unwrap(), tmp.path());
    }
}
