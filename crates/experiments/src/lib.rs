//! Work over many runs: every run under a folder and its status (`runs`), and sweeps, grids of
//! runs each in its own folder with a summary comparing them (`sweep`).
//!
//! How a sweep's runs train is the caller's ([`sweep::Trainer`]): this crate plans and records,
//! and its build has neither burn-train nor the optimizers.
//!
//! ```no_run
//! use fashion_mixer_experiments::runs::list_runs;
//!
//! for run in list_runs("artifacts".as_ref()) {
//!     println!("{}: {}", run.name, run.status);
//! }
//! ```

pub mod runs;
pub mod sweep;
