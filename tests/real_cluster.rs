//! The real binary end to end: node1, node2 and two hubs as separate processes on loopback with
//! temporary data folders, a client stream, `kill -9` of the active, a scheduled move there and
//! back, and connections without the key, with garbage or with a certificate of another CA
//! refused without harm. The clusters run TLS on every link (a throwaway CA, as `ccr up`
//! makes), except the one that checks the frames' own authentication on plain TCP.
#![cfg(not(madsim))]

use std::time::Duration;

use ccr::client;
use ccr::frame::Key;
use ccr::local::{Condition, LocalCluster};
use ccr::wire::{AdminReply, AdminRequest};
use ccr_core::cluster::{HubId, NodeId};

const KEY: &str = "an-integration-test-key-0123456789";

/// The three roles as processes of the binary under test.
struct Cluster(LocalCluster);

impl std::ops::Deref for Cluster {
    type Target = LocalCluster;
    fn deref(&self) -> &LocalCluster {
        &self.0
    }
}

impl Cluster {
    fn start() -> Cluster {
        Cluster::start_with(true)
    }

    fn start_with(tls: bool) -> Cluster {
        let bin = std::path::Path::new(env!("CARGO_BIN_EXE_ccr"));
        Cluster(LocalCluster::start_with(bin, KEY, &NodeId::ALL, tls).unwrap())
    }

    fn start_node(&mut self, n: NodeId) {
        self.0.start_node(n).unwrap();
    }

    fn kill9(&mut self, n: NodeId) {
        self.0.kill9(n).unwrap();
    }

    async fn wait_for(&self, what: &str, limit: Duration, condition: Condition) -> Duration {
        self.0
            .wait_for(condition, limit, Duration::from_millis(100))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"))
    }
}

use Condition::{CaughtUp, Serves};

async fn health(c: &Cluster, n: NodeId) -> ccr_core::cluster::health::ReplicationHealth {
    match c.ask(n, AdminRequest::TestReplicationHealth).await {
        Some(AdminReply::ReplicationHealth(h)) => h,
        other => panic!("{other:?}"),
    }
}

async fn missing(c: &Cluster, n: NodeId, ids: &[u64]) -> Vec<u64> {
    c.missing(n, ids).await.unwrap()
}

/// The administrator accepts the loss on `node`: Restore-StorageGroupCopy readies the copy,
/// then Mount-Database mounts it (asked again until the readied takeover has reached the
/// mount). Returns once `node` serves.
async fn restore_and_mount(c: &Cluster, node: NodeId) {
    let mut restored = false;
    for _ in 0..30 {
        if c.serving(node).await {
            break;
        }
        if !restored {
            restored = matches!(
                c.ask(node, AdminRequest::RestoreCopy).await,
                Some(AdminReply::Accepted)
            );
        } else {
            c.ask(node, AdminRequest::MountDatabase).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    c.wait_for(
        &format!("{node} mounts"),
        Duration::from_secs(60),
        Serves(node),
    )
    .await;
}

async fn load(c: &Cluster, first_id: u64, secs: f64) -> ccr::client::LoadReport {
    client::load(
        &c.hub_addresses().unwrap(),
        &Key::new(KEY).unwrap(),
        &c.links(),
        first_id,
        client::Stream {
            rate: 25.0,
            duration: Duration::from_secs_f64(secs),
            size: 4_000,
            grace: Duration::from_secs(60),
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_the_active_then_move_there_and_back() {
    let mut c = Cluster::start();
    c.wait_for(
        "node1 online",
        Duration::from_secs(30),
        Serves(NodeId::Node1),
    )
    .await;
    c.wait_for(
        "node2 copy healthy",
        Duration::from_secs(30),
        CaughtUp(NodeId::Node2),
    )
    .await;

    // A client stream; eight seconds in, kill -9 the active.
    let stream = {
        let (hubs, tls) = (c.hub_addresses().unwrap(), c.links());
        tokio::spawn(async move {
            client::load(
                &hubs,
                &Key::new(KEY).unwrap(),
                &tls,
                1_000_000,
                client::Stream {
                    rate: 25.0,
                    duration: Duration::from_secs(40),
                    size: 4_000,
                    grace: Duration::from_secs(60),
                },
            )
            .await
            .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_secs(8)).await;
    c.kill9(NodeId::Node1);
    let took = c
        .wait_for(
            "node2 takes over",
            Duration::from_secs(90),
            Serves(NodeId::Node2),
        )
        .await;
    println!("failover after kill -9: {:.1} s", took.as_secs_f64());
    assert!(
        (10.0..=60.0).contains(&took.as_secs_f64()),
        "failover took {took:?}, outside 10-60 s"
    );
    let report = stream.await.unwrap();
    assert!(
        report.acked.len() > 200,
        "acknowledged {}",
        report.acked.len()
    );
    assert_eq!(
        missing(&c, NodeId::Node2, &report.acked).await,
        Vec::<u64>::new()
    );
    // Judged from the survivor's files, not its word: every acknowledged body is stored as the
    // client sent it (its SHA-256 recomputed from the log bytes), and logs weigh what their
    // mail does.
    let survivor = c.dir().join("node2");
    let receipts: Vec<_> = report.receipts.iter().map(|r| Ok(*r)).collect();
    assert_eq!(receipts.len(), report.acked.len());
    let verdict = ccr::mail::verify_data_dir(&survivor, &receipts).unwrap();
    assert!(verdict.ok(), "{verdict:?}");
    assert_eq!(verdict.by_bytes, receipts.len(), "{verdict:?}");
    let closed: Vec<u64> = std::fs::read_dir(survivor.join("logs"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            ccr_core::storage::names::parse_closed_log_name(&e.file_name().to_string_lossy())
                .is_some()
        })
        .map(|e| e.metadata().unwrap().len())
        .collect();
    // A log closed at the failover (the survivor's last copy of the old owner's open log)
    // may be short; the ones that rolled full are a megabyte of mail.
    assert!(
        closed.iter().filter(|len| **len >= 1_000_000).count() >= 2,
        "closed log sizes: {closed:?}"
    );

    // The killed node restarts from its files, becomes passive and catches up.
    c.start_node(NodeId::Node1);
    c.wait_for(
        "node1 catches up",
        Duration::from_secs(60),
        CaughtUp(NodeId::Node1),
    )
    .await;

    // A scheduled move there and back, lossless, the comment recorded.
    let before = load(&c, 2_000_000, 3.0).await;
    assert_eq!(before.acked.len() as u64, before.sent);
    for (from, to) in [
        (NodeId::Node2, NodeId::Node1),
        (NodeId::Node1, NodeId::Node2),
    ] {
        // A move to a copy that is not healthy is refused (as it should be): wait for it.
        c.wait_for("target copy healthy", Duration::from_secs(60), CaughtUp(to))
            .await;
        // The source learns the target's copy status from its heartbeats (one a second).
        tokio::time::sleep(Duration::from_secs(3)).await;
        let reply = c
            .ask(
                from,
                AdminRequest::Move {
                    target: to,
                    comment: "This is a test!".into(),
                },
            )
            .await;
        assert!(matches!(reply, Some(AdminReply::Accepted)), "{reply:?}");
        c.wait_for("the move", Duration::from_secs(60), Serves(to))
            .await;
        match c.ask(to, AdminRequest::Status).await {
            Some(AdminReply::Status { status, .. }) => {
                assert_eq!(status.last_move_comment.as_deref(), Some("This is a test!"))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(missing(&c, to, &before.acked).await, Vec::<u64>::new());
        assert_eq!(missing(&c, to, &report.acked).await, Vec::<u64>::new());
    }

    // node2 is active again, node1 passive. The copy status is the passive's wherever it is
    // asked, and Test-ReplicationHealth passes on both nodes of a healthy cluster...
    c.wait_for(
        "node1 caught up",
        Duration::from_secs(60),
        CaughtUp(NodeId::Node1),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    match c.ask(NodeId::Node2, AdminRequest::CopyStatus).await {
        Some(AdminReply::CopyStatus(s)) => {
            assert_eq!(s.node, NodeId::Node1, "{s}");
            assert_eq!(format!("{:?}", s.summary), "Healthy", "{s}");
        }
        other => panic!("{other:?}"),
    }
    for n in NodeId::ALL {
        let h = health(&c, n).await;
        assert!(h.passed(), "{n}:\n{h}");
    }
    // ...and a suspended copy fails its checks, showing the administrator's comment.
    let reply = c
        .ask(
            NodeId::Node1,
            AdminRequest::SuspendCopy {
                comment: Some("SAN firmware upgrade".into()),
            },
        )
        .await;
    assert!(matches!(reply, Some(AdminReply::Accepted)), "{reply:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let h = health(&c, NodeId::Node2).await;
    assert_eq!(h.failed(), vec!["SGCopySuspended"], "{h}");
    assert!(h.to_string().contains("SAN firmware upgrade"), "{h}");
    match c.ask(NodeId::Node1, AdminRequest::CopyStatus).await {
        Some(AdminReply::CopyStatus(s)) => {
            assert_eq!(
                s.suspend_comment.as_deref(),
                Some("SAN firmware upgrade"),
                "{s}"
            )
        }
        other => panic!("{other:?}"),
    }
    let reply = c.ask(NodeId::Node1, AdminRequest::ResumeCopy).await;
    assert!(matches!(reply, Some(AdminReply::Accepted)), "{reply:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_and_malformed_connections_get_nothing_and_harm_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Plain TCP: what is checked here is the frames' own authentication under the key.
    let c = Cluster::start_with(false);
    c.wait_for(
        "node1 online",
        Duration::from_secs(30),
        Serves(NodeId::Node1),
    )
    .await;
    let node1: ccr::config::NodeFile = ccr::config::load(&c.configs.node1).unwrap();
    let targets = [node1.admin, node1.addresses.node1.public];
    for addr in targets {
        // Garbage, an oversized length, and a well-formed frame under the wrong key.
        let wrong = Key::new("not-the-cluster-key-at-all").unwrap();
        let frames: Vec<Vec<u8>> = vec![
            b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            u32::MAX.to_be_bytes().to_vec(),
            ccr::frame::encode(&wrong, &ccr::wire::Wire::Admin(AdminRequest::Status)),
        ];
        for bytes in frames {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(&bytes).await.unwrap();
            let mut buf = Vec::new();
            let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
            assert!(
                matches!(read, Ok(Ok(0)) | Ok(Err(_))),
                "{addr}: got {buf:?}"
            );
        }
    }
    wrong_key_refused_and_cluster_unharmed(&c, node1.admin, 3_000_000).await;
}

/// The admin command under the wrong key is refused (from the client side too), and the
/// cluster still serves and acknowledges all it is sent.
async fn wrong_key_refused_and_cluster_unharmed(
    c: &Cluster,
    admin: std::net::SocketAddr,
    first_id: u64,
) {
    let wrong = client::admin(
        admin,
        &Key::new("not-the-cluster-key-at-all").unwrap(),
        &c.links(),
        AdminRequest::Status,
    )
    .await;
    assert!(wrong.is_err());
    assert!(c.serving(NodeId::Node1).await);
    let r = load(c, first_id, 2.0).await;
    assert!(!r.acked.is_empty());
    assert_eq!(r.acked.len() as u64, r.sent);
}

/// TLS on: a peer showing a certificate of another CA is refused at the handshake — the node
/// logs the refusal with its reason, the peer gets an error and nothing else — and so is a
/// plain TCP peer; the right certificate with the wrong key still gets nothing (TLS does not
/// replace the key); and the cluster is unharmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_with_a_certificate_of_another_ca_is_refused_with_the_reason_logged() {
    use ccr::tls::{throwaway_ca, Links, TlsFiles};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let c = Cluster::start();
    c.wait_for(
        "node1 online",
        Duration::from_secs(30),
        Serves(NodeId::Node1),
    )
    .await;
    let node1: ccr::config::NodeFile = ccr::config::load(&c.configs.node1).unwrap();
    let ours = node1.tls.clone().expect("the cluster runs TLS");
    let other = tempfile::tempdir().unwrap();
    let theirs = throwaway_ca(
        other.path(),
        &[("node1", vec!["127.0.0.1".parse().unwrap()])],
    )
    .unwrap()
    .remove(0);
    // The stranger trusts our CA, so the refusal is the node's, not its own.
    let stranger = Links::load(Some(&TlsFiles {
        ca: ours.ca.clone(),
        ..theirs
    }))
    .unwrap();
    let key = Key::new(KEY).unwrap();
    for addr in [node1.admin, node1.addresses.node1.public] {
        let refused = client::admin(addr, &key, &stranger, AdminRequest::Status).await;
        assert!(
            refused.is_err(),
            "{addr}: a stranger was answered: {refused:?}"
        );
    }
    let stream = client::load(
        &c.hub_addresses().unwrap(),
        &key,
        &stranger,
        5_000_000,
        client::Stream {
            rate: 25.0,
            duration: Duration::from_secs(1),
            size: 4_000,
            grace: Duration::from_secs(2),
        },
    )
    .await
    .unwrap();
    assert!(
        stream.acked.is_empty(),
        "the hub acknowledged a stranger's mail"
    );

    // The node says who it refused and why.
    let logs = c.log_tails(200);
    let refusal = logs
        .lines()
        .find(|l| l.contains("refused a connection"))
        .unwrap_or_else(|| panic!("no refusal logged\n{logs}"));
    assert!(
        refusal.contains("invalid peer certificate: UnknownIssuer"),
        "the refusal gives no reason: {refusal}"
    );

    // Plain TCP gets nothing from a TLS endpoint.
    let mut s = tokio::net::TcpStream::connect(node1.admin).await.unwrap();
    let frame = ccr::frame::encode(&key, &ccr::wire::Wire::Admin(AdminRequest::Status));
    let _ = s.write_all(&frame).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(
        !buf.windows(6).any(|w| w == b"Status"),
        "a plain peer was answered: {buf:?}"
    );

    // Our certificate with the wrong key: TLS lets it in, the frames' key does not.
    wrong_key_refused_and_cluster_unharmed(&c, node1.admin, 6_000_000).await;
}

/// The hub keeps its queue, dumpster and witness state in a file: after `kill -9` of the hub
/// and a restart, a lossy mount still gets back every acknowledged message from the dumpster.
/// node1 serves alone while a client stream is acknowledged; the hub is killed and restarted;
/// node1 is killed; node2, which never held a log, is restored by the administrator
/// (`Restore-StorageGroupCopy`, accepting the loss) and mounts — and the restarted hub
/// redelivers everything node1 had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_hub_still_redelivers_from_its_dumpster() {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_ccr"));
    let mut c = Cluster(LocalCluster::start(bin, KEY, &[NodeId::Node1]).unwrap());
    c.wait_for(
        "node1 online alone",
        Duration::from_secs(30),
        Serves(NodeId::Node1),
    )
    .await;
    let report = load(&c, 3_000_000, 3.0).await;
    assert!(
        report.acked.len() > 50,
        "acknowledged {}",
        report.acked.len()
    );

    c.0.restart_hub(Duration::from_secs(1)).await.unwrap();
    c.wait_for(
        "node1 serves through the new hub",
        Duration::from_secs(30),
        Serves(NodeId::Node1),
    )
    .await;
    c.kill9(NodeId::Node1);
    c.start_node(NodeId::Node2);
    // node2 cannot reach node1's logs: the dial keeps it from mounting until the
    // administrator accepts the loss.
    tokio::time::sleep(Duration::from_secs(20)).await;
    restore_and_mount(&c, NodeId::Node2).await;
    // Judged from node2's files: the bodies came back from the restarted hub's own files.
    let left =
        c.0.not_stored(NodeId::Node2, &report.receipts, Duration::from_secs(30))
            .await
            .unwrap();
    assert_eq!(
        left,
        Vec::<u64>::new(),
        "acknowledged before the hub restarted, redelivered after it with their bodies\n{}",
        c.log_tails(20)
    );
}

/// Several hubs, each with its own dumpster: a client's mail spreads over hub1 and hub2; hub2
/// is down (`kill -9`) when the lossy mount asks the hubs to resubmit, so only hub1's share
/// comes back at first — and hub2, restarted from its state file, redelivers the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_down_during_a_redelivery_redelivers_when_it_returns() {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_ccr"));
    let mut c = Cluster(LocalCluster::start(bin, KEY, &[NodeId::Node1]).unwrap());
    assert_eq!(c.hub_count(), 2, "a local cluster has two hubs by default");
    c.wait_for(
        "node1 online alone",
        Duration::from_secs(30),
        Serves(NodeId::Node1),
    )
    .await;
    let first = 4_000_000;
    let report = load(&c, first, 3.0).await;
    assert!(
        report.acked.len() > 50,
        "acknowledged {}",
        report.acked.len()
    );
    // The client took turns: odd offsets went through hub2.
    let through_hub2: Vec<u64> = report
        .acked
        .iter()
        .copied()
        .filter(|id| (id - first) % 2 == 1)
        .collect();
    assert!(through_hub2.len() > 20, "{through_hub2:?}");

    c.0.kill9_hub(HubId(2)).unwrap();
    c.kill9(NodeId::Node1);
    c.start_node(NodeId::Node2);
    // node2 never held a log: the administrator accepts the loss (Restore-StorageGroupCopy).
    tokio::time::sleep(Duration::from_secs(20)).await;
    restore_and_mount(&c, NodeId::Node2).await;
    // hub1 answers; hub2 cannot. Judged from node2's files.
    let before =
        c.0.not_stored(NodeId::Node2, &report.receipts, Duration::from_secs(0))
            .await
            .unwrap();
    let after_hub1 = async {
        for _ in 0..60 {
            let left =
                c.0.not_stored(NodeId::Node2, &report.receipts, Duration::from_secs(0))
                    .await
                    .unwrap();
            if left.iter().all(|id| through_hub2.contains(id)) {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        panic!("hub1's share never came back\n{}", c.log_tails(20));
    }
    .await;
    assert!(!before.is_empty(), "nothing was missing after the restore");
    assert_eq!(
        after_hub1,
        through_hub2,
        "with hub2 down, exactly its share is missing\n{}",
        c.log_tails(20)
    );

    c.0.start_hub(HubId(2)).unwrap();
    let left =
        c.0.not_stored(NodeId::Node2, &report.receipts, Duration::from_secs(60))
            .await
            .unwrap();
    assert_eq!(
        left,
        Vec::<u64>::new(),
        "hub2's share, redelivered once it returned\n{}",
        c.log_tails(20)
    );
}

async fn stopped_reason(c: &Cluster, n: NodeId) -> Option<String> {
    match c.ask(n, AdminRequest::Status).await {
        Some(AdminReply::Status {
            serving: false,
            status,
            ..
        }) => status
            .reason
            .filter(|r| r.contains("stopped by an administrator")),
        _ => None,
    }
}

/// Stop-ClusteredMailboxServer on the passive: both nodes report the server stopped; each is
/// killed with -9 and started again, and nothing comes online — until start-cms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_stays_offline_across_kill_9_until_started() {
    let mut c = Cluster::start();
    c.wait_for(
        "node1 online",
        Duration::from_secs(60),
        Serves(NodeId::Node1),
    )
    .await;
    let report = load(&c, 4_000_000, 3.0).await;
    assert!(
        report.acked.len() > 50,
        "acknowledged {}",
        report.acked.len()
    );
    assert!(matches!(
        c.ask(
            NodeId::Node2,
            AdminRequest::StopCms {
                reason: "SAN firmware".into()
            }
        )
        .await,
        Some(AdminReply::Accepted)
    ));
    let mut both = false;
    for _ in 0..100 {
        both = stopped_reason(&c, NodeId::Node1).await.is_some()
            && stopped_reason(&c, NodeId::Node2).await.is_some();
        if both {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(both, "both nodes report the stop\n{}", c.log_tails(15));
    for n in [NodeId::Node1, NodeId::Node2] {
        c.kill9(n);
        tokio::time::sleep(Duration::from_secs(2)).await;
        c.start_node(n);
    }
    // Longer than a failover takes: neither the survivor nor a restarted node mounts.
    for _ in 0..40 {
        for n in NodeId::ALL {
            assert!(
                !c.serving(n).await,
                "{n} brought a stopped server online\n{}",
                c.log_tails(15)
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(stopped_reason(&c, NodeId::Node1)
        .await
        .is_some_and(|r| r.contains("SAN firmware")));
    assert!(matches!(
        c.ask(NodeId::Node1, AdminRequest::StartCms).await,
        Some(AdminReply::Accepted)
    ));
    c.wait_for(
        "node1 online again",
        Duration::from_secs(60),
        Serves(NodeId::Node1),
    )
    .await;
    assert_eq!(
        missing(&c, NodeId::Node1, &report.acked).await,
        Vec::<u64>::new()
    );
}

/// `ccr backup`: an incremental backup before any full one is refused; a full backup taken on
/// the passive copies its database file and closed logs into `backups/`, and both nodes then
/// delete the logs both database files hold — the first generations are gone from both log
/// folders — while every acknowledged message stays, through a kill -9 of the active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_copies_the_copy_and_truncates_the_logs_on_both_nodes() {
    let mut c = Cluster::start();
    c.wait_for(
        "node1 online",
        Duration::from_secs(60),
        Serves(NodeId::Node1),
    )
    .await;
    // About 30 MB of mail: 1 MB logs roll well past the lost-log-resilience depth, so each
    // database file gets a checkpoint.
    let report = client::load(
        &c.hub_addresses().unwrap(),
        &Key::new(KEY).unwrap(),
        &c.links(),
        5_000_000,
        client::Stream {
            rate: 50.0,
            duration: Duration::from_secs(6),
            size: 100_000,
            grace: Duration::from_secs(60),
        },
    )
    .await
    .unwrap();
    assert!(
        report.acked.len() > 200,
        "acknowledged {}",
        report.acked.len()
    );
    assert!(matches!(
        c.ask(NodeId::Node2, AdminRequest::Backup { incremental: true })
            .await,
        Some(AdminReply::Accepted)
    ));
    let first_log = |n: NodeId| {
        c.dir()
            .join(n.name())
            .join("logs")
            .join("E0000000001.log")
            .exists()
    };
    let backups = c.dir().join("node2").join("backups");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !backups.exists(),
        "an incremental backup before a full one was refused"
    );
    // The passive's checkpoint follows the active's by its copy and replay: ask until its
    // database file holds some generation.
    let mut taken = None;
    for _ in 0..60 {
        assert!(matches!(
            c.ask(NodeId::Node2, AdminRequest::Backup { incremental: false })
                .await,
            Some(AdminReply::Accepted)
        ));
        tokio::time::sleep(Duration::from_millis(500)).await;
        taken = std::fs::read_dir(&backups)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| e.ok())
            .map(|e| e.path());
        if taken.is_some() {
            break;
        }
    }
    let taken = taken.unwrap_or_else(|| panic!("no backup was taken\n{}", c.log_tails(20)));
    assert!(
        taken.join("db").join("mailbox.edb").exists(),
        "{}",
        taken.display()
    );
    let mut truncated = false;
    for _ in 0..100 {
        truncated = !first_log(NodeId::Node1) && !first_log(NodeId::Node2);
        if truncated {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(truncated, "both nodes truncated\n{}", c.log_tails(20));
    c.kill9(NodeId::Node1);
    c.wait_for(
        "node2 took over",
        Duration::from_secs(60),
        Serves(NodeId::Node2),
    )
    .await;
    // The open log died with node1: the hubs' dumpsters redeliver what it held.
    let mut lacking = Vec::new();
    for _ in 0..60 {
        lacking = missing(&c, NodeId::Node2, &report.acked).await;
        if lacking.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(lacking, Vec::<u64>::new(), "{}", c.log_tails(20));
}
