//! The `restart-policy` checker: Windows' resource restart policy, judged from what the
//! simulated world recorded.
//!
//! A store that fails while its node owns the server is restarted in place up to the
//! policy's threshold within its period (on that node's wall clock); one failure more fails
//! the group over to the other node, when that node is up with a healthy copy. Two ways to
//! get it wrong, two rules:
//!
//! - **Restarted past the policy.** The world carries out every in-place restart (the host
//!   boots the services again, or fails to), so it counts them; each follows one failure by
//!   the configured restart delay. Whether the node owned the server then is what it told
//!   the cluster in its heartbeats; whether the peer could take the group is what the peer's
//!   heartbeats that reached it said (up, a healthy copy, no reseed needed). A node restarted
//!   in place more than once past the threshold while both held is a violation — the one
//!   spare restart absorbs the few hundred milliseconds by which the checker's instants
//!   differ from the node's.
//! - **Failed over before the policy.** A hand-over on the wire just after the node's disk
//!   refused a write (or a restart failed to boot) is the group failing over for the store;
//!   unless an administrator's move, a network fault or a hub outage could explain it
//!   instead, the node must have been restarted in place at least the threshold's number of
//!   times within the period (counted generously: every restart the world saw since the
//!   node's previous hand-over).
//!
//! Runs where a node's wall clock jumped within the period are not judged: the node counts
//! its period on that clock.

use std::collections::{BTreeMap, VecDeque};

use ccr_core::cluster::config::ClusterConfig;
use ccr_core::cluster::NodeId;

/// Heartbeats and refusals older than this are of no use to any judgement.
const MEMORY_MS: u64 = 5 * 60_000;
/// How far the checker's instants may sit from the node's own (clock drift over a restart
/// delay, the wake that carries a completion).
const SLACK_MS: u64 = 2_000;
/// A hand-over this soon after the node's store failed is the group failing over for it.
const FAILED_JUST_NOW_MS: u64 = 5_000;

#[derive(Debug, Clone, Copy)]
struct Attempt {
    /// Simulated time of the restart, and the node's wall clock then.
    at: u64,
    wall: u64,
    /// When the failure it follows happened (simulated time), and whether the node told the
    /// cluster it owned the server just before.
    failed_at: u64,
    owned: bool,
}

#[derive(Debug, Default)]
struct NodeRecord {
    /// Heartbeats the node sent: when, and whether it named itself the owner.
    said_owner: VecDeque<(u64, bool)>,
    /// The peer's heartbeats that reached the node's running process: when, and whether they
    /// offered a copy that could take the group.
    heard_peer: VecDeque<(u64, bool)>,
    /// When the node's current and earlier processes started (in place or by the world).
    process_starts: VecDeque<u64>,
    /// When the world last started the node's process from scratch (after a crash or a
    /// power loss); when the node last sent a hand-over on the wire, and the last it sent
    /// just after its store failed (only that one starts the policy's count afresh).
    world_start: u64,
    handed_over: Option<u64>,
    store_handed_over: Option<u64>,
    attempts: Vec<Attempt>,
    failed_boot: Option<u64>,
    disk_refused: Option<u64>,
    clock_jumped: Option<u64>,
}

#[derive(Debug)]
pub struct RestartWatch {
    threshold: u32,
    period_ms: u64,
    restart_ms: u64,
    peer_down_after_ms: u64,
    move_quiet_ms: u64,
    nodes: BTreeMap<NodeId, NodeRecord>,
    /// A partition, isolation or link fault in effect, or ended within the last minutes: the
    /// public network's own rule may move the group.
    net_faulty: bool,
    net_changed_at: Option<u64>,
    moved_at: Option<u64>,
    hub_down_at: Option<u64>,
    hubs_down: usize,
    stopped: bool,
    past_threshold: u64,
}

impl RestartWatch {
    pub fn new(config: &ClusterConfig) -> RestartWatch {
        let (threshold, period_ms) = config.restart_policy();
        RestartWatch {
            threshold,
            period_ms,
            restart_ms: config.store_restart_ms,
            peer_down_after_ms: config.peer_down_after_ms(),
            move_quiet_ms: config.move_timeout_ms + 30_000,
            nodes: BTreeMap::new(),
            net_faulty: false,
            net_changed_at: None,
            moved_at: None,
            hub_down_at: None,
            hubs_down: 0,
            stopped: false,
            past_threshold: 0,
        }
    }

    fn node(&mut self, node: NodeId) -> &mut NodeRecord {
        self.nodes.entry(node).or_default()
    }

    pub fn heartbeat_sent(&mut self, at: u64, node: NodeId, names_itself_owner: bool) {
        let r = self.node(node);
        r.said_owner.push_back((at, names_itself_owner));
        forget(&mut r.said_owner, at);
    }

    /// A heartbeat of the peer reached `node`'s running process (not a paused one: it reads
    /// its inbox only once it runs again).
    pub fn peer_heard(&mut self, at: u64, node: NodeId, can_take_the_group: bool) {
        let r = self.node(node);
        r.heard_peer.push_back((at, can_take_the_group));
        forget(&mut r.heard_peer, at);
    }

    pub fn disk_refused(&mut self, at: u64, node: NodeId) {
        self.node(node).disk_refused = Some(at);
    }

    pub fn clock_jumped(&mut self, at: u64, node: NodeId) {
        self.node(node).clock_jumped = Some(at);
    }

    /// The world started the node's process from its disk (not an in-place restart).
    pub fn world_started(&mut self, at: u64, node: NodeId) {
        let r = self.node(node);
        r.world_start = at;
        r.process_starts.push_back(at);
        if r.process_starts.len() > 8 {
            r.process_starts.pop_front();
        }
    }

    pub fn network_fault(&mut self, at: u64, faulty: bool) {
        self.net_faulty = faulty;
        self.net_changed_at = Some(at);
    }

    pub fn hubs_down(&mut self, at: u64, down: usize) {
        self.hubs_down = down;
        self.hub_down_at = Some(at);
    }

    pub fn move_ordered(&mut self, at: u64) {
        self.moved_at = Some(at);
    }

    pub fn stop_ordered(&mut self, stopped: bool) {
        self.stopped = stopped;
    }

    /// The host restarted `node`'s services in place (`booted`) or tried to. Returns the
    /// verdict when this restart is one past the policy.
    pub fn restart_attempted(
        &mut self,
        at: u64,
        node: NodeId,
        wall: u64,
        booted: bool,
    ) -> Option<String> {
        let (threshold, period, restart_ms) = (self.threshold, self.period_ms, self.restart_ms);
        let peer_down_after = self.peer_down_after_ms;
        let stopped = self.stopped;
        let r = self.node(node);
        let failed_at = at.saturating_sub(restart_ms);
        let owned = said_owner_before(&r.said_owner, failed_at);
        let process_start = r
            .process_starts
            .iter()
            .copied()
            .filter(|s| *s <= failed_at)
            .max()
            .unwrap_or(0);
        let peer_ok = peer_could_take(&r.heard_peer, process_start, failed_at, peer_down_after);
        r.attempts.push(Attempt {
            at,
            wall,
            failed_at,
            owned,
        });
        let keep_from = at.saturating_sub(4 * period + MEMORY_MS);
        r.attempts.retain(|a| a.at >= keep_from);
        if booted {
            r.process_starts.push_back(at);
            if r.process_starts.len() > 8 {
                r.process_starts.pop_front();
            }
        } else {
            r.failed_boot = Some(at);
        }
        if !owned || stopped {
            return None;
        }
        let since = r.store_handed_over.unwrap_or(0);
        let counted: Vec<&Attempt> = r
            .attempts
            .iter()
            .filter(|a| {
                a.owned
                    && a.at >= r.world_start
                    && a.failed_at > since
                    && wall.saturating_sub(a.wall) + SLACK_MS < period
            })
            .collect();
        let first = counted.first()?.at;
        if r.clock_jumped
            .is_some_and(|j| j + period + MEMORY_MS >= first)
        {
            return None;
        }
        let n = counted.len() as u64;
        if n > u64::from(threshold) {
            self.past_threshold += 1;
        }
        (peer_ok && n > u64::from(threshold) + 1).then(|| {
            format!(
                "{node}'s store failed at least {n} times within {} s while it owned the \
                 server, and {} reported a healthy copy that could take the group, yet it was \
                 restarted in place again (the restart policy: {threshold} restarts within the \
                 period, then the group fails over)",
                period / 1000,
                node.peer(),
            )
        })
    }

    /// In-place restarts counted past the threshold so far (the peer could not take the
    /// group, or the one spare restart): the coverage of the first rule.
    pub fn past_threshold(&self) -> u64 {
        self.past_threshold
    }

    /// `node` sent a hand-over of the group at `at` (its wall clock reading `wall`). Returns
    /// the verdict when the group failed over for the store before the policy allowed.
    pub fn handed_over(&mut self, at: u64, node: NodeId, wall: u64) -> Option<String> {
        let (threshold, period) = (self.threshold, self.period_ms);
        let recent = |t: Option<u64>, within: u64| t.is_some_and(|t| t + within >= at);
        let explained = self.net_faulty
            || self.hubs_down > 0
            || self.stopped
            || recent(self.net_changed_at, MEMORY_MS)
            || recent(self.hub_down_at, MEMORY_MS)
            || recent(self.moved_at, self.move_quiet_ms);
        let r = self.node(node);
        let previous = r.handed_over.replace(at);
        if previous.is_some_and(|p| p + FAILED_JUST_NOW_MS >= at) {
            // The same hand-over, sent on each network.
            return None;
        }
        let store_failed =
            recent(r.disk_refused, FAILED_JUST_NOW_MS) || recent(r.failed_boot, FAILED_JUST_NOW_MS);
        if !store_failed {
            return None;
        }
        let since = r.store_handed_over.replace(at).unwrap_or(0);
        if explained || threshold == 0 {
            return None;
        }
        if r.clock_jumped.is_some_and(|j| j + period + MEMORY_MS >= at) {
            return None;
        }
        let restarts = r
            .attempts
            .iter()
            .filter(|a| a.at > since && wall.saturating_sub(a.wall) < period + SLACK_MS)
            .count() as u64;
        (restarts < u64::from(threshold)).then(|| {
            format!(
                "{node} failed the group over to {} when its store failed, after {restarts} \
                 restarts in place within {} s (the restart policy: {threshold} restarts \
                 within the period before the group fails over)",
                node.peer(),
                period / 1000,
            )
        })
    }
}

fn forget(q: &mut VecDeque<(u64, bool)>, now: u64) {
    while q.front().is_some_and(|(t, _)| t + MEMORY_MS < now) {
        q.pop_front();
    }
}

/// Every heartbeat the node sent in the few seconds before `at` named it the owner.
fn said_owner_before(said: &VecDeque<(u64, bool)>, at: u64) -> bool {
    let from = at.saturating_sub(3_000 + SLACK_MS);
    let to = at.saturating_sub(SLACK_MS / 4);
    let mut window = said
        .iter()
        .filter(|(t, _)| (from..=to).contains(t))
        .peekable();
    window.peek().is_some() && window.all(|(_, owner)| *owner)
}

/// The peer's heartbeats reached the process that failed, recently enough that it was not
/// down, and each of them offered a healthy copy.
fn peer_could_take(
    heard: &VecDeque<(u64, bool)>,
    process_start: u64,
    at: u64,
    peer_down_after: u64,
) -> bool {
    let from = at.saturating_sub(peer_down_after.saturating_sub(SLACK_MS / 2));
    let to = at.saturating_sub(SLACK_MS / 4);
    let mut recent = heard
        .iter()
        .filter(|(t, _)| *t > process_start && (from..=to).contains(t))
        .peekable();
    let all_in_window = heard
        .iter()
        .filter(|(t, _)| (at.saturating_sub(peer_down_after)..=at).contains(t))
        .all(|(_, ok)| *ok);
    recent.peek().is_some() && recent.all(|(_, ok)| *ok) && all_in_window
}

#[cfg(test)]
mod tests {
    use super::*;

    const N1: NodeId = NodeId::Node1;

    /// Windows Server 2003's policy (3 restarts in 15 minutes), a 10 s restart delay.
    fn watch() -> RestartWatch {
        RestartWatch::new(&ClusterConfig::default())
    }

    /// node1 owns the server and hears node2 offer a healthy copy (or not) every second from
    /// `from` to `to`, as the wire would show it.
    fn live(w: &mut RestartWatch, from: u64, to: u64, peer_healthy: bool) {
        for t in (from..to).step_by(1_000) {
            w.heartbeat_sent(t, N1, true);
            w.peer_heard(t + 1, N1, peer_healthy);
        }
    }

    /// The store fails every `gap` ms from `first`; each failure is restarted in place after
    /// the delay. Returns the verdicts of the restarts.
    fn fail_and_restart(w: &mut RestartWatch, first: u64, gap: u64, times: u64) -> Vec<String> {
        let mut verdicts = Vec::new();
        for k in 0..times {
            let failed = first + k * gap;
            let restart = failed + w.restart_ms;
            live(w, failed.saturating_sub(10_000), restart, true);
            verdicts.extend(w.restart_attempted(restart, N1, restart, true));
        }
        verdicts
    }

    #[test]
    fn restarts_past_the_policy_with_a_healthy_peer_fire() {
        let mut w = watch();
        w.world_started(0, N1);
        live(&mut w, 0, 60_000, true);
        // Three restarts are the policy; a fourth one past it is absorbed as slack; the fifth
        // fires.
        let verdicts = fail_and_restart(&mut w, 60_000, 20_000, 5);
        assert_eq!(verdicts.len(), 1, "{verdicts:?}");
        assert!(verdicts[0].contains("restarted in place again"));
    }

    #[test]
    fn restarts_spaced_wider_than_the_period_or_without_a_healthy_peer_do_not() {
        let mut w = watch();
        w.world_started(0, N1);
        assert!(fail_and_restart(&mut w, 60_000, 16 * 60_000, 6).is_empty());

        let mut w = watch();
        w.world_started(0, N1);
        let mut verdicts = Vec::new();
        for k in 0..6 {
            let failed = 60_000 + k * 20_000;
            live(&mut w, failed - 10_000, failed + 10_000, false);
            verdicts.extend(w.restart_attempted(failed + 10_000, N1, failed + 10_000, true));
        }
        assert!(verdicts.is_empty(), "{verdicts:?}");
    }

    #[test]
    fn a_failover_for_the_store_before_the_threshold_fires_unless_something_else_explains_it() {
        let mut w = watch();
        w.world_started(0, N1);
        assert!(fail_and_restart(&mut w, 60_000, 20_000, 2).is_empty());
        w.disk_refused(200_000, N1);
        let v = w.handed_over(201_000, N1, 201_000);
        assert!(v.is_some_and(|m| m.contains("after 2 restarts")));

        // The same, with a move an administrator ordered a moment before.
        let mut w = watch();
        w.world_started(0, N1);
        fail_and_restart(&mut w, 60_000, 20_000, 2);
        w.move_ordered(190_000);
        w.disk_refused(200_000, N1);
        assert_eq!(w.handed_over(201_000, N1, 201_000), None);

        // Three restarts within the period: the fourth failure fails over, as it should.
        let mut w = watch();
        w.world_started(0, N1);
        fail_and_restart(&mut w, 60_000, 20_000, 3);
        w.disk_refused(200_000, N1);
        assert_eq!(w.handed_over(201_000, N1, 201_000), None);
    }

    #[test]
    fn a_hand_over_without_a_store_failure_is_not_this_checkers_to_judge() {
        let mut w = watch();
        w.world_started(0, N1);
        assert_eq!(w.handed_over(100_000, N1, 100_000), None);
    }
}
