//! `cargo xtask`: the fashion-mixer command line.

fn main() -> std::process::ExitCode {
    xtask::main()
}
