//! Watches a run: records the trace (and its hash) and checks the invariants as events happen.
//! The first violation stops the run.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use ccr_core::cluster::config::ClusterConfig;
use ccr_core::cluster::hub::HubConfig;
use ccr_core::cluster::node::{Node, NodeEvent};
use ccr_core::cluster::wire::{BackupKind, Msg};
use ccr_core::cluster::{Endpoint, HubId, NodeId, Now};
use ccr_core::host::Observer;
use ccr_core::storage::MessageId;
use ccr_reports::record::{Mark, Window};

use crate::disk::SimDisk;
use crate::idle_roll_watch::IdleRollWatch;
use crate::restart_watch::RestartWatch;
use crate::scenario::Expect;
use crate::takeover_watch::TakeoverWatch;
use crate::truth::{DiskFacts, PendingMount, Truth};

pub use ccr_reports::record::{Invariant, Violation};

const KEEP_LAST: usize = 40;

struct State {
    /// Hub services stopped right now, and redelivery requests (hub, node, request) sent to
    /// one of them while it was: for the coverage of a redelivery a hub carries out late.
    hubs_down: BTreeSet<HubId>,
    asked_while_down: BTreeSet<(HubId, NodeId, u64)>,
    hash: u64,
    lines: u64,
    last: VecDeque<String>,
    full: Option<Vec<String>>,
    serving: BTreeMap<NodeId, bool>,
    /// When a fault took the active away, and which node it was.
    active_lost_at: Option<(u64, NodeId)>,
    failovers: Vec<f64>,
    acked: BTreeSet<MessageId>,
    violation: Option<Violation>,
    /// How often each kind of notable event happened (for scenario expectations).
    seen: BTreeMap<&'static str, u64>,
    steps: Vec<Mark>,
    windows: Vec<Window>,
    /// Heartbeat datagrams are being lost on some network right now.
    lossy_links: bool,
    /// When each node last started a takeover.
    takeover_started: BTreeMap<NodeId, u64>,
    /// What the seed expanded to, in words (also traced).
    settings: Vec<String>,
    /// Situations reached (see `ccr_reports::record::SITUATIONS`).
    coverage: BTreeMap<String, u64>,
}

/// What is known of a run that went over budget.
#[derive(Debug, Clone)]
pub struct StuckReport {
    pub violation: Violation,
    pub trace_hash: u64,
    pub sim_seconds: f64,
    pub acked: usize,
    pub trace: Option<Vec<String>>,
    pub settings: Vec<String>,
}

pub struct Obs {
    start: tokio::time::Instant,
    expect: Expect,
    /// What the simulated world itself recorded; every invariant is judged from it.
    truth: Truth,
    /// The restart policy, judged from the restarts the world carried out.
    restarts: Mutex<RestartWatch>,
    /// The idle log roll, judged from the confirmations on the wire and the disks.
    idle_roll: Mutex<IdleRollWatch>,
    /// When a passive may begin a takeover, judged from the heartbeats on the wire.
    takeover: Mutex<TakeoverWatch>,
    /// The node machines' disks, read (never asked) when a mount is judged.
    disks: std::sync::OnceLock<[Arc<std::sync::Mutex<SimDisk>>; 2]>,
    /// The hub machines' clocks (hub1 first) and the nodes' (time-window redelivery is
    /// judged by them).
    #[allow(clippy::type_complexity)]
    clocks: std::sync::OnceLock<(
        Vec<Arc<crate::clock::SimClock>>,
        [Arc<crate::clock::SimClock>; 2],
    )>,
    /// How long a node waits without heartbeats before it calls its peer down.
    detection_ms: u64,
    /// `CCR_SIM_LIVE_TRACE=1`: every trace line also goes to stderr as it happens (for a run
    /// that never ends, whose trace file would never be written).
    live: bool,
    /// Node steps so far (every wake of a node's host), for the benchmarks.
    node_steps: std::sync::atomic::AtomicU64,
    /// The run's budget of events and wall time.
    budget: crate::budget::Budget,
    /// Where a run over budget leaves what the runner needs for its record (the simulation
    /// unwinds, so nothing else comes back).
    stuck_out: std::sync::OnceLock<Arc<std::sync::Mutex<Option<StuckReport>>>>,
    state: Mutex<State>,
}

fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
    }
    hash
}

impl Obs {
    pub fn new(
        config: &ClusterConfig,
        hub: &HubConfig,
        expect: Expect,
        keep_full_trace: bool,
        sim_seconds: u64,
    ) -> Obs {
        Obs {
            start: tokio::time::Instant::now(),
            expect,
            truth: Truth::new(config, hub),
            restarts: Mutex::new(RestartWatch::new(config)),
            idle_roll: Mutex::new(IdleRollWatch::new(config)),
            takeover: Mutex::new(TakeoverWatch::new(config)),
            disks: Default::default(),
            clocks: Default::default(),
            detection_ms: config.peer_down_after_ms(),
            live: std::env::var_os("CCR_SIM_LIVE_TRACE").is_some(),
            node_steps: Default::default(),
            budget: crate::budget::Budget::new(sim_seconds, crate::budget::limits()),
            stuck_out: Default::default(),
            state: Mutex::new(State {
                hubs_down: BTreeSet::new(),
                asked_while_down: BTreeSet::new(),
                hash: 0xCBF2_9CE4_8422_2325,
                lines: 0,
                last: VecDeque::new(),
                full: keep_full_trace.then(Vec::new),
                serving: BTreeMap::new(),
                active_lost_at: None,
                failovers: Vec::new(),
                acked: BTreeSet::new(),
                violation: None,
                seen: BTreeMap::new(),
                steps: Vec::new(),
                windows: Vec::new(),
                lossy_links: false,
                takeover_started: BTreeMap::new(),
                settings: Vec::new(),
                coverage: BTreeMap::new(),
            }),
        }
    }

    pub fn node_steps(&self) -> u64 {
        self.node_steps.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn elapsed_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Appends a line to the trace, stamped with virtual time and the machine.
    pub fn trace(&self, machine: &str, what: &str) {
        let line = format!(
            "{:>10.3}s {machine:<6} {what}",
            self.elapsed_ms() as f64 / 1000.0
        );
        if self.live {
            eprintln!("{line}");
        }
        let mut s = self.state.lock().expect("obs");
        s.hash = fnv(s.hash, line.as_bytes());
        s.lines += 1;
        if s.last.len() == KEEP_LAST {
            s.last.pop_front();
        }
        s.last.push_back(line.clone());
        if let Some(full) = &mut s.full {
            full.push(line);
        }
    }

    pub fn violate(&self, invariant: Invariant, message: String) {
        self.trace(
            "check",
            &format!("VIOLATION {}: {message}", invariant.name()),
        );
        let mut s = self.state.lock().expect("obs");
        if s.violation.is_none() {
            s.violation = Some(Violation {
                invariant,
                at_s: self.elapsed_ms() as f64 / 1000.0,
                message,
                last_events: s.last.iter().cloned().collect(),
            });
        }
    }

    pub fn violation(&self) -> Option<Violation> {
        self.state.lock().expect("obs").violation.clone()
    }

    pub fn acked(&self, id: MessageId) {
        self.state.lock().expect("obs").acked.insert(id);
    }

    /// Whether a network is losing datagrams: heartbeats lost before a crash let the
    /// survivor's detection start early, so a failover may then beat the 10 s lower bound
    /// without anything being wrong (the upper bound still holds).
    pub fn set_lossy_links(&self, lossy: bool) {
        self.state.lock().expect("obs").lossy_links = lossy;
    }

    /// Counts a simulated event (a task wake) against the run's budget. Past it, the run
    /// ends here with outcome `stuck`: the simulation unwinds (every task of a stuck run may
    /// be part of the loop, so nothing short of unwinding stops it) and the runner builds the
    /// record from what this observer kept.
    pub fn spend(&self) {
        if let Some(why) = self.budget.spend(self.elapsed_ms()) {
            let why = format!("{why}; {} of the events were node steps", self.node_steps());
            self.violate(Invariant::Stuck, why);
            if let Some(out) = self.stuck_out.get() {
                *out.lock().expect("stuck") = Some(StuckReport {
                    violation: self.violation().expect("just recorded"),
                    trace_hash: self.hash(),
                    sim_seconds: self.elapsed_ms() as f64 / 1000.0,
                    acked: self.acked_count(),
                    trace: self.full_trace(),
                    settings: self.settings(),
                });
            }
            std::panic::resume_unwind(Box::new(crate::budget::Stuck));
        }
    }

    /// Where to leave the report if this run goes over budget.
    pub fn report_stuck_to(&self, out: Arc<std::sync::Mutex<Option<StuckReport>>>) {
        let _ = self.stuck_out.set(out);
    }

    /// Records something the seed decided (a boot instant, a step's jittered time).
    pub fn setting(&self, what: String) {
        self.trace("seed", &what);
        self.state.lock().expect("obs").settings.push(what);
    }

    /// Counts a situation the run reached.
    pub fn cover(&self, situation: impl Into<String>) {
        *self
            .state
            .lock()
            .expect("obs")
            .coverage
            .entry(situation.into())
            .or_default() += 1;
    }

    /// A hub's transport service stopped (`false`) or runs again.
    pub fn hub_up(&self, hub: HubId, up: bool) {
        let mut s = self.state.lock().expect("obs");
        if up {
            s.hubs_down.remove(&hub);
        } else {
            s.hubs_down.insert(hub);
        }
        let down = s.hubs_down.len();
        drop(s);
        self.restart_watch().hubs_down(self.elapsed_ms(), down);
    }

    /// `node`'s process started, by the world (`in_place` false: after a crash or a power
    /// loss) or by its host after a store failure: what its earlier process was told, and
    /// had not yet acted on, died with it.
    pub fn process_started(&self, node: NodeId, in_place: bool) {
        let at = self.elapsed_ms();
        self.truth.process_started(node);
        if !in_place {
            self.restart_watch().world_started(at, node);
        }
        self.idle_roll_watch().restarted(node);
        self.takeover_watch().started(at, node);
    }

    /// The restart policy's checker, for the world to tell what it did.
    pub fn restart_watch(&self) -> std::sync::MutexGuard<'_, RestartWatch> {
        self.restarts.lock().expect("restart watch")
    }

    /// The takeover-timing checker, for the world to tell what it did.
    pub fn takeover_watch(&self) -> std::sync::MutexGuard<'_, TakeoverWatch> {
        self.takeover.lock().expect("takeover watch")
    }

    /// The idle log roll's checker, for the world to tell what it did.
    pub fn idle_roll_watch(&self) -> std::sync::MutexGuard<'_, IdleRollWatch> {
        self.idle_roll.lock().expect("idle roll watch")
    }

    /// Confirmations whose idle roll has run out: the node that served all along must hold
    /// their generation as a closed log by now.
    fn judge_idle_roll(&self, now: u64) {
        let due = self.idle_roll_watch().due(now);
        for d in due {
            if !self.truth.served_throughout(d.node, d.confirmed_at, now) {
                continue;
            }
            self.cover("idle roll deadline judged on a serving node");
            let Some(disks) = self.disks.get() else {
                return;
            };
            let closed = {
                let mut disk = disks[d.node.index()].lock().expect("disk");
                disk.catch_up();
                crate::truth::last_closed_quick(&disk)
            };
            if closed < d.generation {
                let interval = self.idle_roll_watch().interval_ms().unwrap_or(0);
                self.violate(
                    Invariant::IdleLogRoll,
                    format!(
                        "{} confirmed mail in generation {:#x} at {:.3} s and served without a \
                         break since, yet {:.0} s later its newest closed log is {closed:#x}: \
                         the idle roll ({} s) should have closed it",
                        d.node,
                        d.generation,
                        d.confirmed_at as f64 / 1000.0,
                        now.saturating_sub(d.confirmed_at) as f64 / 1000.0,
                        interval / 1000,
                    ),
                );
                return;
            }
        }
    }

    /// A node machine's wall clock now, if the clocks are attached.
    fn node_wall(&self, node: NodeId) -> u64 {
        self.clocks.get().map_or(0, |(_, nodes)| {
            ccr_core::host::Clock::now(nodes[node.index()].as_ref()).wall
        })
    }

    pub fn coverage(&self) -> BTreeMap<String, u64> {
        self.state.lock().expect("obs").coverage.clone()
    }

    pub fn settings(&self) -> Vec<String> {
        self.state.lock().expect("obs").settings.clone()
    }

    pub fn truth(&self) -> &Truth {
        &self.truth
    }

    /// The node machines' disks, for judging mounts against what they hold.
    pub fn attach_disks(&self, disks: [Arc<std::sync::Mutex<SimDisk>>; 2]) {
        let _ = self.disks.set(disks);
    }

    /// The hub machine's clock and the nodes': time-window redelivery is judged by them.
    pub fn attach_clocks(
        &self,
        hubs: Vec<Arc<crate::clock::SimClock>>,
        nodes: [Arc<crate::clock::SimClock>; 2],
    ) {
        let _ = self.clocks.set((hubs, nodes));
    }

    /// Both node machines' disks, brought up to now (node1's, node2's).
    fn both_disks(&self) -> Option<[std::sync::MutexGuard<'_, SimDisk>; 2]> {
        let disks = self.disks.get()?;
        Some(disks.each_ref().map(|d| {
            let mut d = d.lock().expect("disk");
            d.catch_up();
            d
        }))
    }

    fn facts(&self, node: NodeId) -> Option<DiskFacts> {
        let disks = self.disks.get()?;
        let mut disk = disks[node.index()].lock().expect("disk");
        disk.catch_up();
        Some(DiskFacts::read(&disk))
    }

    /// A machine lost power; what it did to the disk's work is coverage.
    pub fn power_lost(&self, effect: ccr_core::disk::PowerLossEffect) {
        if effect.undone_ops > 0 {
            self.cover("power loss inside disk work");
        }
        if effect.undone_syncs > 0 {
            self.cover("power loss undid a sync in flight");
        }
        if effect.torn_files > 0 {
            self.cover("power loss tore an unsynced write");
        }
        if effect.dropped_bytes > 0 {
            self.cover("power loss dropped unsynced bytes");
        }
    }

    pub fn acked_count(&self) -> usize {
        self.state.lock().expect("obs").acked.len()
    }

    pub fn acked_ids(&self) -> BTreeSet<MessageId> {
        self.state.lock().expect("obs").acked.clone()
    }

    /// A node's process ended or stopped running: it accepts no writes.
    pub fn process_gone(&self, node: NodeId) {
        self.state.lock().expect("obs").serving.insert(node, false);
    }

    /// A fault took the serving node away: the failover clock starts.
    pub fn active_lost(&self, node: NodeId) {
        if self.truth.is_stop_ordered() {
            // The administrator stopped the server: no failover is due.
            return;
        }
        let now = self.elapsed_ms();
        let mut s = self.state.lock().expect("obs");
        if s.active_lost_at.is_none() {
            s.active_lost_at = Some((now, node));
        }
    }

    /// Checks for a failover that should have happened by now.
    pub fn check_overdue(&self) {
        let lost = self.state.lock().expect("obs").active_lost_at;
        if let Some((at, _)) = lost {
            let waited = (self.elapsed_ms() - at) as f64 / 1000.0;
            if self.expect.failover != Some(false) && waited > self.expect.failover_max_s {
                self.violate(
                    Invariant::FailoverWindow,
                    format!("no node mounted {waited:.1} s after the active was lost (window {:.0}-{:.0} s)",
                        self.expect.failover_min_s, self.expect.failover_max_s),
                );
            }
        }
    }

    pub fn failovers(&self) -> Vec<f64> {
        self.state.lock().expect("obs").failovers.clone()
    }

    /// Nothing is pending any more (faults have stopped; the liveness phase runs).
    pub fn stop_failover_clock(&self) {
        self.state.lock().expect("obs").active_lost_at = None;
    }

    /// Counts a notable event (`redelivered` counts messages).
    pub fn saw(&self, what: &'static str, n: u64) {
        *self
            .state
            .lock()
            .expect("obs")
            .seen
            .entry(what)
            .or_default() += n;
    }

    pub fn seen(&self, what: &str) -> u64 {
        self.state
            .lock()
            .expect("obs")
            .seen
            .get(what)
            .copied()
            .unwrap_or(0)
    }

    /// A scenario step was carried out (for the report's timeline).
    pub fn step(&self, label: String) {
        let t_s = self.elapsed_ms() as f64 / 1000.0;
        self.state
            .lock()
            .expect("obs")
            .steps
            .push(Mark { t_s, label });
    }

    pub fn steps(&self) -> Vec<Mark> {
        self.state.lock().expect("obs").steps.clone()
    }

    pub fn failover_windows(&self) -> Vec<Window> {
        self.state.lock().expect("obs").windows.clone()
    }

    pub fn hash(&self) -> u64 {
        self.state.lock().expect("obs").hash
    }

    pub fn full_trace(&self) -> Option<Vec<String>> {
        self.state.lock().expect("obs").full.clone()
    }
}

impl Observer for Obs {
    fn node_event(&self, node: NodeId, _now: Now, event: &NodeEvent) {
        if matches!(event, NodeEvent::LogReplayed { .. }) {
            return;
        }
        self.trace(node.name(), &format!("{event:?}"));
        match event {
            NodeEvent::StayDismounted { .. } => self.cover("dial kept a database dismounted"),
            NodeEvent::MoveRefused { .. } => self.cover("move refused"),
            NodeEvent::CmsStopped { .. } if self.truth.stop_returned(self.elapsed_ms()) => {
                self.cover("clustered mailbox server stopped by an administrator")
            }
            NodeEvent::TakeoverStarted => {
                let now = self.elapsed_ms();
                self.state
                    .lock()
                    .expect("obs")
                    .takeover_started
                    .insert(node, now);
            }
            NodeEvent::Diverged { outcome } if outcome.contains("beyond lost-log resilience") => {
                self.cover("copy asked for a reseed")
            }
            NodeEvent::Diverged { outcome } if outcome.starts_with("rolled back") => {
                self.cover("diverged logs rolled back")
            }
            _ => {}
        }
        match event {
            NodeEvent::Mounted { view, lost, .. } => {
                self.truth.node_reported_mount(node, view.epoch, *lost)
            }
            NodeEvent::ServicesRestarted => {
                self.cover("failed store restarted in place");
            }
            NodeEvent::BackupTaken { kind, checkpoint } => {
                self.cover(match kind {
                    BackupKind::Full => "full backup taken",
                    BackupKind::Incremental => "incremental backup taken",
                });
                if let Some([d1, d2]) = self.both_disks() {
                    let verdicts = self
                        .truth
                        .backup_taken(node, *kind, *checkpoint, [&d1, &d2]);
                    drop((d1, d2));
                    for (invariant, message) in verdicts {
                        self.violate(invariant, message);
                    }
                }
            }
            _ => {}
        }
    }

    fn stepped(&self, node: &Node, _now: Now) {
        if let Some(disks) = self.disks.get() {
            let (removed, refused) = {
                let mut disk = disks[node.id().index()].lock().expect("disk");
                (disk.take_removed_logs(), disk.take_refused_full())
            };
            if refused > 0 {
                self.cover("disk full: a write refused");
                self.restart_watch()
                    .disk_refused(self.elapsed_ms(), node.id());
            }
            if !removed.is_empty() {
                self.judge_removals(node.id(), &removed);
            }
        }
        self.node_steps
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.spend();
    }

    fn restart_attempted(&self, node: NodeId, now: Now, booted: bool) {
        if booted {
            self.process_started(node, true);
        }
        let (verdict, past_threshold) = {
            let mut watch = self.restart_watch();
            let before = watch.past_threshold();
            let verdict = watch.restart_attempted(self.elapsed_ms(), node, now.wall, booted);
            (verdict, watch.past_threshold() > before)
        };
        if past_threshold {
            self.cover("store restarted in place past the policy's threshold");
        }
        if let Some(message) = verdict {
            self.violate(Invariant::RestartPolicy, message);
        }
    }
}

impl crate::net::Tap for Obs {
    fn cover(&self, situation: &'static str) {
        Obs::cover(self, situation);
    }

    fn sent(&self, from: Endpoint, to: Endpoint, msg: &Msg) {
        let at = self.elapsed_ms();
        match (from, msg) {
            (Endpoint::Node(n), Msg::Heartbeat(hb)) => {
                self.restart_watch()
                    .heartbeat_sent(at, n, hb.view.owner == n);
                self.takeover_watch().heartbeat_sent(n, hb.view.owner);
            }
            (Endpoint::Node(n), Msg::Arbitrate { view, .. }) => {
                if view.owner != n {
                    self.cover("passive asked the witness for a takeover");
                }
                let verdict = self.takeover_watch().arbitrate(at, n, view.owner);
                if let Some(message) = verdict {
                    self.violate(Invariant::TakeoverTiming, message);
                }
            }
            (Endpoint::Node(n), Msg::HandOver { .. }) => {
                let wall = self.node_wall(n);
                let verdict = self.restart_watch().handed_over(at, n, wall);
                if let Some(message) = verdict {
                    self.violate(Invariant::RestartPolicy, message);
                }
            }
            _ => {}
        }
        let sent = self.truth.sent(at, from, to, msg, |n| {
            self.disks.get().map_or(0, |d| {
                let mut disk = d[n.index()].lock().expect("disk");
                disk.catch_up();
                crate::truth::newest_written_quick(&disk)
            })
        });
        if let Some((invariant, message)) = sent.verdict {
            self.violate(invariant, message);
        }
        if let Some(mount) = sent.mount {
            self.mounted(at, mount);
        }
        if sent.first_redelivery_answer {
            self.cover("redelivery requested after a mount");
        }
        if let Some((node, newest)) = sent.confirmed {
            self.idle_roll_watch().confirmed(at, node, newest);
        }
        self.judge_idle_roll(at);
        match (from, to, msg) {
            (Endpoint::Node(n), Endpoint::Hub(h), Msg::Redeliver { request, .. }) => {
                let mut s = self.state.lock().expect("obs");
                if s.hubs_down.contains(&h) && s.asked_while_down.insert((h, n, *request)) {
                    drop(s);
                    self.cover("redelivery asked of a hub that is down");
                }
            }
            (Endpoint::Hub(h), Endpoint::Node(n), Msg::RedeliveryAccepted { request })
                if sent.first_redelivery_answer =>
            {
                let late = self
                    .state
                    .lock()
                    .expect("obs")
                    .asked_while_down
                    .contains(&(h, n, *request));
                if late {
                    self.cover("redelivery carried out by a hub back from down");
                }
            }
            _ => {}
        }
        if let (Endpoint::Node(_), Msg::HandOver { drain: true, .. }) = (from, msg) {
            self.cover("group failed over past the restart policy");
        }
    }

    fn woke(&self) {
        self.spend();
    }

    fn delivered(&self, sent_at: u64, from: Endpoint, to: Endpoint, msg: &Msg) {
        self.truth.delivered(self.elapsed_ms(), to, msg);
        if let (Endpoint::Node(peer), Endpoint::Node(n), Msg::Heartbeat(hb)) = (from, to, msg) {
            // A paused process reads what reached it only after its first step once it runs
            // again: neither watch counts it as heard.
            if !self.truth.is_paused(n) {
                let owner_damaged = hb.view.owner == peer
                    && !hb.serving
                    && hb.copy.as_ref().is_some_and(|c| c.reseed_required);
                self.takeover_watch()
                    .heard(self.elapsed_ms(), n, owner_damaged);
                let can_take = hb.copy.as_ref().is_some_and(|c| {
                    c.status == ccr_core::cluster::status::SummaryCopyStatus::Healthy
                        && !c.reseed_required
                });
                self.restart_watch()
                    .peer_heard(self.elapsed_ms(), n, can_take);
            }
        }
        if let (Endpoint::Hub(h), Endpoint::Node(n), Msg::Delivered { id, .. }, Some(clocks)) =
            (to, from, msg, self.clocks.get())
        {
            let hub_clock = clocks.0.get(usize::from(h.0).saturating_sub(1));
            if let (true, Some(hub_clock)) = (self.truth.wants_hub_stamps(), hub_clock) {
                let wall =
                    |c: &Arc<crate::clock::SimClock>| ccr_core::host::Clock::now(c.as_ref()).wall;
                self.truth
                    .hub_stamped(*id, wall(hub_clock), wall(&clocks.1[n.index()]));
            }
        }
        if let (Endpoint::Node(_), Msg::WitnessDenied { .. }) = (to, msg) {
            self.cover("witness denied a node");
        }
        // The node a fault took away reaches the hub again with mail or a mount it wrote
        // after the fault: it was never lost (say a short pause), and nothing fails over.
        if let (
            Endpoint::Node(n),
            Endpoint::Hub(_),
            Msg::Delivered { .. } | Msg::Mounted { .. } | Msg::Redeliver { .. },
        ) = (from, to, msg)
        {
            let mut s = self.state.lock().expect("obs");
            if s.active_lost_at
                .is_some_and(|(t, lost)| lost == n && sent_at > t)
            {
                s.active_lost_at = None;
            }
        }
    }
}

impl Obs {
    /// Log files a node's step deleted: truncation is judged against both disks.
    fn judge_removals(&self, node: NodeId, removed: &[String]) {
        let Some([d1, d2]) = self.both_disks() else {
            return;
        };
        let removals = self.truth.logs_removed(node, removed, [&d1, &d2]);
        drop((d1, d2));
        if removals.truncated > 0 {
            self.cover("logs truncated after a backup");
        }
        if let Some((invariant, message)) = removals.verdict {
            self.violate(invariant, message);
        }
    }

    /// A node's first announcement of a mount in an epoch: judged against the disks, and the
    /// end of a failover when another node had been serving.
    fn mounted(&self, now: u64, mount: PendingMount) {
        let node = mount.node;
        let mounting = self.facts(node).unwrap_or_default();
        let previous = mount.previous.and_then(|p| self.facts(p));
        let judged = self
            .truth
            .judge_mount(now, mount, &mounting, previous.as_ref());
        for (invariant, message) in judged.verdicts {
            self.violate(invariant, message);
        }
        if mount.moved && !mount.drained {
            self.cover("scheduled move");
        }
        if judged.mount.missing > 0 {
            self.cover("lossy mount");
        }
        if judged.mount.missing > judged.mount.knowable {
            self.cover("mount short of what the wire had told (dial blind spot)");
        }
        if judged.over_reported {
            self.cover("mount reported more logs lost than the disks show");
        }
        let lost_at = self.state.lock().expect("obs").active_lost_at.take();
        // A move is not a failover, and the same node mounting again is recovery: the window
        // measures the database coming up on the other node after a fault.
        let lost_at = match lost_at {
            Some((at, lost)) if lost != node && !mount.moved => Some(at),
            _ => None,
        };
        let Some(at) = lost_at else { return };
        let took = (now - at) as f64 / 1000.0;
        let (lossy, lost_sight_at) = {
            let mut s = self.state.lock().expect("obs");
            s.failovers.push(took);
            // When the survivor stopped hearing the active: its takeover began one detection
            // period after that, whatever fault (a partition, say) caused it.
            let lost_sight_at = s
                .takeover_started
                .get(&node)
                .map_or(at, |t| t.saturating_sub(self.detection_ms).min(at));
            s.windows.push(Window {
                from_s: at as f64 / 1000.0,
                to_s: now as f64 / 1000.0,
            });
            (s.lossy_links, lost_sight_at)
        };
        let min_s = if lossy {
            0.0
        } else {
            self.expect.failover_min_s
        };
        // The lower bound holds from the moment the active became unreachable, which an
        // earlier fault (a partition before the crash) may have caused.
        let since_lost_sight = (now - lost_sight_at) as f64 / 1000.0;
        if self.expect.failover == Some(false) {
            self.violate(
                Invariant::FailoverWindow,
                format!("{node} took over in {took:.1} s, but no failover was expected"),
            );
        } else if since_lost_sight < min_s || took > self.expect.failover_max_s {
            self.violate(
                Invariant::FailoverWindow,
                format!(
                    "failover to {node} took {took:.1} s, outside {:.0}-{:.0} s",
                    self.expect.failover_min_s, self.expect.failover_max_s
                ),
            );
        }
    }
}
