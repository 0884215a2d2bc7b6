//! `Test-ReplicationHealth`: a healthy cluster passes every check on both nodes, and each check
//! fails in a situation made for it (asked where an administrator would ask).

mod common;

use ccr_core::cluster::config::ClusterConfig;
use ccr_core::cluster::node::Admin;
use ccr_core::cluster::{Net, NodeId, NodeId::*, Now};
use common::world::{calm, small_logs, Fault, World};

fn world(config: ClusterConfig) -> World {
    World::new(1, config, calm())
}

/// The checks `node` fails at the world's present.
fn failed(w: &World, node: NodeId) -> Vec<String> {
    let health = w
        .node(node)
        .expect("the node runs")
        .replication_health(Now::at(w.now));
    assert_eq!(health.passed(), health.failed().is_empty());
    health.failed().into_iter().map(String::from).collect()
}

#[test]
fn a_healthy_cluster_passes_every_check_on_both_nodes() {
    let mut w = world(ClusterConfig::default());
    w.workload(20, 60_000);
    w.run_until(60_000);
    assert_eq!(failed(&w, Node1), Vec::<String>::new());
    assert_eq!(failed(&w, Node2), Vec::<String>::new());
    let health = w.node(Node1).unwrap().replication_health(Now::at(w.now));
    assert_eq!(health.checks.len(), 8);
    assert!(health.to_string().contains("SGCopyQueueLength"));
}

#[test]
fn a_passive_that_is_down_fails_peer_network_and_copy_checks_on_the_active() {
    let mut w = world(ClusterConfig::default());
    w.workload(20, 60_000);
    w.schedule(30_000, Fault::Crash(Node2));
    w.run_until(50_000);
    let f = failed(&w, Node1);
    for check in ["PeerNodeUp", "ClusterNetwork", "SGCopyFailed"] {
        assert!(f.iter().any(|c| c == check), "{check} not in {f:?}");
    }
    // The witness still votes: the cluster keeps quorum and the server stays online.
    assert!(
        !f.iter().any(|c| c == "ClusterService" || c == "CmsGroup"),
        "{f:?}"
    );
    let status = w.node(Node1).unwrap().passive_copy_status(Now::at(w.now));
    assert_eq!(format!("{:?}", status.summary), "ServiceDown");
}

#[test]
fn a_private_network_down_fails_only_the_network_check() {
    let mut w = world(ClusterConfig::default());
    w.workload(20, 60_000);
    w.cut_between_nodes(20_000, Net::Private);
    w.run_until(50_000);
    assert_eq!(failed(&w, Node1), vec!["ClusterNetwork"]);
    assert_eq!(failed(&w, Node2), vec!["ClusterNetwork"]);
}

#[test]
fn an_active_without_peer_or_witness_fails_the_cluster_service_check() {
    let mut w = world(ClusterConfig::default());
    w.workload(20, 60_000);
    w.schedule(20_000, Fault::WitnessDown);
    w.schedule(25_000, Fault::Crash(Node2));
    w.run_until(60_000);
    let f = failed(&w, Node1);
    assert!(f.iter().any(|c| c == "ClusterService"), "{f:?}");
    assert!(
        f.iter().any(|c| c == "CmsGroup"),
        "dismounted without quorum: {f:?}"
    );
}

#[test]
fn a_database_the_dial_keeps_dismounted_fails_the_cms_group_check() {
    let mut w = world(small_logs());
    w.workload(50, 100_000);
    w.schedule(
        20_000,
        Fault::Admin(Node2, Admin::SuspendCopy { comment: None }),
    );
    w.schedule(30_000, Fault::PowerLoss(Node1));
    w.run_until(80_000);
    assert!(w.serving().is_empty(), "the dial keeps it dismounted");
    let f = failed(&w, Node2);
    assert!(f.iter().any(|c| c == "CmsGroup"), "{f:?}");
}

#[test]
fn a_suspended_copy_fails_the_suspended_and_queue_checks_and_shows_its_comment() {
    let mut w = world(small_logs());
    w.workload(50, 100_000);
    let comment = Some("patching the passive's storage driver".to_string());
    w.schedule(20_000, Fault::Admin(Node2, Admin::SuspendCopy { comment }));
    w.run_until(60_000);
    // Asked on either node: the copy status is the passive's.
    for node in [Node1, Node2] {
        let f = failed(&w, node);
        assert!(f.iter().any(|c| c == "SGCopySuspended"), "{node}: {f:?}");
        assert!(f.iter().any(|c| c == "SGCopyQueueLength"), "{node}: {f:?}");
    }
    let status = w.node(Node2).unwrap().passive_copy_status(Now::at(w.now));
    assert!(status.copy_queue_length > 6, "{status:?}");
    assert!(status
        .to_string()
        .contains("SuspendComment       : patching"));
    let health = w.node(Node2).unwrap().replication_health(Now::at(w.now));
    assert!(health
        .to_string()
        .contains("patching the passive's storage driver"));
}

#[test]
fn a_failed_store_fails_the_replay_service_check_on_its_node() {
    let mut w = world(ClusterConfig::default());
    w.workload(20, 60_000);
    w.schedule(20_000, Fault::DiskCapacity(Node1, 1_000));
    w.run_until(22_000);
    let f = failed(&w, Node1);
    assert!(f.iter().any(|c| c == "ReplayService"), "{f:?}");
    assert!(!failed(&w, Node2).iter().any(|c| c == "ReplayService"));
}

#[test]
fn a_passive_copy_that_cannot_copy_fails_the_copy_failed_check() {
    let mut w = world(ClusterConfig::default());
    w.workload(20, 80_000);
    w.schedule(20_000, Fault::DiskCapacity(Node2, 1_000));
    w.run_until(45_000);
    for node in [Node1, Node2] {
        let f = failed(&w, node);
        assert!(f.iter().any(|c| c == "SGCopyFailed"), "{node}: {f:?}");
    }
}

#[test]
fn a_returning_passive_reports_resynchronizing_until_it_has_compared_its_logs() {
    // The active loses power; node2 takes over. node1 comes back while node2 is still
    // bringing the store online: it hears the new owner but has no serving stream to compare
    // its logs with yet, so its copy is Resynchronizing — then Healthy once it follows.
    let mut w = world(ClusterConfig::default());
    w.workload(20, 90_000);
    w.schedule(30_000, Fault::PowerLoss(Node1));
    let mut seen = Vec::new();
    let mut restarted = false;
    let mut t = 30_000;
    while t < 120_000 {
        t += 50;
        w.run_until(t);
        let takeover = w.node(Node2).is_some_and(|n| n.role_name() != "passive");
        if !restarted && takeover {
            w.schedule(t + 1, Fault::Restart(Node1));
            restarted = true;
        }
        if let Some(n) = w.node(Node1) {
            let s = format!("{:?}", n.copy_status().summary);
            if seen.last() != Some(&s) {
                seen.push(s);
            }
        }
    }
    assert!(seen.contains(&"Resynchronizing".to_string()), "{seen:?}");
    assert_eq!(seen.last().map(String::as_str), Some("Healthy"), "{seen:?}");
}
