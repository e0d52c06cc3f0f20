//! A 2-D matrix product as an autodiff operation on flex whose output and gradients gemm writes
//! into memory of their own ([`fashion_mixer_model::product`]); flex's product fills and copies
//! each output first.
//!
//! Forward `c = a b`; backward `da = g b^T`, `db = a^T g`, every transpose a view of the same
//! storage.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::{Flex, TensorMetadata};
use burn::prelude::*;
use fashion_mixer_model::product::{View, product};

use super::{Ad, is_flex_f32, tensor};

/// The matrix `t` (2-D, `f32`) as gemm reads it, in place.
fn view(t: &FlexTensor) -> View<'_> {
    let layout = t.layout();
    let (shape, strides) = (layout.shape(), layout.strides());
    View {
        data: t.storage::<f32>(),
        start: layout.start_offset(),
        rows: shape[0],
        columns: shape[1],
        row_stride: strides[0],
        column_stride: strides[1],
    }
}

/// `a b` as one autodiff operation; both given back when either is not an `f32` flex tensor
/// with autodiff.
#[allow(clippy::result_large_err)] // the two tensors given back, as large as the Ok value twice
pub fn forward(a: Tensor<2>, b: Tensor<2>) -> Result<Tensor<2>, (Tensor<2>, Tensor<2>)> {
    if !(is_flex_f32(&a) && is_flex_f32(&b)) || a.dims()[1] != b.dims()[0] {
        return Err((a, b));
    }
    let checked = "an f32 flex tensor with autodiff (checked)";
    let (a, a_node) = a.try_into_primitive::<Ad>().expect(checked).into_parts();
    let (b, b_node) = b.try_into_primitive::<Ad>().expect(checked).into_parts();
    let c = tensor(
        product(view(&a), view(&b)),
        Shape::new([a.shape()[0], b.shape()[1]]),
    );
    let output = match MatmulBackward
        .prepare::<NoCheckpointing>([a_node, b_node])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish((a, b), c),
        OpsKind::UnTracked(prep) => prep.finish(c),
    };
    Ok(Tensor::from_primitive::<Ad>(output))
}

/// The backward pass of [`forward`]; its state is the two factors.
#[derive(Debug)]
struct MatmulBackward;

impl Backward<Flex, 2> for MatmulBackward {
    type State = (FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [a_node, b_node] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (a, b) = ops.state;
        let g = view(&grad);
        if let Some(node) = a_node {
            grads.register::<Flex>(node.id, tensor(product(g, view(&b).t()), a.shape()));
        }
        if let Some(node) = b_node {
            grads.register::<Flex>(node.id, tensor(product(view(&a).t(), g), b.shape()));
        }
    }
}

#[cfg(test)]
mod tests {
    use burn::tensor::Distribution;
    use fashion_mixer_model::Backend;

    use super::*;
    use crate::trainee::kernels::{assert_all_close, values_and_grads};

    /// The product and both factors' gradients equal Burn's within 1e-4, with each factor
    /// given as it is stored or as a transposed view.
    #[test]
    fn matches_burn_matmul() {
        let device = Backend::Flex.device().unwrap().autodiff();
        device.seed(5);
        let (m, k, n) = (37, 49, 130);
        let a_base: Tensor<2> =
            Tensor::random([k, m], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let b_base: Tensor<2> =
            Tensor::random([k, n], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let weights: Tensor<2> = Tensor::random([m, n], Distribution::Default, &device);
        for (a_view, b_view) in [(true, false), (false, true)] {
            let run = |fast: bool| {
                let a = a_base.clone().transpose();
                let a = if a_view { a } else { a + 0.0 };
                let b = if b_view {
                    b_base.clone().transpose().transpose()
                } else {
                    b_base.clone() * 1.0
                };
                let c = if fast {
                    forward(a, b).expect("f32 flex autodiff tensors")
                } else {
                    a.matmul(b)
                };
                values_and_grads(c, &weights, [&a_base, &b_base])
            };
            let what = format!("a view {a_view}, b view {b_view}");
            let names = ["product", "a gradient", "b gradient"];
            assert_all_close(&run(true), &run(false), &what, names);
        }
    }

    /// What the kernel does not handle is left to Burn's product: no autodiff, another backend.
    #[test]
    fn leaves_what_it_does_not_handle() {
        let declined = crate::trainee::kernels::declines_elsewhere([3, 4], [4, 2], forward);
        assert!(declined, "not flex with autodiff");
    }
}
