//! The simulated links' bandwidth: a message takes its size over the link, and a direction's
//! messages leave one after another, so a log copy on a slow WAN delays the heartbeats behind
//! it — on that network and direction only.
#![cfg(madsim)]

use std::time::Duration;

use ccr_core::cluster::wire::{Heartbeat, Msg, View};
use ccr_core::cluster::{Endpoint, Net, NodeId};
use ccr_core::host::Network;
use ccr_core::storage::logfile::{seal, LogHeader};
use ccr_core::storage::record::Record;
use ccr_core::storage::{MessageId, Signature};
use ccr_sim::net::{wire_bytes, LinkConfig, Machine, SimNet, Wan};
use ccr_sim::run_seeded;

/// A closed log holding `n` messages of 20 KB (bodies left out, as the simulator writes them).
fn log_of(n: u64) -> Vec<u8> {
    let mut bytes = LogHeader {
        signature: Signature(1),
        generation: 7,
        created_ms: 0,
        prev_checksum: 0,
    }
    .encode()
    .to_vec();
    for id in 1..=n {
        Record::Insert {
            id: MessageId(id),
            size: 20_000,
            body: Vec::new(),
        }
        .encode_into(&mut bytes);
    }
    seal(&bytes).expect("seals")
}

fn heartbeat() -> Msg {
    Msg::Heartbeat(Heartbeat {
        stamp: 1,
        echo: None,
        view: View {
            epoch: 0,
            owner: NodeId::Node1,
        },
        grants_lease: false,
        serving: true,
        open_generation: None,
        open_records: 0,
        last_closed: 0,
        lineage: Vec::new(),
        copy: None,
        public_ok: true,
        intent: Default::default(),
        backup: Default::default(),
        db_checkpoint: 0,
        groups: Vec::new(),
    })
}

/// Sends a 1 MB log from node1's share to node2, then a heartbeat on each network; returns
/// when each arrived (ms after sending), in arrival order, named.
async fn arrivals(wan: Option<Wan>) -> Vec<(String, u64)> {
    let net = SimNet::new();
    net.set_wan(wan);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    net.register(Endpoint::Node(NodeId::Node2), tx);
    let start = tokio::time::Instant::now();
    let from_share = Endpoint::Share(NodeId::Node1);
    let from_node = Endpoint::Node(NodeId::Node1);
    let to = Endpoint::Node(NodeId::Node2);
    let log = Msg::LogFile {
        generation: 7,
        bytes: log_of(52),
    };
    assert!(wire_bytes(&log) > 1_040_000, "{}", wire_bytes(&log));
    net.send(from_share, to, Net::Public, log);
    net.send(from_node, to, Net::Public, heartbeat());
    net.send(from_node, to, Net::Private, heartbeat());
    let mut out = Vec::new();
    for _ in 0..3 {
        let m = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("arrives")
            .expect("open");
        let what = match m.msg {
            Msg::LogFile { .. } => "log".to_string(),
            _ => format!("heartbeat {:?}", m.net).to_lowercase(),
        };
        out.push((what, start.elapsed().as_millis() as u64));
    }
    net.clear();
    out
}

fn wan(bandwidth_mbit: f64) -> Wan {
    Wan {
        remote: vec![Machine::Node2],
        link: LinkConfig {
            min_delay_ms: 30,
            max_delay_ms: 30,
            tail: 0.0,
            bandwidth_mbit,
            ..LinkConfig::default()
        },
    }
}

#[test]
fn a_log_copy_on_a_slow_wan_delays_the_heartbeat_behind_it_on_its_network_only() {
    let got = run_seeded(1, || arrivals(Some(wan(10.0))));
    let at = |what: &str| got.iter().find(|(w, _)| w == what).expect(what).1;
    // 1.04 MB over 10 Mbit/s is 0.83 s, plus 30 ms on the way.
    assert!((860..900).contains(&at("log")), "{got:?}");
    assert!(
        at("heartbeat public") >= at("log"),
        "queued behind the log: {got:?}"
    );
    assert!((30..40).contains(&at("heartbeat private")), "{got:?}");
}

#[test]
fn without_a_bandwidth_nothing_waits_for_anything() {
    let got = run_seeded(1, || arrivals(Some(wan(0.0))));
    assert!(got.iter().all(|(_, at)| (30..40).contains(at)), "{got:?}");
    let local = run_seeded(1, || arrivals(None));
    assert!(local.iter().all(|(_, at)| *at <= 5), "{local:?}");
}

#[test]
fn a_faster_wan_carries_the_same_log_proportionally_sooner() {
    let slow = run_seeded(1, || arrivals(Some(wan(10.0))));
    let fast = run_seeded(1, || arrivals(Some(wan(100.0))));
    let log = |v: &[(String, u64)]| v.iter().find(|(w, _)| w == "log").expect("log").1;
    // 30 ms + 834 ms against 30 ms + 83 ms.
    assert!(log(&slow) > 800 && log(&fast) < 130, "{slow:?} {fast:?}");
}

#[test]
fn a_stretched_subnet_grows_the_copy_queue_and_its_coverage_rows_count_what_the_wire_did() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let stretched = ccr_sim::file::load(&dir.join("stretched-subnet.toml")).expect("loads");
    let mut local = stretched.clone();
    local.wan = None;
    let peak_queue = |r: &ccr_reports::record::RunRecord| {
        r.timeline
            .samples
            .iter()
            .filter(|s| s.t_s < 240.0)
            .flat_map(|s| s.machines.iter().map(|m| m.copy_queue))
            .max()
            .unwrap_or(0)
    };
    let far = ccr_sim::run::run(&stretched, 1, false);
    let near = ccr_sim::run::run(&local, 1, false);
    assert!(far.violation.is_none(), "{:?}", far.violation);
    assert!(peak_queue(&far) > 50, "{}", peak_queue(&far));
    assert!(peak_queue(&near) <= 2, "{}", peak_queue(&near));
    for row in [
        "log copied across the WAN",
        "heartbeat queued 100 ms or more behind other traffic",
    ] {
        assert!(far.coverage.get(row).copied().unwrap_or(0) > 0, "{row}");
        assert_eq!(near.coverage.get(row), None, "{row}");
    }
}
