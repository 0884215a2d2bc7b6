//! The hub's state file (`DATA/hub-state.json`: queue, dumpster, witness): a damaged one stops
//! the hub with the file's name and place, and is left exactly as it was.
#![cfg(not(madsim))]

use std::process::Command;

#[test]
fn a_damaged_hub_state_file_is_refused_by_name_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let base = 31_000 + (std::process::id() % 100) as u16 * 20;
    let configs =
        ccr::up::write_configs(dir.path(), base, "a-hub-state-key-0123456789", false, 1).unwrap();
    let hub = configs.hub();
    let state = dir.path().join("hub").join("hub-state.json");
    std::fs::create_dir_all(state.parent().unwrap()).unwrap();
    let damaged = b"{\"hub\": {\"config\": 7,\n \"active\": nul";
    std::fs::write(&state, damaged).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ccr"))
        .args(["hub", "--config"])
        .arg(hub)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the hub started: {stderr}");
    assert!(
        stderr.contains(&format!("{}:1:", state.display())),
        "the error names the file and line: {stderr}"
    );
    assert_eq!(
        std::fs::read(&state).unwrap(),
        damaged,
        "the file was changed"
    );
}
