//! Operations Burn's autodiff would record as several, recorded as one with its own backward
//! pass, on flex: LayerNorm ([`layer_norm`]) and a hidden layer's bias + ReLU ([`bias_relu`]);
//! and the matrix product ([`matmul`]), whose outputs gemm writes into memory of their own.
//!
//! [`install`] hands them to the model ([`fashion_mixer_model::kernels`]). Each applies to `f32`
//! tensors on flex with autodiff (and no gradient checkpointing); every other tensor takes
//! Burn's operations. The tests check values and gradients against Burn's.

pub mod bias_relu;
pub mod layer_norm;
pub mod matmul;

use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::{DType, TensorData};
use fashion_mixer_model::kernels::{self, TrainingKernels};

/// Flex with autodiff, as the training device records it.
type Ad = Autodiff<Flex, NoCheckpointing>;

/// Makes the model use these kernels while training (for the whole process).
pub fn install() {
    kernels::install(TrainingKernels {
        layer_norm: layer_norm::forward,
        bias_relu: bias_relu::forward,
        matmul: matmul::forward,
    });
}

/// Whether `t` is an `f32` flex tensor with autodiff, what the kernels handle.
fn is_flex_f32<const D: usize>(t: &Tensor<D>) -> bool {
    t.dtype() == DType::F32 && t.clone().try_into_primitive::<Ad>().is_ok()
}

/// `t` with its elements in order in memory.
fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.as_slice::<f32>().is_some() {
        t
    } else {
        t.to_contiguous()
    }
}

/// The elements of a contiguous `f32` tensor.
fn slice(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("a contiguous f32 tensor (checked by the caller)")
}

/// The elements of a contiguous `f32` tensor, to write in place (copied first if the storage is
/// shared).
fn slice_mut(t: &mut FlexTensor) -> &mut [f32] {
    let (start, end) = t
        .layout()
        .contiguous_offsets()
        .expect("a contiguous tensor (checked by the caller)");
    &mut t.storage_mut::<f32>()[start..end]
}

/// For the kernels' tests: whether `kernel` declines random tensors of shapes `a` and `b` on
/// every device it must leave to Burn (flex without autodiff, ndarray with it).
#[cfg(test)]
fn declines_elsewhere<T, E>(
    a: [usize; 2],
    b: [usize; 2],
    kernel: fn(Tensor<2>, Tensor<2>) -> Result<T, E>,
) -> bool {
    use burn::tensor::Distribution;
    use fashion_mixer_model::Backend;
    let flex = Backend::Flex.device().unwrap();
    let ndarray = Backend::Ndarray.device().unwrap().autodiff();
    [flex, ndarray].iter().all(|device| {
        let a = Tensor::random(a, Distribution::Default, device);
        kernel(a, Tensor::random(b, Distribution::Default, device)).is_err()
    })
}

/// For the kernels' tests: the values of `y` and the gradients of `inputs` for the loss
/// `sum(y * weights)`.
#[cfg(test)]
fn values_and_grads(y: Tensor<2>, weights: &Tensor<2>, inputs: [&Tensor<2>; 2]) -> [TensorData; 3] {
    let grads = (y.clone() * weights.clone()).sum().backward();
    let grad = |t: &Tensor<2>| t.grad(&grads).expect("a gradient").into_data();
    [y.into_data(), grad(inputs[0]), grad(inputs[1])]
}

/// For the kernels' tests: each of `fast`'s three tensors (named by `names`) within 1e-4 of
/// `reference`'s.
#[cfg(test)]
fn assert_all_close(
    fast: &[TensorData; 3],
    reference: &[TensorData; 3],
    what: &str,
    names: [&str; 3],
) {
    for ((fast, reference), name) in fast.iter().zip(reference).zip(names) {
        fashion_mixer_model::testing::assert_close(fast, reference, &format!("{what}: {name}"));
    }
}

/// A flex tensor of `shape` holding `values`.
fn tensor(values: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}
