//! The real binary end to end: node1, node2 and the hub as separate processes on loopback with
//! temporary data folders, a client stream, `kill -9` of the active, a scheduled move there and
//! back, and connections without the key or with garbage refused without harm.
#![cfg(not(madsim))]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ccr::client;
use ccr::frame::Key;
use ccr::wire::{AdminReply, AdminRequest};
use ccr_core::cluster::NodeId;

const KEY: &str = "an-integration-test-key-0123456789";

struct Cluster {
    dir: tempfile::TempDir,
    configs: [PathBuf; 3],
    children: [Option<Child>; 3],
    admin: [std::net::SocketAddr; 2],
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn(role: &str, config: &Path, log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ccr"))
        .args([role, "--config"])
        .arg(config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        // Each cluster of this test process gets its own ports.
        static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
        let nth = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let base = 21_000 + (std::process::id() % 200) as u16 * 100 + nth * 20;
        let configs = ccr::up::write_configs(dir.path(), base, KEY).unwrap();
        let admin = [
            std::net::SocketAddr::from(([127, 0, 0, 1], base + 11)),
            std::net::SocketAddr::from(([127, 0, 0, 1], base + 12)),
        ];
        let mut c = Cluster {
            children: [None, None, None],
            dir,
            configs,
            admin,
        };
        c.children[2] = Some(spawn("hub", &c.configs[2], &c.log("hub")));
        for n in NodeId::ALL {
            c.start_node(n);
        }
        c
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    fn start_node(&mut self, n: NodeId) {
        let log = self.log(&format!(
            "{}-{}",
            n.name(),
            Instant::now().elapsed().as_nanos()
        ));
        self.children[n.index()] = Some(spawn("node", &self.configs[n.index()], &log));
    }

    fn kill9(&mut self, n: NodeId) {
        let mut c = self.children[n.index()].take().unwrap();
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
    }

    async fn ask(&self, n: NodeId, req: AdminRequest) -> Option<AdminReply> {
        client::admin(self.admin[n.index()], &Key::new(KEY).unwrap(), req)
            .await
            .ok()
    }

    async fn serving(&self, n: NodeId) -> bool {
        matches!(
            self.ask(n, AdminRequest::Status).await,
            Some(AdminReply::Status { serving: true, .. })
        )
    }

    async fn wait_for(&self, what: &str, limit: Duration, mut ok: impl AsyncCheck) -> Duration {
        let start = Instant::now();
        while start.elapsed() < limit {
            if ok.check(self).await {
                return start.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut logs = String::new();
        for e in std::fs::read_dir(self.dir.path()).unwrap().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "log") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                logs.push_str(&format!("== {}\n", p.display()));
                for l in tail.into_iter().rev() {
                    logs.push_str(l);
                    logs.push('\n');
                }
            }
        }
        panic!("{what}: not within {limit:?}\n{logs}");
    }
}

trait AsyncCheck {
    async fn check(&mut self, c: &Cluster) -> bool;
}

struct Serves(NodeId);
impl AsyncCheck for Serves {
    async fn check(&mut self, c: &Cluster) -> bool {
        c.serving(self.0).await
    }
}

struct CaughtUp(NodeId);
impl AsyncCheck for CaughtUp {
    async fn check(&mut self, c: &Cluster) -> bool {
        matches!(
            c.ask(self.0, AdminRequest::CopyStatus).await,
            Some(AdminReply::CopyStatus(s))
                if format!("{:?}", s.summary) == "Healthy" && s.copy_queue_length == 0 && s.replay_queue_length == 0
        )
    }
}

async fn missing(c: &Cluster, n: NodeId, ids: &[u64]) -> Vec<u64> {
    match c.ask(n, AdminRequest::Missing { ids: ids.to_vec() }).await {
        Some(AdminReply::Missing { ids }) => ids,
        other => panic!("{other:?}"),
    }
}

async fn load(c: &Cluster, first_id: u64, secs: f64) -> ccr::client::LoadReport {
    let hub: ccr::config::HubFile = ccr::config::load(&c.configs[2]).unwrap();
    client::load(
        hub.addresses.hub.public,
        &Key::new(KEY).unwrap(),
        first_id,
        25.0,
        Duration::from_secs_f64(secs),
        4_000,
        Duration::from_secs(60),
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
        let hub: ccr::config::HubFile = ccr::config::load(&c.configs[2]).unwrap();
        tokio::spawn(async move {
            client::load(
                hub.addresses.hub.public,
                &Key::new(KEY).unwrap(),
                1_000_000,
                25.0,
                Duration::from_secs(40),
                4_000,
                Duration::from_secs(60),
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_and_malformed_connections_get_nothing_and_harm_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let c = Cluster::start();
    c.wait_for(
        "node1 online",
        Duration::from_secs(30),
        Serves(NodeId::Node1),
    )
    .await;
    let node1: ccr::config::NodeFile = ccr::config::load(&c.configs[0]).unwrap();
    let targets = [c.admin[0], node1.addresses.node1.public];
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
    // The admin command with the wrong key is refused from the client side too.
    let wrong = client::admin(
        c.admin[0],
        &Key::new("not-the-cluster-key-at-all").unwrap(),
        AdminRequest::Status,
    )
    .await;
    assert!(wrong.is_err());
    // And the cluster is unharmed.
    assert!(c.serving(NodeId::Node1).await);
    let r = load(&c, 3_000_000, 2.0).await;
    assert_eq!(r.acked.len() as u64, r.sent);
}
