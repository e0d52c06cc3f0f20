//! A trained model as `model.onnx`: the whole forward pass, from the 28x28 image to the ten
//! logits, in standard ONNX operators (opset 17), with a dynamic batch dimension.
//!
//! The input is `pixels`, `float32 [batch, 28, 28]`, values 0-255 as in an image file (dark
//! background, as Fashion-MNIST's); the normalisation `(p / 255 - mean) / std` is inside the
//! graph. The output is `logits`, `float32 [batch, 10]`, in the order of the classes (the
//! softmax is left to the caller). Patches are gathered by index from the flattened image (the
//! same for tiles and overlapping patches), each linear layer is a `MatMul` by the run's weight
//! (`[in, out]`, the bytes of the run's record) and an `Add` of its bias, the token-mixing MLP
//! runs on the transposed patches, LayerNorm is `LayerNormalization`, GELU is written with
//! `Erf`, the mean over patches is `ReduceMean`.

use std::path::Path;

use burn::module::Param;
use burn::nn::{LayerNorm, Linear};
use burn::prelude::*;
use fashion_mixer_data::{CLASS_NAMES, IMAGE_SIDE, MEAN, STD};
use fashion_mixer_model::kernels::layer_norm::EPSILON;
use fashion_mixer_run::inference::LoadedModel;
use fashion_mixer_run::run_dir::write_atomic;
use prost::Message as _;

use crate::error::ExportError;
use crate::onnx_proto::{
    AttributeProto, AttributeType, DataType, Dimension, DimensionValue, GraphProto, ModelProto,
    NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto, TensorShapeProto,
    TensorTypeProto, TypeProto, ValueInfoProto,
};

/// The operator set the graph uses (`LayerNormalization` came in 17).
pub const OPSET: i64 = 17;

/// The ONNX IR version of opset 17.
const IR_VERSION: i64 = 8;

/// A graph being built: its nodes and constant tensors, each output named in turn.
#[derive(Default)]
struct Graph {
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    names: usize,
    /// GELU's constants (sqrt 2, 1, 0.5), added once.
    gelu: Option<[String; 3]>,
}

/// A node attribute.
enum Attr {
    Int(&'static str, i64),
    Ints(&'static str, Vec<i64>),
    Float(&'static str, f32),
}

impl Attr {
    fn proto(&self) -> AttributeProto {
        let (name, kind) = match self {
            Attr::Int(name, _) => (name, AttributeType::Int),
            Attr::Ints(name, _) => (name, AttributeType::Ints),
            Attr::Float(name, _) => (name, AttributeType::Float),
        };
        let attribute = AttributeProto {
            name: Some(name.to_string()),
            r#type: Some(kind as i32),
            ..Default::default()
        };
        match self {
            Attr::Int(_, i) => AttributeProto {
                i: Some(*i),
                ..attribute
            },
            Attr::Ints(_, ints) => AttributeProto {
                ints: ints.clone(),
                ..attribute
            },
            Attr::Float(_, f) => AttributeProto {
                f: Some(*f),
                ..attribute
            },
        }
    }
}

/// The values of a parameter, as `f32` in row-major order.
fn values<const D: usize>(param: &Param<Tensor<D>>) -> Vec<f32> {
    param
        .val()
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("parameters are f32")
}

impl Graph {
    fn tensor(&mut self, name: &str, dims: &[usize], data_type: DataType, raw: Vec<u8>) -> String {
        self.initializers.push(TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: Some(data_type as i32),
            name: Some(name.to_string()),
            raw_data: Some(raw),
        });
        name.to_string()
    }

    /// A constant `float32` tensor named `name`.
    fn floats(&mut self, name: &str, dims: &[usize], data: &[f32]) -> String {
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensor(name, dims, DataType::Float, raw)
    }

    /// A constant `int64` tensor named `name`.
    fn ints(&mut self, name: &str, dims: &[usize], data: &[i64]) -> String {
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensor(name, dims, DataType::Int64, raw)
    }

    /// A node `op` of `inputs`; returns its output's name.
    fn node(&mut self, op: &str, inputs: &[&str], attrs: &[Attr]) -> String {
        self.names += 1;
        let output = format!("{}_{}", op.to_lowercase(), self.names);
        self.named(op, inputs, attrs, &output)
    }

    /// A node `op` of `inputs` whose output is called `output`.
    fn named(&mut self, op: &str, inputs: &[&str], attrs: &[Attr], output: &str) -> String {
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|input| input.to_string()).collect(),
            output: vec![output.to_string()],
            name: Some(output.to_string()),
            op_type: Some(op.to_string()),
            attribute: attrs
                .iter()
                .map(|a| a.proto().encode_head_first())
                .collect(),
        });
        output.to_string()
    }

    /// `x W + b` for the `Linear` layer named `name` (its weight `[in, out]`, as Burn's).
    fn linear(&mut self, x: &str, layer: &Linear, name: &str) -> String {
        let [inputs, outputs] = layer.weight.dims();
        let weight = self.floats(
            &format!("{name}.weight"),
            &[inputs, outputs],
            &values(&layer.weight),
        );
        let y = self.node("MatMul", &[x, &weight], &[]);
        match &layer.bias {
            Some(bias) => {
                let bias = self.floats(&format!("{name}.bias"), &[outputs], &values(bias));
                self.node("Add", &[&y, &bias], &[])
            }
            None => y,
        }
    }

    /// LayerNorm over the last axis, with the model's epsilon.
    fn layer_norm(&mut self, x: &str, norm: &LayerNorm, name: &str) -> String {
        let [dim] = norm.gamma.dims();
        let scale = self.floats(&format!("{name}.weight"), &[dim], &values(&norm.gamma));
        let bias = norm
            .beta
            .as_ref()
            .map(|b| self.floats(&format!("{name}.bias"), &[dim], &values(b)));
        let mut inputs = vec![x, scale.as_str()];
        if let Some(bias) = &bias {
            inputs.push(bias);
        }
        self.node(
            "LayerNormalization",
            &inputs,
            &[
                Attr::Int("axis", -1),
                Attr::Float("epsilon", EPSILON as f32),
            ],
        )
    }

    /// ReLU, or the exact GELU `x * (1 + erf(x / sqrt 2)) / 2`.
    fn activation(&mut self, x: &str, gelu: bool) -> String {
        if !gelu {
            return self.node("Relu", &[x], &[]);
        }
        let [root2, one, half] = match self.gelu.clone() {
            Some(constants) => constants,
            None => {
                let constants = [
                    self.floats("gelu.sqrt2", &[], &[std::f32::consts::SQRT_2]),
                    self.floats("gelu.one", &[], &[1.0]),
                    self.floats("gelu.half", &[], &[0.5]),
                ];
                self.gelu = Some(constants.clone());
                constants
            }
        };
        let scaled = self.node("Div", &[x, &root2], &[]);
        let erf = self.node("Erf", &[&scaled], &[]);
        let shifted = self.node("Add", &[&erf, &one], &[]);
        let product = self.node("Mul", &[x, &shifted], &[]);
        self.node("Mul", &[&product, &half], &[])
    }
}

/// `[batch, side, side]` or `[batch, 10]` as an ONNX value's type, the batch dynamic.
fn value_info(name: &str, dims: &[usize]) -> ValueInfoProto {
    let dimension = |value| Dimension { value: Some(value) };
    let dim = std::iter::once(dimension(DimensionValue::DimParam("batch".into())))
        .chain(
            dims.iter()
                .map(|&d| dimension(DimensionValue::DimValue(d as i64))),
        )
        .collect();
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            tensor_type: Some(TensorTypeProto {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto { dim }),
            }),
        }),
    }
}

/// The ONNX model of `loaded`, encoded, with `metadata` (key, value) in its properties.
pub fn onnx_bytes(loaded: &LoadedModel, metadata: &[(&str, String)]) -> Vec<u8> {
    let model = &loaded.model;
    let mut g = Graph::default();
    let side = IMAGE_SIDE;
    // (p / 255 - mean) / std, as the batcher computes it.
    let scale = g.floats("input.scale", &[], &[255.0]);
    let mean = g.floats("input.mean", &[], &[MEAN]);
    let std = g.floats("input.std", &[], &[STD]);
    let unit = g.node("Div", &["pixels", &scale], &[]);
    let centred = g.node("Sub", &[&unit, &mean], &[]);
    let normalised = g.node("Div", &[&centred, &std], &[]);
    let flat_shape = g.ints("input.flat", &[2], &[-1, (side * side) as i64]);
    let flat = g.node("Reshape", &[&normalised, &flat_shape], &[]);
    // Each patch's pixels, by index: patches row-major over the grid, pixels row-major within.
    let stem = &model.stem;
    let (k, stride) = (stem.patch_size, stem.stride);
    let per_side = fashion_mixer_model::patches_per_side(side, k, stride);
    let mut index = Vec::with_capacity(per_side * per_side * k * k);
    for r in 0..per_side {
        for c in 0..per_side {
            for y in 0..k {
                for x in 0..k {
                    index.push(((r * stride + y) * side + c * stride + x) as i64);
                }
            }
        }
    }
    let patches = per_side * per_side;
    let index = g.ints("stem.index", &[patches, k * k], &index);
    let gathered = g.node("Gather", &[&flat, &index], &[Attr::Int("axis", 1)]);
    let mut x = g.linear(&gathered, &stem.linear, "stem.linear"); // [batch, patches, dim]
    for (i, block) in model.blocks.iter().enumerate() {
        let name = |part: &str| format!("blocks.{i}.{part}");
        let y = match &block.norm1 {
            Some(norm) => g.layer_norm(&x, norm, &name("norm1")),
            None => x.clone(),
        };
        // Token mixing: O1 = g(X^T W1) W2, then O1 <- O1^T.
        let xt = g.node("Transpose", &[&y], &[Attr::Ints("perm", vec![0, 2, 1])]);
        let h = g.linear(&xt, &block.w1, &name("w1"));
        let h = g.activation(&h, block.gelu);
        let o = g.linear(&h, &block.w2, &name("w2"));
        let mut o1 = g.node("Transpose", &[&o], &[Attr::Ints("perm", vec![0, 2, 1])]);
        if block.residual {
            o1 = g.node("Add", &[&x, &o1], &[]);
        }
        // Channel mixing: O2 = g(O1 W3) W4.
        let y = match &block.norm2 {
            Some(norm) => g.layer_norm(&o1, norm, &name("norm2")),
            None => o1.clone(),
        };
        let h = g.linear(&y, &block.w3, &name("w3"));
        let h = g.activation(&h, block.gelu);
        let o2 = g.linear(&h, &block.w4, &name("w4"));
        x = if block.residual {
            g.node("Add", &[&o1, &o2], &[])
        } else {
            o2
        };
    }
    if let Some(norm) = &model.norm {
        x = g.layer_norm(&x, norm, "norm");
    }
    let pooled = g.node(
        "ReduceMean",
        &[&x],
        &[Attr::Ints("axes", vec![1]), Attr::Int("keepdims", 0)],
    );
    let logits = g.linear(&pooled, &model.head, "head");
    g.named("Identity", &[&logits], &[], "logits");
    let graph = GraphProto {
        node: g.nodes,
        name: Some("fashion-mixer".into()),
        initializer: g.initializers,
        input: vec![value_info("pixels", &[side, side])],
        output: vec![value_info("logits", &[CLASS_NAMES.len()])],
    };
    let doc = format!(
        "fashion-mixer: an all-MLP Mixer for Fashion-MNIST. Input `pixels`: float32 [batch, 28, \
         28], values 0-255 as in an image file, garment light on a dark background; the \
         normalisation (p / 255 - {MEAN}) / {STD} is inside the graph. Output `logits`: \
         float32 [batch, 10], classes: {}.",
        CLASS_NAMES.join(", ")
    );
    ModelProto {
        ir_version: Some(IR_VERSION),
        producer_name: Some("fashion-mixer".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        doc_string: Some(doc),
        graph: Some(graph),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET),
        }],
        metadata_props: metadata
            .iter()
            .map(|(key, value)| StringStringEntryProto {
                key: Some(key.to_string()),
                value: Some(value.clone()),
            })
            .collect(),
    }
    .encode_to_vec()
}

/// Writes `loaded` as an ONNX model to `out` (atomically), with `metadata` in its properties.
pub fn export_onnx(
    loaded: &LoadedModel,
    out: &Path,
    metadata: &[(&str, String)],
) -> Result<(), ExportError> {
    Ok(write_atomic(out, &onnx_bytes(loaded, metadata))?)
}
