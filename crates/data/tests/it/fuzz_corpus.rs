//! The fuzz targets' corpora (`fuzz/corpus/`) as regression tests on stable Rust: every seed,
//! and every input fuzzing found and the fix covers, goes through the same calls the fuzz
//! targets make, and must come back as a value or an error, never a panic.

use std::path::{Path, PathBuf};

use fashion_mixer_data::idx::{IdxFile, parse_file};
use fashion_mixer_data::picture::decode_image;
use fashion_mixer_data::testing::workspace_root;

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = workspace_root().join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} is empty", dir.display());
    files
}

#[test]
fn idx_corpus() {
    let mut parsed = 0;
    for file in corpus("idx") {
        let bytes = std::fs::read(&file).unwrap();
        // As the fuzz target: the bytes as a raw file and as a `.gz` one.
        for name in ["train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"] {
            if parse_file(Path::new(name), bytes.clone()).is_ok() {
                parsed += 1;
            }
        }
    }
    assert!(parsed >= 4, "the valid seeds must parse ({parsed} did)");
    let seed = std::fs::read(workspace_root().join("fuzz/corpus/idx/images-2"));
    match parse_file(Path::new("x"), seed.unwrap()).unwrap() {
        IdxFile::Images(images) => assert_eq!(images.count, 2),
        other => panic!("{other:?}"),
    }
}

#[test]
fn image_corpus() {
    let mut decoded = 0;
    for file in corpus("image") {
        let bytes = std::fs::read(&file).unwrap();
        if decode_image(&bytes).is_ok() {
            decoded += 1;
        }
    }
    assert!(
        decoded >= 6,
        "the seed pictures must decode ({decoded} did)"
    );
}
