//! The error of a setting given by a name that is none of its choices.

/// A name that is none of the choices a setting takes (`--backend cuda`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} '{given}' (expected {expected})")]
pub struct UnknownName {
    /// What the setting is, in words ("backend").
    pub what: &'static str,
    /// The name given.
    pub given: String,
    /// The choices, in words ("flex, ndarray or wgpu").
    pub expected: &'static str,
}

impl UnknownName {
    /// `given` is not a `what`; the choices are `expected`.
    pub fn new(what: &'static str, given: &str, expected: &'static str) -> Self {
        Self {
            what,
            given: given.to_string(),
            expected,
        }
    }
}
