//! The CPU compute helpers the architecture calls on flex: LayerNorm and a hidden layer's bias +
//! ReLU over rows of `f32` (`norm`, `bias_relu`, summing in `lanes`), a matrix product into
//! memory of its own (`product`), a batch split over the cores (`shares`), subnormals flushed
//! (`fpu`), and where a crate with autodiff installs its one-operation versions (`kernels`).

pub mod bias_relu;
pub mod fpu;
pub mod kernels;
mod lanes;
pub mod norm;
pub mod product;
pub mod shares;
