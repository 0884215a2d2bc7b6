//! A mailbox node: cluster service (heartbeats, quorum, ownership), replication service (copy,
//! inspect, replay) and store (mount, accept writes), as one sans-IO state machine.
//!
//! Driving it: `handle(now, input)` for each input, `handle_timeout(now)` once `poll_timeout()`
//! has passed, and `poll_action()` until it returns `None` after each. Disk batches must be run
//! one at a time, in the order they were issued, each answered with `Input::DiskDone`.
//!
//! The rooms of this module: `quorum` (leases, witness, may-this-node-mount), `replication`
//! (the passive's copier and divergence resolution), `ownership` (takeover, mount, dismount,
//! scheduled move) and `store` (the active store's writes and acknowledgements).

mod backup;
mod group;
mod health;
mod intent;
mod ownership;
mod public;
mod quorum;
mod replication;
mod store;

use group::Group;
pub use group::GroupFiles;

use std::collections::{BTreeMap, VecDeque};

use super::boot::{Boot, PersistedState};
use super::config::ClusterConfig;
use super::status::{CmsState, CmsStatus, CopyStatus, OperationalMachine, SummaryCopyStatus};
use super::wire::{
    BackupKind, BackupMark, CmsIntent, CopyReport, GroupBeat, Heartbeat, LineageEntry, Msg, View,
};
use super::{Endpoint, HubId, Net, NodeId, Now};
use crate::disk::{DiskError, DiskOp};
use crate::storage::database::Database;
use crate::storage::inspect::Inspector;
use crate::storage::logfile::ClosedLog;
use crate::storage::{Generation, MessageId};

pub const LOG_DIR: &str = "logs";
pub const INSPECT_DIR: &str = "inspector";
pub const DB_FILE: &str = "db/mailbox.edb";
pub const STATE_FILE: &str = "cluster/state.json";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Message {
        from: Endpoint,
        net: Net,
        msg: Msg,
    },
    DiskDone {
        token: u64,
        result: Result<(), DiskError>,
    },
    Admin(Admin),
}

/// Admin commands, named after the cmdlets they mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admin {
    /// `Move-ClusteredMailboxServer -TargetMachine … -MoveComment …`
    Move { target: NodeId, comment: String },
    /// `Suspend-StorageGroupCopy -SuspendComment …`
    SuspendCopy { comment: Option<String> },
    /// `Resume-StorageGroupCopy`
    ResumeCopy,
    /// `Update-StorageGroupCopy`: reseed this passive copy from the active.
    UpdateCopy,
    /// `Restore-StorageGroupCopy`: ready this copy to be mounted by hand, accepting what it
    /// lacks (a database the mount dial keeps dismounted, or a takeover of a lost active).
    RestoreCopy,
    /// `Mount-Database`: mount a database a restore readied.
    MountDatabase,
    /// `Stop-ClusteredMailboxServer -StopReason …`: take the server offline, on every node,
    /// until it is started again (restarts and failovers leave it offline).
    StopCms { reason: String },
    /// `Start-ClusteredMailboxServer`: bring a stopped server online again.
    StartCms,
    /// A backup of this node's copy (Windows Server Backup or a VSS requestor, from either
    /// copy); logs are truncated after it.
    Backup { kind: BackupKind },
    /// A storage group's command for the second storage group on (`-Identity
    /// CMS\Second Storage Group`); a bare one is the first's.
    ForGroup { group: u8, cmd: Box<Admin> },
}

impl Admin {
    /// `cmd` for storage group `group`: bare for the first.
    pub fn for_group(group: u8, cmd: Admin) -> Admin {
        if group == 0 {
            cmd
        } else {
            Admin::ForGroup {
                group,
                cmd: Box::new(cmd),
            }
        }
    }

    /// The storage group a command is for and the command itself.
    pub fn into_group(self) -> (u8, Admin) {
        match self {
            Admin::ForGroup { group, cmd } => (group, *cmd),
            cmd => (0, cmd),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send {
        to: Endpoint,
        net: Net,
        msg: Msg,
    },
    Disk {
        token: u64,
        ops: Vec<DiskOp>,
    },
    Event(NodeEvent),
    /// Restart this node's services from what is on its disk (after a store failure): the
    /// host boots a new `Node` in place, or calls `restart_failed` if booting fails.
    Restart,
}

/// What happened inside a node, for traces, checkers and operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    Mounted {
        view: View,
        lost: u32,
        forced: bool,
    },
    Dismounted {
        reason: String,
    },
    ViewChanged {
        view: View,
    },
    TakeoverStarted,
    WitnessWon {
        epoch: u64,
        fresh: bool,
    },
    WitnessDenied {
        holder: NodeId,
    },
    StayDismounted {
        missing: u32,
        allowed: u32,
    },
    LogCopied {
        generation: Generation,
    },
    LogRejected {
        reason: String,
    },
    LogReplayed {
        generation: Generation,
    },
    CopyFailed {
        reason: String,
    },
    Diverged {
        outcome: String,
    },
    Reseeded {
        checkpoint: Generation,
    },
    MoveRefused {
        reason: String,
    },
    MoveStarted {
        target: NodeId,
        comment: String,
    },
    MoveCompleted {
        target: NodeId,
        comment: String,
    },
    MoveFailed {
        reason: String,
    },
    /// The serving node lost its public network while the peer still has it: the cluster
    /// moves the clustered mailbox server (a resource failure, handled as a move).
    PublicNetworkFailed,
    /// The host restarted this node's services from disk after a store failure.
    ServicesRestarted,
    StoreFailed {
        reason: String,
    },
    AdminRefused {
        reason: String,
    },
    /// The administrator's Stop-ClusteredMailboxServer, run on this node, is done: neither
    /// node serves (the peer says so, or its leases have surely run out) and the stop is
    /// recorded beyond this node (on the peer or the witness), so no failover or restart
    /// brings it online.
    CmsStopped {
        reason: String,
    },
    /// The administrator's Start-ClusteredMailboxServer, run on this node, is recorded beyond
    /// this node; the owner mounts as after any start.
    CmsStarted,
    /// Restore-StorageGroupCopy readied this copy: Mount-Database may now mount it whatever
    /// it lacks.
    CopyRestored,
    /// A backup of this copy was taken: its database file at `checkpoint` and the logs after
    /// it. The host copies those files at this moment, before anything later is written.
    BackupTaken {
        kind: BackupKind,
        checkpoint: Generation,
    },
    /// Logs up to `through` were deleted from this node's log folder after a backup.
    LogsTruncated {
        through: Generation,
        removed: u32,
    },
    /// An event of the second storage group on; a bare one of a storage group's own is the
    /// first's.
    InGroup {
        group: u8,
        event: Box<NodeEvent>,
    },
}

impl NodeEvent {
    /// Whether the event is one storage group's (a mount, a copied log) rather than the
    /// server's (a view, a takeover, a move, the store process).
    pub fn is_group_level(&self) -> bool {
        !matches!(
            self,
            NodeEvent::ViewChanged { .. }
                | NodeEvent::TakeoverStarted
                | NodeEvent::WitnessWon { .. }
                | NodeEvent::WitnessDenied { .. }
                | NodeEvent::MoveStarted { .. }
                | NodeEvent::MoveCompleted { .. }
                | NodeEvent::MoveRefused { .. }
                | NodeEvent::PublicNetworkFailed
                | NodeEvent::ServicesRestarted
                | NodeEvent::StoreFailed { .. }
                | NodeEvent::CmsStopped { .. }
                | NodeEvent::CmsStarted
                | NodeEvent::InGroup { .. }
        )
    }

    /// The storage group the event is about (0 for the first, and for the server's own) and
    /// the event itself.
    pub fn group(&self) -> (u8, &NodeEvent) {
        match self {
            NodeEvent::InGroup { group, event } => (*group, event),
            event => (0, event),
        }
    }
}

/// Test-only planted bugs, so the checkers can be shown firing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlantedBugs {
    /// Mount whatever the mount dial says.
    pub ignore_mount_dial: bool,
    /// Skip the lease waits before a takeover mount.
    pub skip_takeover_guard: bool,
    /// Never ask the hub for redelivery.
    pub skip_redelivery: bool,
    /// Replay drops the first record of every copied log (a broken replay).
    pub lossy_replay: bool,
    /// Mount whatever the dial says, and report no more logs lost than the dial allows — a
    /// lie in the one number an administrator would check.
    pub ignore_mount_dial_quietly: bool,
    /// The dial decides as it should, but a mount reports no logs lost.
    pub report_no_loss: bool,
    /// The target of a scheduled move reports itself caught up one generation early.
    pub move_one_log_short: bool,
    /// A failing store is restarted in place for ever: the restart policy never fails the
    /// group over.
    pub restart_forever: bool,
    /// The restart policy counts every failure since the node started, not only those
    /// within its period.
    pub restart_count_never_expires: bool,
    /// The store writes a resubmitted message again instead of dropping what it holds: the
    /// mailbox shows it twice.
    pub store_keeps_resubmissions: bool,
    /// The store writes each message body one byte short (a length computed off by one).
    pub store_truncates_body: bool,
    /// Replay applies each message body one byte short: the copy's database disagrees with
    /// the logs it replayed.
    pub replay_truncates_body: bool,
    /// The first hub's confirmation of a redelivery request is taken for all of them: a hub
    /// that was down when the mount asked is never asked again.
    pub redelivery_first_hub_only: bool,
    /// A stop is carried out as a one-off dismount, not kept as a state: a restart or a
    /// takeover brings the stopped server online again.
    pub takeover_ignores_stop: bool,
    /// Truncation after a backup waits only for this node's own database file, not for the
    /// other copy's (nor for the other node being heard from at all).
    pub truncation_ignores_passive: bool,
    /// Truncation deletes what both copies' database files hold without waiting for a
    /// backup.
    pub truncation_ignores_backup: bool,
    /// The idle roll's timer starts again at every record instead of at the open log's
    /// first: a trickle of mail keeps a partly filled log open for ever.
    pub idle_roll_timer_restarts: bool,
    /// The peer counts as down one heartbeat interval early (the threshold's missed
    /// heartbeats counted from one, not zero).
    pub detect_one_heartbeat_early: bool,
}

/// What the owner is doing about the clustered mailbox server.
#[derive(Debug, Clone, PartialEq, Eq)]
enum OwnerState {
    /// Not mounted: waiting for quorum or for the lease waits.
    Offline {
        reason: String,
    },
    /// Just took over: copying whatever the lost node's share still has.
    Draining {
        deadline: u64,
    },
    /// The mount dial refuses: too many logs missing.
    Blocked {
        missing: u32,
        allowed: u32,
        retry_at: u64,
    },
    /// Bringing the resources online; mounts at `ready_at`.
    Onlining {
        ready_at: u64,
        lost: u32,
        forced: bool,
        /// Whether the mount dial decided this mount: it then judges again when the store
        /// mounts, with whatever the wire told in the meantime.
        judged: bool,
    },
    Serving,
    /// Scheduled move in progress; the store is dismounted.
    Moving(MoveState),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct MoveState {
    id: u64,
    target: NodeId,
    comment: String,
    deadline: u64,
    /// Set once `MovePrepare` went out: the last generation the target must have.
    prepared: Option<Generation>,
    /// Set once the target said this group's copy is ready (`MoveReady`).
    ready: bool,
    /// Set once the target is ready and the new view is being persisted.
    handing_over: bool,
    /// The target has not caught up: it drains the old owner's share before it mounts.
    drain: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    Passive,
    Owner(OwnerState),
}

/// The witness vote as this node holds it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct WitnessHold {
    until: Option<u64>,
    epoch: Option<u64>,
    /// After a fresh acquisition, no mount before this (see `ClusterConfig::witness_guard_ms`).
    guard_until: u64,
    last_request: Option<u64>,
}

/// What a disk batch was for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Io {
    /// Appends and a sync of these messages; acknowledge when durable.
    Commit {
        ids: Vec<(MessageId, HubId)>,
        generation: Generation,
        epoch: u64,
    },
    /// A copied log going through the inspector folder into the log folder.
    CopyLog {
        log: Box<ClosedLog>,
        inspector: Box<Inspector>,
        /// The copy round it was issued in (see `Node::copy_round`).
        round: u64,
    },
    /// The new view is durable: send the hand-over.
    HandOver { view: View },
    /// Housekeeping: state, database flushes.
    Background,
    /// Removals whose failure (say, the file was never created) does not matter.
    Cleanup,
}

/// A log asked for before its turn. It counts only while the copy it was asked for goes on:
/// the same round, the same owner's stream.
#[derive(Debug, Clone)]
struct Ahead {
    round: u64,
    view: View,
    deadline: u64,
    bytes: Option<Vec<u8>>,
}

/// The copier's outstanding request to a share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fetch {
    Log(Generation),
    OpenLog,
    Database,
    State,
}

#[derive(Debug, Clone)]
pub struct Node {
    /// The storage group: its log stream, copy, database and store.
    sg: Group,
    /// The other storage groups, by number; `None` at the one in `sg` (see `focus`).
    parked: Vec<Option<Group>>,
    /// The number of the storage group in `sg`.
    focused: u8,
    /// A takeover of the whole server: when it may arbitrate the witness, once the owner
    /// looks down.
    arbitrate_at: Option<u64>,
    id: NodeId,
    config: ClusterConfig,
    boot_mono: u64,
    bugs: PlantedBugs,

    // The cluster database (persisted).
    view: View,
    last_move_comment: Option<String>,
    intent: CmsIntent,
    /// A stop or start run on this node (its `seq`), until it is done (see `intent.rs`).
    intent_asked: Option<u64>,
    /// The newest intent `seq` the peer's heartbeats showed.
    peer_intent_seq: u64,
    /// The newest intent `seq` the witness said it holds.
    witness_intent_seq: u64,
    /// The newest intent `seq` this node's state file durably holds.
    intent_durable: u64,
    /// State-file writes in flight: their disk token and the intent `seq` each records.
    state_writes: BTreeMap<u64, u64>,
    last_intent_record: Option<u64>,

    // Cluster service.
    next_heartbeat: u64,
    last_heard: [Option<u64>; 2],
    /// When a hub last answered a ping over the public network (any hub: the public network
    /// works if clients' mail can reach this node through one of them).
    public_pong: Option<u64>,
    /// Since when this node has been pinging the hubs without a gap.
    pinging_since: u64,
    /// Since when the peer's private heartbeats have been arriving without a gap.
    private_since: u64,
    last_ping: Option<u64>,
    /// When a public-network failure last made this node try to move the server away.
    public_move_tried: Option<u64>,
    peer_stamp: Option<u64>,
    peer: Option<Heartbeat>,
    peer_lease_until: Option<u64>,
    witness: WitnessHold,
    witness_holder: Option<NodeId>,

    store_failure: Option<String>,
    /// When to ask the host to restart the failed store.
    store_restart_at: Option<u64>,
    /// The restart policy's count: see [`Node::store_failures`].
    store_failures: Vec<u64>,

    last_redelivery_request: u64,

    next_token: u64,
    /// Disk batches in flight: the storage group each was issued for, and what it was for.
    io: BTreeMap<u64, (u8, Io)>,
    out: VecDeque<Action>,
    last_tick: u64,
}

impl Node {
    pub fn new(id: NodeId, config: ClusterConfig, boot: Boot, now: Now) -> Node {
        let Boot { state, groups } = boot;
        assert_eq!(
            groups.len(),
            usize::from(config.storage_groups),
            "booted as many storage groups as configured"
        );
        let owner = state.view.owner == id;
        let mut groups = groups
            .into_iter()
            .zip(0..)
            .map(|(boot, index)| Group::new(index, boot, state.group(index), owner, &config));
        let first = groups.next().expect("at least one storage group");
        let parked = std::iter::once(None).chain(groups.map(Some)).collect();
        let intent_durable = state.intent.seq;
        let mut node = Node {
            sg: first,
            parked,
            focused: 0,
            arbitrate_at: None,
            id,
            boot_mono: now.mono,
            bugs: PlantedBugs::default(),
            view: state.view,
            last_move_comment: state.last_move_comment,
            intent: state.intent,
            intent_asked: None,
            peer_intent_seq: 0,
            witness_intent_seq: 0,
            intent_durable,
            state_writes: BTreeMap::new(),
            last_intent_record: None,
            next_heartbeat: now.mono,
            last_heard: [None; 2],
            public_pong: None,
            pinging_since: now.mono,
            private_since: now.mono,
            last_ping: None,
            public_move_tried: None,
            peer_stamp: None,
            peer: None,
            peer_lease_until: None,
            witness: WitnessHold::default(),
            witness_holder: None,
            store_failure: None,
            store_restart_at: None,
            store_failures: state.store_failures,
            last_redelivery_request: state
                .last_redelivery_request
                .max(state.redelivery_pending.unwrap_or(0)),
            next_token: 0,
            io: BTreeMap::new(),
            out: VecDeque::new(),
            last_tick: 0,
            config,
        };
        node.each_group(|node| {
            node.reset_inspector();
            if node.sg.copy_damaged {
                let reason = node.sg.reseed_required.clone().unwrap_or_default();
                node.emit(NodeEvent::CopyFailed {
                    reason: format!("damaged at rest, reseed required: {reason}"),
                });
            }
        });
        node.tick(now);
        node
    }

    /// Makes storage group `group` the one the group-level methods work on. (A node keeps one
    /// storage group's state in `sg` and the others parked: the rules of one group are
    /// written once, against `sg`, and disjoint borrows of its fields and the node's stay
    /// possible.) Outside a call into the node the first group is in focus.
    fn focus(&mut self, group: u8) {
        if group == self.focused {
            return;
        }
        let next = self.parked[usize::from(group)]
            .take()
            .expect("a storage group not in focus is parked");
        let previous = std::mem::replace(&mut self.sg, next);
        self.parked[usize::from(self.focused)] = Some(previous);
        self.focused = group;
    }

    /// Runs `f` with storage group `group` in focus, then restores the focus.
    fn with_group(&mut self, group: u8, f: impl FnOnce(&mut Node)) {
        let back = self.focused;
        self.focus(group);
        f(self);
        self.focus(back);
    }

    /// Runs `f` once per storage group, each in focus in turn, then restores the focus.
    fn each_group(&mut self, mut f: impl FnMut(&mut Node)) {
        let back = self.focused;
        for group in 0..self.group_count() {
            self.focus(group);
            f(self);
        }
        self.focus(back);
    }

    fn group_count(&self) -> u8 {
        u8::try_from(self.parked.len()).expect("at most 50 storage groups")
    }

    /// Storage group `group`, in focus or parked.
    fn group(&self, group: u8) -> &Group {
        if group == self.focused {
            &self.sg
        } else {
            self.parked[usize::from(group)]
                .as_ref()
                .expect("a storage group not in focus is parked")
        }
    }

    fn groups(&self) -> impl Iterator<Item = &Group> {
        (0..self.group_count()).map(|g| self.group(g))
    }

    /// Whether any storage group's database is mounted here.
    pub fn serving_any(&self) -> bool {
        self.groups().any(Group::is_serving)
    }

    /// Whether this node owns the server with at least one storage group.
    fn owner_side(&self) -> bool {
        self.groups().any(|g| matches!(g.role, Role::Owner(_)))
    }

    /// How many storage groups the server has.
    pub fn storage_groups(&self) -> u8 {
        self.group_count()
    }

    /// Whether storage group `group`'s database is mounted here.
    pub fn is_serving_group(&self, group: u8) -> bool {
        self.group(group).is_serving()
    }

    /// Storage group `group`'s database.
    pub fn database_of(&self, group: u8) -> &Database {
        &self.group(group).db
    }

    /// Storage group `group`'s closed logs and their checksums.
    pub fn closed_logs_of(&self, group: u8) -> &BTreeMap<Generation, u32> {
        &self.group(group).closed
    }

    /// Whether the store has storage group `group`'s open log in use (the share then will
    /// not serve it).
    pub fn store_running_in(&self, group: u8) -> bool {
        let g = self.group(group);
        matches!(g.role, Role::Owner(_)) && g.writer.is_some()
    }

    pub fn plant_bugs(&mut self, bugs: PlantedBugs) {
        self.bugs = bugs;
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    pub fn planted(&self) -> PlantedBugs {
        self.bugs
    }

    /// The host could not restart the services (say the disk is still full): another failure
    /// of the store, for the restart policy to count.
    pub fn restart_failed(&mut self, now: Now, reason: String) {
        self.store_failure = None;
        self.store_failed(now, format!("restart failed: {reason}"));
    }

    /// When the store failed while this node owned the server, within the restart policy's
    /// period (wall clock, ms). The cluster service keeps counting while the store restarts:
    /// the host hands this to the node it boots in place, and the cluster state keeps it.
    pub fn store_failures(&self) -> &[u64] {
        &self.store_failures
    }

    /// Takes over the failures an earlier incarnation of this node's services counted.
    pub fn remember_store_failures(&mut self, earlier: &[u64]) {
        self.store_failures.extend_from_slice(earlier);
        self.store_failures.sort_unstable();
        self.store_failures.dedup();
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn view(&self) -> View {
        self.view
    }

    pub fn lineage(&self) -> &[LineageEntry] {
        &self.sg.lineage
    }

    pub fn database(&self) -> &Database {
        &self.sg.db
    }

    /// The storage group in focus (the first, outside a call into the node) is mounted and
    /// accepting writes.
    pub fn is_serving(&self) -> bool {
        self.sg.is_serving()
    }

    /// A passive copy diverged beyond what lost-log resilience can undo (or is damaged) and
    /// waits for `Update-StorageGroupCopy`, in any storage group.
    pub fn reseed_required(&self) -> bool {
        self.groups().any(|g| g.reseed_required.is_some())
    }

    /// What the node is doing with the first storage group, in one word (for traces and
    /// reports).
    pub fn role_name(&self) -> &'static str {
        self.role_name_of(0)
    }

    /// What the node is doing with storage group `group`, in one word.
    pub fn role_name_of(&self, group: u8) -> &'static str {
        match &self.group(group).role {
            Role::Passive => "passive",
            Role::Owner(OwnerState::Serving) => "active",
            Role::Owner(OwnerState::Onlining { .. }) => "onlining",
            Role::Owner(OwnerState::Draining { .. }) => "draining",
            Role::Owner(OwnerState::Moving(_)) => "moving",
            Role::Owner(OwnerState::Blocked { .. }) => "blocked",
            Role::Owner(OwnerState::Offline { .. }) => "offline",
        }
    }

    /// For each storage group, whether the store has its open log in use (what the log share
    /// needs to know).
    pub fn stores_running(&self) -> Vec<bool> {
        (0..self.group_count())
            .map(|g| self.store_running_in(g))
            .collect()
    }

    /// Whether the store has the first storage group's open log in use (the share then will
    /// not serve it).
    pub fn store_running(&self) -> bool {
        self.store_running_in(0)
    }

    /// Newest closed generation in the log folder (0 for none).
    pub fn last_closed(&self) -> Generation {
        self.sg.closed.keys().next_back().copied().unwrap_or(0)
    }

    /// Checksums of the closed logs this node holds.
    pub fn closed_logs(&self) -> &BTreeMap<Generation, u32> {
        &self.sg.closed
    }

    pub fn handle(&mut self, now: Now, input: Input) {
        // A lease may have run out since the last tick; no input is handled on an expired one.
        self.check_quorum(now);
        match input {
            Input::Message { from, net, msg } => {
                let (group, msg) = msg.into_group();
                if group < self.group_count() {
                    self.with_group(group, |node| node.on_message(now, from, net, msg));
                }
            }
            Input::DiskDone { token, result } => self.on_disk_done(now, token, result),
            Input::Admin(cmd) => {
                let (group, cmd) = cmd.into_group();
                if group < self.group_count() {
                    self.with_group(group, |node| node.on_admin(now, cmd));
                } else {
                    self.emit(NodeEvent::AdminRefused {
                        reason: format!(
                            "there is no storage group E{group:02X}: the server has {}",
                            self.group_count()
                        ),
                    });
                }
            }
        }
        self.tick(now);
    }

    pub fn handle_timeout(&mut self, now: Now) {
        self.tick(now);
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.out.pop_front()
    }

    /// The next time the node needs `handle_timeout`, on its monotonic clock.
    pub fn poll_timeout(&self) -> Option<u64> {
        let candidates = [
            Some(self.next_heartbeat),
            self.peer_lease_until,
            self.witness.until,
            (self.witness.guard_until > 0).then_some(self.witness.guard_until),
            Some(self.takeover_guard_until()),
            Some(self.peer_down_at()),
            self.store_restart_at,
            self.arbitrate_at,
        ];
        let groups = self.groups().flat_map(|g| {
            let role = match &g.role {
                Role::Passive => None,
                Role::Owner(state) => match state {
                    OwnerState::Draining { deadline } => Some(*deadline),
                    OwnerState::Blocked { retry_at, .. } => Some(*retry_at),
                    OwnerState::Onlining { ready_at, .. } => Some(*ready_at),
                    OwnerState::Moving(m) => Some(m.deadline),
                    OwnerState::Offline { .. } | OwnerState::Serving => None,
                },
            };
            [
                g.fetch.map(|(_, deadline)| deadline),
                Some(g.copy_retry_at),
                self.idle_roll_at(g),
                role,
            ]
        });
        // Deadlines at or before the last tick have been dealt with.
        candidates
            .into_iter()
            .chain(groups)
            .flatten()
            .filter(|&d| d > self.last_tick)
            .min()
    }

    /// Re-evaluates everything time-dependent. Idempotent: called after every input.
    fn tick(&mut self, now: Now) {
        self.last_tick = now.mono;
        self.check_quorum(now);
        self.obey_intent(now, false);
        self.progress_takeover(now);
        self.each_group(|node| node.progress_role(now));
        self.leave_if_public_network_failed(now);
        if self.store_restart_at.is_some_and(|t| now.mono >= t) {
            self.store_restart_at = None;
            self.out.push_back(Action::Restart);
        }
        self.request_witness_if_needed(now);
        self.record_intent_if_needed(now);
        self.confirm_intent(now);
        self.each_group(|node| {
            node.forget_move_if_over(now);
            node.copy_if_needed(now);
            node.roll_idle_log(now);
            node.truncate_logs(now);
        });
        self.send_heartbeats_if_due(now);
    }

    fn on_message(&mut self, now: Now, from: Endpoint, net: Net, msg: Msg) {
        match msg {
            Msg::Heartbeat(hb) if from == Endpoint::Node(self.id.peer()) => {
                self.on_heartbeat(now, net, hb)
            }
            // Stamps are this node's own clock: a pong from before a restart is stale.
            Msg::Pong { stamp }
                if matches!(from, Endpoint::Hub(_))
                    && net == Net::Public
                    && stamp >= self.boot_mono =>
            {
                self.public_pong = Some(self.public_pong.map_or(stamp, |p| p.max(stamp)));
            }
            Msg::WitnessGranted {
                stamp,
                epoch,
                head,
                view,
                intent,
                heads,
            } => {
                self.learn_intent_from_witness(now, intent);
                self.learn_from_witness(now, head, &heads, view);
                self.on_witness_granted(now, stamp, epoch)
            }
            Msg::WitnessDenied {
                holder,
                head,
                view,
                heads,
                ..
            } => {
                self.learn_from_witness(now, head, &heads, view);
                self.witness_holder = Some(holder);
                self.emit(NodeEvent::WitnessDenied { holder });
            }
            Msg::IntentRecorded { intent } if from == Endpoint::Witness => {
                self.learn_intent_from_witness(now, intent)
            }
            Msg::LogFile { generation, bytes } => self.on_log_file(now, generation, bytes),
            Msg::OpenLogFile { bytes } => self.on_open_log_file(now, bytes),
            Msg::DatabaseFile { bytes } => self.on_database_file(now, bytes),
            Msg::StateFile { bytes } => self.on_state_file(now, bytes),
            Msg::NoLog { generation, reason } => self.on_no_log(now, generation, reason),
            Msg::Deliver { id, size, body } => {
                if let Endpoint::Hub(hub) = from {
                    self.on_deliver(now, hub, id, size, body)
                }
            }
            Msg::MovePrepare {
                move_id,
                last_generation,
            } => self.on_move_prepare(now, move_id, last_generation),
            Msg::MoveReady { move_id } => self.on_move_ready(now, move_id),
            Msg::MoveAbandoned { move_id, reason } => {
                self.abort_move(now, move_id, format!("move abandoned: {reason}"))
            }
            Msg::HandOver {
                view,
                comment,
                drain,
                window,
                windows,
            } => self.on_hand_over(now, view, comment, drain, window, windows),
            Msg::RedeliveryAccepted { request } if self.sg.redelivery_pending == Some(request) => {
                let Endpoint::Hub(hub) = from else { return };
                if !self.sg.redelivery_confirmed.insert(hub) {
                    return;
                }
                if self.bugs.redelivery_first_hub_only
                    || self
                        .hubs()
                        .all(|h| self.sg.redelivery_confirmed.contains(&h))
                {
                    self.sg.redelivery_pending = None;
                    self.sg.redelivery_window = None;
                    self.sg.redelivery_confirmed.clear();
                    // Every hub answered: a successor need not ask for this window again.
                    let epoch = self.view.epoch;
                    let me = self.id;
                    if let Some(e) = self.sg.lineage.last_mut() {
                        if e.epoch == epoch && e.owner == me {
                            e.asked_since = None;
                        }
                    }
                    self.persist_state();
                }
                if self.is_serving() {
                    self.announce_to(hub);
                }
            }
            _ => {}
        }
    }

    fn on_disk_done(&mut self, now: Now, token: u64, result: Result<(), DiskError>) {
        if let Some(seq) = self.state_writes.remove(&token) {
            if result.is_ok() {
                self.intent_durable = self.intent_durable.max(seq);
            }
        }
        let Some((group, io)) = self.io.remove(&token) else {
            return;
        };
        self.with_group(group, |node| {
            node.on_group_disk_done(now, token, io, result)
        });
    }

    fn on_group_disk_done(&mut self, now: Now, token: u64, io: Io, result: Result<(), DiskError>) {
        if let Some(checkpoint) = self.sg.db_writes.remove(&token) {
            if result.is_ok() {
                self.sg.db_file_checkpoint = checkpoint;
            }
        }
        match io {
            Io::Commit {
                ids,
                generation,
                epoch,
            } => self.on_commit_done(now, ids, generation, epoch, result),
            Io::CopyLog {
                log,
                inspector,
                round,
            } => {
                if round == self.sg.copy_round {
                    self.on_copy_written(now, *log, *inspector, result)
                } else {
                    self.on_stale_copy_written(log.header.generation)
                }
            }
            Io::HandOver { view } => self.on_hand_over_persisted(now, view, result),
            Io::Cleanup => {}
            Io::Background => {
                if let Err(e) = result {
                    // Log rolls, checkpoints and the cluster state share this path. Whatever
                    // failed, what is on disk is no longer what this node's memory says (a
                    // takeover's new view may not be durable): stop, and restart from the
                    // disk once `store_restart_ms` has passed — as after a log write failure.
                    self.sg.db.persist_failed();
                    let reason = format!("background write failed: {e}");
                    if self.store_failure.is_none() {
                        self.store_failed(now, reason);
                    } else {
                        self.emit(NodeEvent::StoreFailed { reason });
                    }
                }
            }
        }
    }

    fn on_admin(&mut self, now: Now, cmd: Admin) {
        match cmd {
            Admin::Move { target, comment } => self.start_move(now, target, comment),
            Admin::SuspendCopy { comment } => {
                self.sg.suspended = true;
                self.sg.suspend_comment = comment;
            }
            Admin::ResumeCopy => {
                self.sg.suspended = false;
                self.sg.copy_retry_at = 0;
                self.replay_ready();
            }
            Admin::UpdateCopy => self.start_reseed(now),
            Admin::RestoreCopy => self.restore_copy(now),
            Admin::MountDatabase => self.mount_database(now),
            Admin::StopCms { reason } => self.stop_cms(now, reason),
            Admin::StartCms => self.start_cms(now),
            Admin::Backup { kind } => self.take_backup(now, kind),
            // Unwrapped in `handle`: one inside another names no storage group.
            Admin::ForGroup { .. } => self.emit(NodeEvent::AdminRefused {
                reason: "a storage group's command inside another's".into(),
            }),
        }
    }

    /// Reports an event; one of a storage group's own (a mount, a copied log) names the
    /// group when it is not the first.
    fn emit(&mut self, event: NodeEvent) {
        let event = if self.focused != 0 && event.is_group_level() {
            NodeEvent::InGroup {
                group: self.focused,
                event: Box::new(event),
            }
        } else {
            event
        };
        self.out.push_back(Action::Event(event));
    }

    /// Sends a message; one about a storage group's logs, mail or move goes as that group's.
    fn send(&mut self, to: Endpoint, net: Net, msg: Msg) {
        let msg = if msg.is_group_level() {
            Msg::for_group(self.focused, msg)
        } else {
            msg
        };
        self.out.push_back(Action::Send { to, net, msg });
    }

    fn disk(&mut self, ops: Vec<DiskOp>, io: Io) {
        if ops.is_empty() {
            return;
        }

        let token = self.next_token;
        self.next_token += 1;
        let writes_db = ops.iter().any(|op| match op {
            DiskOp::Append { path, .. } => *path == self.sg.files.db,
            DiskOp::Rename { to, .. } => *to == self.sg.files.db,
            _ => false,
        });
        if writes_db {
            self.sg
                .db_writes
                .insert(token, self.sg.db.file_checkpoint());
        }
        let writes_state = ops
            .iter()
            .any(|op| matches!(op, DiskOp::Rename { to, .. } if to == STATE_FILE));
        if writes_state {
            self.state_writes.insert(token, self.intent.seq);
        }
        self.io.insert(token, (self.focused, io));
        self.out.push_back(Action::Disk { token, ops });
    }

    fn persisted_state(&self) -> PersistedState {
        let mut state = PersistedState {
            view: self.view,
            lineage: Vec::new(),
            last_move_comment: self.last_move_comment.clone(),
            redelivery_pending: None,
            last_redelivery_request: self.last_redelivery_request,
            redelivery_window: None,
            store_failures: self.store_failures.clone(),
            intent: self.intent.clone(),
            backup: BackupMark::default(),
            groups: Vec::new(),
        };
        for group in self.groups() {
            state.set_group(group.index, group.persisted());
        }
        state
    }

    fn persist_state(&mut self) {
        let ops = self.persisted_state().persist_ops();
        self.disk(ops, Io::Background);
    }

    fn send_heartbeats_if_due(&mut self, now: Now) {
        if now.mono < self.next_heartbeat {
            return;
        }
        self.next_heartbeat = now.mono + self.config.heartbeat_interval_ms();
        let mut beats = Vec::new();
        self.each_group(|node| beats.push(node.group_beat()));
        let first = beats.remove(0);
        let hb = Heartbeat {
            stamp: now.mono,
            echo: self.peer_stamp,
            view: self.view,
            grants_lease: self.grants_lease(),
            serving: first.serving,
            open_generation: first.open_generation,
            open_records: first.open_records,
            last_closed: first.last_closed,
            lineage: first.lineage,
            copy: first.copy,
            public_ok: self.public_ok(now),
            intent: self.intent.clone(),
            backup: first.backup,
            db_checkpoint: first.db_checkpoint,
            groups: beats,
        };
        self.note_ping(now);
        for hub in self.hubs() {
            self.send(
                Endpoint::Hub(hub),
                Net::Public,
                Msg::Ping { stamp: now.mono },
            );
        }
        for net in Net::ALL {
            self.send(
                Endpoint::Node(self.id.peer()),
                net,
                Msg::Heartbeat(hb.clone()),
            );
        }
        self.each_group(|node| {
            if node.is_serving() {
                node.announce();
            }
        });
    }

    /// What the heartbeat tells of the storage group in focus.
    fn group_beat(&self) -> GroupBeat {
        let owner_side = matches!(self.sg.role, Role::Owner(_));
        let writer = self.sg.writer.as_ref().filter(|_| owner_side);
        GroupBeat {
            serving: self.is_serving(),
            open_generation: writer.map(|w| w.generation()),
            open_records: writer.map_or(0, |w| w.records_in_open_log()),
            last_closed: self.last_closed(),
            lineage: self.sg.lineage.clone(),
            copy: (!owner_side).then(|| self.copy_report()),
            backup: self.sg.backup,
            db_checkpoint: self.sg.db_file_checkpoint,
        }
    }

    /// Tells each hub what to redeliver after a mount, and only once it has taken that in,
    /// that this node serves. In the other order a hub delivers its backlog first, and a
    /// backlog past the dumpster's size evicts the very mail the mount lost before the request
    /// that names it arrives (property-test seed 4610043280141519744). A hub that has not
    /// answered (down, cut off) delivers nothing here until it does; the others go on.
    fn announce(&mut self) {
        for hub in self.hubs() {
            self.announce_to(hub);
        }
    }

    fn announce_to(&mut self, hub: HubId) {
        match self.sg.redelivery_pending {
            Some(request) if !self.sg.redelivery_confirmed.contains(&hub) => self.send(
                Endpoint::Hub(hub),
                Net::Public,
                Msg::Redeliver {
                    epoch: self.view.epoch,
                    request,
                    lineage: self.sg.lineage.clone(),
                    window: self.sg.redelivery_window,
                },
            ),
            _ => self.send(
                Endpoint::Hub(hub),
                Net::Public,
                Msg::Mounted { view: self.view },
            ),
        }
    }

    /// The site's hub transport servers.
    fn hubs(&self) -> impl Iterator<Item = HubId> + use<> {
        HubId::all(self.config.hubs)
    }

    fn copy_report(&self) -> CopyReport {
        CopyReport {
            status: self.summary_copy_status(&self.sg),
            reseed_required: self.sg.reseed_required.is_some(),
            last_inspected: self.sg.inspector.last_inspected(),
            last_replayed: self.sg.db.applied(),
            suspend_comment: self
                .sg
                .suspended
                .then(|| self.sg.suspend_comment.clone())
                .flatten(),
        }
    }

    /// `Get-ClusteredMailboxServerStatus` as this node sees it. With some storage groups
    /// mounted and others not, the server is Partially Online, and the reason names the
    /// groups that are not.
    pub fn cms_status(&self, now: Now) -> CmsStatus {
        let states: Vec<(CmsState, Option<String>)> = self
            .groups()
            .map(|g| self.group_cms_state(g, now))
            .collect();
        let (state, reason) = if states.iter().all(|(s, _)| *s == states[0].0) {
            states[0].clone()
        } else if states.iter().any(|(s, _)| *s == CmsState::Online) {
            let down: Vec<String> = states
                .iter()
                .zip(self.groups())
                .filter(|((s, _), _)| *s != CmsState::Online)
                .map(|((s, r), g)| {
                    let why = r.as_ref().map_or(String::new(), |r| format!(": {r}"));
                    format!("{} {s}{why}", g.files.logs.prefix())
                })
                .collect();
            (CmsState::PartiallyOnline, Some(down.join("; ")))
        } else {
            let rank = |s: CmsState| match s {
                CmsState::Failed => 0,
                CmsState::OfflinePending => 1,
                CmsState::OnlinePending => 2,
                _ => 3,
            };
            states
                .iter()
                .min_by_key(|(s, _)| rank(*s))
                .cloned()
                .expect("at least one storage group")
        };
        let quorum_owner = self.witness_holder.unwrap_or(self.view.owner);
        let mut machines = vec![self.id];
        if !self.peer_down(now) {
            machines.push(self.id.peer());
        }
        machines.sort();
        CmsStatus {
            identity: self.config.cms_name.clone(),
            state,
            operational_machines: machines
                .into_iter()
                .map(|node| OperationalMachine {
                    node,
                    active: node == self.view.owner,
                    quorum_owner: node == quorum_owner,
                })
                .collect(),
            reason,
            last_move_comment: self.last_move_comment.clone(),
        }
    }

    /// One storage group's part in the server's state.
    fn group_cms_state(&self, g: &Group, now: Now) -> (CmsState, Option<String>) {
        match &g.role {
            Role::Owner(OwnerState::Serving) => (CmsState::Online, None),
            Role::Owner(OwnerState::Onlining { .. }) | Role::Owner(OwnerState::Draining { .. }) => {
                (CmsState::OnlinePending, None)
            }
            Role::Owner(OwnerState::Moving(m)) => (
                CmsState::OfflinePending,
                Some(format!("moving to {}: {}", m.target, m.comment)),
            ),
            Role::Owner(OwnerState::Blocked {
                missing, allowed, ..
            }) => (
                CmsState::Failed,
                Some(format!(
                    "AutoDatabaseMountDial: {missing} log(s) missing, {allowed} allowed"
                )),
            ),
            Role::Owner(OwnerState::Offline { reason }) => {
                let state = if self.store_failure.is_some() {
                    CmsState::Failed
                } else {
                    CmsState::Offline
                };
                (state, Some(reason.clone()))
            }
            Role::Passive if self.peer_serving(now) => (CmsState::Online, None),
            Role::Passive if self.intent.stopped => {
                (CmsState::Offline, Some(self.stopped_reason()))
            }
            Role::Passive => (CmsState::Offline, None),
        }
    }

    pub(super) fn peer_serving(&self, now: Now) -> bool {
        !self.peer_down(now) && self.peer.as_ref().is_some_and(|p| p.serving_any())
    }

    /// `Get-StorageGroupCopyStatus` of the first storage group: this node's copy if passive,
    /// else the passive's as its heartbeats report it.
    pub fn copy_status(&self) -> CopyStatus {
        self.copy_status_of(0)
    }

    /// `Get-StorageGroupCopyStatus` of storage group `group`: this node's copy.
    pub fn copy_status_of(&self, group: u8) -> CopyStatus {
        let g = self.group(group);
        let last_inspected = g.inspector.last_inspected();
        let last_replayed = g.db.applied();
        let source_last = g
            .peer
            .as_ref()
            .filter(|_| self.peer.as_ref().is_some_and(|p| p.view.owner != self.id))
            .map_or(last_inspected, |p| p.last_closed);
        CopyStatus {
            node: self.id,
            summary: self.summary_copy_status(g),
            copy_queue_length: source_last.saturating_sub(last_inspected),
            replay_queue_length: last_inspected.saturating_sub(last_replayed),
            last_inspected_generation: last_inspected,
            last_replayed_generation: last_replayed,
            last_inspected_log_time: g.inspector.last_inspected_ms(),
            last_replayed_log_time: g.last_replayed_ms,
            failed_message: g
                .reseed_required
                .clone()
                .or_else(|| self.store_failure.clone())
                .or_else(|| g.copy_failure.clone()),
            suspend_comment: g.suspended.then(|| g.suspend_comment.clone()).flatten(),
        }
    }

    fn summary_copy_status(&self, g: &Group) -> SummaryCopyStatus {
        if matches!(g.role, Role::Owner(_)) {
            SummaryCopyStatus::Disabled
        } else if g.reseed_required.is_some() {
            SummaryCopyStatus::Failed
        } else if g.seeding {
            SummaryCopyStatus::Seeding
        } else if g.suspended {
            SummaryCopyStatus::Suspended
        } else if g.copy_failure.is_some() || self.store_failure.is_some() {
            SummaryCopyStatus::Failed
        } else if self.peer.is_none() {
            SummaryCopyStatus::Initializing
        } else if !g.resolved {
            SummaryCopyStatus::Resynchronizing
        } else {
            SummaryCopyStatus::Healthy
        }
    }
}
