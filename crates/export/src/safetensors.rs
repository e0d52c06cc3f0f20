//! A trained model as `model.safetensors`, in PyTorch's names and layouts, and back.
//!
//! Names follow the module tree (`stem.linear.weight`, `blocks.0.w1.weight`,
//! `blocks.0.norm1.weight`, `norm.bias`, `head.weight`, ...), as a PyTorch module of the same
//! design (`benches/reference/mixer.py`'s `Mixer`) names its `state_dict`; burn-store's adapters
//! turn Burn's `Linear` weights `[in, out]` into PyTorch's `[out, in]` and LayerNorm's
//! `gamma`/`beta` into `weight`/`bias`. The file's metadata says how to feed the model.

use std::collections::HashMap;
use std::path::Path;

use burn::module::Module;
use burn::prelude::*;
use burn::store::{
    ApplyError, BurnToPyTorchAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore,
};
use fashion_mixer_data::{CLASS_NAMES, MEAN, STD};

use fashion_mixer_run::inference::{LoadedModel, load_record, record_path};
use fashion_mixer_run::run_dir::{save_config, write_atomic};
use fashion_mixer_run::{RunDir, RunError, TrainingConfig};

use crate::error::ExportError;

/// Metadata key: the run's whole `TrainingConfig` as JSON (its `model` field is the
/// architecture).
pub const META_CONFIG: &str = "fashion_mixer.config";
/// Metadata key: `{"mean": .., "std": ..}`, the input normalisation.
pub const META_NORMALIZATION: &str = "fashion_mixer.normalization";
/// Metadata key: the ten class names in label order, as a JSON list.
pub const META_CLASSES: &str = "fashion_mixer.classes";
/// Metadata key: how images become the model's input and patches.
pub const META_INPUT: &str = "fashion_mixer.input";

/// What [`META_INPUT`] says.
pub const INPUT_DESCRIPTION: &str = "images [batch, 28, 28], pixels p in 0..=255 fed as \
    (p / 255 - mean) / std; patches row-major over the patch grid (row by row, left to right), \
    pixels row-major within a patch; logits [batch, 10] in the order of the classes";

/// A safetensors file that cannot be imported.
fn bad(path: &Path, message: impl Into<String>) -> ExportError {
    ExportError::BadSafetensors {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Writes `loaded`'s weights to `out` (atomically), with the metadata above.
pub fn export(loaded: &LoadedModel, out: &Path) -> Result<(), ExportError> {
    let config = serde_json::to_string(&loaded.config).expect("a config serialises");
    let normalization = format!("{{\"mean\": {MEAN}, \"std\": {STD}}}");
    let classes = serde_json::to_string(&CLASS_NAMES).expect("names serialise");
    let mut store = SafetensorsStore::from_bytes(None)
        .with_to_adapter(BurnToPyTorchAdapter)
        .metadata(META_CONFIG, config)
        .metadata(META_NORMALIZATION, normalization)
        .metadata(META_CLASSES, classes)
        .metadata(META_INPUT, INPUT_DESCRIPTION);
    loaded
        .model
        .save_into(&mut store)
        .map_err(|e| bad(out, e.to_string()))?;
    let bytes = store.get_bytes().map_err(|e| bad(out, e.to_string()))?;
    Ok(write_atomic(out, &sorted_header(bytes))?)
}

/// `file` (safetensors bytes) with its JSON header's keys in sorted order, so that the same
/// model exports to the same bytes: burn-store writes the metadata in a hash map's order,
/// which changes from one process to the next. The header keeps its length (the same keys and
/// values, reordered), so every tensor keeps its offset; a header that does not parse is left
/// as it is.
fn sorted_header(mut file: Vec<u8>) -> Vec<u8> {
    fn sorted(value: serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Object(map) => {
                let map: std::collections::BTreeMap<String, serde_json::Value> =
                    map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
                serde_json::to_value(map).expect("a map of JSON values")
            }
            other => other,
        }
    }
    let Some(length) = file
        .first_chunk::<8>()
        .map(|n| u64::from_le_bytes(*n) as usize)
    else {
        return file;
    };
    let Some(header) = file.get(8..8 + length) else {
        return file;
    };
    let Ok(parsed) = serde_json::from_slice::<serde_json::Value>(header) else {
        return file;
    };
    let mut text = serde_json::to_string(&sorted(parsed)).expect("JSON values serialise");
    if text.len() > length {
        return file;
    }
    // safetensors pads its header with spaces to keep the data aligned.
    text.extend(std::iter::repeat_n(' ', length - text.len()));
    file[8..8 + length].copy_from_slice(text.as_bytes());
    file
}

/// The metadata of the safetensors file in `bytes`.
fn metadata(path: &Path, bytes: &[u8]) -> Result<HashMap<String, String>, ExportError> {
    let (_, meta) = ::safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| bad(path, format!("not a safetensors file: {e}")))?;
    Ok(meta.metadata().clone().unwrap_or_default())
}

/// The configuration `file` was exported with (its [`META_CONFIG`]), if it has one.
pub fn exported_config(file: &Path) -> Result<Option<TrainingConfig>, ExportError> {
    let bytes = std::fs::read(file).map_err(|e| ExportError::io(file, e))?;
    config_in(file, &metadata(file, &bytes)?)
}

fn config_in(
    path: &Path,
    meta: &HashMap<String, String>,
) -> Result<Option<TrainingConfig>, ExportError> {
    meta.get(META_CONFIG)
        .map(|text| {
            TrainingConfig::from_partial_json(text)
                .map_err(|e| bad(path, format!("its {META_CONFIG} metadata: {e}")))
        })
        .transpose()
}

/// Reads `file` into a model of `config` (or, without one, of the configuration in the file's
/// metadata): every tensor the model has must be there, with its shape, and nothing else.
pub fn read(
    file: &Path,
    config: Option<TrainingConfig>,
    device: &Device,
) -> Result<(TrainingConfig, fashion_mixer_model::Model), ExportError> {
    let bytes = std::fs::read(file).map_err(|e| ExportError::io(file, e))?;
    let meta = metadata(file, &bytes)?;
    let config = match config {
        Some(config) => config,
        None => config_in(file, &meta)?.ok_or_else(|| {
            bad(
                file,
                format!("no {META_CONFIG} metadata says which model it holds; give --config"),
            )
        })?,
    };
    config.validate().map_err(RunError::from)?;
    let mut model = config.model.init(device).map_err(RunError::from)?;
    apply(&mut model, file, bytes)?;
    Ok((config, model))
}

/// Puts the tensors of the safetensors file `bytes` (read from `file`) into `model`: every
/// tensor the model has must be there, with its shape, and nothing else.
fn apply(
    model: &mut fashion_mixer_model::Model,
    file: &Path,
    bytes: Vec<u8>,
) -> Result<(), ExportError> {
    if let Some((name, count)) = non_finite(&bytes) {
        return Err(bad(
            file,
            format!("tensor {name} holds {count} NaN or infinite values"),
        ));
    }
    let mut store = SafetensorsStore::from_bytes(Some(bytes))
        .with_from_adapter(PyTorchToBurnAdapter)
        .allow_partial(true)
        .validate(false);
    let result = model
        .load_from(&mut store)
        .map_err(|e| bad(file, e.to_string()))?;
    if let Some(error) = result.errors.first() {
        let others = match result.errors.len() - 1 {
            0 => String::new(),
            n => format!(" ({n} more tensors do not fit either)"),
        };
        return Err(bad(file, format!("{}{others}", describe(error))));
    }
    if let Some((name, _)) = result.missing.first() {
        return Err(bad(
            file,
            format!(
                "tensor {} is missing (the model of this configuration has {} tensors)",
                torch_name(name),
                result.applied.len() + result.missing.len()
            ),
        ));
    }
    if let Some(name) = result.unused.first() {
        return Err(bad(
            file,
            format!("tensor {name} is not part of the model of this configuration"),
        ));
    }
    Ok(())
}

/// The name the file gives the model's tensor `path` (PyTorch's): LayerNorm's `gamma` and
/// `beta` are its `weight` and `bias` there; every other name is the same.
fn torch_name(path: &str) -> String {
    for (burn, torch) in [(".gamma", ".weight"), (".beta", ".bias")] {
        if let Some(module) = path.strip_suffix(burn) {
            return format!("{module}{torch}");
        }
    }
    path.to_string()
}

/// The first floating-point tensor of the safetensors file `bytes` that holds NaN or infinite
/// values, and how many it holds (a model with them predicts nothing). `None` for a file that
/// does not parse: loading it says why.
fn non_finite(bytes: &[u8]) -> Option<(String, usize)> {
    use ::safetensors::Dtype;
    let tensors = ::safetensors::SafeTensors::deserialize(bytes).ok()?;
    let mut names = tensors.names();
    names.sort();
    names.into_iter().find_map(|name| {
        let view = tensors.tensor(name).ok()?;
        let data = view.data();
        // An exponent of all ones is infinity or NaN, in every IEEE format; values are
        // little-endian.
        let exponent_all_ones = |width: usize, exponent: u64| {
            data.chunks_exact(width)
                .map(|b| {
                    b.iter()
                        .rev()
                        .fold(0u64, |bits, &byte| bits << 8 | u64::from(byte))
                })
                .filter(|bits| bits & exponent == exponent)
                .count()
        };
        let count = match view.dtype() {
            Dtype::F64 => exponent_all_ones(8, 0x7ff0_0000_0000_0000),
            Dtype::F32 => exponent_all_ones(4, 0x7f80_0000),
            Dtype::F16 => exponent_all_ones(2, 0x7c00),
            Dtype::BF16 => exponent_all_ones(2, 0x7f80),
            _ => 0,
        };
        (count > 0).then(|| (name.to_string(), count))
    })
}

/// One tensor that does not fit, in PyTorch's layout (the file's).
fn describe(error: &ApplyError) -> String {
    // The adapter has turned 2-D weights into Burn's [in, out]; the file holds [out, in].
    let torch = |shape: &Shape| {
        let mut dims = shape.to_vec();
        if dims.len() == 2 {
            dims.reverse();
        }
        dims
    };
    match error {
        ApplyError::ShapeMismatch {
            path,
            expected,
            found,
        } => format!(
            "tensor {} has shape {:?}; the model of this configuration needs {:?}",
            torch_name(path),
            torch(found),
            torch(expected)
        ),
        ApplyError::DTypeMismatch {
            path,
            expected,
            found,
        } => format!(
            "tensor {} is {found:?}; the model needs {expected:?}",
            torch_name(path)
        ),
        ApplyError::AdapterError { path, message } | ApplyError::LoadError { path, message } => {
            format!("tensor {}: {message}", torch_name(path))
        }
    }
}

/// `model` with the weights of `source`: a run folder (its `model.bpk`, or newest checkpoint),
/// a Burn record (`.bpk`), or a safetensors file (`.safetensors`, PyTorch's names). The
/// architecture must be `model`'s.
pub fn load_weights(
    mut model: fashion_mixer_model::Model,
    source: &Path,
) -> Result<fashion_mixer_model::Model, ExportError> {
    if source.extension().is_some_and(|e| e == "safetensors") {
        let bytes = std::fs::read(source).map_err(|e| ExportError::io(source, e))?;
        metadata(source, &bytes)?;
        apply(&mut model, source, bytes)?;
        return Ok(model);
    }
    let record = if source.is_dir() {
        record_path(&RunDir::new(source))?
    } else {
        source.to_path_buf()
    };
    Ok(load_record(model, &record)?)
}

/// Imports `file` as a new run in `run`: `config.json` and `model.bpk`, which `eval`, `infer`
/// and `train --init-from` accept. Everything is checked before the folder is made, so a bad
/// file writes nothing.
pub fn import(
    file: &Path,
    config: Option<TrainingConfig>,
    run: &RunDir,
) -> Result<TrainingConfig, ExportError> {
    run.check_fresh()?;
    let (config, model) = read(file, config, &Device::flex())?;
    let bytes = model
        .into_record()
        .into_bytes()
        .map_err(|e| bad(file, e.to_string()))?;
    run.create()?;
    let _lock = run.lock()?;
    run.check_fresh()?; // another process may have started a run here meanwhile
    save_config(run, &config)?;
    write_atomic(&run.model(), &bytes)?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header's keys sorted at every depth, its length and the data unchanged.
    #[test]
    fn the_header_is_written_in_sorted_order() {
        let header =
            br#"{"b":{"y":"1","x":"2"},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}  "#;
        let mut file = (header.len() as u64).to_le_bytes().to_vec();
        file.extend_from_slice(header);
        file.extend_from_slice(&[1, 2, 3, 4]);
        let sorted = sorted_header(file.clone());
        assert_eq!(sorted.len(), file.len());
        assert_eq!(sorted[sorted.len() - 4..], [1, 2, 3, 4]);
        let text = std::str::from_utf8(&sorted[8..8 + header.len()]).unwrap();
        assert_eq!(
            text.trim_end(),
            r#"{"a":{"data_offsets":[0,4],"dtype":"F32","shape":[1]},"b":{"x":"2","y":"1"}}"#
        );
        assert_eq!(sorted_header(b"short".to_vec()), b"short");
    }

    #[test]
    fn layer_norm_parameters_take_pytorch_names() {
        assert_eq!(torch_name("blocks.0.norm1.gamma"), "blocks.0.norm1.weight");
        assert_eq!(torch_name("norm.beta"), "norm.bias");
        assert_eq!(torch_name("head.weight"), "head.weight");
    }

    /// NaN and both infinities are found in every floating-point format a file may hold;
    /// the largest finite values are not.
    #[test]
    fn non_finite_values_are_counted_in_every_float_format() {
        use ::safetensors::{Dtype, tensor::TensorView};
        let file = |dtype: Dtype, data: Vec<u8>, width: usize| {
            let count = data.len() / width;
            let view = TensorView::new(dtype, vec![count], &data).unwrap();
            let bytes = ::safetensors::serialize([("t", view)], None).unwrap();
            non_finite(&bytes)
        };
        let bytes = |values: &[u64], width: usize| -> Vec<u8> {
            values
                .iter()
                .flat_map(|v| v.to_le_bytes()[..width].to_vec())
                .collect()
        };
        // Each: the largest finite value, NaN, 1.0, -infinity.
        let f64s = [f64::MAX, f64::NAN, 1.0, f64::NEG_INFINITY].map(f64::to_bits);
        let f32s = [f32::MAX, f32::NAN, 1.0, f32::NEG_INFINITY].map(|v| u64::from(v.to_bits()));
        for (dtype, values, width) in [
            (Dtype::F64, f64s, 8),
            (Dtype::F32, f32s, 4),
            (Dtype::F16, [0x7bff, 0x7e00, 0x3c00, 0xfc00], 2),
            (Dtype::BF16, [0x7f7f, 0x7fc0, 0x3f80, 0xff80], 2),
        ] {
            let found = file(dtype, bytes(&values, width), width);
            assert_eq!(found, Some(("t".to_string(), 2)), "{dtype:?}");
        }
        let finite: Vec<u8> = [f32::MAX, f32::MIN, 0.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(file(Dtype::F32, finite, 4), None);
        assert_eq!(non_finite(b"not a safetensors file"), None);
    }
}
