//! A hidden layer's bias and ReLU, `g(h + b) = max(0, h + b)`, and its arithmetic over `f32`
//! rows.
//!
//! [`bias_relu`] is what the blocks call. While training, Burn's autodiff records the bias and
//! the ReLU as two operations, and backward as two more passes (ReLU's mask, then the bias's
//! sum over the dimension it was broadcast along); an installed kernel ([`crate::kernels`])
//! records them as one operation, with [`forward_rows`] and [`backward_rows`] as its two
//! passes.

use burn::prelude::*;
use burn::tensor::activation::relu;

use crate::lanes::sum;

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
/// training kernel ([`crate::kernels`]) where it applies, through Burn's operations otherwise.
pub fn bias_relu(h: Tensor<2>, bias: Tensor<2>) -> Tensor<2> {
    let result = match crate::kernels::installed() {
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

/// In place over the rows of `grad`, the gradient of [`forward_rows`]' output `out`: `grad`
/// becomes the gradient of `h` (kept where `out` is positive or NaN, zero elsewhere, as Burn's
/// flex backend does), and each bias's gradient (the sum of its row's or column's) is added to
/// `bias_grad`.
pub fn backward_rows(out: &[f32], grad: &mut [f32], bias_grad: &mut [f32], axis: BiasAxis) {
    // A select, not a branch: the mask is as good as random, and the loops vectorise.
    let masked = |o: f32, g: f32| if kept(o) { g } else { 0.0 };
    match axis {
        BiasAxis::Rows => {
            let columns = out.len() / bias_grad.len();
            let rows = out
                .chunks_exact(columns)
                .zip(grad.chunks_exact_mut(columns));
            for ((o_row, g_row), db) in rows.zip(bias_grad) {
                for (o, g) in o_row.iter().zip(g_row.iter_mut()) {
                    *g = masked(*o, *g);
                }
                *db += sum(g_row);
            }
        }
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
