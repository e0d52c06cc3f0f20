//! Many runs and timed steps: sweeps over grids of settings (`sweep`), and the training and
//! inference benchmark (`bench`).

pub mod bench;
pub mod sweep;
