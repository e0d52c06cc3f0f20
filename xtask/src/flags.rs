//! Flags that override fields of a configuration: each flag is named after its field, and the
//! flags given, serialised, are JSON laid over the configuration (the same merge `--config`
//! uses, which refuses a name that is not a field). One list of flags, no per-field code.
//! Numbers that JSON cannot hold, or counts that cannot be 0, are refused as the flag is read,
//! and addresses are read as people write them.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, anyhow};
use fashion_mixer_run::TrainingConfig;
use serde::Serialize;
use serde_json::Value;

/// The flags in `flags` that were given: `None` where none was.
pub fn given(flags: &impl Serialize) -> Option<Value> {
    let mut value = serde_json::to_value(flags).expect("flags serialise");
    prune(&mut value);
    (!value.is_null()).then_some(value)
}

/// `config` with the flags given in `flags` over it, its teacher found ([`teacher_found`]).
pub fn overlay(config: &TrainingConfig, flags: &impl Serialize) -> Result<TrainingConfig> {
    let config = match given(flags) {
        Some(json) => config
            .merged_with_json(&json.to_string())
            .map_err(|e| anyhow!("the command-line flags: {e}"))?,
        None => config.clone(),
    };
    Ok(teacher_found(config))
}

/// `config` with its teacher's folder looked for in the project too ([`in_project`]).
pub fn teacher_found(mut config: TrainingConfig) -> TrainingConfig {
    config.distill_from = config.distill_from.map(in_project);
    config
}

/// A relative path as given when it exists from the working directory; otherwise the same
/// path in the project when it exists there (the `best` preset's `artifacts/teacher`, with
/// `cargo xtask` run from a subfolder); otherwise as given, for the error to name.
pub fn in_project(path: PathBuf) -> PathBuf {
    let project = crate::project_root().join(&path);
    if path.is_relative() && !path.exists() && project.exists() {
        project
    } else {
        path
    }
}

/// A flag's value that the flag does not take; clap names the flag before the message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FlagError {
    /// Not a number of that kind at all.
    #[error("{0}")]
    Float(#[from] std::num::ParseFloatError),
    /// Not a whole number.
    #[error("{0}")]
    Int(#[from] std::num::ParseIntError),
    /// NaN or an infinity.
    #[error("not a finite number")]
    NotFinite,
    /// 0 where at least 1 is needed.
    #[error("must be at least 1")]
    Zero,
    /// A deadline out of its range.
    #[error("must be a number of seconds above 0 (at most a day)")]
    Seconds,
    /// An address that does not resolve, or resolves to nothing.
    #[error("{0}; expected HOST:PORT (127.0.0.1:8080, localhost:8080) or a port")]
    Address(String),
}

/// A flag's number, refusing NaN and the infinities: JSON, the flags' way into the
/// configuration, has no place for them (serialised, they become `null`: the flag left out).
/// Negative numbers are read as numbers, for the configuration's checks to name.
pub fn finite(text: &str) -> Result<f64, FlagError> {
    match text.parse::<f64>()? {
        value if value.is_finite() => Ok(value),
        _ => Err(FlagError::NotFinite),
    }
}

/// A count that must be at least 1 (`bench --steps`, `serve --threads`, ...): 0 is refused as
/// the flag is read, not quietly taken as 1.
pub fn at_least_one(text: &str) -> Result<usize, FlagError> {
    match text.parse::<usize>()? {
        0 => Err(FlagError::Zero),
        count => Ok(count),
    }
}

/// A deadline in seconds (`10`, `0.5`): finite and above 0.
pub fn seconds(text: &str) -> Result<Duration, FlagError> {
    match text.parse::<f64>()? {
        s if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(FlagError::Seconds),
    }
}

/// Where `serve` listens: `HOST:PORT` (`127.0.0.1:8080`, `[::1]:8080`, `localhost:8080`, the
/// name resolved, IPv4 first) or a port alone, on 127.0.0.1.
pub fn listen_addr(text: &str) -> Result<SocketAddr, FlagError> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    let addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| FlagError::Address(e.to_string()))?
        .collect();
    addrs
        .iter()
        .find(|addr| addr.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| FlagError::Address("names no address".into()))
}

/// Removes the flags left out (`null`) and objects left empty; an empty object becomes `null`.
fn prune(value: &mut Value) {
    if let Value::Object(map) = value {
        map.values_mut().for_each(prune);
        map.retain(|_, v| !v.is_null());
        if map.is_empty() {
            *value = Value::Null;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_given_flags_count() {
        let flags = serde_json::json!({"epochs": 3, "lr": null, "model": {"dim": null}});
        assert_eq!(given(&flags), Some(serde_json::json!({"epochs": 3})));
        assert_eq!(given(&serde_json::json!({"model": {"dim": null}})), None);
        let config = overlay(&TrainingConfig::new(), &flags).unwrap();
        assert_eq!(config, TrainingConfig::new().with_epochs(3));
    }

    #[test]
    fn numbers_must_be_finite() {
        assert_eq!(finite("1e-3"), Ok(1e-3));
        assert_eq!(finite("-1"), Ok(-1.0));
        for text in ["nan", "NaN", "inf", "-inf", "infinity"] {
            assert_eq!(finite(text), Err(FlagError::NotFinite), "{text}");
        }
        assert!(finite("fast").is_err());
    }

    #[test]
    fn addresses_by_number_name_or_port() {
        assert_eq!(
            listen_addr("127.0.0.1:9000"),
            Ok("127.0.0.1:9000".parse().unwrap())
        );
        assert_eq!(listen_addr("[::1]:9000"), Ok("[::1]:9000".parse().unwrap()));
        assert_eq!(listen_addr("9000"), Ok("127.0.0.1:9000".parse().unwrap()));
        let local = listen_addr("localhost:9000").unwrap();
        assert!(local.ip().is_loopback() && local.port() == 9000, "{local}");
        for text in ["localhost", "127.0.0.1", "70000", "127.0.0.1:x"] {
            let err = listen_addr(text).unwrap_err().to_string();
            assert!(err.contains("expected HOST:PORT"), "{text}: {err}");
        }
    }

    #[test]
    fn counts_start_at_one() {
        assert_eq!(at_least_one("1"), Ok(1));
        assert_eq!(at_least_one("0"), Err(FlagError::Zero));
        assert!(at_least_one("-1").is_err());
    }
}
