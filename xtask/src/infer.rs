//! `cargo xtask infer`: predict test-set items, image files or folders of them with a saved run.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};
use burn::data::dataset::Dataset;
use clap::Args;
use fashion_mixer_data::{CLASS_NAMES, FashionMnistDataset, IMAGE_PIXELS, Split};
use fashion_mixer_model::Backend;
use fashion_mixer_run::inference::{load_image, load_model, top_k};
use fashion_mixer_run::{RunDir, RunError};
use serde_json::json;

use crate::data::DataDirArg;
use crate::project_root;

/// The trained `best` model the repository ships, used when no run is named.
pub fn pretrained() -> PathBuf {
    project_root().join("artifacts").join("pretrained")
}

#[derive(Args, Debug, Clone)]
pub struct InferArgs {
    /// The run's folder (holds config.json and model.bpk) [default: artifacts/pretrained, the
    /// shipped `best` model]
    #[arg(long, value_name = "DIR")]
    pub artifacts: Option<PathBuf>,
    /// Backend to run on [default: the run's]
    #[arg(long)]
    pub backend: Option<Backend>,
    /// Test-set items to predict: `--index 0 1 2`, `--index 0,1,2` or `--index 0 --index 1`
    /// (image files go before it, or after `--`)
    #[arg(
        long = "index",
        value_name = "N",
        num_args = 1..,
        value_delimiter = ',',
        value_parser = test_index
    )]
    pub indices: Vec<usize>,
    /// Image files (PNG or JPEG, any size or colour; each classified in both left-right
    /// orientations, the probabilities averaged), or folders: their PNG and JPEG files, by name
    #[arg(value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    /// One JSON object per line instead of text
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub data: DataDirArg,
}

/// One input: where it came from, its pixels, and its true class when known.
struct Input {
    source: String,
    pixels: [u8; IMAGE_PIXELS],
    label: Option<u8>,
}

/// What follows `--index` when it is no test-set index: most likely an image file put after it.
#[derive(Debug, thiserror::Error)]
#[error("not a test-set index (an image file goes before --index, or after `--`)")]
struct NotAnIndex;

/// A test-set index.
fn test_index(text: &str) -> Result<usize, NotAnIndex> {
    text.parse().map_err(|_| NotAnIndex)
}

/// The image files to predict: each file named, and in each folder named its PNG and JPEG
/// files (by extension, in any case), sorted by name; a folder without any is an error.
fn image_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let mut found = Vec::new();
        for entry in std::fs::read_dir(path).map_err(|e| anyhow!("{}: {e}", path.display()))? {
            let file = entry
                .map_err(|e| anyhow!("{}: {e}", path.display()))?
                .path();
            if file.is_file() && is_picture(&file) {
                found.push(file);
            }
        }
        if found.is_empty() {
            bail!("{}: a folder with no PNG or JPEG files", path.display());
        }
        found.sort();
        files.extend(found);
    }
    Ok(files)
}

/// Whether a file's name says PNG or JPEG.
fn is_picture(file: &Path) -> bool {
    file.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["png", "jpg", "jpeg"].contains(&e.to_ascii_lowercase().as_str()))
}

pub fn run(args: &InferArgs) -> Result<()> {
    if args.indices.is_empty() && args.images.is_empty() {
        bail!("nothing to predict: give image files or folders, and/or --index N");
    }
    let mut inputs = Vec::new();
    if !args.indices.is_empty() {
        let test = FashionMnistDataset::load(&args.data.locate()?, Split::Test)?;
        for &index in &args.indices {
            if index >= test.len() {
                return Err(RunError::IndexOutOfRange {
                    index,
                    len: test.len(),
                }
                .into());
            }
            let item = test.get(index).expect("index checked");
            inputs.push(Input {
                source: format!("test[{index}]"),
                pixels: item.image,
                label: Some(item.label),
            });
        }
    }
    for path in &image_files(&args.images)? {
        inputs.push(Input {
            source: path.display().to_string(),
            pixels: load_image(path)?,
            label: None,
        });
    }

    let artifacts = args.artifacts.clone().unwrap_or_else(pretrained);
    let loaded = load_model(&RunDir::new(&artifacts), args.backend)?;
    // Test-set items as the model was scored (`eval`); image files in both left-right
    // orientations, since a photo's garment may face either way.
    let (items, photos): (Vec<&Input>, Vec<&Input>) =
        inputs.iter().partition(|i| i.label.is_some());
    let pixels = |inputs: &[&Input]| -> Vec<[u8; IMAGE_PIXELS]> {
        inputs.iter().map(|i| i.pixels).collect()
    };
    let mut predictions = loaded.predict(&pixels(&items));
    predictions.extend(loaded.predict_either_way(&pixels(&photos)));
    for (input, prediction) in items.iter().chain(&photos).zip(predictions) {
        let top = top_k(&prediction.probabilities, 3);
        let truth = input.label.map(|l| CLASS_NAMES[l as usize]);
        if args.json {
            let top3: Vec<_> = top
                .iter()
                .map(|&(c, p)| json!({"class": CLASS_NAMES[c], "index": c, "probability": p}))
                .collect();
            let line = json!({
                "source": input.source,
                "predicted": CLASS_NAMES[top[0].0],
                "top3": top3,
                "true": truth,
                "logits": prediction.logits,
                "probabilities": prediction.probabilities,
            });
            println!("{line}");
        } else {
            let ranked: Vec<String> = top
                .iter()
                .map(|&(c, p)| format!("{} {:.1}%", CLASS_NAMES[c], 100.0 * p))
                .collect();
            let truth = truth.map(|t| format!(" (true: {t})")).unwrap_or_default();
            println!(
                "{}{truth}: {}   [{}]",
                input.source,
                CLASS_NAMES[top[0].0],
                ranked.join(", ")
            );
        }
    }
    Ok(())
}
