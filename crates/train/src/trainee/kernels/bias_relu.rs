//! A hidden layer's bias and ReLU as one autodiff operation on flex, with its own backward pass.
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
use fashion_mixer_model::bias_relu::{BiasAxis, backward_rows, forward_rows};

use super::{Ad, contiguous, is_flex_f32, slice, slice_mut, tensor};

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
    use fashion_mixer_model::Backend;

    use super::*;
    use crate::trainee::kernels::values_and_grads;

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
        let declined = crate::trainee::kernels::declines_elsewhere([3, 4], [3, 1], forward);
        assert!(declined, "not flex with autodiff");
        let device = Backend::Flex.device().unwrap().autodiff();
        let h: Tensor<2> = Tensor::random([3, 4], Distribution::Default, &device);
        let bias: Tensor<2> = Tensor::random([3, 4], Distribution::Default, &device);
        assert!(forward(h, bias).is_err(), "a full matrix is not a bias");
    }
}
