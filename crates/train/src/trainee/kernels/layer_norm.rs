//! LayerNorm as one autodiff operation on flex, with its own backward pass.
//!
//! Burn's autodiff records `LayerNorm::forward` as the backend's decomposition: nine operations
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
use burn::nn::LayerNorm;
use burn::prelude::*;
use fashion_mixer_model::norm::{EPSILON, rows_backward, rows_forward};

use super::{Ad, contiguous, is_flex_f32, slice, tensor};

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
    use burn::nn::LayerNormConfig;
    use burn::tensor::Distribution;
    use fashion_mixer_model::Backend;
    use fashion_mixer_model::testing::assert_close;

    use super::*;

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
