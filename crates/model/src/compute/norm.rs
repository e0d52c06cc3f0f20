//! LayerNorm over the features (the last dimension), and its arithmetic over rows of `f32`.
//!
//! [`layer_norm`] is what the model calls. Inference uses Burn's `LayerNorm` (one fused
//! operation on flex). While training, Burn's autodiff records LayerNorm as nine operations
//! forward and nine backward, each a pass over the activations; an installed kernel
//! ([`crate::compute::kernels`]) records it as one operation, with [`rows_forward`] and
//! [`rows_backward`] as its two passes.

use burn::nn::{LayerNorm, LayerNormConfig};
use burn::prelude::*;

use crate::compute::lanes::{dot, sum};

/// The variance's epsilon of every LayerNorm in the model (Burn's and PyTorch's default).
pub const EPSILON: f64 = 1e-5;

/// A LayerNorm over `dim` features with the model's epsilon.
pub fn config(dim: usize) -> LayerNormConfig {
    LayerNormConfig::new(dim).with_epsilon(EPSILON)
}

/// `norm` applied to `x` over its last dimension: through the installed training kernel
/// ([`crate::compute::kernels`]) where it applies, through Burn's `LayerNorm` otherwise.
pub fn layer_norm(norm: &LayerNorm, x: Tensor<3>) -> Tensor<3> {
    match crate::compute::kernels::installed().and_then(|k| (k.layer_norm)(norm, &x)) {
        Some(y) => y,
        None => norm.forward(x),
    }
}

/// LayerNorm forward over the rows of `x` (each `gamma.len()` long): `y = x_hat * gamma + beta`
/// with `x_hat = (x - mean) / sqrt(var + epsilon)` (biased variance, as Burn and PyTorch).
/// Writes `y`, and each row's mean and `1 / sqrt(var + epsilon)` (what the backward pass
/// needs).
pub fn rows_forward(
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    epsilon: f32,
    y: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
) {
    let dim = gamma.len();
    let n = dim as f32;
    let rows = x.chunks_exact(dim).zip(y.chunks_exact_mut(dim));
    for ((xr, yr), (m, r)) in rows.zip(mean.iter_mut().zip(rstd.iter_mut())) {
        let mu = sum(xr) / n;
        for (out, v) in yr.iter_mut().zip(xr) {
            *out = v - mu;
        }
        let inv = 1.0 / (dot(yr, yr) / n + epsilon).sqrt();
        for ((out, g), b) in yr.iter_mut().zip(gamma).zip(beta) {
            *out = *out * inv * g + b;
        }
        (*m, *r) = (mu, inv);
    }
}

/// LayerNorm backward over the rows of `x`, given the output's gradient `dy` and the
/// forward's `mean` and `rstd`: writes the input's gradient
/// `dx = rstd * (g - mean(g) - x_hat * mean(g * x_hat))` with `g = dy * gamma`, and adds the
/// rows' `dy * x_hat` to `dgamma` and their `dy` to `dbeta`.
#[allow(clippy::too_many_arguments)] // the pass's inputs and outputs, each a slice
pub fn rows_backward(
    x: &[f32],
    dy: &[f32],
    gamma: &[f32],
    mean: &[f32],
    rstd: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    let dim = gamma.len();
    let n = dim as f32;
    let rows = x.chunks_exact(dim).zip(dy.chunks_exact(dim));
    let rows = rows.zip(dx.chunks_exact_mut(dim));
    for (((xr, dyr), dxr), (mu, r)) in rows.zip(mean.iter().zip(rstd)) {
        // dx holds x_hat first, then the gradient.
        for (h, v) in dxr.iter_mut().zip(xr) {
            *h = (v - mu) * r;
        }
        for (((dg, db), d), h) in dgamma.iter_mut().zip(dbeta.iter_mut()).zip(dyr).zip(&*dxr) {
            *dg += d * h;
            *db += d;
        }
        let mut g_sum = [0.0f32; 16];
        let mut gh_sum = [0.0f32; 16];
        let chunks = (dyr.as_chunks::<16>().0.iter()).zip(gamma.as_chunks::<16>().0);
        for ((cd, cg), ch) in chunks.zip(dxr.as_chunks::<16>().0) {
            for i in 0..16 {
                let g = cd[i] * cg[i];
                g_sum[i] += g;
                gh_sum[i] += g * ch[i];
            }
        }
        let (mut a, mut b) = (g_sum.iter().sum::<f32>(), gh_sum.iter().sum::<f32>());
        let done = dim - dim % 16;
        for i in done..dim {
            let g = dyr[i] * gamma[i];
            a += g;
            b += g * dxr[i];
        }
        let (a, b) = (a / n, b / n);
        for ((out, d), g) in dxr.iter_mut().zip(dyr).zip(gamma) {
            *out = r * (d * g - a - *out * b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows' arithmetic against the definition, written out in f64, on a width that is
    /// not a multiple of the 16 lanes.
    #[test]
    fn rows_match_the_definition() {
        let (rows, dim) = (5, 37);
        let value = |i: usize, k: f64| ((i as f64 * k).sin() * 3.0 + 0.5) as f32;
        let x: Vec<f32> = (0..rows * dim).map(|i| value(i, 0.7)).collect();
        let dy: Vec<f32> = (0..rows * dim).map(|i| value(i, 1.3)).collect();
        let gamma: Vec<f32> = (0..dim).map(|i| value(i, 2.1)).collect();
        let beta: Vec<f32> = (0..dim).map(|i| value(i, 0.3)).collect();
        let eps = EPSILON as f32;

        let (mut y, mut mean, mut rstd) = (vec![0.0; rows * dim], vec![0.0; rows], vec![0.0; rows]);
        rows_forward(&x, &gamma, &beta, eps, &mut y, &mut mean, &mut rstd);
        let (mut dx, mut dgamma, mut dbeta) =
            (vec![0.0; rows * dim], vec![0.0; dim], vec![0.0; dim]);
        rows_backward(
            &x,
            &dy,
            &gamma,
            &mean,
            &rstd,
            &mut dx,
            &mut dgamma,
            &mut dbeta,
        );

        let mut want_dgamma = vec![0.0f64; dim];
        let mut want_dbeta = vec![0.0f64; dim];
        for row in 0..rows {
            let xr: Vec<f64> = x[row * dim..][..dim].iter().map(|&v| v as f64).collect();
            let dyr: Vec<f64> = dy[row * dim..][..dim].iter().map(|&v| v as f64).collect();
            let n = dim as f64;
            let mu = xr.iter().sum::<f64>() / n;
            let var = xr.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / n;
            let r = 1.0 / (var + EPSILON).sqrt();
            let h: Vec<f64> = xr.iter().map(|v| (v - mu) * r).collect();
            let g: Vec<f64> = (0..dim).map(|i| dyr[i] * gamma[i] as f64).collect();
            let a = g.iter().sum::<f64>() / n;
            let b = (0..dim).map(|i| g[i] * h[i]).sum::<f64>() / n;
            for i in 0..dim {
                let close = |got: f32, want: f64, what: &str| {
                    assert!(
                        (got as f64 - want).abs() < 1e-4,
                        "{what}[{row},{i}]: {got} vs {want}"
                    );
                };
                close(
                    y[row * dim + i],
                    h[i] * gamma[i] as f64 + beta[i] as f64,
                    "y",
                );
                close(dx[row * dim + i], r * (g[i] - a - h[i] * b), "dx");
                want_dgamma[i] += dyr[i] * h[i];
                want_dbeta[i] += dyr[i];
            }
        }
        for i in 0..dim {
            assert!(
                (dgamma[i] as f64 - want_dgamma[i]).abs() < 1e-4,
                "dgamma[{i}]"
            );
            assert!((dbeta[i] as f64 - want_dbeta[i]).abs() < 1e-4, "dbeta[{i}]");
        }
    }
}
