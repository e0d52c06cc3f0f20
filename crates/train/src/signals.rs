//! Ctrl-C (SIGINT) and SIGTERM stop a training run cleanly: the Learner is asked to stop, the
//! epoch in progress is abandoned, and every completed epoch keeps its checkpoint and its
//! `metrics.csv` row, so `--resume` continues from there. A second Ctrl-C exits at once.
//!
//! Burn's dashboard puts the terminal in raw mode, where Ctrl-C is an ordinary key press (and
//! the dashboard only reacts to `q`). While the dashboard runs, the terminal's signal keys are
//! switched back on, so Ctrl-C raises SIGINT there too.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use burn::train::Interrupter;
use signal_hook::SigId;
use signal_hook::consts::{SIGINT, SIGTERM};

/// Exit status of a second Ctrl-C (128 + SIGINT, as shells report it).
const SECOND_SIGNAL_EXIT: i32 = 130;

/// Stops `interrupter` on SIGINT/SIGTERM while alive; restores the default handling on drop.
pub struct StopOnSignals {
    done: Arc<AtomicBool>,
    ids: Vec<SigId>,
    watcher: Option<JoinHandle<()>>,
}

impl StopOnSignals {
    /// Installs the handlers; with `tui`, also keeps the terminal's Ctrl-C working.
    pub fn install(interrupter: Interrupter, tui: bool) -> std::io::Result<Self> {
        let signalled = Arc::new(AtomicBool::new(false));
        let mut ids = Vec::new();
        for signal in [SIGINT, SIGTERM] {
            // First registered, first run: exits only if an earlier signal already set the flag.
            ids.push(signal_hook::flag::register_conditional_shutdown(
                signal,
                SECOND_SIGNAL_EXIT,
                Arc::clone(&signalled),
            )?);
            ids.push(signal_hook::flag::register(signal, Arc::clone(&signalled))?);
        }
        let done = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (signalled, done) = (Arc::clone(&signalled), Arc::clone(&done));
            std::thread::Builder::new()
                .name("stop-on-signals".into())
                .spawn(move || {
                    let mut stopped = false;
                    while !done.load(Ordering::Relaxed) {
                        if !stopped && signalled.load(Ordering::Relaxed) {
                            interrupter.stop(Some("interrupted (Ctrl-C / SIGTERM)"));
                            stopped = true;
                        }
                        if tui {
                            enable_terminal_signals();
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                })?
        };
        Ok(Self {
            done,
            ids,
            watcher: Some(watcher),
        })
    }
}

impl Drop for StopOnSignals {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(watcher) = self.watcher.take() {
            let _ = watcher.join();
        }
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// Turns the terminal's signal keys (ISIG) back on if raw mode turned them off.
#[cfg(unix)]
fn enable_terminal_signals() {
    use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    if let Ok(mut modes) = tcgetattr(&stdin)
        && !modes.local_modes.contains(LocalModes::ISIG)
    {
        modes.local_modes.insert(LocalModes::ISIG);
        let _ = tcsetattr(&stdin, OptionalActions::Now, &modes);
    }
}

/// Windows' console has no signal-key switch to restore: in the dashboard's raw mode, Ctrl-C
/// reaches it as a key, and its `q` then `s` stops the run.
#[cfg(not(unix))]
fn enable_terminal_signals() {}
