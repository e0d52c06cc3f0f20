//! Flags that override fields of a configuration: each flag is named after its field, and the
//! flags given, serialised, are JSON laid over the configuration (the same merge `--config`
//! uses, which refuses a name that is not a field). One list of flags, no per-field code.
//! Numbers that JSON cannot hold, or counts that cannot be 0, are refused as the flag is read,
//! and addresses are read as people write them.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, anyhow};
use fashion_mixer_train::TrainingConfig;
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

/// A flag's number, refusing NaN and the infinities: JSON, the flags' way into the
/// configuration, has no place for them (serialised, they become `null`: the flag left out).
/// Negative numbers are read as numbers, for the configuration's checks to name.
pub fn finite(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(value),
        Ok(_) => Err("not a finite number".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// A count that must be at least 1 (`bench --steps`, `serve --threads`, ...): 0 is refused as
/// the flag is read, not quietly taken as 1.
pub fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(count) => Ok(count),
        Err(e) => Err(e.to_string()),
    }
}

/// A deadline in seconds (`10`, `0.5`): finite and above 0.
pub fn seconds(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
        Ok(_) => Err("must be a number of seconds above 0 (at most a day)".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// Where `serve` listens: `HOST:PORT` (`127.0.0.1:8080`, `[::1]:8080`, `localhost:8080`, the
/// name resolved, IPv4 first) or a port alone, on 127.0.0.1.
pub fn listen_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    let expected = "expected HOST:PORT (127.0.0.1:8080, localhost:8080) or a port";
    let addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| format!("{e}; {expected}"))?
        .collect();
    addrs
        .iter()
        .find(|addr| addr.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("names no address; {expected}"))
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
            assert_eq!(finite(text), Err("not a finite number".into()), "{text}");
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
            let err = listen_addr(text).unwrap_err();
            assert!(err.contains("expected HOST:PORT"), "{text}: {err}");
        }
    }

    #[test]
    fn counts_start_at_one() {
        assert_eq!(at_least_one("1"), Ok(1));
        assert_eq!(at_least_one("0"), Err("must be at least 1".into()));
        assert!(at_least_one("-1").is_err());
    }
}
