//! LayerNorm over the features (the last dimension) as one autodiff operation on flex, with
//! its own backward pass.
//!
//! Inference uses Burn's `LayerNorm` (one fused operation on flex). While training, Burn's
//! autodiff records `LayerNorm::forward` as the backend's decomposition: nine operations
//! forward (mean, subtract, square, mean, add, square root, divide, scale, shift) and their
//! nine backward, each a pass over the activations. [`forward`] records it as one operation
//! instead: one pass over the rows forward and one backward ([`rows_forward`],
//! [`rows_backward`]). It applies to `f32` tensors on flex with autodiff (and no gradient
//! checkpointing); every other tensor goes through Burn's `LayerNorm`. The tests check values
//! and gradients against Burn's.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Flex, TensorMetadata};
use burn::nn::{LayerNorm, LayerNormConfig};
use burn::prelude::*;

use super::sums::{dot, sum};
use super::{Ad, contiguous, is_flex_f32, slice, tensor};

/// The variance's epsilon of every LayerNorm in the model (Burn's and PyTorch's default).
pub const EPSILON: f64 = 1e-5;

/// A LayerNorm over `dim` features with the model's epsilon.
pub fn config(dim: usize) -> LayerNormConfig {
    LayerNormConfig::new(dim).with_epsilon(EPSILON)
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

/// `norm` applied to `x` as one autodiff operation; `None` when `x` is not an `f32` flex tensor
/// with autodiff, or the norm has no bias.
pub fn forward(norm: &LayerNorm, x: &Tensor<3>) -> Option<Tensor<3>> {
    let beta = norm.beta.as_ref()?;
    let gamma = norm.gamma.val();
    let beta = beta.val();
    if !(is_flex_f32(x) && is_flex_f32(&gamma) && is_flex_f32(&beta)) {
        return None;
    }
    let checked = "an f32 flex tensor with autodiff (checked)";
    let input = x.clone().try_into_primitive::<Ad>().expect(checked);
    let gamma = gamma.try_into_primitive::<Ad>().expect(checked);
    let beta = beta.try_into_primitive::<Ad>().expect(checked);
    let shape = x.shape();
    let (input, input_node) = input.into_parts();
    let (gamma, gamma_node) = gamma.into_parts();
    let (beta, beta_node) = beta.into_parts();
    let input = contiguous(input);
    let gamma = contiguous(gamma);
    let beta = contiguous(beta);

    let rows = shape.num_elements() / shape[2];
    let mut y = vec![0.0f32; shape.num_elements()];
    let (mut mean, mut rstd) = (vec![0.0f32; rows], vec![0.0f32; rows]);
    rows_forward(
        slice(&input),
        slice(&gamma),
        slice(&beta),
        EPSILON as f32,
        &mut y,
        &mut mean,
        &mut rstd,
    );
    let y = tensor(y, shape);
    let output = match NormBackward
        .prepare::<NoCheckpointing>([input_node, gamma_node, beta_node])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(
            NormState {
                input,
                gamma,
                mean,
                rstd,
            },
            y,
        ),
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    Some(Tensor::from_primitive::<Ad>(output))
}

/// The backward pass of [`forward`].
#[derive(Debug)]
struct NormBackward;

/// What the backward pass needs from the forward one.
#[derive(Debug, Clone)]
struct NormState {
    input: FlexTensor,
    gamma: FlexTensor,
    mean: Vec<f32>,
    rstd: Vec<f32>,
}

impl Backward<Flex, 3> for NormBackward {
    type State = NormState;

    fn backward(self, ops: Ops<NormState, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [input_node, gamma_node, beta_node] = ops.parents;
        let dy = contiguous(grads.consume::<Flex>(&ops.node));
        let state = ops.state;
        let shape = state.input.shape();
        let dim = shape[2];
        let mut dx = vec![0.0f32; shape.num_elements()];
        let (mut dgamma, mut dbeta) = (vec![0.0f32; dim], vec![0.0f32; dim]);
        rows_backward(
            slice(&state.input),
            slice(&dy),
            slice(&state.gamma),
            &state.mean,
            &state.rstd,
            &mut dx,
            &mut dgamma,
            &mut dbeta,
        );
        if let Some(node) = input_node {
            grads.register::<Flex>(node.id, tensor(dx, shape));
        }
        if let Some(node) = gamma_node {
            grads.register::<Flex>(node.id, tensor(dgamma, [dim].into()));
        }
        if let Some(node) = beta_node {
            grads.register::<Flex>(node.id, tensor(dbeta, [dim].into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Param;
    use burn::tensor::Distribution;

    use super::*;
    use crate::Backend;
    use crate::testing::assert_close;

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

    /// The one-operation LayerNorm gives Burn's values and gradients (input, gamma, beta),
    /// within 1e-4, on a non-contiguous input, with gamma and beta away from their initial 1
    /// and 0.
    #[test]
    fn matches_burn_layer_norm() {
        let device = Backend::Flex.device().unwrap().autodiff();
        device.seed(7);
        let dim = 24;
        let mut norm = LayerNormConfig::new(dim)
            .with_epsilon(EPSILON)
            .init(&device);
        let random = || Tensor::random([dim], Distribution::Normal(0.0, 0.5), &device);
        norm.gamma = Param::from_tensor(random() + 1.0);
        norm.beta = Some(Param::from_tensor(random()));
        // [dim, 3, 5] swapped to [5, 3, dim]: a view whose elements are out of order.
        let base: Tensor<3> =
            Tensor::random([dim, 3, 5], Distribution::Normal(1.0, 2.0), &device).require_grad();
        let weights: Tensor<3> = Tensor::random([5, 3, dim], Distribution::Default, &device);

        let run = |fused: bool| {
            let x = base.clone().swap_dims(0, 2);
            let y = if fused {
                forward(&norm, &x).expect("an f32 flex autodiff tensor")
            } else {
                norm.forward(x.clone())
            };
            let grads = (y.clone() * weights.clone()).sum().backward();
            let beta = norm.beta.as_ref().unwrap();
            (
                y.into_data(),
                base.grad(&grads).unwrap().into_data(),
                norm.gamma.grad(&grads).unwrap().into_data(),
                beta.grad(&grads).unwrap().into_data(),
            )
        };
        let (fast, reference) = (run(true), run(false));
        assert_close(&fast.0, &reference.0, "output");
        assert_close(&fast.1, &reference.1, "input gradient");
        assert_close(&fast.2, &reference.2, "gamma gradient");
        assert_close(&fast.3, &reference.3, "beta gradient");
    }

    /// Tensors the kernel does not handle are left to Burn's LayerNorm: no autodiff, or
    /// another backend.
    #[test]
    fn leaves_what_it_does_not_handle() {
        for device in [
            Backend::Flex.device().unwrap(),
            Backend::Ndarray.device().unwrap().autodiff(),
        ] {
            let norm = LayerNormConfig::new(4).init(&device);
            let x: Tensor<3> = Tensor::random([2, 3, 4], Distribution::Default, &device);
            assert!(forward(&norm, &x).is_none(), "not flex with autodiff");
        }
    }
}
