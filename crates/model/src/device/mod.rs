//! Where the model runs: the backend the command line chooses and its device, and wgpu's kernel
//! tuning shipped per adapter (`tuning`).

mod backend;
pub mod tuning;

pub use backend::{Backend, DeviceError, WGPU_START_TIMEOUT, kernel_cache_file, wgpu_adapter};
