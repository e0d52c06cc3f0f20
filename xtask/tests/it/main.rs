//! The integration tests of `xtask`, in one binary (each file in `tests/` would link Burn again).

mod backend_wgpu;
mod bad_input;
mod cli;
mod cluster;
mod common;
mod distributed;
mod interop;
mod interrupt;
mod presets;
mod runs;
mod serve_cli;
mod train_cli;
