//! A cluster of real `ccr` processes on loopback in a temporary folder: node1, node2 and the
//! hubs (two unless a caller says otherwise, as a new cluster has), each started from a
//! binary, each with its own log file. The loopback tests and
//! `ccr bench` drive it; `ccr up` is the hand-driven equivalent.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ccr_core::cluster::status::SummaryCopyStatus;
use ccr_core::cluster::{HubId, NodeId};

use crate::client;
use crate::frame::Key;
use crate::netns::{Lab, MACHINES};
use crate::tls::Links;
use crate::transport::{Addresses, MachineAddr};
use crate::wire::{AdminReply, AdminRequest};

/// How many hubs a local cluster has unless its caller says: as a new cluster (and `ccr up`).
pub const DEFAULT_HUBS: u8 = 2;

/// The client addresses of every hub at `addresses`, hub1's first.
pub fn client_addresses(addresses: &Addresses) -> Vec<SocketAddr> {
    std::iter::once(&addresses.hub)
        .chain(&addresses.more_hubs)
        .map(|m| m.public)
        .collect()
}

pub struct LocalCluster {
    bin: PathBuf,
    key: String,
    dir: tempfile::TempDir,
    /// node1.toml, node2.toml, hub.toml (hub1), hub2.toml, ….
    pub configs: crate::up::Configs,
    /// node1's and node2's processes, then each hub's in order.
    children: Vec<Option<Child>>,
    admin: [SocketAddr; 2],
    /// How the tests' clients connect: with node1's certificate when the cluster runs TLS.
    tls: Links,
    /// The namespaces the machines run in, when they do (dropped after the processes).
    lab: Option<Lab>,
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What [`LocalCluster::wait_for`] waits for.
#[derive(Debug, Clone, Copy)]
pub enum Condition {
    /// The node has the database mounted and serves.
    Serves(NodeId),
    /// The node's copy is Healthy with empty copy and replay queues.
    CaughtUp(NodeId),
}

impl LocalCluster {
    /// The hubs (two, the default) and `nodes`, each a process of `bin`, on ports of their
    /// own, TLS on every link (a throwaway CA, as `ccr up` makes).
    pub fn start(bin: &Path, key: &str, nodes: &[NodeId]) -> Result<LocalCluster, String> {
        LocalCluster::start_with(bin, key, nodes, true)
    }

    /// As [`LocalCluster::start`], choosing whether the links use TLS.
    pub fn start_with(
        bin: &Path,
        key: &str,
        nodes: &[NodeId],
        tls: bool,
    ) -> Result<LocalCluster, String> {
        LocalCluster::start_in(bin, key, nodes, tls, None)
    }

    /// As [`LocalCluster::start_with`], the cluster's folder made inside `base` (the system's
    /// temporary folder when `None`): a benchmark chooses which storage it measures.
    pub fn start_in(
        bin: &Path,
        key: &str,
        nodes: &[NodeId],
        tls: bool,
        base: Option<&Path>,
    ) -> Result<LocalCluster, String> {
        LocalCluster::start_hubs(bin, key, nodes, tls, base, DEFAULT_HUBS)
    }

    /// As [`LocalCluster::start_in`], with `hubs` hub processes (1 to 8).
    pub fn start_hubs(
        bin: &Path,
        key: &str,
        nodes: &[NodeId],
        tls: bool,
        base: Option<&Path>,
        hubs: u8,
    ) -> Result<LocalCluster, String> {
        let dir = match base {
            Some(base) => tempfile::tempdir_in(base)
                .map_err(|e| format!("temporary folder in {}: {e}", base.display()))?,
            None => tempfile::tempdir().map_err(|e| format!("temporary folder: {e}"))?,
        };
        // Each cluster of a process gets its own ports, and processes rarely share them. All
        // stay below Linux's ephemeral range (32768 and up), where any outgoing connection on
        // the machine may hold a port just when a restarted node wants to listen on it.
        static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
        let nth = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let base = 20_000 + (std::process::id() % 120) as u16 * 100 + (nth % 5) * 20;
        let configs = crate::up::write_configs(dir.path(), base, key, tls, hubs)?;
        LocalCluster::launch(bin, key, nodes, dir, configs, None)
    }

    /// One hub, node1 and node2 each in a network namespace of its own (see [`Lab`]), TLS on,
    /// so that [`LocalCluster::partition`] can cut one off for real. Needs root.
    pub fn start_in_namespaces(
        bin: &Path,
        key: &str,
        nodes: &[NodeId],
    ) -> Result<LocalCluster, String> {
        if let Some(why) = crate::netns::unavailable() {
            return Err(why);
        }
        let dir = tempfile::tempdir().map_err(|e| format!("temporary folder: {e}"))?;
        let lab = Lab::build()?;
        let machine = |name: &str| MachineAddr {
            public: lab.addr(name, 7000),
            private: None,
        };
        let addresses = Addresses {
            hub: machine("hub"),
            node1: machine("node1"),
            node2: machine("node2"),
            more_hubs: Vec::new(),
        };
        // Admin endpoints on the machines' own addresses: the host reaches them over the bridge.
        let admin = [lab.addr("node1", 7100), lab.addr("node2", 7100)];
        let configs = crate::up::write_configs_at(dir.path(), key, addresses, admin, true)?;
        LocalCluster::launch(bin, key, nodes, dir, configs, Some(lab))
    }

    fn launch(
        bin: &Path,
        key: &str,
        nodes: &[NodeId],
        dir: tempfile::TempDir,
        configs: crate::up::Configs,
        lab: Option<Lab>,
    ) -> Result<LocalCluster, String> {
        let node1: crate::config::NodeFile = crate::config::load(&configs.node1)?;
        let node2: crate::config::NodeFile = crate::config::load(&configs.node2)?;
        let admin = [node1.admin, node2.admin];
        let tls = Links::load(node1.tls.as_ref())?;
        let mut c = LocalCluster {
            bin: bin.to_path_buf(),
            key: key.to_string(),
            children: (0..2 + configs.hubs.len()).map(|_| None).collect(),
            dir,
            configs,
            admin,
            tls,
            lab,
        };
        for h in 0..c.configs.hubs.len() {
            let name = crate::up::hub_file_name(HubId(h as u8 + 1));
            let child = c.spawn("hub", 2 + h, &name)?;
            c.children[2 + h] = Some(child);
        }
        for &n in nodes {
            c.start_node(n)?;
        }
        Ok(c)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the processes and keeps the folder (configs, data, every process's log) instead
    /// of deleting it: for a run worth looking into.
    pub fn keep(mut self) -> PathBuf {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let dir = std::mem::replace(
            &mut self.dir,
            tempfile::tempdir().expect("a temporary folder"),
        );
        dir.keep()
    }

    pub fn key(&self) -> Key {
        Key::new(&self.key).expect("a key the cluster started with")
    }

    /// How a client of this cluster connects (TLS with node1's certificate, or plain).
    pub fn links(&self) -> Links {
        self.tls.clone()
    }

    /// hub1's client address.
    pub fn hub_address(&self) -> Result<SocketAddr, String> {
        Ok(self.hub_addresses()?[0])
    }

    /// Every hub's client address, hub1's first: where a client spreads its mail.
    pub fn hub_addresses(&self) -> Result<Vec<SocketAddr>, String> {
        let hub: crate::config::HubFile = crate::config::load(self.configs.hub())?;
        Ok(client_addresses(&hub.addresses))
    }

    /// How many hub processes the cluster has.
    pub fn hub_count(&self) -> usize {
        self.configs.hubs.len()
    }

    /// Starts the process of machine `index` (0 node1, 1 node2, 2 hub1, 3 hub2, …).
    fn spawn(&self, role: &str, index: usize, log_name: &str) -> Result<Child, String> {
        let config = match index {
            0 => &self.configs.node1,
            1 => &self.configs.node2,
            h => &self.configs.hubs[h - 2],
        };
        let log_path = self.dir.path().join(format!("{log_name}.log"));
        let log =
            std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let mut command = match &self.lab {
            Some(lab) => lab.command(MACHINES[(index + 1) % 3], &self.bin),
            None => Command::new(&self.bin),
        };
        command
            .args([role, "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.bin.display()))
    }

    /// Starts (or restarts) a node's process; each start logs to a file of its own.
    pub fn start_node(&mut self, n: NodeId) -> Result<(), String> {
        static STARTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let nth = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let child = self.spawn("node", n.index(), &format!("{}-{nth}", n.name()))?;
        self.children[n.index()] = Some(child);
        Ok(())
    }

    /// `kill -9` of hub1's process (hub, dumpster and witness), then a fresh one from the
    /// same config: what it knew comes back from its state file.
    pub async fn restart_hub(&mut self, down_for: Duration) -> Result<(), String> {
        self.restart_hub_n(HubId::FIRST, down_for).await
    }

    /// `kill -9` of hub `id`'s process, then, `down_for` later, a fresh one from its config.
    pub async fn restart_hub_n(&mut self, id: HubId, down_for: Duration) -> Result<(), String> {
        self.kill9_hub(id)?;
        tokio::time::sleep(down_for).await;
        self.start_hub(id)
    }

    /// `kill -9` of hub `id`'s process (nothing when it is not running).
    pub fn kill9_hub(&mut self, id: HubId) -> Result<(), String> {
        let index = self.hub_index(id)?;
        if let Some(mut c) = self.children[index].take() {
            c.kill().map_err(|e| format!("kill {id}: {e}"))?;
            c.wait().map_err(|e| format!("wait for {id}: {e}"))?;
        }
        Ok(())
    }

    /// Starts hub `id`'s process again; each start logs to a file of its own.
    pub fn start_hub(&mut self, id: HubId) -> Result<(), String> {
        static STARTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        let index = self.hub_index(id)?;
        let nth = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("{}-{nth}", crate::up::hub_file_name(id));
        self.children[index] = Some(self.spawn("hub", index, &name)?);
        Ok(())
    }

    fn hub_index(&self, id: HubId) -> Result<usize, String> {
        let i = usize::from(id.0);
        if i == 0 || i > self.configs.hubs.len() {
            return Err(format!(
                "{id}: this cluster has {} hub(s)",
                self.configs.hubs.len()
            ));
        }
        Ok(1 + i)
    }

    /// Takes `n`'s network link down (a cluster in namespaces only): it runs on, heard by
    /// nobody, hearing nobody.
    pub fn partition(&self, n: NodeId) -> Result<(), String> {
        self.lab
            .as_ref()
            .ok_or("partitions need a cluster in network namespaces")?
            .cut(n.name())
    }

    /// Puts `n` at a second site (a cluster in namespaces only): everything it sends and
    /// everything sent to it crosses a link of `mbit` Mbit/s with `delay_ms` of delay each way.
    pub fn shape(&mut self, n: NodeId, mbit: u32, delay_ms: u32) -> Result<(), String> {
        self.lab
            .as_mut()
            .ok_or("a shaped link needs a cluster in network namespaces")?
            .shape(n.name(), mbit, delay_ms)
    }

    /// Brings `n`'s link back up.
    pub fn heal(&self, n: NodeId) -> Result<(), String> {
        self.lab
            .as_ref()
            .ok_or("partitions need a cluster in network namespaces")?
            .heal(n.name())
    }

    /// Whether `n` says it serves, asked from its own machine (`ccr status` run in its
    /// namespace): the one view of a cut-off node there is.
    pub fn serving_asked_on_its_machine(&self, n: NodeId) -> Result<bool, String> {
        let lab = self
            .lab
            .as_ref()
            .ok_or("only a cluster in network namespaces has machines to ask on")?;
        let out = lab
            .command(n.name(), &self.bin)
            .args(["status", "--config"])
            .arg(self.configs.node(n))
            .output()
            .map_err(|e| format!("ccr status on {n}'s machine: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(out.status.success()
            && text.lines().any(|l| l == "State                : Online")
            && text.contains(&format!("{} <Active>", n.name())))
    }

    /// Whether the machines run in network namespaces (and can be partitioned).
    pub fn in_namespaces(&self) -> bool {
        self.lab.is_some()
    }

    /// `kill -9` of a node's process.
    pub fn kill9(&mut self, n: NodeId) -> Result<(), String> {
        let mut c = self.children[n.index()]
            .take()
            .ok_or_else(|| format!("{n} is not running"))?;
        c.kill().map_err(|e| format!("kill {n}: {e}"))?; // SIGKILL
        c.wait().map_err(|e| format!("wait for {n}: {e}"))?;
        Ok(())
    }

    pub async fn ask(&self, n: NodeId, req: AdminRequest) -> Option<AdminReply> {
        client::admin(self.admin[n.index()], &self.key(), &self.tls, req)
            .await
            .ok()
    }

    pub async fn serving(&self, n: NodeId) -> bool {
        matches!(
            self.ask(n, AdminRequest::Status).await,
            Some(AdminReply::Status { serving: true, .. })
        )
    }

    pub async fn holds(&self, condition: Condition) -> bool {
        match condition {
            Condition::Serves(n) => self.serving(n).await,
            Condition::CaughtUp(n) => matches!(
                self.ask(n, AdminRequest::CopyStatus).await,
                Some(AdminReply::CopyStatus(s))
                    if s.summary == SummaryCopyStatus::Healthy
                        && s.copy_queue_length == 0
                        && s.replay_queue_length == 0
            ),
        }
    }

    /// Polls every `every` until `condition` holds: how long it took, or an error with the
    /// tail of every process's log.
    pub async fn wait_for(
        &self,
        condition: Condition,
        limit: Duration,
        every: Duration,
    ) -> Result<Duration, String> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.holds(condition).await {
                return Ok(start.elapsed());
            }
            tokio::time::sleep(every).await;
        }
        Err(format!(
            "{condition:?}: not within {limit:?}\n{}",
            self.log_tails(15)
        ))
    }

    /// The last `lines` lines of each process's log.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        let mut logs: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            .collect();
        logs.sort();
        for p in logs {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(lines).collect();
            out.push_str(&format!("== {}\n", p.display()));
            for l in tail.into_iter().rev() {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }

    /// Which of `ids` the node's database lacks.
    pub async fn missing(&self, n: NodeId, ids: &[u64]) -> Result<Vec<u64>, String> {
        match self
            .ask(n, AdminRequest::Missing { ids: ids.to_vec() })
            .await
        {
            Some(AdminReply::Missing { ids }) => Ok(ids),
            other => Err(format!("{n}: unexpected answer to Missing: {other:?}")),
        }
    }

    /// The acknowledged messages node `n`'s files do not hold as the client sent them (missing,
    /// or another size or body), judged from its data folder's bytes, not from its word. The
    /// node may be running: a log renamed while it is read is read again, up to `patience`.
    pub async fn not_stored(
        &self,
        n: NodeId,
        receipts: &[crate::mail::Receipt],
        patience: Duration,
    ) -> Result<Vec<u64>, String> {
        let receipts: Vec<_> = receipts.iter().map(|r| Ok(*r)).collect();
        let since = Instant::now();
        loop {
            let v = crate::mail::verify_data_dir(&self.dir().join(n.name()), &receipts)?;
            let mut bad: Vec<u64> = v.missing;
            bad.extend(v.damaged.iter().map(|(id, _)| *id));
            if bad.is_empty() || since.elapsed() >= patience {
                if let Some((id, why)) = v.damaged.first() {
                    eprintln!("{n}: message {id} stored other than sent: {why}");
                }
                bad.sort_unstable();
                return Ok(bad);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
