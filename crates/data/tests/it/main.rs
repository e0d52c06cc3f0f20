//! The integration tests of `data`, in one binary (each file in `tests/` would link Burn again).

mod fetch;
mod fuzz_corpus;
mod real_data;
