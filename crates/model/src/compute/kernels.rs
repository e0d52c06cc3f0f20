//! Kernels for training that a crate with autodiff installs (the model crate has none).
//!
//! Burn's autodiff records a LayerNorm, or a bias followed by ReLU, as several operations, each
//! a pass over the activations forward and again backward; flex's product fills and copies its
//! output before writing it (see `product.rs`). A crate with autodiff (the train crate) can
//! install kernels that record each as one operation with its own backward pass; the model's
//! `norm::layer_norm`, `bias_relu::bias_relu` and products (`matmul`, `linear`) use them
//! where they apply and Burn's operations everywhere else. Same maths either way: the tests
//! compare values and gradients with Burn's.

use std::sync::OnceLock;

use burn::nn::{LayerNorm, Linear};
use burn::prelude::*;

/// The installed kernels. Each declines a tensor it does not handle (another backend, no
/// autodiff, another dtype), which then takes Burn's operations.
#[derive(Debug, Clone, Copy)]
pub struct TrainingKernels {
    /// `norm` applied over the last dimension.
    pub layer_norm: fn(&LayerNorm, &Tensor<3>) -> Option<Tensor<3>>,
    /// `max(0, h + bias)`, the bias of shape `[rows, 1]` (one per row) or `[1, columns]`; it
    /// takes `h` by value so that it can write the result over it, and gives both back when
    /// it does not apply.
    pub bias_relu: fn(Tensor<2>, Tensor<2>) -> Result<Tensor<2>, (Tensor<2>, Tensor<2>)>,
    /// The 2-D product `a b`; gives both back when it does not apply.
    pub matmul: fn(Tensor<2>, Tensor<2>) -> Result<Tensor<2>, (Tensor<2>, Tensor<2>)>,
}

static INSTALLED: OnceLock<TrainingKernels> = OnceLock::new();

/// Installs `kernels` for the whole process (the first installed stays).
pub fn install(kernels: TrainingKernels) {
    let _ = INSTALLED.set(kernels);
}

/// `a b`, by the installed kernel where it applies and Burn's product elsewhere.
pub(crate) fn matmul(a: Tensor<2>, b: Tensor<2>) -> Tensor<2> {
    match installed() {
        Some(kernels) => (kernels.matmul)(a, b).unwrap_or_else(|(a, b)| a.matmul(b)),
        None => a.matmul(b),
    }
}

/// `layer` on rows, `x W + b`, its product by [`matmul`].
pub(crate) fn linear(x: Tensor<2>, layer: &Linear) -> Tensor<2> {
    let y = matmul(x, layer.weight.val());
    match &layer.bias {
        Some(bias) => {
            let columns = bias.dims()[0];
            y + bias.val().reshape([1, columns])
        }
        None => y,
    }
}

/// The installed kernels, if any.
pub(crate) fn installed() -> Option<&'static TrainingKernels> {
    INSTALLED.get()
}
