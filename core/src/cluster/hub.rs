//! The hub transport: delivers client messages to whichever node serves the clustered mailbox
//! server, and keeps the transport dumpster — recently delivered messages, bounded by size and
//! age — so a lossy failover can be repaired by redelivery.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::wire::{LineageEntry, Msg, TimeWindow, View};
use super::{Endpoint, Net, NodeId, Now};
use crate::storage::{Generation, MessageId};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HubConfig {
    /// `MaxDumpsterSizePerStorageGroup` (18 MB).
    pub dumpster_max_bytes: u64,
    /// `MaxDumpsterTime` (7 days).
    pub dumpster_max_age_ms: u64,
    /// A delivery not confirmed in this time is sent again.
    pub redelivery_timeout_ms: u64,
    /// What a redelivery request makes the hub resubmit: `lineage` (the default) or
    /// `time-window` (Exchange's).
    pub redelivery: RedeliveryMode,
    /// `MaxConcurrentMailboxDeliveries` (20): deliveries sent and not yet confirmed at most;
    /// the rest wait in the hub's queue. Without a bound a slow link to the store would fill
    /// with the whole backlog, each message timing out and being sent again behind itself.
    pub max_concurrent_deliveries: u32,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            dumpster_max_bytes: 18 * 1024 * 1024,
            dumpster_max_age_ms: 7 * 24 * 3600 * 1000,
            redelivery_timeout_ms: 2_000,
            redelivery: RedeliveryMode::Lineage,
            max_concurrent_deliveries: 20,
        }
    }
}

/// Which mail a hub resubmits from its dumpster when a mount asks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RedeliveryMode {
    /// Exactly the mail whose log generation the new owner's lineage does not account for:
    /// nothing twice, no clocks involved. The model's own, precise mode.
    #[default]
    Lineage,
    /// Exchange's: after a lossy mount, everything the hub delivered for earlier owners since
    /// the start of the mount's wall-clock window ([`TimeWindow`]), judged by its own clock — so mail the store holds
    /// already is resubmitted (and dropped by the store), and a hub clock behind the writer's
    /// misses mail that was lost.
    TimeWindow,
}

impl HubConfig {
    /// Refuses settings that would make the hub spin or never deliver, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.redelivery_timeout_ms < 10 {
            return Err(format!(
                "redelivery_timeout_ms {} is below 10: the hub would resend without pause",
                self.redelivery_timeout_ms
            ));
        }
        if self.max_concurrent_deliveries == 0 {
            return Err("max_concurrent_deliveries must be at least 1".into());
        }
        Ok(())
    }
}

/// A delivered message as the dumpster remembers it: where the store said it landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpsterEntry {
    pub id: MessageId,
    pub size: u32,
    pub epoch: u64,
    pub generation: Generation,
    pub delivered_at: u64,
    /// The hub's wall clock when the store confirmed it (time-window redelivery judges by it).
    #[serde(default)]
    pub delivered_wall: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubAction {
    Send {
        to: Endpoint,
        net: Net,
        msg: Msg,
    },
    /// The message is durable in the active store: the client may be told.
    Acknowledged {
        id: MessageId,
    },
    /// A redelivery request was answered with this many messages from the dumpster.
    Redelivering {
        epoch: u64,
        count: usize,
    },
    /// The dumpster let go of a delivered message (too big or too old): from now on a lossy
    /// failover that loses it cannot get it back — the limit of what CCR promises.
    Evicted {
        id: MessageId,
    },
}

/// The hub transport: one queue and dumpster per storage group of the clustered mailbox
/// server. A message goes to the storage group of its recipient's mailbox: mailboxes are
/// spread over the groups, message `id` standing for mailbox `id mod groups`.
///
/// Serialisable as a whole (less its pending actions and planted bugs): the real hub keeps it
/// in a file, as Exchange's hub keeps its queue database, so a hub restart loses neither the
/// queue nor the dumpster.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hub {
    queues: Vec<HubQueue>,
    /// The queue whose actions `poll_action` hands out next.
    #[serde(skip)]
    next_queue: usize,
}

/// The storage group message `id` belongs to, on a server of `groups` storage groups.
pub fn group_of(id: MessageId, groups: u8) -> u8 {
    (id.0 % u64::from(groups.max(1))) as u8
}

impl Hub {
    /// A hub for a server of one storage group.
    pub fn new(config: HubConfig) -> Hub {
        Hub::for_groups(config, 1)
    }

    /// A hub for a server of `groups` storage groups.
    pub fn for_groups(config: HubConfig, groups: u8) -> Hub {
        Hub {
            queues: (0..groups.max(1))
                .map(|_| HubQueue::new(config.clone()))
                .collect(),
            next_queue: 0,
        }
    }

    fn groups(&self) -> u8 {
        u8::try_from(self.queues.len()).expect("at most 50 storage groups")
    }

    /// The limits of a restored hub follow its config file, not the state it saved.
    pub fn reconfigure(&mut self, config: HubConfig) {
        for q in &mut self.queues {
            q.reconfigure(config.clone());
        }
    }

    /// Plants a bug for checker tests: the dumpster keeps a sixty-fourth of what it should.
    pub fn plant_bug_evict_early(&mut self) {
        self.queues
            .iter_mut()
            .for_each(HubQueue::plant_bug_evict_early);
    }

    /// Plants a bug for checker tests: redelivery requests are confirmed and not carried out.
    pub fn plant_bug_skip_redelivery(&mut self) {
        self.queues
            .iter_mut()
            .for_each(HubQueue::plant_bug_skip_redelivery);
    }

    /// The node serving the first storage group, as last announced.
    pub fn active(&self) -> Option<View> {
        self.queues[0].active()
    }

    /// The node serving storage group `group`, as last announced.
    pub fn active_of(&self, group: u8) -> Option<View> {
        self.queues
            .get(usize::from(group))
            .and_then(HubQueue::active)
    }

    pub fn dumpster_len(&self) -> usize {
        self.queues.iter().map(HubQueue::dumpster_len).sum()
    }

    /// A client hands the hub a message.
    pub fn submit(&mut self, now: Now, id: MessageId, size: u32) {
        let group = group_of(id, self.groups());
        self.queues[usize::from(group)].submit(now, id, size);
    }

    pub fn handle(&mut self, now: Now, from: NodeId, msg: Msg) {
        let (group, msg) = msg.into_group();
        if let Some(q) = self.queues.get_mut(usize::from(group)) {
            q.handle(now, from, msg);
        }
    }

    pub fn handle_timeout(&mut self, now: Now) {
        for q in &mut self.queues {
            q.handle_timeout(now);
        }
    }

    pub fn poll_timeout(&self) -> Option<u64> {
        self.queues.iter().filter_map(HubQueue::poll_timeout).min()
    }

    /// The next action of any storage group's queue; a message about a storage group goes
    /// as that group's.
    pub fn poll_action(&mut self) -> Option<HubAction> {
        while self.next_queue < self.queues.len() {
            let group = self.next_queue;
            if let Some(action) = self.queues[group].poll_action() {
                return Some(match action {
                    HubAction::Send { to, net, msg } if msg.is_group_level() => HubAction::Send {
                        to,
                        net,
                        msg: Msg::for_group(group as u8, msg),
                    },
                    other => other,
                });
            }
            self.next_queue += 1;
        }
        self.next_queue = 0;
        None
    }
}

/// One storage group's queue and dumpster on a hub (`MaxDumpsterSizePerStorageGroup` is per
/// group): which node serves the group, the mail waiting for it, and what it delivered.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubQueue {
    config: HubConfig,
    /// The serving owner as last announced.
    active: Option<View>,
    waiting: VecDeque<(MessageId, u32)>,
    /// Sent, not yet confirmed: id → (size, sent at).
    in_flight: BTreeMap<MessageId, (u32, u64)>,
    acknowledged: BTreeSet<MessageId>,
    dumpster: BTreeMap<MessageId, DumpsterEntry>,
    /// Dumpster ids in delivery order, for eviction.
    dumpster_order: VecDeque<(u64, MessageId)>,
    dumpster_bytes: u64,
    /// What the hub has decided to do and not yet handed out: a restart decides again (a
    /// delivery is repeated on its timeout; a client whose acknowledgement was pending
    /// reconnects and is told nothing, as when its connection drops).
    #[serde(skip)]
    out: VecDeque<HubAction>,
    /// Redelivery requests carried out, by node and request id (requests are repeated until
    /// confirmed).
    redelivered: BTreeSet<(NodeId, u64)>,
    /// The newest redelivery carried out: its epoch and the lineage it was judged against. An
    /// acknowledgement from an older epoch that arrives after it (a slow link) is judged too.
    newest_redelivery: Option<(u64, Vec<LineageEntry>)>,
    /// The newest redelivery's time window, if it had one (a lossy mount).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    newest_window: Option<TimeWindow>,
    /// Test-only planted bug: confirm redelivery requests without carrying them out.
    #[serde(skip)]
    skips_redelivery: bool,
    /// Test-only planted bug: the dumpster lets go of mail at a sixty-fourth of its size
    /// limit, and reports each eviction as the limit's.
    #[serde(skip)]
    evicts_early: bool,
    /// Deliveries to the owner timed out and it has not been heard from since: nothing more
    /// is sent until it speaks again (it pings every heartbeat). Without this, an owner that
    /// hangs for minutes is sent everything unconfirmed again every timeout — a storm of
    /// millions of copies that it then works through when it resumes (swarm seed 3385).
    owner_quiet: bool,
}

impl HubQueue {
    pub fn new(config: HubConfig) -> HubQueue {
        HubQueue {
            config,
            active: None,
            waiting: VecDeque::new(),
            in_flight: BTreeMap::new(),
            acknowledged: BTreeSet::new(),
            dumpster: BTreeMap::new(),
            dumpster_order: VecDeque::new(),
            dumpster_bytes: 0,
            out: VecDeque::new(),
            redelivered: BTreeSet::new(),
            newest_redelivery: None,
            newest_window: None,
            skips_redelivery: false,
            evicts_early: false,
            owner_quiet: false,
        }
    }

    /// The limits of a restored hub follow its config file, not the state it saved.
    pub fn reconfigure(&mut self, config: HubConfig) {
        self.config = config;
    }

    /// Plants a bug for checker tests: the dumpster keeps a sixty-fourth of what it should.
    pub fn plant_bug_evict_early(&mut self) {
        self.evicts_early = true;
    }

    /// Plants a bug for checker tests: redelivery requests are confirmed and not carried out.
    pub fn plant_bug_skip_redelivery(&mut self) {
        self.skips_redelivery = true;
    }

    pub fn active(&self) -> Option<View> {
        self.active
    }

    pub fn dumpster_len(&self) -> usize {
        self.dumpster.len()
    }

    /// A client hands the hub a message.
    pub fn submit(&mut self, now: Now, id: MessageId, size: u32) {
        if self.acknowledged.contains(&id) || self.in_flight.contains_key(&id) {
            return;
        }
        self.waiting.push_back((id, size));
        self.pump(now);
    }

    pub fn handle(&mut self, now: Now, from: NodeId, msg: Msg) {
        match msg {
            Msg::Mounted { view }
                if view.owner == from && self.active.is_none_or(|a| view.epoch >= a.epoch) =>
            {
                self.active = Some(view);
            }
            Msg::Ping { stamp } => self.out.push_back(HubAction::Send {
                to: Endpoint::Node(from),
                net: Net::Public,
                msg: Msg::Pong { stamp },
            }),
            // Messages from one node arrive in order, so this is its newest word: whatever epoch
            // it names, it does not serve. Requeue only then — a refusal from a node we no
            // longer deliver to is settled by the redelivery timeout, and requeueing everything
            // on every refusal would resend the whole backlog per message.
            Msg::NotActive { .. } if self.active.is_some_and(|a| a.owner == from) => {
                self.active = None;
                self.requeue_in_flight();
            }
            Msg::Delivered {
                id,
                generation,
                epoch,
            } => {
                if let Some((size, _)) = self.in_flight.remove(&id) {
                    if self.acknowledged.insert(id) {
                        self.out.push_back(HubAction::Acknowledged { id });
                    }
                    let entry = DumpsterEntry {
                        id,
                        size,
                        epoch,
                        generation,
                        delivered_at: now.mono,
                        delivered_wall: now.wall,
                    };
                    self.remember(now, entry);
                    // A straggler from an owner that has been replaced: judge it against
                    // the newer owner's redelivery. An acknowledgement from the owner we
                    // deliver to now is no straggler, whatever epoch it names (an owner that
                    // mounted an older view, say after the witness lost its file): sent
                    // again, it would only be acknowledged again, for ever.
                    let from_current = self
                        .active
                        .is_some_and(|a| a.owner == from && a.epoch == epoch);
                    let late = !from_current
                        && self.newest_redelivery.as_ref().is_some_and(|(e, lineage)| {
                            self.covers(&entry, *e, lineage, self.newest_window)
                        });
                    if late {
                        self.waiting.push_back((id, size));
                    }
                }
            }
            Msg::Redeliver { request, .. } if self.redelivered.contains(&(from, request)) => {
                self.confirm_redelivery(from, request);
            }
            // The planted bug confirms the request, as a hub that lost it would not: the owner
            // goes on serving and the loss shows only in what the store holds.
            Msg::Redeliver { request, .. } if self.skips_redelivery => {
                self.redelivered.insert((from, request));
                self.confirm_redelivery(from, request);
            }
            Msg::Redeliver {
                epoch,
                request,
                lineage,
                window,
            } => {
                self.redelivered.insert((from, request));
                self.confirm_redelivery(from, request);
                if self
                    .newest_redelivery
                    .as_ref()
                    .is_none_or(|(e, _)| epoch >= *e)
                {
                    self.newest_redelivery = Some((epoch, lineage.clone()));
                    self.newest_window = window;
                }
                let lost: Vec<DumpsterEntry> = self
                    .dumpster
                    .values()
                    .filter(|e| self.covers(e, epoch, &lineage, window))
                    .copied()
                    .collect();
                self.out.push_back(HubAction::Redelivering {
                    epoch,
                    count: lost.len(),
                });
                for e in lost {
                    if !self.in_flight.contains_key(&e.id) {
                        self.waiting.push_back((e.id, e.size));
                    }
                }
            }
            _ => {}
        }
        if self.active.is_some_and(|a| a.owner == from) {
            self.owner_quiet = false;
        }
        self.pump(now);
    }

    pub fn handle_timeout(&mut self, now: Now) {
        let expired: Vec<MessageId> = self
            .in_flight
            .iter()
            .filter(|(_, (_, at))| now.mono >= at + self.config.redelivery_timeout_ms)
            .map(|(id, _)| *id)
            .collect();
        if !expired.is_empty() {
            self.owner_quiet = true;
        }
        for id in expired.into_iter().rev() {
            let (size, _) = self.in_flight.remove(&id).expect("listed");
            self.waiting.push_front((id, size));
        }
        self.evict(now);
        self.pump(now);
    }

    pub fn poll_timeout(&self) -> Option<u64> {
        let retry = self
            .in_flight
            .values()
            .map(|(_, at)| at + self.config.redelivery_timeout_ms)
            .min();
        let age = self
            .dumpster_order
            .front()
            .map(|(at, _)| at + self.config.dumpster_max_age_ms);
        retry.into_iter().chain(age).min()
    }

    pub fn poll_action(&mut self) -> Option<HubAction> {
        self.out.pop_front()
    }

    /// Whether a redelivery request for `epoch` covers `entry`, in this hub's mode.
    fn covers(
        &self,
        entry: &DumpsterEntry,
        epoch: u64,
        lineage: &[LineageEntry],
        window: Option<TimeWindow>,
    ) -> bool {
        match self.config.redelivery {
            RedeliveryMode::Lineage => may_be_lost(entry, epoch, lineage),
            // Mail the new owner confirmed itself was not lost: the window closes at the mount.
            RedeliveryMode::TimeWindow => {
                entry.epoch < epoch && window.is_some_and(|w| entry.delivered_wall >= w.since_wall)
            }
        }
    }

    fn confirm_redelivery(&mut self, to: NodeId, request: u64) {
        self.out.push_back(HubAction::Send {
            to: Endpoint::Node(to),
            net: Net::Public,
            msg: Msg::RedeliveryAccepted { request },
        });
    }

    /// Everything sent and unconfirmed goes back to the front of the queue, in order.
    fn requeue_in_flight(&mut self) {
        let ids: Vec<(MessageId, u32)> = self
            .in_flight
            .iter()
            .map(|(id, (size, _))| (*id, *size))
            .collect();
        self.in_flight.clear();
        for item in ids.into_iter().rev() {
            self.waiting.push_front(item);
        }
    }

    fn pump(&mut self, now: Now) {
        let Some(active) = self.active else { return };
        if self.owner_quiet {
            return;
        }
        let window = self.config.max_concurrent_deliveries.max(1) as usize;
        while self.in_flight.len() < window {
            let Some((id, size)) = self.waiting.pop_front() else {
                break;
            };
            self.in_flight.insert(id, (size, now.mono));
            self.out.push_back(HubAction::Send {
                to: Endpoint::Node(active.owner),
                net: Net::Public,
                msg: Msg::Deliver {
                    id,
                    size,
                    body: Vec::new(),
                },
            });
        }
    }

    fn remember(&mut self, now: Now, entry: DumpsterEntry) {
        if let Some(old) = self.dumpster.insert(entry.id, entry) {
            self.dumpster_bytes -= u64::from(old.size);
        }
        self.dumpster_bytes += u64::from(entry.size);
        self.dumpster_order
            .push_back((entry.delivered_at, entry.id));
        self.evict(now);
    }

    fn evict(&mut self, now: Now) {
        while let Some(&(at, id)) = self.dumpster_order.front() {
            let current = self.dumpster.get(&id).is_some_and(|e| e.delivered_at == at);
            let too_old = now.mono >= at + self.config.dumpster_max_age_ms;
            let max_bytes = if self.evicts_early {
                self.config.dumpster_max_bytes / 64
            } else {
                self.config.dumpster_max_bytes
            };
            let too_big = self.dumpster_bytes > max_bytes;
            if current && !too_old && !too_big {
                break;
            }
            self.dumpster_order.pop_front();
            if current {
                let e = self.dumpster.remove(&id).expect("current");
                self.dumpster_bytes -= u64::from(e.size);
                self.out.push_back(HubAction::Evicted { id });
            }
        }
    }
}

/// Whether a message the store confirmed in (`entry.epoch`, `entry.generation`) may be missing
/// from a stream whose lineage is `lineage` and whose owner now serves in `epoch`: it is safe
/// only if its epoch's writing is part of the lineage up to at least its generation.
///
/// Any later entry that begins at or before that generation overwrote it, not only the next
/// one: an owner that adopted a stream it never received (a queued heartbeat read after a
/// pause) and then mounted behind it starts a later entry *earlier* than the one before.
pub fn may_be_lost(entry: &DumpsterEntry, epoch: u64, lineage: &[LineageEntry]) -> bool {
    if entry.epoch >= epoch {
        return false;
    }
    let Some(i) = lineage.iter().position(|l| l.epoch == entry.epoch) else {
        return true;
    };
    lineage[i + 1..]
        .iter()
        .any(|later| entry.generation >= later.first_generation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use NodeId::*;

    /// The ids of the deliveries the hub has sent since last asked, in order.
    fn deliveries_sent(hub: &mut Hub) -> Vec<u64> {
        std::iter::from_fn(|| hub.poll_action())
            .filter_map(|a| match a {
                HubAction::Send {
                    msg: Msg::Deliver { id, .. },
                    ..
                } => Some(id.0),
                _ => None,
            })
            .collect()
    }

    fn entry(epoch: u64, generation: Generation) -> DumpsterEntry {
        DumpsterEntry {
            id: MessageId(1),
            size: 1,
            epoch,
            generation,
            delivered_at: 0,
            delivered_wall: 0,
        }
    }

    #[test]
    fn what_redelivery_covers() {
        let l = |epoch, first| LineageEntry {
            epoch,
            owner: Node1,
            first_generation: first,
            prev_checksum: 0,
            asked_since: None,
        };
        let lineage = [l(0, 1), l(3, 21)];
        assert!(!may_be_lost(&entry(0, 20), 3, &lineage));
        assert!(may_be_lost(&entry(0, 21), 3, &lineage));
        assert!(
            may_be_lost(&entry(2, 5), 3, &lineage),
            "epoch 2 never made it into the lineage"
        );
        assert!(!may_be_lost(&entry(3, 30), 3, &lineage));
        // Epoch 3 claimed generations from 9 on, but the owner of epoch 4 began at 8 without
        // them (swarm seed 6086): epoch 1's generation 8 is not covered by epoch 3.
        let overwritten = [l(0, 1), l(1, 2), l(3, 9), l(4, 8)];
        assert!(!may_be_lost(&entry(1, 7), 4, &overwritten));
        assert!(may_be_lost(&entry(1, 8), 4, &overwritten));
        assert!(may_be_lost(&entry(3, 9), 4, &overwritten));
    }

    #[test]
    fn a_silent_owner_is_not_sent_everything_again_every_timeout() {
        let mut hub = Hub::new(HubConfig::default());
        let view = View {
            epoch: 1,
            owner: Node1,
        };
        hub.handle(Now::at(0), Node1, Msg::Mounted { view });
        let sends = |hub: &mut Hub| deliveries_sent(hub).len();
        hub.submit(Now::at(1), MessageId(1), 10);
        assert_eq!(sends(&mut hub), 1);
        // The owner hangs: the delivery times out, and neither it nor new mail is sent while
        // the owner says nothing.
        for t in 1..60u64 {
            hub.handle_timeout(Now::at(t * 2_000 + 1));
            hub.submit(Now::at(t * 2_000 + 2), MessageId(1 + t), 10);
        }
        assert_eq!(sends(&mut hub), 0, "nothing sent into the silence");
        // It speaks again (its heartbeat's ping): what waits goes out once, as many as the
        // concurrent deliveries allow.
        hub.handle(Now::at(200_000), Node1, Msg::Ping { stamp: 7 });
        assert_eq!(sends(&mut hub), 20);
    }

    #[test]
    fn a_time_window_hub_resubmits_by_its_own_clock() {
        let mut hub = Hub::new(HubConfig {
            redelivery: RedeliveryMode::TimeWindow,
            ..HubConfig::default()
        });
        let view = |epoch, owner| View { epoch, owner };
        hub.handle(
            Now::at(0),
            Node1,
            Msg::Mounted {
                view: view(0, Node1),
            },
        );
        // Three messages confirmed at hub wall clock 1 000, 5 000 and 9 000.
        for (id, wall) in [(1u64, 1_000u64), (2, 5_000), (3, 9_000)] {
            hub.submit(Now::at(id), MessageId(id), 10);
            hub.handle(
                Now { mono: id + 1, wall },
                Node1,
                Msg::Delivered {
                    id: MessageId(id),
                    generation: 1,
                    epoch: 0,
                },
            );
        }
        while hub.poll_action().is_some() {}
        let redeliver = |request, window| Msg::Redeliver {
            epoch: 1,
            request,
            lineage: Vec::new(),
            window,
        };
        hub.handle(
            Now::at(20),
            Node2,
            Msg::Mounted {
                view: view(1, Node2),
            },
        );
        // A mount that was no failover (a move, a remount) asks for no window: nothing is
        // resubmitted (the lineage is not looked at in this mode).
        hub.handle(Now::at(21), Node2, redeliver(1, None));
        assert_eq!(deliveries_sent(&mut hub), Vec::<u64>::new());
        // A lossy mount's window: what the hub's clock put inside it, and nothing else.
        let window = TimeWindow { since_wall: 4_000 };
        hub.handle(Now::at(22), Node2, redeliver(2, Some(window)));
        assert_eq!(deliveries_sent(&mut hub), [2, 3]);
    }

    #[test]
    fn no_more_deliveries_are_unconfirmed_than_the_limit_allows() {
        let mut hub = Hub::new(HubConfig {
            max_concurrent_deliveries: 3,
            ..HubConfig::default()
        });
        let view = View {
            epoch: 1,
            owner: Node1,
        };
        hub.handle(Now::at(0), Node1, Msg::Mounted { view });
        for id in 1..=10 {
            hub.submit(Now::at(1), MessageId(id), 10);
        }
        assert_eq!(deliveries_sent(&mut hub), [1, 2, 3]);
        let delivered = |id| Msg::Delivered {
            id: MessageId(id),
            generation: 1,
            epoch: 1,
        };
        hub.handle(Now::at(5), Node1, delivered(2));
        assert_eq!(
            deliveries_sent(&mut hub),
            [4],
            "one confirmed, one more sent, in order"
        );
        hub.handle(Now::at(6), Node1, delivered(1));
        hub.handle(Now::at(6), Node1, delivered(3));
        assert_eq!(deliveries_sent(&mut hub), [5, 6]);
        // A timeout sends the unconfirmed again first, still within the limit.
        hub.handle_timeout(Now::at(3_000));
        hub.handle(Now::at(3_001), Node1, Msg::Ping { stamp: 1 });
        assert_eq!(deliveries_sent(&mut hub), [4, 5, 6]);
    }

    #[test]
    fn the_current_owner_is_never_sent_what_it_acknowledged_however_old_its_epoch() {
        // Swarm seed 20472: node2 took over in epoch 1 and asked for redelivery; the witness
        // then lost its file and node1, never told of epoch 1, mounted its own epoch 0 view.
        // Every acknowledgement node1 sent was judged a straggler against epoch 1's
        // redelivery and the message sent again — acknowledged again — for ever.
        let mut hub = Hub::new(HubConfig::default());
        let n2 = View {
            epoch: 1,
            owner: Node2,
        };
        hub.handle(Now::at(0), Node2, Msg::Mounted { view: n2 });
        hub.handle(
            Now::at(0),
            Node2,
            Msg::Redeliver {
                epoch: 1,
                request: 1,
                lineage: vec![LineageEntry {
                    epoch: 1,
                    owner: Node2,
                    first_generation: 1,
                    prev_checksum: 0,
                    asked_since: None,
                }],
                window: None,
            },
        );
        hub.handle(Now::at(1), Node2, Msg::NotActive { view: n2 });
        let stale = View {
            epoch: 0,
            owner: Node1,
        };
        hub.handle(Now::at(2), Node1, Msg::Mounted { view: stale });
        hub.submit(Now::at(3), MessageId(9), 10);
        while hub.poll_action().is_some() {}
        hub.handle(
            Now::at(4),
            Node1,
            Msg::Delivered {
                id: MessageId(9),
                generation: 20,
                epoch: 0,
            },
        );
        let actions: Vec<HubAction> = std::iter::from_fn(|| hub.poll_action()).collect();
        assert!(actions.contains(&HubAction::Acknowledged { id: MessageId(9) }));
        assert!(
            !actions.iter().any(|a| matches!(
                a,
                HubAction::Send {
                    msg: Msg::Deliver { .. },
                    ..
                }
            )),
            "sent again after its owner acknowledged it: {actions:?}"
        );
    }

    #[test]
    fn a_late_acknowledgement_from_a_superseded_epoch_is_redelivered() {
        let mut hub = Hub::new(HubConfig::default());
        let old = View {
            epoch: 4,
            owner: Node1,
        };
        hub.handle(Now::at(0), Node1, Msg::Mounted { view: old });
        hub.submit(Now::at(0), MessageId(7), 10);
        // Node2 takes over behind node1's generation 0x72 and is redelivered what the
        // dumpster holds so far (nothing); node1's acknowledgement for 0x72 arrives after.
        let new = View {
            epoch: 5,
            owner: Node2,
        };
        hub.handle(Now::at(10), Node2, Msg::Mounted { view: new });
        let l = |epoch, owner, first| LineageEntry {
            epoch,
            owner,
            first_generation: first,
            prev_checksum: 0,
            asked_since: None,
        };
        let lineage = vec![l(4, Node1, 1), l(5, Node2, 0x72)];
        hub.handle(
            Now::at(10),
            Node2,
            Msg::Redeliver {
                epoch: 5,
                request: 1,
                lineage,
                window: None,
            },
        );
        while hub.poll_action().is_some() {}
        let delivered = |id, generation, epoch| Msg::Delivered {
            id: MessageId(id),
            generation,
            epoch,
        };
        hub.handle(Now::at(11), Node1, delivered(7, 0x72, 4));
        let resent: Vec<Endpoint> = std::iter::from_fn(|| hub.poll_action())
            .filter_map(|a| match a {
                HubAction::Send {
                    to,
                    msg:
                        Msg::Deliver {
                            id: MessageId(7), ..
                        },
                    ..
                } => Some(to),
                _ => None,
            })
            .collect();
        assert_eq!(
            resent,
            vec![Endpoint::Node(Node2)],
            "sent again to the new owner"
        );
        // One node1 had in generation 0x71, inside node2's stream, is not.
        hub.submit(Now::at(12), MessageId(8), 10);
        hub.handle(Now::at(12), Node1, delivered(8, 0x71, 4));
        let resent = std::iter::from_fn(|| hub.poll_action())
            .filter(|a| {
                matches!(
                    a,
                    HubAction::Send {
                        msg: Msg::Deliver { .. },
                        ..
                    }
                )
            })
            .count();
        assert_eq!(resent, 1, "only the submission itself");
    }

    #[test]
    fn dumpster_is_bounded_by_size_and_age() {
        let mut hub = Hub::new(HubConfig {
            dumpster_max_bytes: 250,
            dumpster_max_age_ms: 1_000,
            redelivery_timeout_ms: 100,
            ..HubConfig::default()
        });
        let view = View {
            epoch: 0,
            owner: Node1,
        };
        hub.handle(Now::at(0), Node1, Msg::Mounted { view });
        for i in 0..3 {
            hub.submit(Now::at(i), MessageId(i), 100);
            hub.handle(
                Now::at(i),
                Node1,
                Msg::Delivered {
                    id: MessageId(i),
                    generation: 1,
                    epoch: 0,
                },
            );
        }
        assert_eq!(hub.dumpster_len(), 2, "size bound");
        hub.handle_timeout(Now::at(1_002));
        assert_eq!(hub.dumpster_len(), 0, "age bound");
        let acks = std::iter::from_fn(|| hub.poll_action())
            .filter(|a| matches!(a, HubAction::Acknowledged { .. }))
            .count();
        assert_eq!(acks, 3);
    }

    /// The real hub keeps its state in a file: a hub read back from it carries out a lossy
    /// mount's redelivery exactly as the one that never stopped (queue and dumpster intact).
    #[test]
    fn a_hub_restored_from_its_file_redelivers_what_it_held() {
        let mut hub = Hub::new(HubConfig::default());
        let old = View {
            epoch: 0,
            owner: Node1,
        };
        hub.handle(Now::at(0), Node1, Msg::Mounted { view: old });
        for i in 0..5 {
            hub.submit(Now::at(i), MessageId(i), 100);
        }
        for i in 0..3 {
            hub.handle(
                Now::at(10),
                Node1,
                Msg::Delivered {
                    id: MessageId(i),
                    generation: 2 + i as u32,
                    epoch: 0,
                },
            );
        }
        while hub.poll_action().is_some() {}
        let file = serde_json::to_string(&hub).unwrap();
        let mut restored: Hub = serde_json::from_str(&file).unwrap();
        assert_eq!(restored.dumpster_len(), 3);
        let lossy_mount = |hub: &mut Hub| -> Vec<MessageId> {
            let new = View {
                epoch: 1,
                owner: Node2,
            };
            hub.handle(Now::at(20), Node2, Msg::Mounted { view: new });
            hub.handle(
                Now::at(20),
                Node2,
                Msg::Redeliver {
                    epoch: 1,
                    request: 1,
                    lineage: vec![
                        LineageEntry {
                            epoch: 0,
                            owner: Node1,
                            first_generation: 1,
                            prev_checksum: 0,
                            asked_since: None,
                        },
                        LineageEntry {
                            epoch: 1,
                            owner: Node2,
                            first_generation: 3,
                            prev_checksum: 0,
                            asked_since: None,
                        },
                    ],
                    window: None,
                },
            );
            let mut sent: Vec<MessageId> = std::iter::from_fn(|| hub.poll_action())
                .filter_map(|a| match a {
                    HubAction::Send {
                        msg: Msg::Deliver { id, .. },
                        ..
                    } => Some(id),
                    _ => None,
                })
                .collect();
            sent.sort();
            sent
        };
        let expected = lossy_mount(&mut hub);
        assert_eq!(
            expected,
            [MessageId(1), MessageId(2)],
            "what the generations the new owner lacks held"
        );
        assert_eq!(lossy_mount(&mut restored), expected);
    }
}
