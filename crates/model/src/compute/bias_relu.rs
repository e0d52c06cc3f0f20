//! A hidden layer's bias and ReLU, `g(h + b) = max(0, h + b)`, and its arithmetic over `f32`
//! rows.
//!
//! [`bias_relu`] is what the blocks call. While training, Burn's autodiff records the bias and
//! the ReLU as two operations, and backward as two more passes (ReLU's mask, then the bias's
//! sum over the dimension it was broadcast along); an installed kernel ([`crate::compute::kernels`])
//! records them as one operation, with [`forward_rows`] and [`backward_rows`] as its two
//! passes.

use burn::prelude::*;
use burn::tensor::activation::relu;

/// Where a hidden layer's bias goes: `b[i]` on every element of row `i` (token mixing, whose
/// hidden units are the rows) or `b[j]` on every element of column `j` (channel mixing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BiasAxis {
    /// One bias per row.
    Rows,
    /// One bias per column.
    Columns,
}

/// `max(0, h + bias)`, `bias` of shape `[rows, 1]` or `[1, columns]`: through the installed
/// training kernel ([`crate::compute::kernels`]) where it applies, through Burn's operations otherwise.
pub fn bias_relu(h: Tensor<2>, bias: Tensor<2>) -> Tensor<2> {
    let result = match crate::compute::kernels::installed() {
        Some(kernels) => (kernels.bias_relu)(h, bias),
        None => Err((h, bias)),
    };
    result.unwrap_or_else(|(h, bias)| relu(h + bias))
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
