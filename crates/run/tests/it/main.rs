//! The integration tests of `run`, in one binary (each file in `tests/` would link Burn again).

mod config;
mod images;
mod inference;
mod metrics;
mod plot;
mod report;
mod run_dir;
mod scratch;

/// Held by every test that computes on flex in this process: the backend's random numbers come
/// from one process-wide generator, and a test reseeding it while another runs would change
/// the other's numbers.
pub static FLEX_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes [`FLEX_RNG`] (a test that panicked while holding it does not block the others).
pub fn flex_rng() -> std::sync::MutexGuard<'static, ()> {
    FLEX_RNG
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
