//! Where the model runs: the backend the command line chooses and its device, the share of a
//! machine's GPUs a process takes beside others (`gpus`), and wgpu's kernel tuning shipped per
//! adapter (`tuning`).

mod backend;
pub mod gpus;
pub mod tuning;

pub use backend::{Backend, DeviceError, WGPU_START_TIMEOUT, kernel_cache_file, wgpu_adapter};
