//! The `takeover-timing` checker: a passive asks the witness for the vote to take the
//! server over only once its peer has been silent for the detection time (the heartbeat
//! threshold's missed intervals on every network) and the arbitration delay after it.
//!
//! Judged from the wire: the peer's heartbeats as they reached the node's running process,
//! against each `Arbitrate` a node sends while its view names the peer the owner and its own
//! last heartbeat did too (an owner renewing its vote in the step it learns of a newer view
//! is not taking over). What reached a paused process is not counted: when it runs again its
//! first step may act on what it knew before the pause, before it reads its inbox, and the
//! witness is there to arbitrate exactly that. A process that started heard nothing before
//! it. A takeover may start sooner only when an administrator ordered a restore, or when
//! the owner's own heartbeats say its copy is damaged and it does not serve (the cluster
//! resource failing for good there).

use std::collections::BTreeMap;

use ccr_core::cluster::config::ClusterConfig;
use ccr_core::cluster::NodeId;

/// The step that carries a heartbeat and the wake that sends the request.
const SLACK_MS: u64 = 250;

#[derive(Debug, Default, Clone, Copy)]
struct NodeRecord {
    /// When the node's current process started.
    started: u64,
    /// When the peer's newest heartbeat reached the running process.
    heard: u64,
    /// The node's own newest heartbeat named the peer the owner.
    said_peer_owns: bool,
    /// The peer's newest heartbeat said it owns the server, does not serve and its copy
    /// needs a reseed.
    owner_damaged: bool,
    /// An administrator ordered a restore on this node (it may take over at once).
    restore_at: Option<u64>,
}

#[derive(Debug)]
pub struct TakeoverWatch {
    /// The detection time and arbitration delay, as the fastest clock could count them.
    wait_ms: u64,
    nodes: BTreeMap<NodeId, NodeRecord>,
}

impl TakeoverWatch {
    pub fn new(config: &ClusterConfig) -> TakeoverWatch {
        let wait = config.peer_down_after_ms() + config.passive_arbitration_delay_ms;
        // A node's monotonic clock may run fast by half the drift bound: its wait then ends
        // that much sooner in the world's time.
        let fast = 1_000_000 + config.max_drift_ppm / 2;
        TakeoverWatch {
            wait_ms: (wait * 1_000_000 / fast).saturating_sub(SLACK_MS),
            nodes: BTreeMap::new(),
        }
    }

    fn node(&mut self, node: NodeId) -> &mut NodeRecord {
        self.nodes.entry(node).or_default()
    }

    /// `node`'s process started (by the world, or in place by its host).
    pub fn started(&mut self, at: u64, node: NodeId) {
        let r = self.node(node);
        r.started = at;
        r.owner_damaged = false;
        r.restore_at = None;
    }

    /// `node` sent a heartbeat whose view names `owner`.
    pub fn heartbeat_sent(&mut self, node: NodeId, owner: NodeId) {
        self.node(node).said_peer_owns = owner != node;
    }

    /// A heartbeat of the peer reached `node`'s running process (the caller leaves out what
    /// reaches a paused one).
    pub fn heard(&mut self, at: u64, node: NodeId, owner_damaged: bool) {
        let r = self.node(node);
        r.heard = r.heard.max(at);
        r.owner_damaged = owner_damaged;
    }

    pub fn restore_ordered(&mut self, at: u64, node: NodeId) {
        self.node(node).restore_at = Some(at);
    }

    /// `node` asked the witness for its vote while its view names `owner`. Returns the
    /// verdict when that is a takeover begun before its peer was silent long enough.
    pub fn arbitrate(&mut self, at: u64, node: NodeId, owner: NodeId) -> Option<String> {
        let wait = self.wait_ms;
        let r = *self.node(node);
        if owner == node || !r.said_peer_owns || r.owner_damaged || r.restore_at.is_some() {
            return None;
        }
        let silent_since = r.heard.max(r.started);
        let silent = at.saturating_sub(silent_since);
        (silent < wait).then(|| {
            format!(
                "{node} asked the witness to take the server over from {owner} at {:.3} s, \
                 {:.3} s after {}, but the detection time and the arbitration delay take \
                 {:.3} s",
                at as f64 / 1000.0,
                silent as f64 / 1000.0,
                if r.heard >= r.started {
                    "the last heartbeat it heard"
                } else {
                    "its process started"
                },
                wait as f64 / 1000.0,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const N1: NodeId = NodeId::Node1;
    const N2: NodeId = NodeId::Node2;

    fn watch() -> TakeoverWatch {
        TakeoverWatch::new(&ClusterConfig {
            max_drift_ppm: 0,
            ..ClusterConfig::default()
        })
    }

    #[test]
    fn a_takeover_before_the_detection_time_and_the_delay_fires() {
        let mut w = watch();
        let wait = w.wait_ms;
        w.started(0, N2);
        w.heartbeat_sent(N2, N1);
        w.heard(10_000, N2, false);
        assert!(w.arbitrate(10_000 + wait - 1, N2, N1).is_some());
        assert_eq!(w.arbitrate(10_000 + wait, N2, N1), None);
        // An owner renewing its own vote is not a takeover, even in the step it learned of
        // a newer view naming the peer.
        assert_eq!(w.arbitrate(10_001, N1, N1), None);
        w.heartbeat_sent(N1, N1);
        assert_eq!(w.arbitrate(10_002, N1, N2), None);
    }

    #[test]
    fn a_process_that_just_started_counts_from_then_and_a_paused_one_hears_nothing() {
        let mut w = watch();
        let wait = w.wait_ms;
        w.heartbeat_sent(N2, N1);
        w.heard(1_000, N2, false);
        w.started(50_000, N2);
        assert!(w.arbitrate(50_000 + wait / 2, N2, N1).is_some());
        // Paused a moment after a heartbeat: what arrives meanwhile is not reported to the
        // watch, and the first step after the pause counts from the heartbeat before it.
        w.heard(60_000, N2, false);
        assert!(w.arbitrate(60_000 + wait / 2, N2, N1).is_some());
        assert_eq!(w.arbitrate(60_000 + wait, N2, N1), None);
    }

    #[test]
    fn a_damaged_owner_or_a_restore_excuses_an_early_takeover() {
        let mut w = watch();
        w.heartbeat_sent(N2, N1);
        w.heard(10_000, N2, true);
        assert_eq!(w.arbitrate(10_001, N2, N1), None);
        let mut w = watch();
        w.heartbeat_sent(N2, N1);
        w.heard(10_000, N2, false);
        w.restore_ordered(10_500, N2);
        assert_eq!(w.arbitrate(10_600, N2, N1), None);
    }
}
