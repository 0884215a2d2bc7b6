//! The `idle-log-roll` checker: acknowledged mail does not wait in the serving node's open
//! log much longer than the idle roll allows (Exchange 2007 SP1 closes a partly filled log
//! `idle_log_roll_ms` after its first record, so the passive can copy it).
//!
//! Judged from the world's record: when a node confirms mail to a hub (the confirmation says
//! it is durable), the newest generation holding a durable record on its disk is read; once
//! the idle roll and a slack have passed, if that node served without a break all along,
//! its disk must hold that generation as a closed log — by the idle roll, or because the log
//! filled. A node that stopped serving, or whose disk was slowed (a group commit always in
//! flight can hold the roll back), is not judged for that stretch.

use std::collections::{BTreeMap, VecDeque};

use ccr_core::cluster::config::ClusterConfig;
use ccr_core::cluster::NodeId;
use ccr_core::storage::Generation;

/// Beyond the idle roll itself: the wake that rolls, the commit it waits for, the roll's
/// own write, and clocks that may run slow by the drift bound.
const SLACK_MS: u64 = 10_000;

#[derive(Debug)]
pub struct IdleRollWatch {
    /// The idle roll's interval; `None` when it is off (RTM).
    interval_ms: Option<u64>,
    slack_ms: u64,
    /// Per node: (when it confirmed durable mail, the newest generation with a durable
    /// record then), one entry per generation, oldest first.
    pending: BTreeMap<NodeId, VecDeque<(u64, Generation)>>,
    /// When each node's disk was last slowed down (or is slowed now: `u64::MAX`).
    slowed: BTreeMap<NodeId, u64>,
}

/// A confirmation whose generation had to be closed by now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    pub node: NodeId,
    pub confirmed_at: u64,
    pub generation: Generation,
}

impl IdleRollWatch {
    pub fn new(config: &ClusterConfig) -> IdleRollWatch {
        let interval_ms = config.idle_log_roll();
        IdleRollWatch {
            interval_ms,
            // A slow clock stretches the node's interval by up to half the drift bound.
            slack_ms: SLACK_MS + interval_ms.unwrap_or(0) * config.max_drift_ppm / 1_000_000,
            pending: BTreeMap::new(),
            slowed: BTreeMap::new(),
        }
    }

    /// `node` told a hub that mail is durable; `newest` is the newest generation with a
    /// durable record on its disk at that moment.
    pub fn confirmed(&mut self, at: u64, node: NodeId, newest: Generation) {
        if self.interval_ms.is_none() || newest == 0 {
            return;
        }
        let q = self.pending.entry(node).or_default();
        if q.back().is_none_or(|(_, g)| newest > *g) {
            q.push_back((at, newest));
        }
    }

    /// The node's disk runs slower than normal (`factor` > 1) or normal again.
    pub fn disk_slowed(&mut self, at: u64, node: NodeId, factor: u32) {
        if factor > 1 {
            self.slowed.insert(node, u64::MAX);
        } else {
            self.slowed.insert(node, at);
        }
    }

    /// The node's process started again from its disk: what it confirmed before, it may
    /// have lost with the open log (a torn tail) or rolled on another schedule.
    pub fn restarted(&mut self, node: NodeId) {
        self.pending.remove(&node);
    }

    /// Confirmations whose idle roll (and slack) ran out by `now`, to be judged against the
    /// disk; each is returned once. Those of a node whose disk was slowed meanwhile are
    /// dropped.
    pub fn due(&mut self, now: u64) -> Vec<Due> {
        let Some(interval) = self.interval_ms else {
            return Vec::new();
        };
        let wait = interval + self.slack_ms;
        let mut due = Vec::new();
        for (node, q) in &mut self.pending {
            while let Some(&(at, generation)) = q.front() {
                if at + wait > now {
                    break;
                }
                q.pop_front();
                if self.slowed.get(node).is_some_and(|s| *s >= at) {
                    continue;
                }
                due.push(Due {
                    node: *node,
                    confirmed_at: at,
                    generation,
                });
            }
        }
        due
    }

    pub fn interval_ms(&self) -> Option<u64> {
        self.interval_ms
    }

    pub fn wait_ms(&self) -> u64 {
        self.interval_ms.unwrap_or(0) + self.slack_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(idle_ms: u64) -> ClusterConfig {
        ClusterConfig {
            idle_log_roll_ms: Some(idle_ms),
            max_drift_ppm: 0,
            ..ClusterConfig::default()
        }
    }

    #[test]
    fn each_generation_is_due_once_after_the_interval_and_the_slack() {
        let mut w = IdleRollWatch::new(&config(90_000));
        w.confirmed(1_000, NodeId::Node1, 5);
        w.confirmed(2_000, NodeId::Node1, 5);
        w.confirmed(3_000, NodeId::Node1, 6);
        assert!(w.due(100_999).is_empty());
        let due = w.due(101_000);
        assert_eq!(
            due,
            vec![Due {
                node: NodeId::Node1,
                confirmed_at: 1_000,
                generation: 5
            }]
        );
        assert_eq!(w.due(200_000).len(), 1);
        assert!(w.due(300_000).is_empty());
    }

    #[test]
    fn nothing_is_due_with_the_roll_off_or_a_slowed_disk() {
        let mut off = IdleRollWatch::new(&config(0));
        off.confirmed(1_000, NodeId::Node1, 5);
        assert!(off.due(10_000_000).is_empty());

        let mut w = IdleRollWatch::new(&config(10_000));
        w.confirmed(1_000, NodeId::Node2, 5);
        w.disk_slowed(5_000, NodeId::Node2, 10);
        w.confirmed(6_000, NodeId::Node2, 6);
        w.disk_slowed(7_000, NodeId::Node2, 1);
        w.confirmed(8_000, NodeId::Node2, 7);
        let due: Vec<Generation> = w.due(100_000).iter().map(|d| d.generation).collect();
        assert_eq!(due, vec![7]);
    }
}
