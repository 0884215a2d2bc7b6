//! The real binary's logs: structured (`tracing`), on stderr, as text or one JSON object per
//! line, filtered by `RUST_LOG`.
#![cfg(not(madsim))]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const KEY: &str = "a-log-test-key-0123456789abcdef";

/// Starts `ccr ARGS… ROLE --config CONFIG` and returns its first stderr line.
fn first_log_line(args: &[&str], role: &str, config: &std::path::Path, rust_log: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ccr"))
        .args(args)
        .args([role, "--config"])
        .arg(config)
        .env("RUST_LOG", rust_log)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    line
}

#[test]
fn logs_are_structured_text_or_json_with_the_role_as_a_field() {
    let dir = tempfile::tempdir().unwrap();
    let base = 30_000 + (std::process::id() % 100) as u16 * 20;
    let configs = ccr::up::write_configs(dir.path(), base, KEY, true, 1).unwrap();
    let (node1, hub) = (configs.node1.clone(), configs.hub().to_path_buf());

    let json = first_log_line(&["--log-format", "json"], "hub", &hub, "info");
    let v: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("not JSON: {json:?}: {e}"));
    assert_eq!(v["level"], "INFO", "{v}");
    assert_eq!(v["message"], "hub up", "{v}");
    assert_eq!(v["hub"], "hub1", "{v}");
    assert!(
        v["address"].as_str().is_some_and(|a| a.contains(':')),
        "{v}"
    );

    let text = first_log_line(&[], "node", &node1, "info");
    assert!(
        text.contains("INFO") && text.contains("node up") && text.contains("node=\"node1\""),
        "{text:?}"
    );
    // RUST_LOG=warn filters the info lines out.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ccr"))
        .args(["node", "--config"])
        .arg(&node1)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let quiet = String::from_utf8_lossy(&out.stderr);
    assert!(
        !quiet.contains("node up") && !quiet.contains("INFO"),
        "{quiet:?}"
    );
}
