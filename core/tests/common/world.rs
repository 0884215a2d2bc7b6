//! A small in-test network of the cluster's state machines: two nodes with in-memory disks, the
//! witness and the hub, virtual time, and a network that can delay, reorder, drop, duplicate
//! and cut messages. No runtime: a priority queue of events and the machines' own timeouts.
//! It checks the safety properties after every step.

use std::collections::{BTreeMap, BTreeSet};

use ccr_core::cluster::boot::boot;
use ccr_core::cluster::config::ClusterConfig;
use ccr_core::cluster::hub::{group_of, Hub, HubAction, HubConfig};
use ccr_core::cluster::node::{Action, Admin, Input, Node, NodeEvent, PlantedBugs};
use ccr_core::cluster::share;
use ccr_core::cluster::wire::Msg;
use ccr_core::cluster::witness::Witness;
use ccr_core::cluster::{Endpoint, HubId, Net, NodeId, Now};
use ccr_core::disk::{execute_all, DiskError, MemDisk, Tear};
use ccr_core::storage::MessageId;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Machines, as the network sees them: each node machine, and the hub machine that also hosts
/// the witness share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Place {
    Node(NodeId),
    Hub,
}

fn place(e: Endpoint) -> Place {
    match e {
        Endpoint::Node(n) | Endpoint::Share(n) => Place::Node(n),
        Endpoint::Witness | Endpoint::Hub(_) => Place::Hub,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// The node's services die; the machine, its disk and its share stay up.
    Crash(NodeId),
    /// The machine loses power: services, share and unsynced writes are gone.
    PowerLoss(NodeId),
    Restart(NodeId),
    /// Cut messages from one machine to another on one network.
    Cut {
        from: Place,
        to: Place,
        net: Net,
    },
    HealAll,
    WitnessDown,
    WitnessUp,
    WitnessLosesFile,
    Admin(NodeId, Admin),
    /// Flip a bit in the next log file the node receives (a bad copy).
    CorruptNextCopy(NodeId),
    /// Set the node machine's disk capacity in bytes (below what it holds: a full disk).
    DiskCapacity(NodeId, u64),
    /// The node's process stops running (a gray failure): its inputs and disk completions
    /// wait, its timers do not fire, until `Resume`.
    Pause(NodeId),
    Resume(NodeId),
}

enum Ev {
    Msg {
        from: Endpoint,
        to: Endpoint,
        net: Net,
        msg: Msg,
    },
    DiskDone {
        node: NodeId,
        incarnation: u64,
        token: u64,
        result: Result<(), DiskError>,
    },
    Fault(Fault),
    Submit,
}

pub struct Machine {
    pub node: Option<Node>,
    pub disk: MemDisk,
    pub up: bool,
    incarnation: u64,
    disk_busy_until: u64,
    /// While paused: what arrived for the process, in order.
    held: Option<Vec<Ev>>,
}

pub struct NetConfig {
    pub max_delay_ms: u64,
    pub drop_rate: f64,
    pub dup_rate: f64,
}

/// A network that only delays, by up to 5 ms.
pub fn calm() -> NetConfig {
    NetConfig {
        max_delay_ms: 5,
        drop_rate: 0.0,
        dup_rate: 0.0,
    }
}

/// The default cluster with 100 kB logs, so that a minute of mail rolls many of them.
pub fn small_logs() -> ClusterConfig {
    let mut c = ClusterConfig::default();
    c.storage.log_size = 100_000;
    c
}

pub struct World {
    pub now: u64,
    seq: u64,
    rng: StdRng,
    pub config: ClusterConfig,
    pub machines: Vec<Machine>,
    pub witness: Witness,
    pub witness_up: bool,
    /// The site's hubs, `hubs[0]` being hub1; clients hand them mail in turn.
    pub hubs: Vec<Hub>,
    queue: BTreeMap<(u64, u64), Ev>,
    cuts: BTreeSet<(Place, Place, Net)>,
    pub net: NetConfig,
    pub acked: BTreeSet<MessageId>,
    next_message: u64,
    submit_every_ms: u64,
    submit_until: u64,
    pub events: Vec<(u64, NodeId, NodeEvent)>,
    pub redelivered: usize,
    /// Every `Delivered` a node sent: when, who, and the epoch it names.
    pub confirms: Vec<(u64, NodeId, u64)>,
    corrupt_next: BTreeSet<NodeId>,
}

impl World {
    pub fn new(seed: u64, config: ClusterConfig, net: NetConfig) -> World {
        let mut world = World {
            now: 0,
            seq: 0,
            rng: StdRng::seed_from_u64(seed),
            witness: Witness::new(&config),
            witness_up: true,
            hubs: HubId::all(config.hubs)
                .map(|_| Hub::for_groups(HubConfig::default(), config.storage_groups))
                .collect(),
            machines: Vec::new(),
            config,
            queue: BTreeMap::new(),
            cuts: BTreeSet::new(),
            net,
            acked: BTreeSet::new(),
            next_message: 1,
            submit_every_ms: 100,
            submit_until: 0,
            events: Vec::new(),
            redelivered: 0,
            confirms: Vec::new(),
            corrupt_next: BTreeSet::new(),
        };
        for _ in NodeId::ALL {
            world.machines.push(Machine {
                node: None,
                disk: MemDisk::default(),
                up: true,
                incarnation: 0,
                disk_busy_until: 0,
                held: None,
            });
        }
        for id in NodeId::ALL {
            world.start_node(id);
        }
        world
    }

    fn m(&mut self, id: NodeId) -> &mut Machine {
        &mut self.machines[id.index()]
    }

    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.machines[id.index()].node.as_ref()
    }

    pub fn plant(&mut self, id: NodeId, bugs: PlantedBugs) {
        if let Some(n) = self.m(id).node.as_mut() {
            n.plant_bugs(bugs);
        }
    }

    fn start_node(&mut self, id: NodeId) {
        let now = Now::at(self.now);
        let config = self.config.clone();
        let m = self.m(id);
        m.up = true;
        m.incarnation += 1;
        let state = boot(&mut m.disk, &config, now.wall)
            .unwrap_or_else(|e| panic!("{id} failed to boot: {e}"));
        m.node = Some(Node::new(id, config, state, now));
        self.drain(id);
    }

    /// Submit a message to the hub every `every_ms` until `until`.
    pub fn workload(&mut self, every_ms: u64, until: u64) {
        self.submit_every_ms = every_ms;
        self.submit_until = until;
        self.push(self.now + every_ms, Ev::Submit);
    }

    pub fn schedule(&mut self, at: u64, fault: Fault) {
        self.push(at, Ev::Fault(fault));
    }

    /// Cuts `net` between the two nodes, both ways, at `at`.
    pub fn cut_between_nodes(&mut self, at: u64, net: Net) {
        for (from, to) in [
            (NodeId::Node1, NodeId::Node2),
            (NodeId::Node2, NodeId::Node1),
        ] {
            self.schedule(
                at,
                Fault::Cut {
                    from: Place::Node(from),
                    to: Place::Node(to),
                    net,
                },
            );
        }
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.insert((at, self.seq), ev);
    }

    fn send(&mut self, from: Endpoint, to: Endpoint, net: Net, msg: Msg) {
        if self.cuts.contains(&(place(from), place(to), net)) {
            return;
        }
        if self.rng.random_bool(self.net.drop_rate) {
            return;
        }
        let copies = if self.rng.random_bool(self.net.dup_rate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = self.rng.random_range(1..=self.net.max_delay_ms.max(1));
            self.push(
                self.now + delay,
                Ev::Msg {
                    from,
                    to,
                    net,
                    msg: msg.clone(),
                },
            );
        }
    }

    /// Carries out what a node asked for.
    fn drain(&mut self, id: NodeId) {
        loop {
            let m = &mut self.machines[id.index()];
            let Some(node) = m.node.as_mut() else { return };
            let Some(action) = node.poll_action() else {
                return;
            };
            match action {
                Action::Send { to, net, msg } => {
                    if let Msg::Delivered { epoch, .. } = msg {
                        self.confirms.push((self.now, id, epoch));
                    }
                    self.send(Endpoint::Node(id), to, net, msg)
                }
                Action::Disk { token, ops } => {
                    // Ops reach the disk now; the node learns of it after the latency, in order.
                    let result = execute_all(&mut m.disk, &ops);
                    let latency = result.as_ref().map_or(0, |d| d.latency.as_millis() as u64);
                    let done = m.disk_busy_until.max(self.now) + latency;
                    m.disk_busy_until = done;
                    let incarnation = m.incarnation;
                    self.push(
                        done,
                        Ev::DiskDone {
                            node: id,
                            incarnation,
                            token,
                            result: result.map(|_| ()),
                        },
                    );
                }
                Action::Restart => {
                    let now = Now::at(self.now);
                    let bugs = node.planted();
                    match boot(&mut m.disk, &self.config, now.wall) {
                        Ok(state) => {
                            let mut fresh = Node::new(id, self.config.clone(), state, now);
                            fresh.plant_bugs(bugs);
                            m.node = Some(fresh);
                            // Completions still due belong to the old incarnation.
                            m.incarnation += 1;
                        }
                        Err(e) => node.restart_failed(now, e.to_string()),
                    }
                }
                Action::Event(e) => {
                    if let NodeEvent::Mounted { .. } = e {
                        let node = self.node(id).unwrap();
                        assert!(
                            node.has_quorum(Now::at(self.now)),
                            "{id} mounted without quorum"
                        );
                    }
                    if let (group, NodeEvent::LogCopied { generation }) = e.group() {
                        let generation = *generation;
                        let node = self.node(id).unwrap();
                        let closed = node.closed_logs_of(group);
                        assert!(
                            generation == 1
                                || closed.contains_key(&(generation - 1))
                                || node.database_of(group).applied() >= generation - 1,
                            "{id} accepted generation {generation} of group {group} without its \
                             predecessor"
                        );
                    }
                    self.events.push((self.now, id, e));
                }
            }
        }
    }

    fn drain_hub(&mut self, hub: HubId) {
        while let Some(a) = self.hubs[usize::from(hub.0) - 1].poll_action() {
            match a {
                HubAction::Send { to, net, msg } => self.send(Endpoint::Hub(hub), to, net, msg),
                HubAction::Acknowledged { id } => {
                    self.acked.insert(id);
                }
                HubAction::Redelivering { count, .. } => self.redelivered += count,
                HubAction::Evicted { .. } => {}
            }
        }
    }

    fn deliver(&mut self, from: Endpoint, to: Endpoint, net: Net, mut msg: Msg) {
        let now = Now::at(self.now);
        match to {
            Endpoint::Node(id) => {
                if let Msg::LogFile { bytes, .. } = &mut msg {
                    if self.corrupt_next.remove(&id) {
                        let at = bytes.len() / 2;
                        bytes[at] ^= 0x08;
                    }
                }
                if let Some(node) = self.m(id).node.as_mut() {
                    node.handle(now, Input::Message { from, net, msg });
                    self.drain(id);
                }
            }
            Endpoint::Share(id) => {
                let m = self.m(id);
                if !m.up {
                    return;
                }
                let running = m
                    .node
                    .as_ref()
                    .map(|n| n.stores_running())
                    .unwrap_or_default();
                if let Some(reply) = share::serve(&mut m.disk, &msg, &running) {
                    self.send(to, from, net, reply);
                }
            }
            Endpoint::Witness => {
                if let (true, Endpoint::Node(id)) = (self.witness_up, from) {
                    self.witness.handle(now, id, msg);
                    while let Some((to, reply)) = self.witness.poll_send() {
                        self.send(Endpoint::Witness, to, Net::Public, reply);
                    }
                }
            }
            Endpoint::Hub(hub) => {
                if let Endpoint::Node(id) = from {
                    self.hubs[usize::from(hub.0) - 1].handle(now, id, msg);
                    self.drain_hub(hub);
                }
            }
        }
    }

    fn fault(&mut self, fault: Fault) {
        match fault {
            Fault::Crash(id) => self.m(id).node = None,
            Fault::PowerLoss(id) => {
                let mut rng = StdRng::seed_from_u64(self.rng.random());
                let m = self.m(id);
                m.node = None;
                m.up = false;
                m.disk.crash(Tear::Torn(&mut rng));
            }
            Fault::Restart(id) => {
                if self.m(id).node.is_none() {
                    self.start_node(id);
                }
            }
            Fault::Cut { from, to, net } => {
                self.cuts.insert((from, to, net));
            }
            Fault::HealAll => self.cuts.clear(),
            Fault::WitnessDown => self.witness_up = false,
            Fault::WitnessUp => self.witness_up = true,
            Fault::WitnessLosesFile => self.witness.lose_file(),
            Fault::CorruptNextCopy(id) => {
                self.corrupt_next.insert(id);
            }
            Fault::DiskCapacity(id, bytes) => self.m(id).disk.set_capacity(bytes),
            Fault::Pause(id) => {
                let m = self.m(id);
                m.held.get_or_insert_with(Vec::new);
            }
            Fault::Resume(id) => {
                // What waited is handled now, in the order it arrived.
                for ev in self.m(id).held.take().unwrap_or_default() {
                    self.step(ev);
                }
            }
            Fault::Admin(id, cmd) => {
                let now = Now::at(self.now);
                if let Some(node) = self.m(id).node.as_mut() {
                    node.handle(now, Input::Admin(cmd));
                    self.drain(id);
                }
            }
        }
    }

    /// Never two nodes serving at the same instant. A paused process accepts no writes; its
    /// first step after resuming re-checks quorum.
    fn check_single_active(&self) {
        for group in 0..self.config.storage_groups {
            let serving: Vec<NodeId> = NodeId::ALL
                .into_iter()
                .filter(|&id| self.machines[id.index()].held.is_none())
                .filter(|&id| self.node(id).is_some_and(|n| n.is_serving_group(group)))
                .collect();
            assert!(
                serving.len() <= 1,
                "split brain at {} ms: {serving:?} both serving group {group}; last events: \
                 {:#?}",
                self.now,
                &self.events[self.events.len().saturating_sub(12)..]
            );
        }
    }

    pub fn run_until(&mut self, end: u64) {
        loop {
            let timers = NodeId::ALL
                .into_iter()
                .filter(|&id| self.machines[id.index()].held.is_none())
                .filter_map(|id| self.node(id).and_then(|n| n.poll_timeout()))
                .chain(self.hubs.iter().filter_map(|h| h.poll_timeout()))
                .min();
            let next_event = self.queue.keys().next().map(|k| k.0);
            let t = match (timers, next_event) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => a.or(b).unwrap_or(u64::MAX),
            };
            if t > end {
                self.now = end;
                return;
            }
            self.now = self.now.max(t);
            if next_event == Some(t) {
                let (_, ev) = self.queue.pop_first().expect("non-empty");
                self.step(ev);
            } else {
                let now = Now::at(self.now);
                for id in NodeId::ALL {
                    if self.m(id).held.is_some() {
                        continue;
                    }
                    if let Some(node) = self.m(id).node.as_mut() {
                        if node.poll_timeout().is_some_and(|d| d <= now.mono) {
                            node.handle_timeout(now);
                            self.drain(id);
                        }
                    }
                }
                for hub in HubId::all(self.config.hubs) {
                    let h = &mut self.hubs[usize::from(hub.0) - 1];
                    if h.poll_timeout().is_some_and(|d| d <= now.mono) {
                        h.handle_timeout(now);
                        self.drain_hub(hub);
                    }
                }
            }
            self.check_single_active();
        }
    }

    fn step(&mut self, ev: Ev) {
        let for_node = match &ev {
            Ev::Msg {
                to: Endpoint::Node(id),
                ..
            } => Some(*id),
            Ev::DiskDone { node, .. } => Some(*node),
            _ => None,
        };
        if let Some(held) = for_node.and_then(|id| self.m(id).held.as_mut()) {
            held.push(ev);
            return;
        }
        match ev {
            Ev::Msg { from, to, net, msg } => self.deliver(from, to, net, msg),
            Ev::DiskDone {
                node,
                incarnation,
                token,
                result,
            } => {
                let now = Now::at(self.now);
                let m = self.m(node);
                if m.incarnation == incarnation {
                    if let Some(n) = m.node.as_mut() {
                        n.handle(now, Input::DiskDone { token, result });
                        self.drain(node);
                    }
                }
            }
            Ev::Fault(f) => self.fault(f),
            Ev::Submit => {
                let id = MessageId(self.next_message);
                self.next_message += 1;
                let hub = HubId(1 + (id.0 % self.hubs.len() as u64) as u8);
                self.hubs[usize::from(hub.0) - 1].submit(Now::at(self.now), id, 20_000);
                self.drain_hub(hub);
                if self.now + self.submit_every_ms <= self.submit_until {
                    self.push(self.now + self.submit_every_ms, Ev::Submit);
                }
            }
        }
    }

    /// Faults stop: every machine back, networks and witness healed.
    pub fn heal_everything(&mut self) {
        self.cuts.clear();
        self.witness_up = true;
        self.net.drop_rate = 0.0;
        self.net.dup_rate = 0.0;
        for id in NodeId::ALL {
            self.fault(Fault::Resume(id));
            if self.node(id).is_none() {
                self.start_node(id);
            }
        }
    }

    pub fn serving(&self) -> Vec<NodeId> {
        self.serving_group(0)
    }

    /// The nodes serving storage group `group`.
    pub fn serving_group(&self, group: u8) -> Vec<NodeId> {
        NodeId::ALL
            .into_iter()
            .filter(|&id| self.node(id).is_some_and(|n| n.is_serving_group(group)))
            .collect()
    }

    /// After healing, in every storage group: one node serves every acknowledged message of
    /// the group exactly once, the other is a healthy passive caught up to the same digest.
    pub fn check_settled(&self) {
        for group in 0..self.config.storage_groups {
            self.check_group_settled(group);
        }
    }

    fn check_group_settled(&self, group: u8) {
        let serving = self.serving_group(group);
        assert_eq!(
            serving.len(),
            1,
            "expected one serving node, got {serving:?}; events: {:#?}",
            &self.events[self.events.len().saturating_sub(20)..]
        );
        let active = self.node(serving[0]).unwrap();
        let groups = self.config.storage_groups;
        let missing: Vec<_> = self
            .acked
            .iter()
            .filter(|id| group_of(**id, groups) == group)
            .filter(|id| !active.database_of(group).contains(**id))
            .take(10)
            .collect();
        assert!(
            missing.is_empty(),
            "acknowledged messages lost: {missing:?} (of {} acked)",
            self.acked.len()
        );
        let passive = self.node(serving[0].peer()).unwrap();
        let status = passive.copy_status_of(group);
        assert_eq!(
            (status.copy_queue_length, status.replay_queue_length),
            (0, 0),
            "passive not caught up: {status:?}"
        );
        assert_eq!(
            format!("{:?}", status.summary),
            "Healthy",
            "passive copy: {status:?}"
        );
        let last_closed = active
            .closed_logs_of(group)
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0);
        assert_eq!(passive.database_of(group).applied(), last_closed);
        assert_eq!(
            passive.database_of(group).digest(),
            active.database_of(group).complete_digest()
        );
        for (g, c) in passive.closed_logs_of(group) {
            if let Some(a) = active.closed_logs_of(group).get(g) {
                assert_eq!(
                    a, c,
                    "generation {g} of group {group} differs between the copies"
                );
            }
        }
    }

    /// Events of one kind, by a predicate.
    pub fn count(&self, pred: impl Fn(&NodeEvent) -> bool) -> usize {
        self.events.iter().filter(|(_, _, e)| pred(e)).count()
    }

    pub fn mounts(&self) -> Vec<(u64, NodeId, u32)> {
        self.events
            .iter()
            .filter_map(|(t, id, e)| match e.group().1 {
                NodeEvent::Mounted { lost, .. } => Some((*t, *id, *lost)),
                _ => None,
            })
            .collect()
    }
}
