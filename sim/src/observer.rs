//! Watches a run: records the trace (and its hash) and checks the invariants as events happen.
//! The first violation stops the run.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Mutex;

use ccr_core::cluster::config::ClusterConfig;
use ccr_core::cluster::node::{Node, NodeEvent};
use ccr_core::cluster::{NodeId, Now};
use ccr_core::host::Observer;
use ccr_core::storage::MessageId;
use ccr_reports::record::{Mark, Window};

use crate::scenario::Expect;

pub use ccr_reports::record::{Invariant, Violation};

const KEEP_LAST: usize = 40;

struct State {
    hash: u64,
    lines: u64,
    last: VecDeque<String>,
    full: Option<Vec<String>>,
    serving: BTreeMap<NodeId, bool>,
    /// When a fault took the active away, and which node it was.
    active_lost_at: Option<(u64, NodeId)>,
    failovers: Vec<f64>,
    acked: BTreeSet<MessageId>,
    /// Acknowledgements of an id already acknowledged (a client told twice).
    duplicated: usize,
    violation: Option<Violation>,
    mounts: Vec<(u64, NodeId, u32)>,
    /// How often each kind of notable event happened (for scenario expectations).
    seen: BTreeMap<&'static str, u64>,
    steps: Vec<Mark>,
    windows: Vec<Window>,
    /// When the dumpster let go of each message it no longer holds.
    evicted: BTreeMap<MessageId, u64>,
    /// When the hub last answered a redelivery request.
    last_redelivery: Option<u64>,
    /// Heartbeat datagrams are being lost on some network right now.
    lossy_links: bool,
    /// When each node last started a takeover.
    takeover_started: BTreeMap<NodeId, u64>,
}

pub struct Obs {
    start: tokio::time::Instant,
    expect: Expect,
    dial_allowed: u32,
    /// How long a node waits without heartbeats before it calls its peer down.
    detection_ms: u64,
    /// `CCR_SIM_LIVE_TRACE=1`: every trace line also goes to stderr as it happens (for a run
    /// that never ends, whose trace file would never be written).
    live: bool,
    /// Node steps so far (every wake of a node's host), for the benchmarks.
    node_steps: std::sync::atomic::AtomicU64,
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
    pub fn new(config: &ClusterConfig, expect: Expect, keep_full_trace: bool) -> Obs {
        Obs {
            start: tokio::time::Instant::now(),
            expect,
            dial_allowed: config.dial_limits.allowed(config.mount_dial),
            detection_ms: config.peer_down_after_ms(),
            live: std::env::var_os("CCR_SIM_LIVE_TRACE").is_some(),
            node_steps: Default::default(),
            state: Mutex::new(State {
                hash: 0xCBF2_9CE4_8422_2325,
                lines: 0,
                last: VecDeque::new(),
                full: keep_full_trace.then(Vec::new),
                serving: BTreeMap::new(),
                active_lost_at: None,
                failovers: Vec::new(),
                acked: BTreeSet::new(),
                duplicated: 0,
                violation: None,
                mounts: Vec::new(),
                seen: BTreeMap::new(),
                steps: Vec::new(),
                windows: Vec::new(),
                evicted: BTreeMap::new(),
                last_redelivery: None,
                lossy_links: false,
                takeover_started: BTreeMap::new(),
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
        let mut s = self.state.lock().expect("obs");
        if !s.acked.insert(id) {
            s.duplicated += 1;
        }
    }

    pub fn duplicated(&self) -> usize {
        self.state.lock().expect("obs").duplicated
    }

    /// Whether a network is losing datagrams: heartbeats lost before a crash let the
    /// survivor's detection start early, so a failover may then beat the 10 s lower bound
    /// without anything being wrong (the upper bound still holds).
    pub fn set_lossy_links(&self, lossy: bool) {
        self.state.lock().expect("obs").lossy_links = lossy;
    }

    pub fn evicted(&self, id: MessageId) {
        let now = self.elapsed_ms();
        self.state.lock().expect("obs").evicted.insert(id, now);
    }

    pub fn redelivery_answered(&self) {
        let now = self.elapsed_ms();
        self.state.lock().expect("obs").last_redelivery = Some(now);
    }

    /// Whether losing `id` is explained by the dumpster's limits: it had been evicted before
    /// the hub answered the last redelivery request, so no redelivery could bring it back.
    /// (Without any redelivery nothing is explained: a node that never asks is a bug.)
    pub fn loss_explained(&self, id: MessageId) -> bool {
        let s = self.state.lock().expect("obs");
        match (s.evicted.get(&id), s.last_redelivery) {
            (Some(evicted), Some(asked)) => *evicted < asked,
            _ => false,
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

    pub fn mounts(&self) -> Vec<(u64, NodeId, u32)> {
        self.state.lock().expect("obs").mounts.clone()
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
            NodeEvent::StayDismounted { .. } => self.saw("dismounted-by-dial", 1),
            NodeEvent::MoveRefused { .. } => self.saw("move-refused", 1),
            NodeEvent::TakeoverStarted => {
                let now = self.elapsed_ms();
                self.state
                    .lock()
                    .expect("obs")
                    .takeover_started
                    .insert(node, now);
            }
            NodeEvent::Diverged { outcome } if outcome.contains("beyond lost-log resilience") => {
                self.saw("reseed-required", 1)
            }
            NodeEvent::Diverged { outcome } if outcome.starts_with("rolled back") => {
                self.saw("rolled-back", 1)
            }
            _ => {}
        }
        if let NodeEvent::Mounted { lost, forced, .. } = event {
            let now = self.elapsed_ms();
            let lost_at = {
                let mut s = self.state.lock().expect("obs");
                s.mounts.push((now, node, *lost));
                s.active_lost_at.take()
            };
            if !forced && *lost > self.dial_allowed {
                self.violate(
                    Invariant::MountDial,
                    format!(
                        "{node} mounted automatically with {lost} logs lost; the dial allows {}",
                        self.dial_allowed
                    ),
                );
            }
            // The same node mounting again is recovery, not a failover: the window measures
            // the database coming up on the other node.
            let lost_at = match lost_at {
                Some((at, lost)) if lost != node => Some(at),
                _ => None,
            };
            if let Some(at) = lost_at {
                let took = (now - at) as f64 / 1000.0;
                let (lossy, lost_sight_at) = {
                    let mut s = self.state.lock().expect("obs");
                    s.failovers.push(took);
                    // When the survivor stopped hearing the active: its takeover began one
                    // detection period after that, whatever fault (a partition, say) caused it.
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
                // The lower bound holds from the moment the active became unreachable, which
                // an earlier fault (a partition before the crash) may have caused.
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
    }

    fn stepped(&self, node: &Node, now: Now) {
        self.node_steps
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let serving = node.is_serving();
        let both = {
            let mut s = self.state.lock().expect("obs");
            if s.serving.get(&node.id()) != Some(&serving) {
                s.serving.insert(node.id(), serving);
            }
            serving && s.serving.values().filter(|v| **v).count() > 1
        };
        if both {
            self.violate(
                Invariant::SingleActive,
                "node1 and node2 both have the database mounted".into(),
            );
        }
        if serving && !node.has_quorum(now) {
            self.violate(
                Invariant::SingleActive,
                format!("{} serves without quorum", node.id()),
            );
        }
    }
}
