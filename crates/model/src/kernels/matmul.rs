//! A 2-D matrix product as an autodiff operation on flex whose output and gradients gemm writes
//! straight into memory of their own.
//!
//! flex's own product allocates its output zero-filled and then copies it once more (its
//! `FlexTensor::empty` realigns every new buffer): two passes over the output that the product
//! overwrites anyway, 13% of a `best` training step (`perf`). Here gemm writes into a fresh
//! vector ([`product`]), and the views read their storage in place, transposed or not.
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

use super::{Ad, is_flex_f32, tensor};

/// An `f32` matrix as gemm reads it: its storage, the first element's offset, its shape and
/// its strides (in elements, of either sign).
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// The storage the elements are in.
    pub data: &'a [f32],
    /// Offset of element (0, 0) in `data`.
    pub start: usize,
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub columns: usize,
    /// Distance in `data` from one row to the next.
    pub row_stride: isize,
    /// Distance in `data` from one column to the next.
    pub column_stride: isize,
}

impl View<'_> {
    /// The transpose: the same elements, rows and columns swapped.
    pub fn t(self) -> Self {
        Self {
            rows: self.columns,
            columns: self.rows,
            row_stride: self.column_stride,
            column_stride: self.row_stride,
            ..self
        }
    }

    /// Whether every element lies inside `data` (what makes handing the view to gemm sound).
    fn fits(&self) -> bool {
        if self.rows == 0 || self.columns == 0 {
            return true;
        }
        let reach = |n: usize, stride: isize| (n as isize - 1).checked_mul(stride);
        let (Some(down), Some(across)) = (
            reach(self.rows, self.row_stride),
            reach(self.columns, self.column_stride),
        ) else {
            return false;
        };
        let start = self.start as isize;
        let low = start + down.min(0) + across.min(0);
        let high = start + down.max(0) + across.max(0);
        low >= 0 && (high as usize) < self.data.len()
    }
}

/// Products with fewer multiply-adds than this stay on the calling thread (flex's threshold).
const PARALLEL_THRESHOLD: usize = 192 * 192 * 192;

/// `a b`, `[a.rows, b.columns]` in row-major order, in a new vector; large products use the
/// calling thread's rayon pool. Panics when the inner dimensions differ or a view reaches
/// outside its storage.
#[allow(unsafe_code)]
pub fn product(a: View, b: View) -> Vec<f32> {
    assert_eq!(a.columns, b.rows, "inner dimensions of a product");
    assert!(a.fits() && b.fits(), "a view reaches outside its storage");
    let (m, k, n) = (a.rows, a.columns, b.columns);
    if m == 0 || n == 0 || k == 0 {
        return vec![0.0; m * n];
    }
    let parallelism = if rayon::current_num_threads() > 1
        && m.saturating_mul(n).saturating_mul(k) >= PARALLEL_THRESHOLD
    {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    let mut out = Vec::<f32>::with_capacity(m * n);
    // SAFETY: both views lie inside their storage (checked above), so every element gemm reads
    // is in bounds; `out` has room for the m x n result at row stride n, which gemm writes in
    // full without reading it (`read_dst` false) before the length is set.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.data.as_ptr().add(a.start),
            a.column_stride,
            a.row_stride,
            b.data.as_ptr().add(b.start),
            b.column_stride,
            b.row_stride,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
        out.set_len(m * n);
    }
    out
}

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

    use super::*;
    use crate::Backend;
    use crate::kernels::{assert_all_close, values_and_grads};

    fn naive(a: View, b: View) -> Vec<f32> {
        let at = |v: &View, i: usize, j: usize| {
            v.data[(v.start as isize + i as isize * v.row_stride + j as isize * v.column_stride)
                as usize]
        };
        let mut out = vec![0.0; a.rows * b.columns];
        for i in 0..a.rows {
            for j in 0..b.columns {
                out[i * b.columns + j] = (0..a.columns).map(|p| at(&a, i, p) * at(&b, p, j)).sum();
            }
        }
        out
    }

    /// Row-major, transposed and offset views, small and past the threshold, against the
    /// definition.
    #[test]
    fn products_match_the_definition() {
        let data: Vec<f32> = (0..400_000)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
            .collect();
        for (m, k, n) in [(3, 4, 5), (1, 7, 1), (256, 49, 128), (130, 300, 70)] {
            let a = View {
                data: &data,
                start: 3,
                rows: m,
                columns: k,
                row_stride: k as isize,
                column_stride: 1,
            };
            // b stored transposed ([n, k], row-major), read as [k, n].
            let b = View {
                data: &data,
                start: 11,
                rows: n,
                columns: k,
                row_stride: k as isize,
                column_stride: 1,
            }
            .t();
            let (fast, slow) = (product(a, b), naive(a, b));
            let worst = fast
                .iter()
                .zip(&slow)
                .map(|(x, y)| (x - y).abs() / (1.0 + y.abs()))
                .fold(0.0, f32::max);
            assert!(worst < 1e-4, "({m}, {k}, {n}): {worst}");
        }
    }

    #[test]
    #[should_panic(expected = "outside its storage")]
    fn a_view_past_its_storage_panics() {
        let data = vec![1.0f32; 10];
        let a = View {
            data: &data,
            start: 0,
            rows: 3,
            columns: 4,
            row_stride: 4,
            column_stride: 1,
        };
        product(a, a.t());
    }

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
        let declined = super::super::declines_elsewhere([3, 4], [4, 2], forward);
        assert!(declined, "not flex with autodiff");
    }
}
