//! `cargo xtask serve` as a user starts it: loopback unless --public, and Ctrl-C (SIGINT) stops
//! it cleanly after it has answered.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use super::common::{assert_user_error, xtask};

#[test]
fn serve_binds_loopback_only_unless_public() {
    let out = xtask(&["serve", "--addr", "0.0.0.0:0"]);
    assert_user_error("serve 0.0.0.0", &out, &["0.0.0.0:0", "--public"]);
}

#[test]
fn a_port_in_use_is_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = xtask(&["serve", "--port", &port]);
    assert_user_error(
        "serve on a port in use",
        &out,
        &[
            &format!("127.0.0.1:{port}"),
            "another program listens there",
        ],
    );
}

#[test]
fn serve_answers_then_stops_on_ctrl_c() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in: {first}"))
        .to_string();
    let health = ureq::get(&format!("http://{addr}/healthz"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert_eq!(health, r#"{"status":"ok"}"#);
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(rest, vec!["stopped".to_string()], "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
