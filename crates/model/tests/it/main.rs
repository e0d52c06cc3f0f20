//! The integration tests of `model`, in one binary (each file in `tests/` would link Burn again).

mod backends;
mod dependencies;
