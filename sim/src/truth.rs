//! The ground truth: what the simulated world itself saw — messages on the wire (who sent
//! what, in which epoch, when), what each disk durably holds, what each client was told — and
//! the invariants judged from it. Nothing here asks a node or the hub what it did: their
//! reports are what the checkers are looking for bugs in, so they are only ever *compared*
//! with the truth (`reports-truthful`).
//!
//! Memory stays bounded by what the run itself keeps (one entry per epoch and per mount, the
//! dumpster model's window of entries, and an id per acknowledged message, as the checker of
//! loss needs); disks are read where they are (their durable bytes), never copied.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use ccr_core::cluster::config::ClusterConfig;
use ccr_core::cluster::hub::{HubConfig, RedeliveryMode};
use ccr_core::cluster::node::{DB_FILE, LOG_DIR};
use ccr_core::cluster::wire::{Msg, TimeWindow};
use ccr_core::cluster::{Endpoint, HubId, NodeId};
use ccr_core::disk::MemDisk;
use ccr_core::storage::database::{Database, MessageMeta};
use ccr_core::storage::logfile::{scan, LogHeader, HEADER_LEN};
use ccr_core::storage::names::{parse_closed_log_name, OPEN_LOG};
use ccr_core::storage::record::{decode_frame, Frame, Record};
use ccr_core::storage::{Generation, MessageId};

use crate::observer::Invariant;

/// A verdict against the run: the invariant and what broke it.
pub type Verdict = (Invariant, String);

/// Who wrote in an epoch: acknowledged mail or announced a mount in it.
#[derive(Debug, Clone, Copy)]
struct Writer {
    node: NodeId,
    first_ms: u64,
    last_ms: u64,
}

/// A mount as the wire showed it (the first `Mounted` a node sent in an epoch), judged
/// against the disks at that instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruthMount {
    pub at_ms: u64,
    pub node: NodeId,
    pub epoch: u64,
    /// Log generations the node mounted without: the newest generation with a durable record
    /// on the previous writer's disk, less what the mounting node holds contiguously.
    pub missing: u32,
    /// Of those, the ones the wire had told the node of (heartbeats, the witness): a
    /// generation the old owner began after its last word reached the survivor is beyond
    /// what any implementation could count — the dial's blind spot, as in Exchange.
    pub knowable: u32,
    /// The previous writer handed the server over (a scheduled move, not a failover).
    pub moved: bool,
    /// The hand-over told the target to drain the old owner's share and apply the mount dial:
    /// the old owner's store had failed (the restart policy failing the group over), so nobody
    /// could make the target catch up first. Judged by the dial, not as a lossless move.
    pub drained: bool,
    /// An administrator told the node to mount whatever it had (`Restore-StorageGroupCopy`),
    /// or `forced_database_mount_after_ms` had run out: a loss accepted by design.
    pub forced: bool,
}

/// What one disk durably holds, decoded from its bytes.
#[derive(Debug, Default)]
pub struct DiskFacts {
    /// Closed generations in `logs/` and the crc32c of each file's durable bytes.
    pub closed: BTreeMap<Generation, u32>,
    /// The open log's generation and how many intact records its durable prefix holds.
    pub open: Option<(Generation, usize)>,
    /// The database file's checkpoint, if the file is readable.
    pub db_checkpoint: Option<Generation>,
}

impl DiskFacts {
    pub fn read(disk: &MemDisk) -> DiskFacts {
        let mut facts = DiskFacts::default();
        for name in disk.names_in(LOG_DIR) {
            let path = format!("{LOG_DIR}/{name}");
            let Some(bytes) = disk.durable(&path) else {
                continue;
            };
            if let Some(g) = parse_closed_log_name(&name) {
                facts.closed.insert(g, crc32c::crc32c(bytes));
            } else if name == OPEN_LOG {
                if let Ok(s) = scan(bytes) {
                    facts.open = Some((s.header.generation, s.records.len()));
                }
            }
        }
        facts.db_checkpoint = db_file(disk).map(|db| db.checkpoint());
        facts
    }

    /// The newest generation holding at least one durable record (closed logs hold theirs).
    pub fn newest_written(&self) -> Generation {
        let closed = self.closed.keys().next_back().copied().unwrap_or(0);
        match self.open {
            Some((g, records)) if records > 0 => g.max(closed),
            _ => closed,
        }
    }

    /// The end of the unbroken run of closed generations that starts at the oldest one held
    /// (or at the database's checkpoint when the logs before it are gone), together with an
    /// open log that continues it.
    pub fn contiguous(&self) -> Generation {
        let mut end = self.db_checkpoint.unwrap_or(0);
        while self.closed.contains_key(&(end + 1)) {
            end += 1;
        }
        match self.open {
            Some((g, records)) if records > 0 && g == end + 1 => g,
            _ => end,
        }
    }

    /// The newest closed generation.
    pub fn last_closed(&self) -> Generation {
        self.closed.keys().next_back().copied().unwrap_or(0)
    }
}

/// Whether the open log's durable bytes end in something that is not a record: a torn or
/// garbled tail the node's recovery must cut at its next start. Reads the open log only.
pub fn open_log_torn(disk: &MemDisk) -> bool {
    disk.durable(&format!("{LOG_DIR}/{OPEN_LOG}"))
        .and_then(|b| scan(b).ok())
        .is_some_and(|s| s.stopped_at.is_some())
}

/// The newest generation with a durable record on `disk`, read cheaply (the last closed log's
/// name, and the open log's first frame): taken at every write a node makes, so that what it
/// had written when it lost ownership is known even if its disk later forgets it (a reseed).
/// The newest closed log's generation, from the names alone (no log is read).
pub fn last_closed_quick(disk: &MemDisk) -> Generation {
    disk.last_in(LOG_DIR)
        .and_then(parse_closed_log_name)
        .unwrap_or(0)
}

pub fn newest_written_quick(disk: &MemDisk) -> Generation {
    let closed = last_closed_quick(disk);
    let open = disk
        .durable(&format!("{LOG_DIR}/{OPEN_LOG}"))
        .filter(|b| b.len() > HEADER_LEN)
        .and_then(|b| {
            let header = LogHeader::decode(b).ok()?;
            matches!(decode_frame(&b[HEADER_LEN..]), Ok((Frame::Record(_), _)))
                .then_some(header.generation)
        })
        .unwrap_or(0);
    closed.max(open)
}

/// The generation of the closed log at `path` in the log folder, if it is one.
fn closed_log_at(path: &str) -> Option<Generation> {
    path.strip_prefix(LOG_DIR)?
        .strip_prefix('/')
        .and_then(parse_closed_log_name)
}

/// The database file is on the disk but cannot be read: damaged at rest.
pub fn db_damaged(disk: &MemDisk) -> bool {
    disk.durable(DB_FILE).is_some() && db_file(disk).is_none()
}

/// The database file as it durably stands, if it is readable.
fn db_file(disk: &MemDisk) -> Option<Database> {
    disk.durable(DB_FILE)
        .and_then(|b| Database::from_image(b, 0).ok())
}

/// Acknowledged mail a disk's mailbox holds more than once: messages the stream inserts
/// again while it holds them. Read from the logs from generation 1 on; a copy seeded from a
/// database file (whose earlier logs it never had) is read from that file's content and the
/// logs after its checkpoint — the file itself keeps one entry per id, so a duplicate written
/// before the seed's checkpoint is not seen there (it is on the disk of the copy it came
/// from).
pub fn duplicates(disk: &MemDisk) -> usize {
    let mut logs: Vec<(Generation, Vec<Record>)> = disk
        .names_in(LOG_DIR)
        .into_iter()
        .filter_map(|name| {
            let scanned = scan(disk.durable(&format!("{LOG_DIR}/{name}"))?).ok()?;
            Some((scanned.header.generation, scanned.records))
        })
        .collect();
    logs.sort_by_key(|(g, _)| *g);
    let mut held = BTreeSet::new();
    if logs.first().is_none_or(|(g, _)| *g > 1) {
        if let Some(db) = db_file(disk) {
            let checkpoint = db.applied();
            held = db.message_ids().collect();
            logs.retain(|(g, _)| *g > checkpoint);
        }
    }
    let mut twice = BTreeSet::new();
    for (_, records) in logs {
        for r in records {
            match r {
                Record::Insert { id, .. } => {
                    if !held.insert(id) {
                        twice.insert(id);
                    }
                }
                Record::Delete { id } => {
                    held.remove(&id);
                }
            }
        }
    }
    twice.len()
}

/// What the clients sent: every message of the scenario's size, with the body its id stands
/// for when the workload carries bodies and none otherwise. The checkers compare what is
/// stored with this, never with a digest a node computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientMail {
    pub size: u32,
    pub bodies: bool,
}

impl ClientMail {
    pub fn of(workload: &crate::scenario::Workload) -> ClientMail {
        ClientMail {
            size: workload.message_size,
            bodies: workload.bodies,
        }
    }

    pub fn body(&self, id: MessageId) -> Vec<u8> {
        if self.bodies {
            ccr_core::storage::body::generate(id, self.size)
        } else {
            Vec::new()
        }
    }

    /// What a stored copy of `id` must be: the size the client sent and the crc32c of the
    /// body it sent.
    pub fn expected(&self, id: MessageId) -> MessageMeta {
        MessageMeta::of(self.size, &self.body(id))
    }
}

/// The messages a disk durably holds, as stored: size and the crc32c of the stored body.
type Stored = BTreeMap<MessageId, MessageMeta>;

/// Applies a log's records as replay would: the first insert of an id stays (the store drops
/// duplicates by id), a delete removes it. Body checksums are computed here, from the bytes.
fn apply_records(stored: &mut Stored, records: Vec<Record>) {
    for r in records {
        match r {
            Record::Insert { id, size, body } => {
                stored
                    .entry(id)
                    .or_insert_with(|| MessageMeta::of(size, &body));
            }
            Record::Delete { id } => {
                stored.remove(&id);
            }
        }
    }
}

/// The messages a disk durably holds: in its database file and in every log's intact records.
pub fn durable_messages(disk: &MemDisk) -> Stored {
    let mut stored: Stored = db_file(disk)
        .map(|db| db.messages().collect())
        .unwrap_or_default();
    add_logged_messages(&mut stored, disk);
    stored
}

/// Adds the messages in every log's intact records on `disk` (a takeover copies those from
/// its share even when the database file beside them is damaged).
pub fn add_logged_messages(stored: &mut Stored, disk: &MemDisk) {
    for name in disk.names_in(LOG_DIR) {
        let Some(bytes) = disk.durable(&format!("{LOG_DIR}/{name}")) else {
            continue;
        };
        if let Ok(s) = scan(bytes) {
            apply_records(stored, s.records);
        }
    }
}

/// What a verified full backup held: the stream's content up to `at`, on the branch whose
/// generation `at` has the checksum `anchor`. A later failover may abandon that branch (a
/// node that diverged is reseeded), so the content counts only for a disk whose log `at + 1`
/// chains to the same generation `at`.
#[derive(Debug, Clone)]
pub struct StreamBase {
    pub at: Generation,
    pub anchor: u32,
    pub content: Stored,
}

impl StreamBase {
    fn continued_on(&self, disk: &MemDisk) -> bool {
        anchor_of(disk, self.at) == Some(self.anchor)
    }
}

/// The checksum of generation `g` on `disk`'s branch: what the header of log `g + 1` chains
/// to, or else the closed log `g`'s own checksum.
fn anchor_of(disk: &MemDisk, g: Generation) -> Option<u32> {
    let path = |g| format!("{LOG_DIR}/{}", ccr_core::storage::names::closed_log_name(g));
    disk.durable(&path(g + 1))
        .and_then(|b| LogHeader::decode(b).ok())
        .map(|h| h.prev_checksum)
        .or_else(|| disk.durable(&path(g)).map(crc32c::crc32c))
}

/// The content of the stream up to `generation` as one disk's closed logs spell it, if that
/// disk holds every generation from 1 — or from the end of `base` (a backed-up checkpoint's
/// content, checked when the backup was taken) when `generation` is not before it.
fn stream_content(
    disk: &MemDisk,
    generation: Generation,
    base: Option<&StreamBase>,
) -> Option<Stored> {
    let (from, mut stored) = match base {
        Some(b) if b.at <= generation && b.continued_on(disk) => (b.at + 1, b.content.clone()),
        _ => (1, Stored::new()),
    };
    for g in from..=generation {
        let path = format!("{LOG_DIR}/{}", ccr_core::storage::names::closed_log_name(g));
        let log = scan(disk.durable(&path)?).ok()?;
        // A log damaged at rest (its checksums fail before its close mark) spells nothing:
        // the other copy may, or the stream cannot be judged here.
        if log.closed_at.is_none() || log.stopped_at.is_some() {
            return None;
        }
        apply_records(&mut stored, log.records);
    }
    Some(stored)
}

/// The first message of `stored` that is not what the client sent, as evidence.
pub fn unlike_sent(stored: &Stored, client: ClientMail) -> Option<String> {
    stored.iter().find_map(|(id, meta)| {
        let sent = client.expected(*id);
        (*meta != sent).then(|| {
            format!(
                "message {} is stored as {} bytes with body crc32c {:08x}; the client sent {} bytes, body crc32c {:08x}",
                id.0, meta.size, meta.body_crc, sent.size, sent.body_crc
            )
        })
    })
}

/// The checker's own model of the transport dumpster, built from the wire alone: an entry for
/// every delivery the hub had sent and a node confirmed, first in first out, bounded by the
/// configured size and age. When a message left it is what the hub *had* to do, whatever the
/// hub says it did.
#[derive(Debug, Default, Clone)]
struct DumpsterModel {
    max_bytes: u64,
    max_age_ms: u64,
    /// Deliveries sent and not yet confirmed, with their sizes.
    outstanding: BTreeMap<MessageId, u32>,
    order: VecDeque<(u64, MessageId)>,
    held: BTreeMap<MessageId, (u64, u32)>,
    bytes: u64,
    evicted: BTreeMap<MessageId, u64>,
}

impl DumpsterModel {
    fn sent(&mut self, id: MessageId, size: u32) {
        self.outstanding.insert(id, size);
    }

    fn confirmed(&mut self, at: u64, id: MessageId) {
        let Some(size) = self.outstanding.remove(&id) else {
            return;
        };
        if let Some((_, old)) = self.held.insert(id, (at, size)) {
            self.bytes -= u64::from(old);
        }
        self.bytes += u64::from(size);
        self.evicted.remove(&id);
        self.order.push_back((at, id));
        self.evict(at);
    }

    fn evict(&mut self, now: u64) {
        while let Some(&(at, id)) = self.order.front() {
            let current = self.held.get(&id).is_some_and(|(t, _)| *t == at);
            let too_old = now >= at + self.max_age_ms;
            if current && !too_old && self.bytes <= self.max_bytes {
                break;
            }
            self.order.pop_front();
            if current {
                let (_, size) = self.held.remove(&id).expect("current");
                self.bytes -= u64::from(size);
                // An entry that aged out left when its age ran out, not when we looked.
                let left = if too_old {
                    (at + self.max_age_ms).min(now)
                } else {
                    now
                };
                self.evicted.insert(id, left);
            }
        }
    }
}

#[derive(Default)]
struct State {
    /// The content of the stream up to a backed-up checkpoint, checked against the logs
    /// when the backup was taken: where truncation has deleted the logs before it, the
    /// replication checker starts from here instead of from generation 1.
    stream_base: Option<StreamBase>,
    /// Every generation up to here is held by an ordered backup the world saw taken.
    backed_up_through: Generation,
    /// Backups an administrator ordered on each node, not yet taken.
    backups_ordered: BTreeMap<NodeId, u32>,
    /// Nodes an administrator told to reseed whose copy has not been discarded yet.
    reseeds_ordered: BTreeSet<NodeId>,
    epochs: BTreeMap<u64, Writer>,
    /// Per node, its current run of writing: (first act, last act).
    runs: BTreeMap<NodeId, (u64, u64)>,
    mounts: Vec<TruthMount>,
    /// (node, epoch) pairs whose mount has been seen, since the node's process started or it
    /// last said it does not serve: a later `Mounted` in the same epoch is the same mount.
    announced: BTreeSet<(NodeId, u64)>,
    /// When each node first told anyone on the wire that it owns an epoch (a heartbeat with
    /// that view): no wait of its as that epoch's owner began before it.
    owned_since: BTreeMap<(NodeId, u64), u64>,
    /// Views handed over by a scheduled move: (new owner, epoch).
    handed_over: BTreeSet<(NodeId, u64)>,
    /// Of those, the hand-overs that told the target to drain the old owner's share.
    drained: BTreeSet<(NodeId, u64)>,
    /// Nodes an administrator told to mount whatever they have, not yet mounted since.
    restore_ordered: BTreeSet<NodeId>,
    /// An administrator ran Stop-ClusteredMailboxServer and no Start since.
    stop_ordered: bool,
    /// When that stop returned to the administrator (it is done): from then on nobody may
    /// write until a start is ordered.
    stopped_since: Option<u64>,
    /// What each node's first mount event in an epoch said it lost, waiting for the wire's
    /// mount to compare. The first: a node that mounts again in its own epoch (quorum lost
    /// and regained before the hub heard of the first mount) has already reported the loss,
    /// and says 0 the second time (swarm@3 seed 94).
    reported_lost: BTreeMap<(NodeId, u64), u32>,
    /// One model per hub (each keeps its own dumpster), made from `limits` when the hub is
    /// first seen.
    dumpsters: BTreeMap<HubId, DumpsterModel>,
    limits: DumpsterModel,
    /// When each hub first answered each redelivery request (hub, node, request id).
    redelivery_answered: BTreeMap<(HubId, NodeId, u64), u64>,
    /// The newest log generation each node has been told of on the wire (the peer's
    /// heartbeats, the witness's answers): all a survivor can know of what it lacks.
    /// Each increase, with its time: a mount is judged by what the node had been told before
    /// it mounted (the store checks the dial again as it mounts).
    told_head: BTreeMap<NodeId, Vec<(u64, Generation)>>,
    /// Heads delivered to a paused process: it reads them only when it runs again.
    held_heads: BTreeMap<NodeId, Generation>,
    paused: BTreeSet<NodeId>,
    /// Messages the hub sent again after a node had confirmed them (redeliveries, read from
    /// the wire).
    redelivered: BTreeSet<MessageId>,
    /// Per node: the epoch it last wrote in, and the newest generation its disk durably held
    /// at any of its writes in that epoch.
    high_water: BTreeMap<NodeId, (u64, Generation)>,
    /// Time-window redelivery only: the hub's wall clock when each confirmation reached it
    /// (what a time-window hub judges by) beside the confirming node's at that instant, and
    /// the newest failover window by epoch.
    hub_stamps: BTreeMap<MessageId, (u64, u64)>,
    windows: BTreeMap<u64, (NodeId, TimeWindow)>,
}

impl State {
    fn dumpster(&mut self, hub: HubId) -> &mut DumpsterModel {
        let limits = &self.limits;
        self.dumpsters.entry(hub).or_insert_with(|| DumpsterModel {
            max_bytes: limits.max_bytes,
            max_age_ms: limits.max_age_ms,
            ..Default::default()
        })
    }

    fn tell(&mut self, node: NodeId, at: u64, head: Generation) {
        let told = self.told_head.entry(node).or_default();
        if told.last().is_none_or(|(_, h)| head > *h) {
            told.push((at, head));
        }
    }
}

pub struct Truth {
    time_window: bool,
    dial_allowed: u32,
    /// `forced_database_mount_after_ms` as the slowest clock could count it: a mount beyond
    /// the dial is by design once this long has passed since the node owned the epoch.
    forced_mount_after_ms: Option<u64>,
    heartbeat_ms: u64,
    state: std::sync::Mutex<State>,
}

impl Truth {
    pub fn new(config: &ClusterConfig, hub: &HubConfig) -> Truth {
        Truth {
            time_window: hub.redelivery == RedeliveryMode::TimeWindow,
            dial_allowed: config.dial_limits.allowed(config.mount_dial),
            forced_mount_after_ms: config.forced_database_mount_after_ms.map(|after| {
                let ppm = config.max_drift_ppm.min(500_000);
                after * (1_000_000 - ppm) / 1_000_000
            }),
            heartbeat_ms: config.heartbeat_interval_ms(),
            state: std::sync::Mutex::new(State {
                limits: DumpsterModel {
                    max_bytes: hub.dumpster_max_bytes,
                    // The hub ages entries on its own clock, which may run fast by up to half
                    // the drift bound: on the simulation's clock an entry may leave that much
                    // sooner.
                    max_age_ms: (u128::from(hub.dumpster_max_age_ms) * 1_000_000
                        / (1_000_000 + u128::from(config.max_drift_ppm / 2)))
                        as u64,
                    ..Default::default()
                },
                ..Default::default()
            }),
        }
    }

    /// A serving node announces its mount every heartbeat: a longer silence ends its run.
    fn run_gap_ms(&self) -> u64 {
        3 * self.heartbeat_ms
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("truth")
    }

    /// A message left its sender (whether or not any network carries it). Returns the
    /// verdict when the sender acted as a writer where it may not, and the mount it made when
    /// this is the first word of a new mount (for the caller to judge against the disks).
    pub fn sent(
        &self,
        at: u64,
        from: Endpoint,
        to: Endpoint,
        msg: &Msg,
        written: impl FnOnce(NodeId) -> Generation,
    ) -> Sent {
        let mut confirmed = None;
        if let (
            Endpoint::Node(n),
            Msg::Delivered { epoch, .. }
            | Msg::Redeliver { epoch, .. }
            | Msg::Mounted {
                view: ccr_core::cluster::wire::View { epoch, .. },
            },
        ) = (from, msg)
        {
            let now = written(n);
            if matches!(msg, Msg::Delivered { .. }) {
                confirmed = Some((n, now));
            }
            let mut s = self.state();
            let hw = s.high_water.entry(n).or_insert((*epoch, now));
            *hw = if hw.0 == *epoch {
                (*epoch, hw.1.max(now))
            } else {
                (*epoch, now)
            };
        }
        if let (
            true,
            Endpoint::Node(n),
            Msg::Redeliver {
                epoch,
                window: Some(w),
                ..
            },
        ) = (self.time_window, from, msg)
        {
            self.state().windows.insert(*epoch, (n, *w));
        }
        let mut s = self.state();
        match (from, msg) {
            (Endpoint::Hub(h), Msg::Deliver { id, size, .. }) => {
                // Sent again after a node had confirmed it: a redelivery from the dumpster.
                let d = s.dumpster(h);
                if d.held.contains_key(id) || d.evicted.contains_key(id) {
                    s.redelivered.insert(*id);
                }
                s.dumpster(h).sent(*id, *size)
            }
            (Endpoint::Hub(h), Msg::RedeliveryAccepted { request }) => {
                if let Endpoint::Node(n) = to {
                    let key = (h, n, *request);
                    let first = !s.redelivery_answered.contains_key(&key);
                    s.redelivery_answered.entry(key).or_insert(at);
                    return Sent {
                        first_redelivery_answer: first,
                        ..Sent::default()
                    };
                }
            }
            (Endpoint::Node(_), Msg::HandOver { view, drain, .. }) => {
                s.handed_over.insert((view.owner, view.epoch));
                if *drain {
                    s.drained.insert((view.owner, view.epoch));
                }
            }
            (Endpoint::Node(n), Msg::Delivered { epoch, .. }) => {
                return Sent {
                    verdict: write_act(
                        &mut s,
                        n,
                        *epoch,
                        at,
                        self.run_gap_ms(),
                        "acknowledged mail",
                    ),
                    confirmed,
                    ..Sent::default()
                };
            }
            (Endpoint::Node(n), Msg::NotActive { .. }) => {
                s.announced.retain(|(node, _)| *node != n);
            }
            (Endpoint::Node(n), Msg::Heartbeat(hb)) if hb.view.owner == n => {
                s.owned_since.entry((n, hb.view.epoch)).or_insert(at);
            }
            // A mount's first word is its redelivery request (the owner announces itself once
            // the hub has taken that), or the announcement itself when it asks for none.
            (
                Endpoint::Node(n),
                Msg::Redeliver { epoch, .. }
                | Msg::Mounted {
                    view: ccr_core::cluster::wire::View { epoch, .. },
                },
            ) => {
                let epoch = *epoch;
                let new = s.announced.insert((n, epoch));
                // Mounting again in an epoch it already wrote in (after a restart), a node
                // follows its own writing: whatever it gave up, it gave up at its first mount.
                let previous = match s.epochs.get(&epoch) {
                    Some(w) if w.node == n => Some(n),
                    _ => s.epochs.range(..epoch).next_back().map(|(_, w)| w.node),
                };
                let verdict =
                    write_act(&mut s, n, epoch, at, self.run_gap_ms(), "announced a mount");
                let mount = new.then(|| PendingMount {
                    node: n,
                    epoch,
                    previous,
                    moved: s.handed_over.contains(&(n, epoch)),
                    drained: s.drained.contains(&(n, epoch)),
                    forced: s.restore_ordered.remove(&n),
                });
                return Sent {
                    verdict,
                    mount,
                    ..Sent::default()
                };
            }
            _ => {}
        }
        Sent::default()
    }

    /// A message reached its destination.
    pub fn delivered(&self, at: u64, to: Endpoint, msg: &Msg) {
        let head = match msg {
            // The stream's head as its owner states it: a follower's logs may be a branch
            // the owner's stream does not continue (they are rolled back), so a node cannot
            // take them as its stream's head.
            Msg::Heartbeat(hb) if Endpoint::Node(hb.view.owner) != to => {
                let open = hb.open_generation.filter(|_| hb.open_records > 0);
                Some(hb.last_closed.max(open.unwrap_or(0)))
            }
            Msg::WitnessGranted { head, .. } | Msg::WitnessDenied { head, .. } => Some(*head),
            _ => None,
        };
        let mut s = self.state();
        match (to, msg, head) {
            (Endpoint::Hub(h), Msg::Delivered { id, .. }, _) => s.dumpster(h).confirmed(at, *id),
            (Endpoint::Node(n), _, Some(_)) if s.paused.contains(&n) => {
                let held = s.held_heads.entry(n).or_default();
                *held = (*held).max(head.unwrap_or(0));
            }
            (Endpoint::Node(n), _, Some(head)) => s.tell(n, at, head),
            _ => {}
        }
    }

    /// `node`'s process stopped running (`true`) or runs again: what reached it meanwhile
    /// counts as told from the instant it runs again.
    pub fn process_paused(&self, at: u64, node: NodeId, paused: bool) {
        let mut s = self.state();
        if paused {
            s.paused.insert(node);
        } else {
            s.paused.remove(&node);
            if let Some(head) = s.held_heads.remove(&node) {
                s.tell(node, at, head);
            }
        }
    }

    /// Whether `node` has been writing without a break (acknowledging mail or announcing its
    /// mount every heartbeat) from `since` until `now`.
    pub fn served_throughout(&self, node: NodeId, since: u64, now: u64) -> bool {
        let gap = self.run_gap_ms();
        self.state()
            .runs
            .get(&node)
            .is_some_and(|(first, last)| *first <= since && now.saturating_sub(*last) <= gap)
    }

    /// Whether `node`'s process is paused (what reaches it waits until it runs again).
    pub fn is_paused(&self, node: NodeId) -> bool {
        self.state().paused.contains(&node)
    }

    /// `node`'s services (re)started: what its earlier process was told died with it.
    pub fn process_started(&self, node: NodeId) {
        let mut s = self.state();
        s.told_head.remove(&node);
        s.held_heads.remove(&node);
        s.paused.remove(&node);
        s.announced.retain(|(n, _)| *n != node);
    }

    /// Messages the wire shows redelivered: sent again by the hub after a confirmation.
    pub fn redelivered(&self) -> u64 {
        self.state().redelivered.len() as u64
    }

    /// An administrator ran Stop- (`true`) or Start-ClusteredMailboxServer (`false`).
    pub fn stop_ordered(&self, stop: bool) {
        let mut s = self.state();
        s.stop_ordered = stop;
        if !stop {
            s.stopped_since = None;
        }
    }

    pub fn is_stop_ordered(&self) -> bool {
        self.state().stop_ordered
    }

    /// Whether a stop has returned and no start was ordered since.
    pub fn is_stopped(&self) -> bool {
        self.state().stopped_since.is_some()
    }

    /// The administrator's stop returned at `at`. Returns whether this is news.
    pub fn stop_returned(&self, at: u64) -> bool {
        let mut s = self.state();
        if s.stop_ordered && s.stopped_since.is_none() {
            s.stopped_since = Some(at);
            return true;
        }
        false
    }

    /// An administrator ordered `node` to mount whatever it has.
    pub fn restore_ordered(&self, node: NodeId) {
        self.state().restore_ordered.insert(node);
    }

    /// What a node said it lost at a mount in `epoch` (compared with the truth's count).
    pub fn node_reported_mount(&self, node: NodeId, epoch: u64, lost: u32) {
        self.state()
            .reported_lost
            .entry((node, epoch))
            .or_insert(lost);
    }

    /// Judges a mount against the disks as they are at its instant: the previous writer's
    /// (who lost ownership) and the mounting node's: the mount as the truth sees it, and the
    /// verdicts it breaks.
    pub fn judge_mount(
        &self,
        at: u64,
        pending: PendingMount,
        mounting: &DiskFacts,
        previous: Option<&DiskFacts>,
    ) -> Judged {
        let (missing, knowable) = match (previous, pending.previous) {
            (Some(prev), Some(p)) if p != pending.node => {
                // What it had written when it lost ownership, even if its disk has forgotten
                // some of it since (a reseed of the old owner before this mount).
                let high_water = self.state().high_water.get(&p).map_or(0, |(_, g)| *g);
                let head = prev.newest_written().max(high_water);
                // Told before the instant it mounted (the store checks the dial as it mounts;
                // what arrives in the same millisecond may be read after).
                let told = self
                    .state()
                    .told_head
                    .get(&pending.node)
                    .and_then(|t| t.iter().rev().find(|(when, _)| *when < at))
                    .map_or(0, |(_, h)| *h);
                let have = mounting.contiguous();
                (
                    head.saturating_sub(have),
                    head.min(told).saturating_sub(have),
                )
            }
            _ => (0, 0),
        };
        // ForcedDatabaseMountAfter: the mounting node's wait began no earlier than it owned
        // the epoch, which it tells in its heartbeats at most one interval after adopting
        // the view (a node that never told anyone counts from its mount: no excuse).
        let forced_by_setting = self.forced_mount_after_ms.is_some_and(|after| {
            let told = self
                .state()
                .owned_since
                .get(&(pending.node, pending.epoch))
                .copied()
                .unwrap_or(at);
            at + self.heartbeat_ms >= told + after
        });
        let mount = TruthMount {
            at_ms: at,
            node: pending.node,
            epoch: pending.epoch,
            missing,
            knowable,
            moved: pending.moved,
            drained: pending.drained,
            forced: pending.forced || forced_by_setting,
        };
        let mut verdicts = Vec::new();
        if mount.moved && !mount.drained && missing > 0 {
            verdicts.push((
                Invariant::MoveLossless,
                format!(
                    "a scheduled move to {} mounted {missing} generation(s) short of what the old owner had written",
                    mount.node
                ),
            ));
        } else if !mount.forced && knowable > self.dial_allowed {
            verdicts.push((
                Invariant::MountDial,
                format!(
                    "{} mounted automatically {knowable} generation(s) short of what {}'s disk holds and it had been told of; the dial allows {}",
                    mount.node,
                    pending.previous.map_or("the previous owner".into(), |p| p.to_string()),
                    self.dial_allowed
                ),
            ));
        }
        let mut over_reported = false;
        let mut s = self.state();
        if let Some(reported) = s.reported_lost.remove(&(mount.node, mount.epoch)) {
            // Fewer than it had been told of is never right: it hides a loss from the
            // administrator. More is tolerated and counted: a node knows the lost owner's open
            // log from heartbeats (records not yet synced included), and the witness may
            // remember a head that was rolled back since.
            if reported < knowable {
                verdicts.push((
                    Invariant::ReportsTruthful,
                    format!(
                        "{} reported {reported} log(s) lost at its mount; the disks say {missing}, of which it had been told of {knowable} ({})",
                        mount.node,
                        pending.previous.map_or("no previous owner".into(), |p| format!("{p} wrote before")),
                    ),
                ));
            } else if reported > missing {
                over_reported = true;
            }
        }
        s.mounts.push(mount.clone());
        Judged {
            mount,
            verdicts,
            over_reported,
        }
    }

    /// An administrator ordered a reseed of `node`'s copy: its next deletion of logs is the
    /// reseed discarding the old copy, not truncation.
    pub fn reseed_ordered(&self, node: NodeId) {
        self.state().reseeds_ordered.insert(node);
    }

    /// An administrator ordered a backup on `node` (the world's own record of the command).
    pub fn backup_ordered(&self, node: NodeId) {
        *self.state().backups_ordered.entry(node).or_default() += 1;
    }

    /// A node said it took a backup at `reported` (its database file's checkpoint). Judged
    /// from its disk as it now stands — which is what the backup copies: only an ordered
    /// backup counts, the checkpoint must be the file's, and a full backup's database must
    /// hold what the logs up to it hold. What the backup holds (the database up to its
    /// checkpoint, the closed logs on the disk) is what truncation may then delete, and a full
    /// backup's verified content becomes the replication checker's starting point.
    pub fn backup_taken(
        &self,
        node: NodeId,
        kind: ccr_core::cluster::wire::BackupKind,
        reported: Generation,
        disks: [&MemDisk; 2],
    ) -> Vec<(Invariant, String)> {
        let mut verdicts = Vec::new();
        let own = disks[node.index()];
        let ordered = match self.state().backups_ordered.get_mut(&node) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        };
        if !ordered {
            verdicts.push((
                Invariant::ReportsTruthful,
                format!("{node} reported a {kind} backup nobody ordered"),
            ));
            return verdicts;
        }
        let Some(db) = db_file(own) else {
            verdicts.push((
                Invariant::ReportsTruthful,
                format!("{node} reported a {kind} backup at checkpoint {reported:#x}, but its database file cannot be read"),
            ));
            return verdicts;
        };
        let actual = db.checkpoint();
        if actual != reported {
            verdicts.push((
                Invariant::ReportsTruthful,
                format!("{node} reported a {kind} backup at checkpoint {reported:#x}, but its database file durably holds {actual:#x}"),
            ));
        }
        let full = kind == ccr_core::cluster::wire::BackupKind::Full;
        let mut s = self.state();
        // What the backups hold without a gap from generation 1: a full backup's database
        // up to its checkpoint, then the closed logs each backup copied.
        let mut covered = s.backed_up_through;
        if full {
            covered = covered.max(actual);
        }
        let facts = DiskFacts::read(own);
        while facts.closed.contains_key(&(covered + 1)) {
            covered += 1;
        }
        s.backed_up_through = covered;
        if !full {
            return verdicts;
        }
        let content: Stored = db.messages().collect();
        let Some(anchor) = anchor_of(own, actual) else {
            return verdicts;
        };
        let base = s.stream_base.as_ref();
        let other = disks[1 - node.index()];
        // Judged by the disks on this backup's branch only.
        let expected = [own, other]
            .into_iter()
            .filter(|d| anchor_of(d, actual) == Some(anchor))
            .find_map(|d| stream_content(d, actual, base));
        match expected {
            Some(expected) if expected != content => verdicts.push((
                Invariant::ReplicationSound,
                format!("{node}'s {kind} backup at checkpoint {actual:#x} holds a database that differs from the logs up to it"),
            )),
            Some(_) if base.is_none_or(|b| b.at < actual || !b.continued_on(own)) => {
                s.stream_base = Some(StreamBase {
                    at: actual,
                    anchor,
                    content,
                })
            }
            _ => {}
        }
        verdicts
    }

    /// Log files a node deleted (read from its disk's journal, not from what it said). A
    /// closed log deleted while a newer closed log stays is being truncated (a rollback
    /// deletes the newest logs; a reseed an administrator ordered discards the copy; the
    /// other checkers judge those by what they do to the mail). Truncation may delete only what a backup holds, what the node's
    /// own database file durably holds, and what the other copy still holds, as a log or in
    /// its database file (Exchange truncates only backed-up logs both copies have replayed).
    pub fn logs_removed(&self, node: NodeId, paths: &[String], disks: [&MemDisk; 2]) -> Removals {
        let mut removals = Removals::default();
        let closed_logs = paths.iter().any(|p| closed_log_at(p).is_some());
        if closed_logs && self.state().reseeds_ordered.remove(&node) {
            return removals;
        }
        let own = disks[node.index()];
        let own_checkpoint = db_file(own).map_or(0, |db| db.checkpoint());
        let newest_kept = last_closed_quick(own);
        let other = disks[1 - node.index()];
        // A database file damaged at rest makes that copy one to reseed whatever this node
        // deletes (its logs up to the checkpoint went with the backup): nothing to judge.
        let other_damaged = db_damaged(other);
        let other_checkpoint = db_file(other).map_or(0, |db| db.checkpoint());
        let backed_up = self.state().backed_up_through;
        for path in paths {
            let Some(g) = closed_log_at(path) else {
                continue;
            };
            if g >= newest_kept {
                continue;
            }
            removals.truncated += 1;
            let why = if g > backed_up {
                format!("which no backup holds (backed up to {backed_up:#x})")
            } else if g > own_checkpoint {
                format!("which its own database file does not hold yet (checkpoint {own_checkpoint:#x})")
            } else if !(other_damaged || g <= other_checkpoint || other.durable(path).is_some()) {
                format!(
                    "which {}'s copy neither holds nor has in its database file (checkpoint {other_checkpoint:#x})",
                    node.peer()
                )
            } else {
                continue;
            };
            removals.verdict.get_or_insert((
                Invariant::TruncationSafe,
                format!("{node} truncated log {g:#x}, {why}"),
            ));
        }
        removals
    }

    /// The verified stream content a backup left, for the replication checker.
    pub fn stream_base(&self) -> Option<StreamBase> {
        self.state().stream_base.clone()
    }

    pub fn mounts(&self) -> Vec<TruthMount> {
        self.state().mounts.clone()
    }

    /// The node that wrote in the newest epoch, if it announced its mount within the last
    /// few heartbeats (it announces one every heartbeat while it serves).
    pub fn serving(&self, now: u64) -> Option<NodeId> {
        let s = self.state();
        let (_, w) = s.epochs.iter().next_back()?;
        (now.saturating_sub(w.last_ms) <= 3 * self.heartbeat_ms).then_some(w.node)
    }

    /// Whether losing `id` is explained by the dumpster's configured limits: by the checker's
    /// own model it had to leave the dumpster before the hub answered the latest redelivery
    /// request, so no redelivery could bring it back. Returns the evidence.
    /// Whether the hub's clock is needed: time-window redelivery judges by it.
    pub fn wants_hub_stamps(&self) -> bool {
        self.time_window
    }

    /// A confirmation of `id` reached the hub when its wall clock read `hub_wall` and the
    /// confirming node's read `node_wall`.
    pub fn hub_stamped(&self, id: MessageId, hub_wall: u64, node_wall: u64) {
        if self.time_window {
            self.state().hub_stamps.insert(id, (hub_wall, node_wall));
        }
    }

    /// Time-window redelivery only: `id` was lost because the hub's clock put its delivery
    /// before the newest failover window opened while the confirming node's clock, at the same
    /// instant, put it inside — a hub that follows the rule could not resubmit it, and only
    /// the clocks' disagreement made it so. A loss the window misses by both clocks is no
    /// skew's doing (say an earlier failover's window was never asked for): not excused.
    pub fn skew_loss(&self, id: MessageId) -> Option<String> {
        if !self.time_window {
            return None;
        }
        let s = self.state();
        let (epoch, (node, w)) = s.windows.iter().next_back()?;
        let (stamp, node_stamp) = *s.hub_stamps.get(&id)?;
        (stamp < w.since_wall && node_stamp >= w.since_wall).then(|| {
            format!(
                "{id:?} was confirmed at {stamp} ms by the hub's wall clock, {} ms before the window from {} ms that {node}'s lossy mount in epoch {epoch} asked for: the hub's clock ran at least {} ms behind the writer's",
                w.since_wall - stamp,
                w.since_wall,
                w.since_wall - stamp
            )
        })
    }

    pub fn loss_excuse(&self, id: MessageId) -> Option<String> {
        let mut s = self.state();
        // The hub the message went through: the one whose dumpster held it.
        let hub = s
            .dumpsters
            .iter()
            .find(|(_, d)| d.held.contains_key(&id) || d.evicted.contains_key(&id))
            .map(|(h, _)| *h)?;
        let asked = s
            .redelivery_answered
            .iter()
            .filter(|((h, _, _), _)| *h == hub)
            .map(|(_, at)| *at)
            .max()?;
        let d = s.dumpster(hub);
        d.evict(asked);
        let evicted = *d.evicted.get(&id)?;
        (evicted < asked).then(|| {
            format!(
                "{id:?} left {hub}'s dumpster at {:.3} s (its limits: {} bytes, {} s), before {hub} answered the redelivery at {:.3} s",
                evicted as f64 / 1000.0,
                d.max_bytes,
                d.max_age_ms / 1000,
                asked as f64 / 1000.0
            )
        })
    }
}

/// A mount judged against the disks.
#[derive(Debug)]
pub struct Judged {
    pub mount: TruthMount,
    pub verdicts: Vec<Verdict>,
    /// The node reported more logs lost than the disks show (tolerated; coverage).
    pub over_reported: bool,
}

/// What `Truth::sent` found.
#[derive(Debug, Default)]
pub struct Sent {
    pub verdict: Option<Verdict>,
    pub mount: Option<PendingMount>,
    /// The hub answered a redelivery request for the first time.
    pub first_redelivery_answer: bool,
    /// A node confirmed mail to a hub: the newest generation holding a durable record on
    /// its disk as it did.
    pub confirmed: Option<(NodeId, Generation)>,
}

/// A mount seen on the wire, to be judged against the disks.
#[derive(Debug, Clone, Copy)]
pub struct PendingMount {
    pub node: NodeId,
    pub epoch: u64,
    /// Who wrote in the epoch before (whose disk holds what the mount may lack).
    pub previous: Option<NodeId>,
    pub moved: bool,
    pub drained: bool,
    pub forced: bool,
}

/// Records `node` writing in `epoch` at `at` and judges it: one writer per epoch, and no two
/// nodes writing during the same stretch of time — two active copies. A node's writing is a
/// run of acts (acknowledgements, and the mount it announces every heartbeat while it serves)
/// without a gap longer than `gap_ms`; a run that overlaps another node's is a split brain.
/// (A node that mounts an older epoch after a newer one ended elsewhere, as after a witness
/// lost its file while the other node was frozen, is not two writers at once: what it costs
/// is judged by the loss checker.)
fn write_act(
    s: &mut State,
    node: NodeId,
    epoch: u64,
    at: u64,
    gap_ms: u64,
    what: &str,
) -> Option<Verdict> {
    let mut verdict = s.stopped_since.map(|since| {
        (
            Invariant::StoppedStaysStopped,
            format!(
                "{node} {what} in epoch {epoch} at {:.3} s, but an administrator's \
                 Stop-ClusteredMailboxServer returned at {:.3} s and nobody has started the \
                 server since",
                at as f64 / 1000.0,
                since as f64 / 1000.0
            ),
        )
    });
    if let Some(w) = s.epochs.get(&epoch) {
        if w.node != node {
            verdict = Some((
                Invariant::SingleActive,
                format!(
                    "{node} {what} in epoch {epoch}, which {} has written in since {:.3} s",
                    w.node,
                    w.first_ms as f64 / 1000.0
                ),
            ));
        }
    }
    let run = s.runs.entry(node).or_insert((at, at));
    if at.saturating_sub(run.1) > gap_ms {
        *run = (at, at);
    }
    run.1 = at;
    let my_start = run.0;
    if verdict.is_none() {
        if let Some((other, (_, last))) = s
            .runs
            .iter()
            .find(|(n, (_, last))| **n != node && *last >= my_start)
        {
            verdict = Some((
                Invariant::SingleActive,
                format!(
                    "{node} {what} in epoch {epoch} at {:.3} s, writing since {:.3} s, while {other} wrote at {:.3} s: two active copies",
                    at as f64 / 1000.0,
                    my_start as f64 / 1000.0,
                    *last as f64 / 1000.0
                ),
            ));
        }
    }
    let w = s.epochs.entry(epoch).or_insert(Writer {
        node,
        first_ms: at,
        last_ms: at,
    });
    if w.node == node {
        w.last_ms = w.last_ms.max(at);
    }
    verdict
}

/// What a node's deletions of log files were, judged from both disks.
#[derive(Debug, Default)]
pub struct Removals {
    /// Closed logs at or below the node's own database checkpoint: truncation.
    pub truncated: usize,
    pub verdict: Option<(Invariant, String)>,
}

/// Judges the two copies' disks after healing: closed logs of the same generation are the
/// same bytes, each database file holds exactly what the stream up to its checkpoint holds
/// (bodies included), and the stream holds what the clients sent.
pub fn judge_replication(
    disks: [&MemDisk; 2],
    client: ClientMail,
    base: Option<&StreamBase>,
) -> Option<String> {
    let facts = disks.map(DiskFacts::read);
    for (g, crc) in &facts[0].closed {
        if let Some(other) = facts[1].closed.get(g) {
            if other != crc {
                return Some(format!(
                    "generation {g:#x} differs between the copies (crc32c {crc:08x} on node1, {other:08x} on node2)"
                ));
            }
        }
    }
    for (i, f) in facts.iter().enumerate() {
        let Some(checkpoint) = f.db_checkpoint else {
            continue;
        };
        let db: Stored = db_file(disks[i])
            .map(|db| db.messages().collect())
            .unwrap_or_default();
        // The stream as whichever copy still holds all its logs spells it.
        let Some(expected) = [i, 1 - i]
            .into_iter()
            .find_map(|j| stream_content(disks[j], checkpoint, base))
        else {
            continue;
        };
        if let Some(why) = unlike_sent(&expected, client) {
            return Some(format!(
                "the log stream up to {checkpoint:#x} does not hold what the clients sent: {why}"
            ));
        }
        if db != expected {
            let lacks = expected.keys().filter(|id| !db.contains_key(id)).count();
            let extra = db.keys().filter(|id| !expected.contains_key(id)).count();
            let differ = db
                .iter()
                .filter(|(id, meta)| expected.get(id).is_some_and(|e| e != *meta))
                .count();
            return Some(format!(
                "{}'s database file at checkpoint {checkpoint:#x} differs from the logs up to it: {lacks} message(s) missing, {extra} extra, {differ} with another size or body",
                NodeId::ALL[i]
            ));
        }
    }
    None
}
