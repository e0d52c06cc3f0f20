//! Many runs and timed steps: every run under a folder (`runs`), sweeps over grids of settings
//! (`sweep`), and the training and inference benchmark (`bench`).

pub mod bench;
pub mod runs;
pub mod sweep;
