//! The integration tests of `train`, in one binary (each file in `tests/` would link Burn again).

mod bench;
mod checkpoints;
mod determinism;
mod distill;
mod ema;
mod smoke;

/// Held by every test that trains or steps on flex in this process: the backend's random
/// numbers come from one process-wide generator, and a test reseeding it while another trains
/// would change the other's run (the determinism test compares two runs exactly).
pub static FLEX_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes [`FLEX_RNG`] (a test that panicked while holding it does not block the others).
pub fn flex_rng() -> std::sync::MutexGuard<'static, ()> {
    FLEX_RNG
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How the tests train: a fresh run in `run` on the IDX files in `data_dir`, no dashboard, no
/// messages.
pub fn quiet(
    run: &fashion_mixer_run::RunDir,
    data_dir: &std::path::Path,
) -> fashion_mixer_train::training::TrainOptions {
    fashion_mixer_train::training::TrainOptions {
        run: run.clone(),
        data_dir: data_dir.to_path_buf(),
        resume: fashion_mixer_train::training::Resume::No,
        tui: false,
        progress: fashion_mixer_run::Progress::silent(),
        distributed: None,
        experiment_log: false,
    }
}
