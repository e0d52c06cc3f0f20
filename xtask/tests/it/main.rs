//! The integration tests of `xtask`, in one binary (each file in `tests/` would link Burn again).

mod backend_wgpu;
mod bad_input;
mod cli;
mod common;
mod interop;
mod interrupt;
mod presets;
mod runs;
mod serve_cli;
mod train_cli;
