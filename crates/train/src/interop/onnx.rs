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
use fashion_mixer_model::norm::EPSILON;

use super::proto::Message;
use crate::error::TrainError;
use crate::predict::inference::LoadedModel;
use crate::run::artifacts::write_atomic;

/// The operator set the graph uses (`LayerNormalization` came in 17).
pub const OPSET: i64 = 17;

/// ONNX's element types.
const FLOAT: i64 = 1;
const INT64: i64 = 7;

/// A graph being built: its nodes and constant tensors, each output named in turn.
#[derive(Default)]
struct Graph {
    nodes: Vec<Message>,
    initializers: Vec<Message>,
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
    fn message(&self) -> Message {
        match self {
            Attr::Int(name, v) => Message::new().string(1, name).int(20, 2).int(3, *v),
            Attr::Float(name, v) => Message::new().string(1, name).int(20, 1).float(2, *v),
            Attr::Ints(name, vs) => vs
                .iter()
                .fold(Message::new().string(1, name).int(20, 7), |m, v| {
                    m.int(8, *v)
                }),
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
    fn tensor(&mut self, name: &str, dims: &[usize], data_type: i64, raw: Vec<u8>) -> String {
        let tensor = dims
            .iter()
            .fold(Message::new(), |m, d| m.int(1, *d as i64))
            .int(2, data_type)
            .string(8, name)
            .bytes(9, &raw);
        self.initializers.push(tensor);
        name.to_string()
    }

    /// A constant `float32` tensor named `name`.
    fn floats(&mut self, name: &str, dims: &[usize], data: &[f32]) -> String {
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensor(name, dims, FLOAT, raw)
    }

    /// A constant `int64` tensor named `name`.
    fn ints(&mut self, name: &str, dims: &[usize], data: &[i64]) -> String {
        let raw = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.tensor(name, dims, INT64, raw)
    }

    /// A node `op` of `inputs`; returns its output's name.
    fn node(&mut self, op: &str, inputs: &[&str], attrs: &[Attr]) -> String {
        self.names += 1;
        let output = format!("{}_{}", op.to_lowercase(), self.names);
        self.named(op, inputs, attrs, &output)
    }

    /// A node `op` of `inputs` whose output is called `output`.
    fn named(&mut self, op: &str, inputs: &[&str], attrs: &[Attr], output: &str) -> String {
        let node = inputs
            .iter()
            .fold(Message::new(), |m, input| m.string(1, input))
            .string(2, output)
            .string(3, output)
            .string(4, op);
        let node = attrs.iter().fold(node, |m, a| m.message(5, &a.message()));
        self.nodes.push(node);
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
fn value_info(name: &str, dims: &[usize]) -> Message {
    let shape = std::iter::once(Message::new().string(2, "batch"))
        .chain(dims.iter().map(|d| Message::new().int(1, *d as i64)))
        .fold(Message::new(), |m, dim| m.message(1, &dim));
    let tensor = Message::new().int(1, FLOAT).message(2, &shape);
    Message::new()
        .string(1, name)
        .message(2, &Message::new().message(1, &tensor))
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
    let graph = g
        .nodes
        .iter()
        .fold(Message::new(), |m, node| m.message(1, node))
        .string(2, "fashion-mixer");
    let graph = g
        .initializers
        .iter()
        .fold(graph, |m, t| m.message(5, t))
        .message(11, &value_info("pixels", &[side, side]))
        .message(12, &value_info("logits", &[CLASS_NAMES.len()]));
    let opset = Message::new().string(1, "").int(2, OPSET);
    let doc = format!(
        "fashion-mixer: an all-MLP Mixer for Fashion-MNIST. Input `pixels`: float32 [batch, 28, \
         28], values 0-255 as in an image file, garment light on a dark background; the \
         normalisation (p / 255 - {MEAN}) / {STD} is inside the graph. Output `logits`: \
         float32 [batch, 10], classes: {}.",
        CLASS_NAMES.join(", ")
    );
    let onnx = Message::new()
        .int(1, 8) // IR version 8: opset 17's
        .string(2, "fashion-mixer")
        .string(3, env!("CARGO_PKG_VERSION"))
        .string(6, &doc)
        .message(7, &graph)
        .message(8, &opset);
    metadata
        .iter()
        .fold(onnx, |m, (key, value)| {
            m.message(14, &Message::new().string(1, key).string(2, value))
        })
        .into_bytes()
}

/// Writes `loaded` as an ONNX model to `out` (atomically), with `metadata` in its properties.
pub fn export_onnx(
    loaded: &LoadedModel,
    out: &Path,
    metadata: &[(&str, String)],
) -> Result<(), TrainError> {
    write_atomic(out, &onnx_bytes(loaded, metadata))
}
