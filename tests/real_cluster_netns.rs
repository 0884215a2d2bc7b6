//! The real binary across network namespaces: the hub, node1 and node2 each in their own
//! namespace, joined by veth links to a bridge, TLS on every link (each machine's certificate
//! for its own address); then the active's link goes down (a partition of the active from
//! everyone). The passive must take over inside 10-60 s, the old active — asked on its own
//! machine — must have stopped serving by then (no split brain), every acknowledged message
//! must be in the new active's database, and once the link is back the old active must catch
//! up as the passive. Needs root and `ip netns`; otherwise it says why it skipped.
#![cfg(not(madsim))]

use std::time::{Duration, Instant};

use ccr::client;
use ccr::local::{Condition, LocalCluster};
use ccr_core::cluster::NodeId;

const KEY: &str = "a-netns-test-key-0123456789abcdef";
const POLL: Duration = Duration::from_millis(100);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_active_fails_over_without_split_brain_or_loss() {
    if let Some(why) = ccr::netns::unavailable() {
        println!("skipped: {why}");
        return;
    }
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_ccr"));
    let c = LocalCluster::start_in_namespaces(bin, KEY, &NodeId::ALL).unwrap();
    let wait = |what: &'static str, condition| {
        let c = &c;
        async move {
            c.wait_for(condition, Duration::from_secs(60), POLL)
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"))
        }
    };
    wait("node1 online", Condition::Serves(NodeId::Node1)).await;
    wait("node2's copy healthy", Condition::CaughtUp(NodeId::Node2)).await;

    let stream = {
        let (hubs, key, tls) = (c.hub_addresses().unwrap(), c.key(), c.links());
        let stream = client::Stream {
            rate: 20.0,
            duration: Duration::from_secs(35),
            size: 4000,
            grace: Duration::from_secs(60),
        };
        tokio::spawn(async move { client::load(&hubs, &key, &tls, 1, stream).await })
    };
    tokio::time::sleep(Duration::from_secs(8)).await;

    // The partition: node1's link to the bridge goes down.
    c.partition(NodeId::Node1).unwrap();
    let cut = Instant::now();
    let took = loop {
        let new = c.serving(NodeId::Node2).await;
        let old = c.serving_asked_on_its_machine(NodeId::Node1).unwrap();
        assert!(!(old && new), "split brain: both nodes serve");
        if new {
            break cut.elapsed();
        }
        assert!(
            cut.elapsed() < Duration::from_secs(90),
            "node2 never took over\n{}",
            c.log_tails(20)
        );
        tokio::time::sleep(POLL).await;
    };
    println!("failover after the partition: {:.1} s", took.as_secs_f64());
    assert!(
        (10.0..=60.0).contains(&took.as_secs_f64()),
        "failover took {took:?}"
    );
    assert!(
        !c.serving_asked_on_its_machine(NodeId::Node1).unwrap(),
        "the old active still serves"
    );

    let report = stream.await.unwrap().unwrap();
    assert!(
        report.acked.len() > 100,
        "acknowledged {}",
        report.acked.len()
    );
    // Judged from node2's files, each body as the client sent it.
    let missing = c
        .not_stored(NodeId::Node2, &report.receipts, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(
        missing,
        Vec::<u64>::new(),
        "acknowledged but not stored on node2 as sent"
    );
    println!("all {} acknowledged message(s) present", report.acked.len());

    // Heal: node1 comes back as the passive.
    c.heal(NodeId::Node1).unwrap();
    wait(
        "node1 catches up as the passive",
        Condition::CaughtUp(NodeId::Node1),
    )
    .await;
}
