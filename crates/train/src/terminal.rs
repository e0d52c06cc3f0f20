//! Whether the dashboard may take the terminal. It puts the terminal in raw mode, and the kernel
//! stops a process that changes its terminal's modes from outside the terminal's foreground
//! (SIGTTOU) until the shell brings it back, which `mpirun`'s ranks never are: each runs in a
//! process group of its own, so a rank drawing the dashboard would wait forever.

/// Whether this process is in the foreground of the terminal the dashboard would take (its
/// stdin when that is a terminal, else its controlling terminal, as the dashboard chooses).
#[cfg(unix)]
pub fn in_foreground() -> bool {
    use std::io::IsTerminal;

    use rustix::process::getpgrp;
    use rustix::termios::tcgetpgrp;

    let stdin = std::io::stdin();
    let foreground = if stdin.is_terminal() {
        tcgetpgrp(&stdin)
    } else {
        match std::fs::File::open("/dev/tty") {
            Ok(tty) => tcgetpgrp(&tty),
            Err(_) => return false,
        }
    };
    foreground.is_ok_and(|group| group == getpgrp())
}

/// Windows has no process groups to a console: the dashboard may take it.
#[cfg(not(unix))]
pub fn in_foreground() -> bool {
    true
}
