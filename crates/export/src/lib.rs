//! A trained model in the formats other tools read: `model.safetensors` in PyTorch's names and
//! layouts (both ways: [`safetensors`]), `model.onnx`, the whole forward pass as an ONNX graph
//! ([`onnx`]), and the model card written beside either (Hugging Face's `README.md`, [`card`]).
//!
//! Its build has neither burn-train nor the optimizers: a run is read through
//! [`fashion_mixer_run`].
//!
//! ```no_run
//! use fashion_mixer_export::{ExportFormat, export_with_card};
//! use fashion_mixer_run::{RunDir, inference::load_model};
//!
//! let run = RunDir::new("artifacts/pretrained");
//! let loaded = load_model(&run, None)?;
//! let out = run.root().join("model.onnx");
//! export_with_card(&run, &loaded, &out, ExportFormat::Onnx, "pretrained")?;
//! # Ok::<(), fashion_mixer_export::ExportError>(())
//! ```

pub mod card;
mod error;
pub mod onnx;
mod onnx_proto;
pub mod safetensors;

use std::path::{Path, PathBuf};

use burn::module::Module;
use fashion_mixer_data::{CLASS_NAMES, MEAN, STD};
use fashion_mixer_model::UnknownName;
use fashion_mixer_run::RunDir;
use fashion_mixer_run::evaluation::current_evaluation;
use fashion_mixer_run::inference::LoadedModel;
use fashion_mixer_run::metrics::read_metrics;
use fashion_mixer_run::run_dir::write_atomic;

use crate::safetensors::{META_CLASSES, META_CONFIG, META_NORMALIZATION};
pub use error::ExportError;

/// What `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExportFormat {
    /// `model.safetensors`, PyTorch's names and layouts.
    #[default]
    Safetensors,
    /// `model.onnx`, the whole forward pass.
    Onnx,
}

impl ExportFormat {
    /// The weights' file name in a run's folder.
    pub fn file_name(self) -> &'static str {
        match self {
            ExportFormat::Safetensors => "model.safetensors",
            ExportFormat::Onnx => "model.onnx",
        }
    }
}

impl std::str::FromStr for ExportFormat {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "safetensors" => Ok(Self::Safetensors),
            "onnx" => Ok(Self::Onnx),
            _ => Err(UnknownName::new("format", s, "safetensors or onnx")),
        }
    }
}

/// Writes the model of the run in `run` (loaded as `loaded`) to `out` in `format`, and its
/// model card as `README.md` beside it; returns the card's path. A `README.md` there that is
/// not a model card is refused before anything is written; each file is written atomically.
pub fn export_with_card(
    run: &RunDir,
    loaded: &LoadedModel,
    out: &Path,
    format: ExportFormat,
    name: &str,
) -> Result<PathBuf, ExportError> {
    let card_path = out
        .parent()
        .map_or_else(|| PathBuf::from("README.md"), |dir| dir.join("README.md"));
    if card_path.exists() {
        let ours = std::fs::read_to_string(&card_path)
            .is_ok_and(|text| text.lines().nth(1) == Some(card::CARD_MARK));
        if !ours {
            return Err(ExportError::CardInTheWay(card_path));
        }
    }
    let history = read_metrics(&run.metrics()).unwrap_or_default();
    let evaluation = current_evaluation(run);
    let parameters = loaded.model.num_params();
    let weights = out
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let text = card::model_card(card::CardInputs {
        name,
        config: &loaded.config,
        parameters,
        evaluation: evaluation.as_ref(),
        history: &history,
        weights: &weights,
    });
    match format {
        ExportFormat::Safetensors => crate::safetensors::export(loaded, out)?,
        ExportFormat::Onnx => {
            let config = serde_json::to_string(&loaded.config).expect("a config serialises");
            onnx::export_onnx(
                loaded,
                out,
                &[
                    (META_CONFIG, config),
                    (
                        META_CLASSES,
                        serde_json::to_string(&CLASS_NAMES).expect("names"),
                    ),
                    (
                        META_NORMALIZATION,
                        format!("{{\"mean\": {MEAN}, \"std\": {STD}, \"inside\": true}}"),
                    ),
                ],
            )?
        }
    }
    write_atomic(&card_path, text.as_bytes())?;
    Ok(card_path)
}
