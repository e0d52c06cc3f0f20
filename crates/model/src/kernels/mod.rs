//! The model's CPU kernels, each with its forward and backward pass side by side: LayerNorm
//! ([`layer_norm`]), a hidden layer's bias + ReLU ([`bias_relu`]) and the 2-D matrix product
//! ([`matmul`]); and Adam's and AdamW's update of a parameter in one pass ([`adam`]), which the
//! training crate's optimizer calls (this crate has no optimizers; the kernel needs none).
//!
//! Burn's autodiff records a LayerNorm, or a bias followed by ReLU, as several operations, each
//! a pass over the activations forward and again backward; flex's product fills and copies its
//! output before writing it. On flex with autodiff (training on the CPU), each kernel here is
//! one autodiff operation with its own backward pass over rows of `f32`. Same maths as Burn's:
//! the tests compare values and gradients with Burn's operations.
//!
//! Which code runs is the model's [`Kernels`], chosen where it is built for a device
//! ([`Kernels::for_device`]) and held by every module that calls one.
//!
//! ```
//! use burn::prelude::*;
//! use fashion_mixer_model::{Kernels, ModelConfig};
//!
//! let device = Device::flex().autodiff();
//! let model = ModelConfig::new().init(&device).unwrap();
//! assert_eq!(model.kernels(), Kernels::Flex);
//! assert_eq!(Kernels::for_device(&Device::flex()), Kernels::Burn);
//! ```

pub mod adam;
pub mod bias_relu;
pub mod layer_norm;
pub mod matmul;
mod sums;

use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::nn::{LayerNorm, Linear};
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::{DType, TensorData};

/// Which code runs the model's LayerNorms, its hidden layers' bias + ReLU and its matrix
/// products.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Kernels {
    /// Burn's operations, on every backend.
    #[default]
    Burn,
    /// This module's one-operation kernels for `f32` tensors on flex with autodiff (and no
    /// gradient checkpointing); Burn's operations for any other tensor.
    Flex,
}

impl Kernels {
    /// The kernels for a model built on `device`: [`Kernels::Flex`] on flex with autodiff and no
    /// gradient checkpointing (training on the CPU), [`Kernels::Burn`] everywhere else.
    pub fn for_device(device: &Device) -> Self {
        let checkpointing = device.gradient_checkpointing_strategy();
        let plain = checkpointing.is_none_or(|s| s == Default::default());
        if device.is_autodiff() && plain && *device == Device::flex() {
            Self::Flex
        } else {
            Self::Burn
        }
    }

    /// `norm` applied to `x` over its last dimension.
    pub fn layer_norm(self, norm: &LayerNorm, x: Tensor<3>) -> Tensor<3> {
        match self {
            Self::Flex => layer_norm::forward(norm, &x).unwrap_or_else(|| norm.forward(x)),
            Self::Burn => norm.forward(x),
        }
    }

    /// `max(0, h + bias)`, `bias` of shape `[rows, 1]` (one per row) or `[1, columns]`.
    pub fn bias_relu(self, h: Tensor<2>, bias: Tensor<2>) -> Tensor<2> {
        let result = match self {
            Self::Flex => bias_relu::forward(h, bias),
            Self::Burn => Err((h, bias)),
        };
        result.unwrap_or_else(|(h, bias)| relu(h + bias))
    }

    /// The 2-D product `a b`.
    pub fn matmul(self, a: Tensor<2>, b: Tensor<2>) -> Tensor<2> {
        match self {
            Self::Flex => matmul::forward(a, b).unwrap_or_else(|(a, b)| a.matmul(b)),
            Self::Burn => a.matmul(b),
        }
    }

    /// `layer` on rows, `x W + b`, its product by [`Self::matmul`].
    pub fn linear(self, x: Tensor<2>, layer: &Linear) -> Tensor<2> {
        let y = self.matmul(x, layer.weight.val());
        match &layer.bias {
            Some(bias) => {
                let columns = bias.dims()[0];
                y + bias.val().reshape([1, columns])
            }
            None => y,
        }
    }
}

/// Flex with autodiff, as the training device records it.
type Ad = Autodiff<Flex, NoCheckpointing>;

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

/// A flex tensor of `shape` holding `values`.
fn tensor(values: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// For the kernels' tests: whether `kernel` declines random tensors of shapes `a` and `b` on
/// every device it must leave to Burn (flex without autodiff, ndarray with it).
#[cfg(test)]
fn declines_elsewhere<T, E>(
    a: [usize; 2],
    b: [usize; 2],
    kernel: fn(Tensor<2>, Tensor<2>) -> Result<T, E>,
) -> bool {
    use crate::Backend;
    use burn::tensor::Distribution;
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
        crate::testing::assert_close(fast, reference, &format!("{what}: {name}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Flex with autodiff gets the kernels; flex without, ndarray and checkpointing flex do not.
    #[test]
    fn chosen_by_the_device() {
        use crate::Backend;
        let flex = Backend::Flex.device().unwrap();
        assert_eq!(Kernels::for_device(&flex.clone().autodiff()), Kernels::Flex);
        assert_eq!(Kernels::for_device(&flex), Kernels::Burn);
        let ndarray = Backend::Ndarray.device().unwrap().autodiff();
        assert_eq!(Kernels::for_device(&ndarray), Kernels::Burn);
    }
}
