//! `cargo xtask-mpi`: the fashion-mixer command line built with MPI, for `train --distributed`
//! and `bench --distributed` under `mpirun` or Slurm (docs/distributed.md). Building it leaves
//! `xtask` as it is.

fn main() -> std::process::ExitCode {
    xtask::main()
}
