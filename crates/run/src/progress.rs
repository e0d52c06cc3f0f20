//! Where the messages of training and sweeps go. The caller decides (the CLI prints them); the
//! libraries never write to stdout or stderr.

use std::sync::Arc;

/// The function a [`Progress`] hands each line to.
pub type Sink = Arc<dyn Fn(&str) + Send + Sync>;

/// A sink for progress lines (where a run starts, one line per epoch, a sweep's runs); silent
/// by default.
#[derive(Clone, Default)]
pub struct Progress(Option<Sink>);

impl Progress {
    /// Lines go to `sink`.
    pub fn new(sink: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(sink)))
    }

    /// Lines go nowhere.
    pub fn silent() -> Self {
        Self(None)
    }

    /// Hands `line` (a line without its newline) to the sink.
    pub fn emit(&self, line: &str) {
        if let Some(sink) = &self.0 {
            sink(line);
        }
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(sink)"
        } else {
            "Progress(silent)"
        })
    }
}
