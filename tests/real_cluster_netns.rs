//! The real binary across network namespaces: the hub, node1 and node2 each in their own
//! namespace, joined by veth links to a bridge; then the active's link goes down (a partition
//! of the active from everyone). The passive must take over inside 10-60 s, the old active
//! must have stopped serving by then (no split brain), and every acknowledged message must be
//! in the new active's database. Needs root and `ip netns`; otherwise it says why it skipped.
#![cfg(not(madsim))]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KEY: &str = "a-netns-test-key-0123456789abcdef";

fn sh(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Namespaces, links and processes, all removed on drop.
struct Lab {
    tag: String,
    dir: tempfile::TempDir,
    children: Vec<Child>,
}

impl Lab {
    fn ns(&self, name: &str) -> String {
        format!("ccr{}-{name}", self.tag)
    }
    fn bridge(&self) -> String {
        format!("ccrbr{}", self.tag)
    }
    fn peer_link(&self, name: &str) -> String {
        let short = match name {
            "hub" => "h",
            "node1" => "a",
            _ => "b",
        };
        format!("ccr{}{short}", self.tag)
    }

    fn build() -> Result<Lab, String> {
        let tag = format!("{}", std::process::id() % 10_000);
        let lab = Lab {
            tag,
            dir: tempfile::tempdir().map_err(|e| e.to_string())?,
            children: Vec::new(),
        };
        sh(&["ip", "link", "add", &lab.bridge(), "type", "bridge"])?;
        sh(&["ip", "link", "set", &lab.bridge(), "up"])?;
        for (i, name) in ["hub", "node1", "node2"].into_iter().enumerate() {
            let ns = lab.ns(name);
            sh(&["ip", "netns", "add", &ns])?;
            let inside = format!("veth{i}");
            let outside = lab.peer_link(name);
            sh(&[
                "ip", "link", "add", &outside, "type", "veth", "peer", "name", &inside, "netns",
                &ns,
            ])?;
            sh(&["ip", "link", "set", &outside, "master", &lab.bridge()])?;
            sh(&["ip", "link", "set", &outside, "up"])?;
            let addr = format!("10.77.{}.{}/24", lab.tag.len(), i + 1);
            sh(&["ip", "-n", &ns, "addr", "add", &addr, "dev", &inside])?;
            sh(&["ip", "-n", &ns, "link", "set", &inside, "up"])?;
            sh(&["ip", "-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(lab)
    }

    fn addr(&self, i: usize, port: u16) -> std::net::SocketAddr {
        format!("10.77.{}.{}:{port}", self.tag.len(), i + 1)
            .parse()
            .unwrap()
    }

    fn spawn(&mut self, ns: &str, args: &[&str], log: &Path) {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(ns), env!("CARGO_BIN_EXE_ccr")])
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        self.children.push(child);
    }

    fn ccr(&self, ns: &str, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["ip", "netns", "exec"];
        let ns = self.ns(ns);
        all.push(&ns);
        all.push(env!("CARGO_BIN_EXE_ccr"));
        all.extend_from_slice(args);
        sh(&all)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for name in ["hub", "node1", "node2"] {
            let _ = sh(&["ip", "netns", "del", &self.ns(name)]);
            let _ = sh(&["ip", "link", "del", &self.peer_link(name)]);
        }
        let _ = sh(&["ip", "link", "del", &self.bridge()]);
    }
}

fn serving(lab: &Lab, node: &str, config: &Path) -> bool {
    lab.ccr(node, &["status", "--config", config.to_str().unwrap()])
        .is_ok_and(|s| {
            s.contains("State                : Online") && s.contains(&format!("{node} <Active>"))
        })
}

#[test]
fn a_partitioned_active_fails_over_without_split_brain_or_loss() {
    let root = sh(&["id", "-u"]).map(|s| s.trim() == "0").unwrap_or(false);
    if !root {
        println!("skipped: needs root to create network namespaces");
        return;
    }
    if let Err(e) = sh(&["ip", "netns", "list"]) {
        println!("skipped: `ip netns` does not work here: {e}");
        return;
    }
    let mut lab = match Lab::build() {
        Ok(l) => l,
        Err(e) => {
            println!("skipped: cannot build the namespaces: {e}");
            return;
        }
    };
    let dir: PathBuf = lab.dir.path().to_path_buf();
    // Real addresses per namespace; admin on each namespace's own loopback.
    let addresses = ccr::transport::Addresses {
        hub: ccr::transport::MachineAddr {
            public: lab.addr(0, 7000),
            private: None,
        },
        node1: ccr::transport::MachineAddr {
            public: lab.addr(1, 7000),
            private: None,
        },
        node2: ccr::transport::MachineAddr {
            public: lab.addr(2, 7000),
            private: None,
        },
    };
    let mut configs = Vec::new();
    for n in ccr_core::cluster::NodeId::ALL {
        let file = ccr::config::NodeFile {
            node: n,
            data: dir.join(n.name()),
            key: KEY.into(),
            admin: "127.0.0.1:7100".parse().unwrap(),
            addresses: addresses.clone(),
            cluster: Default::default(),
        };
        let path = dir.join(format!("{}.toml", n.name()));
        std::fs::write(&path, toml::to_string(&file).unwrap()).unwrap();
        configs.push(path);
    }
    let hub = ccr::config::HubFile {
        key: KEY.into(),
        data: Some(dir.join("hub")),
        addresses,
        hub: Default::default(),
        cluster: Default::default(),
    };
    let hub_path = dir.join("hub.toml");
    std::fs::write(&hub_path, toml::to_string(&hub).unwrap()).unwrap();

    lab.spawn(
        "hub",
        &["hub", "--config", hub_path.to_str().unwrap()],
        &dir.join("hub.log"),
    );
    lab.spawn(
        "node1",
        &["node", "--config", configs[0].to_str().unwrap()],
        &dir.join("node1.log"),
    );
    lab.spawn(
        "node2",
        &["node", "--config", configs[1].to_str().unwrap()],
        &dir.join("node2.log"),
    );

    let start = Instant::now();
    while !serving(&lab, "node1", &configs[0]) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "node1 never came online"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(5)); // node2's copy settles
    let acked = dir.join("acked.txt");
    let client = {
        let ns = lab.ns("hub");
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns,
                env!("CARGO_BIN_EXE_ccr"),
                "client",
                "--config",
            ])
            .arg(&hub_path)
            .args([
                "load",
                "--rate",
                "20",
                "--duration",
                "35",
                "--size",
                "4000",
                "--acked-file",
            ])
            .arg(&acked)
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    std::thread::sleep(Duration::from_secs(8));

    // The partition: node1's link to the bridge goes down.
    sh(&["ip", "link", "set", &lab.peer_link("node1"), "down"]).unwrap();
    let cut = Instant::now();
    let took = loop {
        let old = serving(&lab, "node1", &configs[0]);
        let new = serving(&lab, "node2", &configs[1]);
        assert!(!(old && new), "split brain: both nodes serve");
        if new {
            break cut.elapsed();
        }
        assert!(
            cut.elapsed() < Duration::from_secs(90),
            "node2 never took over"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    println!("failover after the partition: {:.1} s", took.as_secs_f64());
    assert!(
        (10.0..=60.0).contains(&took.as_secs_f64()),
        "failover took {took:?}"
    );
    assert!(
        !serving(&lab, "node1", &configs[0]),
        "the old active still serves"
    );

    let out = client.wait_with_output().unwrap();
    assert!(out.status.success());
    let verified = lab.ccr(
        "node2",
        &[
            "verify",
            "--config",
            configs[1].to_str().unwrap(),
            "--ids",
            acked.to_str().unwrap(),
        ],
    );
    assert!(verified.is_ok(), "{verified:?}");
    println!("{}", verified.unwrap().trim());

    // Heal: node1 comes back as the passive.
    sh(&["ip", "link", "set", &lab.peer_link("node1"), "up"]).unwrap();
    let healed = Instant::now();
    loop {
        let s = lab
            .ccr(
                "node1",
                &["copy-status", "--config", configs[0].to_str().unwrap()],
            )
            .unwrap_or_default();
        if s.contains("SummaryCopyStatus    : Healthy") && s.contains("CopyQueueLength      : 0") {
            break;
        }
        assert!(
            healed.elapsed() < Duration::from_secs(60),
            "node1 never caught up: {s}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
