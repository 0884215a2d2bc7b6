//! The simulated world: two mailbox node machines, the hub transport machines (the first also
//! hosting the witness share, unless it has a machine of its own) and the clients, each with
//! its own clock and (for the nodes) a disk that belongs to the machine and outlives its
//! processes. Processes run the same async host as the real binary.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ccr_core::cluster::boot::boot;
use ccr_core::cluster::config::ClusterConfig;
use ccr_core::cluster::hub::{Hub, HubAction};
use ccr_core::cluster::node::{Admin, Node};
use ccr_core::cluster::share;
use ccr_core::cluster::wire::Msg;
use ccr_core::cluster::witness::Witness;
use ccr_core::cluster::{Endpoint, HubId, Net, NodeId};
use ccr_core::disk::MemDisk;
use ccr_core::host::{run_node, Clock, HostEnv, Incoming, Inputs, Network};
use ccr_core::storage::MessageId;
use ccr_reports::record::{MachineSample, Sample};
use madsim::rand::Rng;
use rand::SeedableRng;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::clock::SimClock;
use crate::disk::SimDisk;
use crate::net::{Machine, SimNet};
use crate::observer::Obs;
use crate::scenario::{Fault, Scenario};

struct Process {
    node: Arc<Mutex<Node>>,
    admin: mpsc::UnboundedSender<Admin>,
    pause: tokio::sync::watch::Sender<bool>,
    task: JoinHandle<()>,
}

pub struct NodeMachine {
    id: NodeId,
    pub disk: Arc<Mutex<SimDisk>>,
    pub clock: Arc<SimClock>,
    process: Arc<Mutex<Option<Process>>>,
    /// Why the last start failed, while it keeps failing.
    boot_error: Mutex<Option<String>>,
}

/// A hub transport machine: its clock, whether its service runs, and the way mail reaches it.
pub struct HubMachine {
    pub id: HubId,
    pub clock: Arc<SimClock>,
    /// The service runs (`hub-down` stops it).
    up: Arc<std::sync::atomic::AtomicBool>,
    /// Its network inbox, to take back when it comes up.
    inbox: Mutex<Option<mpsc::UnboundedSender<Incoming>>>,
    /// Where the clients hand it mail.
    submit: mpsc::UnboundedSender<(MessageId, u32)>,
}

impl HubMachine {
    fn is_up(&self) -> bool {
        self.up.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Runtime work, counted so the benchmarks can run the same amount through bare madsim.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Work {
    /// Messages delivered into a machine's inbox.
    pub messages: u64,
    /// Wakes of the node hosts, the hub task and the postman, whatever woke them (a message,
    /// a timer, a disk completion).
    pub node_steps: u64,
    pub hub_wakes: u64,
    pub postman_wakes: u64,
}

impl Work {
    /// Every task wake, of whatever kind.
    pub fn wakes(&self) -> u64 {
        self.node_steps + self.hub_wakes + self.postman_wakes
    }
}

pub struct World {
    pub config: ClusterConfig,
    planted: crate::scenario::Planted,
    pub net: SimNet,
    pub obs: Arc<Obs>,
    pub nodes: Vec<NodeMachine>,
    pub hubs: Vec<HubMachine>,
    /// The witness share's machine's clock (hub1's, unless it has a machine of its own).
    witness_clock: Arc<SimClock>,
    witness_host: crate::topology::WitnessHost,
    pub witness: Arc<Mutex<Witness>>,
    pub witness_up: Arc<Mutex<bool>>,
    /// Each node disk's capacity when no fault changes it (the scenario's `disk_capacity_mb`).
    disk_capacity: u64,
    /// Messages the clients have handed a hub so far.
    submitted: Arc<std::sync::atomic::AtomicU64>,
    /// Wakes of the hub machines' and the clients' tasks, for the benchmarks.
    hub_wakes: Arc<std::sync::atomic::AtomicU64>,
    /// The hub's and the shares' tasks, stopped at teardown.
    services: Mutex<Vec<JoinHandle<()>>>,
}

impl World {
    pub fn new(scenario: &Scenario, obs: Arc<Obs>) -> World {
        let net = SimNet::new();
        let config = scenario.cluster.clone();
        let disk_capacity = scenario
            .disk_capacity_mb
            .map_or(MemDisk::default().capacity(), |mb| mb * 1024 * 1024);
        let nodes: Vec<NodeMachine> = NodeId::ALL
            .into_iter()
            .map(|id| NodeMachine {
                id,
                disk: Arc::new(Mutex::new({
                    let mut disk = SimDisk::start(config.storage.log_size);
                    disk.set_capacity(disk_capacity);
                    disk
                })),
                clock: Arc::new(SimClock::new()),
                process: Arc::new(Mutex::new(None)),
                boot_error: Mutex::new(None),
            })
            .collect();
        let mut w = Witness::new(&config);
        if scenario.planted.witness_grants_everyone {
            w.plant_bug_grant_everyone();
        }
        let witness = Arc::new(Mutex::new(w));
        let witness_up = Arc::new(Mutex::new(true));
        let submitted = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut hub_inboxes = Vec::new();
        let hubs: Vec<HubMachine> = HubId::all(config.hubs)
            .map(|id| {
                let (submit, rx) = mpsc::unbounded_channel();
                hub_inboxes.push(rx);
                HubMachine {
                    id,
                    clock: Arc::new(SimClock::new()),
                    up: Arc::new(std::sync::atomic::AtomicBool::new(true)),
                    inbox: Mutex::new(None),
                    submit,
                }
            })
            .collect();
        let witness_clock = match scenario.witness {
            crate::topology::WitnessHost::Hub1 => hubs[0].clock.clone(),
            crate::topology::WitnessHost::Own => Arc::new(SimClock::new()),
        };
        let world = World {
            planted: scenario.planted,
            config,
            net,
            obs,
            nodes,
            hubs,
            witness_clock,
            witness_host: scenario.witness,
            witness,
            witness_up,
            disk_capacity,
            submitted,
            hub_wakes: Default::default(),
            services: Mutex::new(Vec::new()),
        };
        world.net.set_tap(world.obs.clone());
        world.net.set_wan(scenario.wan.clone());
        world.net.set_witness_host(scenario.witness);
        world
            .obs
            .attach_disks([world.nodes[0].disk.clone(), world.nodes[1].disk.clone()]);
        world.obs.attach_clocks(
            world.hubs.iter().map(|h| h.clock.clone()).collect(),
            [world.nodes[0].clock.clone(), world.nodes[1].clock.clone()],
        );
        for m in &world.nodes {
            world.spawn_share(m);
        }
        world.spawn_witness();
        for (hub, submissions) in world.hubs.iter().zip(hub_inboxes) {
            let mut core = Hub::new(scenario.hub.clone());
            if scenario.planted.hub_skips_redelivery {
                core.plant_bug_skip_redelivery();
            }
            if scenario.planted.hub_evicts_early {
                core.plant_bug_evict_early();
            }
            world.spawn_hub(hub, core, submissions, scenario.workload.bodies);
        }
        world.spawn_clients(Workload::new(scenario));
        for id in NodeId::ALL {
            world.start(id);
        }
        world
    }

    fn machine(&self, id: NodeId) -> &NodeMachine {
        &self.nodes[id.index()]
    }

    pub fn node(&self, id: NodeId) -> Option<Arc<Mutex<Node>>> {
        self.machine(id)
            .process
            .lock()
            .expect("process")
            .as_ref()
            .map(|p| p.node.clone())
    }

    /// The node that serves clients: mounted, and its process running (a paused process
    /// serves nobody, whatever it last believed).
    pub fn serving(&self) -> Option<NodeId> {
        NodeId::ALL.into_iter().find(|&id| {
            let process = self.machine(id).process.lock().expect("process");
            process
                .as_ref()
                .is_some_and(|p| !*p.pause.borrow() && p.node.lock().expect("node").is_serving())
        })
    }

    /// Starts the node's services from its disk.
    pub fn start(&self, id: NodeId) {
        let m = self.machine(id);
        if m.process.lock().expect("process").is_some() {
            return;
        }
        self.net.set_down(Machine::node(id), false);
        let now = m.clock.now();
        if crate::truth::open_log_torn(&self.disk(id)) {
            self.obs.cover("torn open-log tail cut at boot");
        }
        let state = {
            let mut disk = m.disk.lock().expect("disk");
            boot(&mut *disk, &self.config, now.wall)
        };
        let state = match state {
            Ok(s) => {
                *m.boot_error.lock().expect("boot error") = None;
                if let Some(damage) = s.damaged() {
                    // The world's own boot read the disk: the damage is really there.
                    self.obs.cover("damaged copy found at boot");
                    self.obs
                        .trace(id.name(), &format!("boots with a damaged copy: {damage}"));
                }
                s
            }
            Err(e) => {
                // Like a service that fails to start (say on a full disk): the machine tries
                // again every ten seconds; liveness after healing judges whether it ever does.
                self.obs.trace(id.name(), &format!("cannot start: {e}"));
                *m.boot_error.lock().expect("boot error") = Some(e.to_string());
                return;
            }
        };
        // Services come up after a seed-drawn delay, so heartbeat phases differ by seed. The
        // node's timers are armed from the instant it is made, so it is made as of when its
        // services start: made as of now, every timer kept the phase of the moment the
        // machine booted, and every seed failed over in the same 15.1 s.
        let delay = Duration::from_millis(madsim::rand::thread_rng().gen_range(0..1_000));
        let starts = ccr_core::cluster::Now {
            mono: now.mono + delay.as_millis() as u64,
            wall: now.wall + delay.as_millis() as u64,
        };
        self.obs.setting(format!(
            "{id} services start {} ms after the machine",
            delay.as_millis()
        ));
        let mut node = Node::new(id, self.config.clone(), state, starts);
        node.plant_bugs(self.planted.nodes);
        let node = Arc::new(Mutex::new(node));
        let (tx, rx) = mpsc::unbounded_channel();
        let (admin, admin_rx) = mpsc::unbounded_channel();
        let (pause, paused) = tokio::sync::watch::channel(false);
        self.net.register(Endpoint::Node(id), tx);
        let disk: ccr_core::host::SharedDisk = m.disk.clone();
        let host = run_node(
            node.clone(),
            Inputs {
                inbox: rx,
                admin: admin_rx,
                paused,
            },
            HostEnv {
                disk,
                clock: m.clock.clone(),
                network: Arc::new(self.net.clone()),
                observer: self.obs.clone(),
            },
        );
        let task = tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            host.await
        });
        self.obs.process_started(id, false);
        self.obs.trace(id.name(), "process started");
        *m.process.lock().expect("process") = Some(Process {
            node,
            admin,
            pause,
            task,
        });
    }

    /// Retries the start of every node whose services failed to start (called each second;
    /// a retry happens every ten).
    pub fn retry_failed_starts(&self, second: u64) {
        for m in &self.nodes {
            let failed = m.boot_error.lock().expect("boot error").is_some();
            if failed && second.is_multiple_of(10) {
                self.start(m.id);
            }
        }
    }

    /// The liveness phase's operator, doing what CCR leaves to administrators (checked every
    /// ten seconds; each action is traced and counted):
    /// - a copy left suspended gets `Resume-StorageGroupCopy`;
    /// - a copy that says it needs a reseed (it diverged beyond lost-log resilience) gets
    ///   `Update-StorageGroupCopy`;
    /// - a database the mount dial keeps dismounted while the running peer holds no newer logs
    ///   (they are gone — say an earlier reseed discarded them), or holds them only on a
    ///   diverged branch whose copies fail inspection, gets `Restore-StorageGroupCopy`,
    ///   accepting the loss the dumpster then makes good;
    /// - a server an administrator stopped and never started gets
    ///   `Start-ClusteredMailboxServer` on a node that knows it is stopped.
    pub fn operator_actions(&self, second: u64) {
        if !second.is_multiple_of(10) {
            return;
        }
        let stopped = NodeId::ALL.into_iter().find(|&id| {
            self.node(id)
                .is_some_and(|n| n.lock().expect("node").cms_stopped())
        });
        if let Some(id) = stopped {
            self.obs.saw("operator-start", 1);
            self.obs.trace(
                "world",
                &format!("operator: Start-ClusteredMailboxServer on {id}, left stopped"),
            );
            self.start_cms(id);
        }
        for id in NodeId::ALL {
            let (Some(me), Some(peer)) = (self.node(id), self.node(id.peer())) else {
                continue;
            };
            let stuck = {
                let me = me.lock().expect("node");
                let peer = peer.lock().expect("node");
                // The logs the dial waits for are nowhere, or only on a branch that does not
                // chain onto this copy (the peer diverged; its copies fail inspection, as
                // the copy status's failed message says): no wait brings them.
                let diverged = me
                    .copy_status()
                    .failed_message
                    .is_some_and(|m| m.contains("does not match generation"));
                peer.role_name() == "passive"
                    && ((me.role_name() == "blocked" && peer.last_closed() <= me.last_closed())
                        || (matches!(me.role_name(), "blocked" | "draining") && diverged))
            };
            if stuck && second.is_multiple_of(30) {
                self.obs.saw("operator-restore", 1);
                self.obs.trace(
                    "world",
                    &format!("operator: Restore-StorageGroupCopy and Mount-Database on {id}: the dial waits for logs no running copy has"),
                );
                self.restore(id);
                self.admin(id, Admin::MountDatabase);
            }
        }
        for id in NodeId::ALL {
            let suspended = self.node(id).is_some_and(|n| {
                let n = n.lock().expect("node");
                n.role_name() == "passive"
                    && n.copy_status().summary
                        == ccr_core::cluster::status::SummaryCopyStatus::Suspended
            });
            if suspended {
                self.obs.saw("operator-resume", 1);
                self.obs.trace(
                    "world",
                    &format!("operator: Resume-StorageGroupCopy on {id}, left suspended"),
                );
                self.admin(id, Admin::ResumeCopy);
            }
        }
        for id in NodeId::ALL {
            let asks = self
                .node(id)
                .is_some_and(|n| n.lock().expect("node").reseed_required());
            if asks {
                self.obs.saw("operator-reseed", 1);
                self.obs.cover("copy asked for a reseed");
                self.obs.trace(
                    "world",
                    &format!(
                        "operator: Update-StorageGroupCopy on {id}, whose copy asks for a reseed"
                    ),
                );
                self.update_copy(id);
            }
        }
    }

    /// Ends the run: processes stop and the machines' disks and the messages in flight are
    /// dropped. madsim does not free the futures still pending when its runtime ends, and they
    /// hold this world's buffers: without this a 10,000-seed sweep would keep every run's
    /// disks (megabytes each) until the process exits.
    pub fn teardown(&self) {
        for m in &self.nodes {
            if let Some(p) = m.process.lock().expect("process").take() {
                p.task.abort();
            }
            m.disk.lock().expect("disk").wipe();
        }
        self.net.clear();
        for task in self.services.lock().expect("services").drain(..) {
            task.abort();
        }
    }

    /// Why `id`'s services last failed to start, if they are failing.
    pub fn boot_error(&self, id: NodeId) -> Option<String> {
        self.machine(id)
            .boot_error
            .lock()
            .expect("boot error")
            .clone()
    }

    /// The node's services die; the machine and its disk stay, and what the process handed
    /// the operating system, the operating system finishes (as after `kill -9`).
    pub fn crash(&self, id: NodeId) {
        if self.stop_process(id) {
            self.machine(id)
                .disk
                .lock()
                .expect("disk")
                .finish_in_flight();
            self.obs.trace(id.name(), "process crashed");
        }
    }

    /// Ends the node's process, if it runs; whether it did.
    fn stop_process(&self, id: NodeId) -> bool {
        let m = self.machine(id);
        let Some(p) = m.process.lock().expect("process").take() else {
            return false;
        };
        self.net.unregister(Endpoint::Node(id));
        p.task.abort();
        self.obs.process_gone(id);
        true
    }

    /// The machine loses power: its process dies with it, and the disk loses what was not
    /// durable — including work it had been handed and not finished.
    pub fn power_loss(&self, id: NodeId) {
        self.stop_process(id);
        self.net.set_down(Machine::node(id), true);
        let mut rng = rand::rngs::StdRng::seed_from_u64(madsim::rand::thread_rng().gen());
        let effect = self
            .machine(id)
            .disk
            .lock()
            .expect("disk")
            .power_loss(&mut rng);
        self.obs.power_lost(effect);
        self.obs
            .trace(id.name(), &format!("power lost: {effect:?}"));
    }

    fn pause(&self, id: NodeId, paused: bool) {
        if let Some(p) = self.machine(id).process.lock().expect("process").as_ref() {
            if *p.pause.borrow() == paused {
                return;
            }
            let _ = p.pause.send(paused);
            self.obs
                .truth()
                .process_paused(self.obs.elapsed_ms(), id, paused);
            if paused {
                // A stopped process accepts no writes, whatever it last believed; when it runs
                // again its first step re-checks quorum and reports what it is.
                self.obs.process_gone(id);
            }
            self.obs.trace(
                id.name(),
                if paused {
                    "process paused"
                } else {
                    "process resumed"
                },
            );
        }
    }

    fn corrupt_log(&self, id: NodeId, generation: Option<u32>) {
        use ccr_core::disk::{join, Disk};
        use ccr_core::storage::names::closed_log_name;
        let shared: Vec<u32> = {
            let mine = crate::truth::DiskFacts::read(&self.disk(id));
            let peer = crate::truth::DiskFacts::read(&self.disk(id.peer()));
            mine.closed
                .iter()
                .filter(|(g, crc)| peer.closed.get(g) == Some(crc))
                .map(|(g, _)| *g)
                .collect()
        };
        let drawn = (!shared.is_empty() && self.copy_intact(id.peer()))
            .then(|| shared[madsim::rand::thread_rng().gen_range(0..shared.len())]);
        let mut disk = self.machine(id).disk.lock().expect("disk");
        // Unless the scenario names one, damage only what another intact copy still holds.
        let Some(g) = generation.or(drawn) else {
            self.obs.trace(
                id.name(),
                "no log that another intact copy holds: nothing damaged at rest",
            );
            return;
        };
        let path = join(ccr_core::cluster::node::LOG_DIR, &closed_log_name(g));
        let len = disk.read(&path).map(|d| d.value.len()).unwrap_or(0);
        if len > 0 {
            let _ = disk.corrupt(&path, len / 2, 0x10);
            self.obs
                .trace(id.name(), &format!("corrupted {path} at rest"));
        }
    }

    /// Whether `id`'s copy is whole: its disk would boot without damage (tried on a copy of
    /// the disk), and its running process, if any, does not need a reseed (a copy stuck on a
    /// log it could not copy holds less than it should). Damage at rest on the other node is
    /// inside the envelope only while this holds.
    fn copy_intact(&self, id: NodeId) -> bool {
        let mut disk: ccr_core::disk::MemDisk = (**self.disk(id)).clone();
        disk.finish_in_flight();
        let boots = boot(&mut disk, &self.config, 0).is_ok_and(|b| b.damaged().is_none());
        let whole = self
            .node(id)
            .is_none_or(|n| !n.lock().expect("node").reseed_required());
        boots && whole
    }

    fn corrupt_database(&self, id: NodeId) {
        let path = ccr_core::cluster::node::DB_FILE;
        if !self.copy_intact(id.peer()) {
            self.obs.trace(
                id.name(),
                "the other copy is not intact: nothing damaged at rest",
            );
            return;
        }
        let mut disk = self.disk(id);
        let len = disk.durable(path).map_or(0, |b| b.len());
        // In the first half of the file, past its magic: damage a reader cannot take for a
        // torn tail unless it lands in the last frame.
        if len > 16 {
            let at = 12 + madsim::rand::thread_rng().gen_range(0..(len - 12) / 2);
            let _ = disk.corrupt(path, at, 0x20);
            self.obs
                .trace(id.name(), &format!("corrupted {path} at rest"));
        }
    }

    /// `Restore-StorageGroupCopy`: the administrator accepts the loss of whatever the copy
    /// lacks, so the mount that follows is judged as forced.
    fn restore(&self, id: NodeId) {
        self.obs.truth().restore_ordered(id);
        self.obs
            .takeover_watch()
            .restore_ordered(self.obs.elapsed_ms(), id);
        self.admin(id, Admin::RestoreCopy);
    }

    /// `Update-StorageGroupCopy`: the reseed discards the copy's logs when the seed arrives,
    /// which is not truncation.
    fn update_copy(&self, id: NodeId) {
        self.obs.truth().reseed_ordered(id);
        self.admin(id, Admin::UpdateCopy);
    }

    fn start_cms(&self, id: NodeId) {
        self.obs.truth().stop_ordered(false);
        self.admin(id, Admin::StartCms);
    }

    fn admin(&self, id: NodeId, cmd: Admin) {
        if let Some(p) = self.machine(id).process.lock().expect("process").as_ref() {
            let _ = p.admin.send(cmd);
        }
    }

    /// The machine's disk (ground truth for the checkers), brought up to now.
    pub fn disk(&self, id: NodeId) -> std::sync::MutexGuard<'_, SimDisk> {
        let mut disk = self.machine(id).disk.lock().expect("disk");
        disk.catch_up();
        disk
    }

    fn clock_of(&self, m: Machine) -> &SimClock {
        match m {
            Machine::Node1 => &self.nodes[0].clock,
            Machine::Node2 => &self.nodes[1].clock,
            Machine::Hub(h) => &self.hub(h).clock,
            Machine::Witness => &self.witness_clock,
            // The clients' clocks drive nothing the simulation checks.
            Machine::Client => &self.hubs[0].clock,
        }
    }

    /// Carries out one step of a scenario.
    pub fn apply(&self, fault: &Fault) {
        self.obs.trace("fault", &format!("{fault:?}"));
        self.obs.step(fault.label());
        // Who serves, as the wire shows it (not as the nodes say).
        let active = self.obs.truth().serving(self.obs.elapsed_ms());
        let role = match (fault.target_node(), active) {
            (None, _) if fault.kind().ends_with("-active") => "the active",
            (None, _) => "the cluster",
            (Some(n), Some(a)) if n == a => "the active",
            (Some(n), _) if self.node(n).is_none() => "a node that is down",
            (Some(_), _) => "the passive",
        };
        self.obs.cover(format!("fault {} on {role}", fault.kind()));
        if let Fault::Isolate { one_way: true, .. } = fault {
            // Heard by all, heard by none: the takeover guard's case when it is the active.
            self.obs.cover(format!("one-way isolation of {role}"));
        }
        let takes_active = |n: NodeId| active == Some(n);
        let loses_a_node = matches!(
            fault,
            Fault::Crash { .. }
                | Fault::PowerLoss { .. }
                | Fault::CrashActive
                | Fault::PowerLossActive
                | Fault::Pause { .. }
                | Fault::PauseActive
        );
        if loses_a_node && self.obs.truth().is_stopped() {
            self.obs.cover("stopped server's node lost while stopped");
        }
        self.tell_restart_watch(fault);
        match fault {
            Fault::Crash { node } => {
                if takes_active(*node) {
                    self.obs.active_lost(*node);
                }
                self.crash(*node)
            }
            Fault::PowerLoss { node } => {
                if takes_active(*node) {
                    self.obs.active_lost(*node);
                }
                self.power_loss(*node)
            }
            Fault::CrashActive
            | Fault::PowerLossActive
            | Fault::IsolateActive
            | Fault::PauseActive => {
                let Some(node) = active else { return };
                self.obs.active_lost(node);
                match fault {
                    Fault::CrashActive => self.crash(node),
                    Fault::PowerLossActive => self.power_loss(node),
                    Fault::PauseActive => self.pause(node, true),
                    _ => self.isolate(Machine::node(node), None, false),
                }
            }
            Fault::Pause { node } => {
                if takes_active(*node) {
                    self.obs.active_lost(*node);
                }
                self.pause(*node, true)
            }
            Fault::Resume { node } => self.pause(*node, false),
            Fault::CorruptLog { node, generation } => self.corrupt_log(*node, *generation),
            Fault::CorruptDatabase { node } => self.corrupt_database(*node),
            Fault::CorruptNextCopy { node } => self.net.corrupt_next_copy(Endpoint::Node(*node)),
            Fault::Restart { node } => self.start(*node),
            Fault::Partition {
                from,
                to,
                net,
                one_way,
            } => {
                for n in nets(*net) {
                    self.net.cut(*from, *to, n);
                    if !one_way {
                        self.net.cut(*to, *from, n);
                    }
                }
            }
            Fault::Isolate {
                machine,
                net,
                one_way,
            } => self.isolate(*machine, *net, *one_way),
            Fault::Heal => {
                self.net.heal();
                self.obs.set_lossy_links(false);
            }
            Fault::Link { net, link } => {
                self.net.set_link(*net, *link);
                self.obs.set_lossy_links(self.net.loses_datagrams());
            }
            Fault::DiskCapacity { node, bytes } => self
                .machine(*node)
                .disk
                .lock()
                .expect("disk")
                .set_capacity(*bytes),
            Fault::SlowDisk { node, factor } => {
                self.obs
                    .idle_roll_watch()
                    .disk_slowed(self.obs.elapsed_ms(), *node, *factor);
                self.machine(*node)
                    .disk
                    .lock()
                    .expect("disk")
                    .set_slowdown(*factor)
            }
            Fault::ClockJump { machine, ms } => self.clock_of(*machine).shift_wall(*ms),
            Fault::ClockDrift { machine, ppm } => self.clock_of(*machine).set_drift_ppm(*ppm),
            Fault::WitnessDown => *self.witness_up.lock().expect("witness") = false,
            Fault::WitnessUp => *self.witness_up.lock().expect("witness") = true,
            Fault::WitnessFileLost => self.witness.lock().expect("witness").lose_file(),
            Fault::HubDown { hub } => self.set_hub_up(*hub, false),
            Fault::HubUp { hub } => self.set_hub_up(*hub, true),
            Fault::Move { target, comment } => {
                if let Some(source) = active {
                    self.admin(
                        source,
                        Admin::Move {
                            target: *target,
                            comment: comment.clone(),
                        },
                    );
                }
            }
            Fault::SuspendCopy { node } => self.admin(*node, Admin::SuspendCopy { comment: None }),
            Fault::ResumeCopy { node } => self.admin(*node, Admin::ResumeCopy),
            Fault::UpdateCopy { node } => self.update_copy(*node),
            Fault::RestoreCopy { node } => self.restore(*node),
            Fault::MountDatabase { node } => self.admin(*node, Admin::MountDatabase),
            Fault::StopCms { node, reason } => {
                // Whatever happens to the server from now on is the administrator's doing
                // until it is started again: no failover is due.
                self.obs.truth().stop_ordered(true);
                self.obs.stop_failover_clock();
                self.admin(
                    *node,
                    Admin::StopCms {
                        reason: reason.clone(),
                    },
                )
            }
            Fault::StartCms { node } => self.start_cms(*node),
            Fault::Backup { node, kind } => {
                self.obs.truth().backup_ordered(*node);
                self.admin(*node, Admin::Backup { kind: *kind })
            }
        }
    }

    /// What the restart policy's checker must know to tell a failover for the store from
    /// one for another reason, and when a node's clock cannot be counted on.
    fn tell_restart_watch(&self, fault: &Fault) {
        let at = self.obs.elapsed_ms();
        let mut watch = self.obs.restart_watch();
        match fault {
            Fault::Partition { .. }
            | Fault::Isolate { .. }
            | Fault::IsolateActive
            | Fault::Link { .. } => watch.network_fault(at, true),
            Fault::Heal => watch.network_fault(at, false),
            Fault::ClockJump { machine, .. } | Fault::ClockDrift { machine, .. } => {
                for node in NodeId::ALL {
                    if Machine::node(node) == *machine {
                        watch.clock_jumped(at, node);
                    }
                }
            }
            Fault::Move { .. } => watch.move_ordered(at),
            Fault::StopCms { .. } => watch.stop_ordered(true),
            Fault::StartCms { .. } => watch.stop_ordered(false),
            _ => {}
        }
    }

    fn isolate(&self, machine: Machine, net: Option<Net>, one_way: bool) {
        for other in self.machines() {
            if other != machine {
                for n in nets(net) {
                    self.net.cut(machine, other, n);
                    if !one_way {
                        self.net.cut(other, machine, n);
                    }
                }
            }
        }
    }

    /// The liveness phase: faults stop, every machine is back, networks and witness healed.
    pub fn heal_everything(&self) {
        self.net.heal();
        self.obs.set_lossy_links(false);
        *self.witness_up.lock().expect("witness") = true;
        for hub in HubId::all(self.config.hubs) {
            self.set_hub_up(hub, true);
        }
        for m in &self.nodes {
            m.disk
                .lock()
                .expect("disk")
                .set_capacity(self.disk_capacity);
            m.disk.lock().expect("disk").set_slowdown(1);
            self.pause(m.id, false);
            self.start(m.id);
        }
        self.obs.trace("world", "healed: faults stopped");
    }

    /// The cluster right now, for the report's timeline: node1, node2, hub, clients.
    pub fn sample(&self, t_s: f64, acked: u64) -> Sample {
        let serving = self.serving();
        let mut machines = Vec::new();
        for m in &self.nodes {
            let process = m.process.lock().expect("process");
            let mut faults = self.net.impairments(Machine::node(m.id));
            let disk = m.disk.lock().expect("disk");
            if disk.used() >= disk.capacity() || disk.capacity() < self.disk_capacity {
                faults.push(format!("disk capacity {} KB", disk.capacity() / 1024));
            }
            if disk.slowdown() > 1 {
                faults.push(format!("disk {}x slower", disk.slowdown()));
            }
            drop(disk);
            let (drift, offset) = m.clock.error();
            if drift != 0 || offset != 0 {
                faults.push(format!("clock drift {drift} ppm, wall offset {offset} ms"));
            }
            let (state, copy_queue, replay_queue) = match process.as_ref() {
                None => {
                    faults.push("down".into());
                    ("down", 0, 0)
                }
                Some(p) if *p.pause.borrow() => {
                    faults.push("paused".into());
                    ("paused", 0, 0)
                }
                Some(p) => {
                    let node = p.node.lock().expect("node");
                    let role = node.role_name();
                    if role == "passive" {
                        let c = node.copy_status();
                        (role, c.copy_queue_length, c.replay_queue_length)
                    } else {
                        (role, 0, 0)
                    }
                }
            };
            machines.push(MachineSample {
                state: state.into(),
                faults,
                copy_queue,
                replay_queue,
            });
        }
        for hub in &self.hubs {
            let mut faults = self.net.impairments(Machine::Hub(hub.id));
            if !hub.is_up() {
                faults.push("hub transport down".into());
            }
            machines.push(MachineSample {
                state: if hub.is_up() { "hub up" } else { "hub down" }.into(),
                faults,
                copy_queue: 0,
                replay_queue: 0,
            });
        }
        let witness_up = *self.witness_up.lock().expect("witness");
        machines.push(MachineSample {
            state: if witness_up {
                "witness up"
            } else {
                "witness down"
            }
            .into(),
            faults: self.net.impairments(self.witness_host.machine()),
            copy_queue: 0,
            replay_queue: 0,
        });
        // Served: some hub the clients reach runs and reaches the serving node.
        let reaches_service = serving.is_some_and(|n| {
            self.hubs.iter().any(|h| {
                h.is_up()
                    && self
                        .net
                        .reachable(Machine::Client, Machine::Hub(h.id), Net::Public)
                    && self
                        .net
                        .reachable(Machine::Hub(h.id), Machine::node(n), Net::Public)
            })
        });
        machines.push(MachineSample {
            state: if reaches_service { "served" } else { "outage" }.into(),
            faults: self.net.impairments(Machine::Client),
            copy_queue: 0,
            replay_queue: 0,
        });
        Sample {
            t_s,
            machines,
            witness_owner: self
                .witness
                .lock()
                .expect("witness")
                .lock()
                .map(|l| l.holder.to_string()),
            serving: serving.map(|n| n.to_string()),
            acked,
            network_faults: self.net.link_faults(),
        }
    }

    pub fn submitted(&self) -> u64 {
        self.submitted.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The runtime work this run has done so far: every task wake of the machines' tasks,
    /// and how many of them were a message arriving.
    pub fn work(&self) -> Work {
        let (messages, postman) = self.net.work();
        let hub = self.hub_wakes.load(std::sync::atomic::Ordering::Relaxed);
        Work {
            messages,
            node_steps: self.obs.node_steps(),
            hub_wakes: hub,
            postman_wakes: postman,
        }
    }

    fn spawn_share(&self, m: &NodeMachine) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Incoming>();
        let id = m.id;
        self.net.register(Endpoint::Share(id), tx);
        let disk = m.disk.clone();
        let process = m.process.clone();
        let net = self.net.clone();
        let task = tokio::spawn(async move {
            while let Some(req) = rx.recv().await {
                let running = process
                    .lock()
                    .expect("process")
                    .as_ref()
                    .map(|p| p.node.lock().expect("node").stores_running())
                    .unwrap_or_default();
                let reply = {
                    let mut d = disk.lock().expect("disk");
                    share::serve(&mut *d, &req.msg, &running)
                };
                if let Some(reply) = reply {
                    net.send(Endpoint::Share(id), req.from, req.net, reply);
                }
            }
        });
        self.services.lock().expect("services").push(task);
    }

    /// Every machine of this topology, in the timeline's order: nodes, hubs, the witness's
    /// own machine if it has one, the clients.
    pub fn machines(&self) -> Vec<Machine> {
        let mut out = vec![Machine::Node1, Machine::Node2];
        out.extend(self.hubs.iter().map(|h| Machine::Hub(h.id)));
        if self.witness_host == crate::topology::WitnessHost::Own {
            out.push(Machine::Witness);
        }
        out.push(Machine::Client);
        out
    }

    /// The timeline's lanes, as `sample` fills them.
    pub fn lanes(&self) -> Vec<String> {
        let mut out = vec!["node1".to_string(), "node2".to_string()];
        out.extend(self.hubs.iter().map(|h| h.id.to_string()));
        out.push("witness".into());
        out.push("clients".into());
        out
    }

    fn hub(&self, id: HubId) -> &HubMachine {
        &self.hubs[usize::from(id.0.max(1) - 1).min(self.hubs.len() - 1)]
    }

    /// Stops or starts a hub transport service: while it is down nothing reaches it.
    fn set_hub_up(&self, id: HubId, up: bool) {
        self.obs.hub_up(id, up);
        let hub = self.hub(id);
        let was = hub.up.swap(up, std::sync::atomic::Ordering::Relaxed);
        if up && !was {
            if let Some(tx) = hub.inbox.lock().expect("hub").clone() {
                self.net.register(Endpoint::Hub(id), tx);
            }
        } else if !up && was {
            self.net.unregister(Endpoint::Hub(id));
        }
    }

    /// The file share witness, on its machine's clock.
    fn spawn_witness(&self) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Incoming>();
        self.net.register(Endpoint::Witness, tx);
        let net = self.net.clone();
        let clock = self.witness_clock.clone();
        let witness = self.witness.clone();
        let witness_up = self.witness_up.clone();
        let task = tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                if let (true, Endpoint::Node(from)) = (*witness_up.lock().expect("witness"), m.from)
                {
                    let mut w = witness.lock().expect("witness");
                    w.handle(clock.now(), from, m.msg);
                    while let Some((to, reply)) = w.poll_send() {
                        net.send(Endpoint::Witness, to, Net::Public, reply);
                    }
                }
            }
        });
        self.services.lock().expect("services").push(task);
    }

    /// The clients: each message goes to the next hub in turn, or, when that one is down or
    /// out of reach, to the next that is not (an SMTP client trying its next server). With
    /// none reachable the message is never handed over, and nobody is promised anything.
    fn spawn_clients(&self, mut workload: Workload) {
        let net = self.net.clone();
        let hubs: Vec<_> = self
            .hubs
            .iter()
            .map(|h| (h.id, h.up.clone(), h.submit.clone()))
            .collect();
        let submitted = self.submitted.clone();
        let wakes = self.hub_wakes.clone();
        let obs = self.obs.clone();
        let task = tokio::spawn(async move {
            let mut turn = 0usize;
            loop {
                tokio::time::sleep(workload.until_next()).await;
                wakes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                obs.spend();
                while let Some((id, size)) = workload.due() {
                    let n = hubs.len();
                    let pick = (0..n).map(|k| &hubs[(turn + k) % n]).find(|(h, up, _)| {
                        up.load(std::sync::atomic::Ordering::Relaxed)
                            && net.reachable(Machine::Client, Machine::Hub(*h), Net::Public)
                    });
                    turn = (turn + 1) % n;
                    if let Some((_, _, submit)) = pick {
                        if submit.send((id, size)).is_ok() {
                            submitted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                }
            }
        });
        self.services.lock().expect("services").push(task);
    }

    fn spawn_hub(
        &self,
        machine: &HubMachine,
        mut hub: Hub,
        mut submissions: mpsc::UnboundedReceiver<(MessageId, u32)>,
        bodies: bool,
    ) {
        let me = machine.id;
        let (hub_tx, mut hub_rx) = mpsc::unbounded_channel::<Incoming>();
        *machine.inbox.lock().expect("hub") = Some(hub_tx.clone());
        self.net.register(Endpoint::Hub(me), hub_tx);
        let hub_up = machine.up.clone();
        let net = self.net.clone();
        let obs = self.obs.clone();
        let clock = machine.clock.clone();
        let hub_wakes = self.hub_wakes.clone();
        let task = tokio::spawn(async move {
            loop {
                hub_wakes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                obs.spend();
                let up = hub_up.load(std::sync::atomic::Ordering::Relaxed);
                // A stopped service keeps its timers for when it runs again; it looks each
                // second whether it does.
                let sleep = if up {
                    hub.poll_timeout()
                        .map_or(Duration::from_secs(3600), |d| clock.until(d))
                } else {
                    Duration::from_secs(1)
                };
                tokio::select! {
                    biased;
                    Some(m) = hub_rx.recv() => {
                        let up = hub_up.load(std::sync::atomic::Ordering::Relaxed);
                        if let (true, Endpoint::Node(from)) = (up, m.from) {
                            hub.handle(clock.now(), from, m.msg);
                        }
                    }
                    // The clients chose this hub because it ran when they looked.
                    Some((id, size)) = submissions.recv() => hub.submit(clock.now(), id, size),
                    _ = tokio::time::sleep(sleep) => if up { hub.handle_timeout(clock.now()) },
                }
                while let Some(action) = hub.poll_action() {
                    match action {
                        // The hub host keeps the bodies: here they are derived from the id,
                        // as the clients made them.
                        HubAction::Send {
                            to,
                            net: n,
                            msg: Msg::Deliver { id, size, .. },
                        } if bodies => {
                            let body = ccr_core::storage::body::generate(id, size);
                            net.send(Endpoint::Hub(me), to, n, Msg::Deliver { id, size, body })
                        }
                        HubAction::Send { to, net: n, msg } => {
                            net.send(Endpoint::Hub(me), to, n, msg)
                        }
                        // Only an acknowledgement the client receives makes a promise.
                        HubAction::Acknowledged { id } => {
                            if net.reachable(Machine::Hub(me), Machine::Client, Net::Public) {
                                obs.acked(id)
                            }
                        }
                        // The checkers keep their own model of the dumpster, from the wire.
                        HubAction::Evicted { .. } => {}
                        HubAction::Redelivering { epoch, count } => {
                            obs.saw("redelivered", count as u64);
                            obs.trace(
                                &me.to_string(),
                                &format!("redelivering {count} message(s) from the dumpster for epoch {epoch}"),
                            )
                        }
                    }
                }
            }
        });
        self.services.lock().expect("services").push(task);
    }
}

/// The clients' mail: unique message ids at a steady rate until the faults stop.
struct Workload {
    every: Duration,
    size: u32,
    next: tokio::time::Instant,
    end: tokio::time::Instant,
    id: u64,
}

impl Workload {
    fn new(scenario: &Scenario) -> Workload {
        let every = Duration::from_secs_f64(1.0 / scenario.workload.messages_per_s.max(0.001));
        let now = tokio::time::Instant::now();
        Workload {
            every,
            size: scenario.workload.message_size,
            next: now + every,
            end: now + Duration::from_secs(scenario.duration_s),
            id: 0,
        }
    }

    fn until_next(&self) -> Duration {
        if self.next >= self.end {
            return Duration::from_secs(3600);
        }
        self.next
            .saturating_duration_since(tokio::time::Instant::now())
    }

    fn due(&mut self) -> Option<(MessageId, u32)> {
        if self.next >= self.end || self.next > tokio::time::Instant::now() {
            return None;
        }
        self.next += self.every;
        self.id += 1;
        Some((MessageId(self.id), self.size))
    }
}

fn nets(net: Option<Net>) -> Vec<Net> {
    net.map_or(Net::ALL.to_vec(), |n| vec![n])
}
