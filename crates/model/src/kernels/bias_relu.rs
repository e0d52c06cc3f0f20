//! A hidden layer's bias and ReLU, `g(h + b) = max(0, h + b)`, as one autodiff operation on
//! flex, with its own backward pass.
//!
//! Burn's autodiff records `relu(h + b)` as two operations; backward, ReLU's mask is one pass
//! and the bias's gradient (a sum over the dimension it was broadcast along) another.
//! [`forward`] records one operation that writes `max(0, h + b)` over `h` in place, and whose
//! backward pass masks the gradient in place and sums the bias's gradient in the same pass
//! ([`forward_rows`], [`backward_rows`]), in flex's order: values and gradients equal Burn's
//! to the last bit.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Flex, TensorMetadata};
use burn::prelude::*;

use super::{Ad, contiguous, is_flex_f32, slice, slice_mut, tensor};

/// Where a hidden layer's bias goes: `b[i]` on every element of row `i` (token mixing, whose
/// hidden units are the rows) or `b[j]` on every element of column `j` (channel mixing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BiasAxis {
    /// One bias per row.
    Rows,
    /// One bias per column.
    Columns,
}

/// Whether ReLU keeps `v` (and the gradient there), as Burn's flex backend decides: positive
/// or NaN (a NaN stays NaN).
fn kept(v: f32) -> bool {
    v.is_nan() || v > 0.0
}

/// ReLU as Burn's flex backend computes it.
fn relu_value(v: f32) -> f32 {
    if kept(v) { v } else { 0.0 }
}

/// In place over the rows of `h` (a row-major matrix): `h = max(0, h + b)`, with `b` along
/// `axis` (`bias.len()` rows, or `bias.len()` columns).
pub fn forward_rows(h: &mut [f32], bias: &[f32], axis: BiasAxis) {
    match axis {
        BiasAxis::Rows => {
            let columns = h.len() / bias.len();
            for (row, b) in h.chunks_exact_mut(columns).zip(bias) {
                for v in row {
                    *v = relu_value(*v + b);
                }
            }
        }
        BiasAxis::Columns => {
            for row in h.chunks_exact_mut(bias.len()) {
                for (v, b) in row.iter_mut().zip(bias) {
                    *v = relu_value(*v + b);
                }
            }
        }
    }
}

/// How many `f32` lanes flex's SIMD sums use on this machine: macerator's choice of
/// instruction set, the one burn-flex makes.
#[macerator::with_simd]
fn flex_lanes<S: macerator::Simd>() -> usize {
    <f32 as macerator::Scalar>::lanes::<S>()
}

/// The sum of `values`, by the kernel behind flex's `float_sum_dim` over a last dimension
/// (burn-flex is pinned to one version).
fn flex_sum(values: &[f32]) -> f32 {
    let mut total = 0.0;
    let len = values.len();
    burn_flex::simd::kernels::sum_rows_f32(values, std::slice::from_mut(&mut total), 1, len);
    total
}

/// In place over the rows of `grad`, the gradient of [`forward_rows`]' output `out`: `grad`
/// becomes the gradient of `h` (kept where `out` is positive or NaN, zero elsewhere, as Burn's
/// flex backend does), and each bias's gradient (the sum of its row's or column's) is added to
/// `bias_grad`. Each sum is added up in the order flex's `float_sum_dim` adds it, so a zeroed
/// `bias_grad` ends as Burn's two operations leave the bias's gradient, to the last bit, and a
/// training run is the same with the kernel or without it.
pub fn backward_rows(out: &[f32], grad: &mut [f32], bias_grad: &mut [f32], axis: BiasAxis) {
    // A select, not a branch: the mask is as good as random, and the loops vectorise.
    let masked = |o: f32, g: f32| if kept(o) { g } else { 0.0 };
    match axis {
        // Each row's sum in flex's order, in the same pass: flex adds a row in strides of eight
        // vectors into eight vector accumulators, then combines them, then adds what is left.
        // The accumulators here are `acc`, one element per lane, added to lane by lane as flex
        // does; flex's own sum of `acc` followed by what is left starts by taking `acc` as its
        // accumulators and ends as flex's sum of the whole row would.
        BiasAxis::Rows => {
            let columns = out.len() / bias_grad.len();
            let stride = 8 * flex_lanes();
            let full = columns / stride * stride;
            let mut buffer = vec![0.0f32; 2 * stride];
            let rows = out
                .chunks_exact(columns)
                .zip(grad.chunks_exact_mut(columns));
            for ((o_row, g_row), db) in rows.zip(bias_grad) {
                let (acc, left) = buffer.split_at_mut(stride);
                acc.fill(0.0);
                let (o_full, o_left) = o_row.split_at(full);
                let (g_full, g_left) = g_row.split_at_mut(full);
                for (o_chunk, g_chunk) in o_full
                    .chunks_exact(stride)
                    .zip(g_full.chunks_exact_mut(stride))
                {
                    for ((o, g), a) in o_chunk.iter().zip(g_chunk).zip(acc.iter_mut()) {
                        *g = masked(*o, *g);
                        *a += *g;
                    }
                }
                for ((o, g), l) in o_left.iter().zip(g_left).zip(left.iter_mut()) {
                    *g = masked(*o, *g);
                    *l = *g;
                }
                *db += flex_sum(&buffer[..stride + columns - full]);
            }
        }
        // Row after row, as flex's sum over dimension 0: the same order.
        BiasAxis::Columns => {
            let columns = bias_grad.len();
            let rows = out
                .chunks_exact(columns)
                .zip(grad.chunks_exact_mut(columns));
            for (o_row, g_row) in rows {
                for ((o, g), db) in o_row.iter().zip(g_row.iter_mut()).zip(bias_grad.iter_mut()) {
                    *g = masked(*o, *g);
                    *db += *g;
                }
            }
        }
    }
}

/// `max(0, h + bias)` as one autodiff operation, `bias` of shape `[rows, 1]` or
/// `[1, columns]`, written over `h` where no one else holds it; both given back when either is
/// not an `f32` flex tensor with autodiff.
#[allow(clippy::result_large_err)] // the two tensors given back, as large as the Ok value twice
pub fn forward(h: Tensor<2>, bias: Tensor<2>) -> Result<Tensor<2>, (Tensor<2>, Tensor<2>)> {
    let [rows, columns] = h.dims();
    let axis = match bias.dims() {
        [r, 1] if r == rows => BiasAxis::Rows,
        [1, c] if c == columns => BiasAxis::Columns,
        _ => return Err((h, bias)),
    };
    if !(is_flex_f32(&h) && is_flex_f32(&bias)) {
        return Err((h, bias));
    }
    let checked = "an f32 flex tensor with autodiff (checked)";
    let h = h.try_into_primitive::<Ad>().expect(checked);
    let bias = bias.try_into_primitive::<Ad>().expect(checked);
    let (h, h_node) = h.into_parts();
    let (bias, bias_node) = bias.into_parts();
    let bias = contiguous(bias);
    // In place where `h`'s storage is not shared (a product's fresh output); copied otherwise.
    let mut y = contiguous(h);
    forward_rows(slice_mut(&mut y), slice(&bias), axis);
    let output = match BiasReluBackward
        .prepare::<NoCheckpointing>([h_node, bias_node])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(
            BiasReluState {
                output: y.clone(),
                axis,
                bias_shape: bias.shape(),
            },
            y,
        ),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Ok(Tensor::from_primitive::<Ad>(output))
}

/// The backward pass of [`forward`].
#[derive(Debug)]
struct BiasReluBackward;

/// What the backward pass needs from the forward one.
#[derive(Debug, Clone)]
struct BiasReluState {
    output: FlexTensor,
    axis: BiasAxis,
    bias_shape: Shape,
}

impl Backward<Flex, 2> for BiasReluBackward {
    type State = BiasReluState;

    fn backward(self, ops: Ops<BiasReluState, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [h_node, bias_node] = ops.parents;
        let mut grad = contiguous(grads.consume::<Flex>(&ops.node));
        let state = ops.state;
        let output = contiguous(state.output);
        let mut bias_grad = vec![0.0f32; state.bias_shape.num_elements()];
        backward_rows(
            slice(&output),
            slice_mut(&mut grad),
            &mut bias_grad,
            state.axis,
        );
        if let Some(node) = h_node {
            grads.register::<Flex>(node.id, grad);
        }
        if let Some(node) = bias_node {
            grads.register::<Flex>(node.id, tensor(bias_grad, state.bias_shape));
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::activation::relu;
    use burn::tensor::{Distribution, TensorData};

    use super::*;
    use crate::Backend;
    use crate::kernels::values_and_grads;

    /// Both passes against the definition, element by element, for both axes, on a width that
    /// is not a multiple of the 16 lanes, with a NaN that must pass through.
    #[test]
    fn rows_match_the_definition() {
        let (rows, columns) = (3, 37);
        let value = |i: usize, k: f64| ((i as f64 * k).sin() * 3.0) as f32;
        let mut h: Vec<f32> = (0..rows * columns).map(|i| value(i, 0.7)).collect();
        h[5] = f32::NAN;
        let dy: Vec<f32> = (0..rows * columns).map(|i| value(i, 1.3)).collect();
        for axis in [BiasAxis::Rows, BiasAxis::Columns] {
            let n_bias = if axis == BiasAxis::Rows {
                rows
            } else {
                columns
            };
            let bias: Vec<f32> = (0..n_bias).map(|i| value(i, 2.1)).collect();
            let b = |i: usize| match axis {
                BiasAxis::Rows => bias[i / columns],
                BiasAxis::Columns => bias[i % columns],
            };
            let mut out = h.clone();
            forward_rows(&mut out, &bias, axis);
            let mut grad = dy.clone();
            let mut bias_grad = vec![1.0f32; n_bias];
            backward_rows(&out, &mut grad, &mut bias_grad, axis);

            let mut want_bias_grad = vec![1.0f64; n_bias];
            for i in 0..rows * columns {
                let pre = h[i] + b(i);
                if pre.is_nan() {
                    assert!(out[i].is_nan() && grad[i] == dy[i], "{axis:?} {i}: NaN");
                } else {
                    assert_eq!(out[i], pre.max(0.0), "{axis:?} out[{i}]");
                    let want = if pre > 0.0 { dy[i] } else { 0.0 };
                    assert_eq!(grad[i], want, "{axis:?} grad[{i}]");
                }
                let k = if axis == BiasAxis::Rows {
                    i / columns
                } else {
                    i % columns
                };
                want_bias_grad[k] += grad[i] as f64;
            }
            for (k, (got, want)) in bias_grad.iter().zip(&want_bias_grad).enumerate() {
                assert!(
                    (*got as f64 - want).abs() < 1e-4,
                    "{axis:?} bias_grad[{k}]: {got} vs {want}"
                );
            }
        }
    }

    /// The one-operation bias + ReLU gives Burn's values and gradients (`h` and the bias) to
    /// the last bit, for a bias per row and per column, on an `h` whose storage is shared and
    /// out of order (a transposed view) and on one of its own (written over), with rows long
    /// enough for every lane of flex's sums.
    #[test]
    fn matches_burn_bias_and_relu() {
        let device = Backend::Flex.device().unwrap().autodiff();
        device.seed(11);
        let (rows, columns) = (6, 301);
        for (bias_shape, view) in [[rows, 1], [1, columns]].into_iter().zip([true, false]) {
            let base: Tensor<2> =
                Tensor::random([columns, rows], Distribution::Normal(0.0, 1.0), &device)
                    .require_grad();
            let bias: Tensor<2> =
                Tensor::random(bias_shape, Distribution::Normal(0.0, 1.0), &device).require_grad();
            let weights: Tensor<2> =
                Tensor::random([rows, columns], Distribution::Default, &device);
            let run = |fused: bool| {
                let h = base.clone().transpose();
                let h = if view { h } else { h + 0.0 };
                let y = if fused {
                    forward(h, bias.clone()).expect("f32 flex autodiff tensors")
                } else {
                    relu(h + bias.clone())
                };
                values_and_grads(y, &weights, [&base, &bias])
            };
            let what = format!("bias {bias_shape:?}, view {view}");
            let names = ["output", "h gradient", "bias gradient"];
            let (fast, reference) = (run(true), run(false));
            for ((fast, reference), name) in fast.iter().zip(&reference).zip(names) {
                let bits =
                    |t: &TensorData| -> Vec<u32> { t.iter::<f32>().map(f32::to_bits).collect() };
                assert_eq!(bits(fast), bits(reference), "{what}: {name}");
            }
        }
    }

    /// What the kernel does not handle is left to Burn's operations: no autodiff, another
    /// backend, a bias that is neither a column nor a row.
    #[test]
    fn leaves_what_it_does_not_handle() {
        let declined = super::super::declines_elsewhere([3, 4], [3, 1], forward);
        assert!(declined, "not flex with autodiff");
        let device = Backend::Flex.device().unwrap().autodiff();
        let h: Tensor<2> = Tensor::random([3, 4], Distribution::Default, &device);
        let bias: Tensor<2> = Tensor::random([3, 4], Distribution::Default, &device);
        assert!(forward(h, bias).is_err(), "a full matrix is not a bias");
    }
}
