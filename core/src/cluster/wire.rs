//! Messages between the cluster's machines. Plain data: the simulator passes them as values,
//! the real binary encodes them in authenticated frames.

use serde::{Deserialize, Serialize};

use crate::storage::{Generation, MessageId};

use super::status::SummaryCopyStatus;
use super::NodeId;

/// Who owns the clustered mailbox server, as of which ownership epoch. Epochs only grow; a
/// node that sees a higher epoch adopts that view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct View {
    pub epoch: u64,
    pub owner: NodeId,
}

/// Where an owner's log stream began: the first generation it wrote in `epoch`, and the
/// checksum of the generation before it. The list of these is the lineage of the current
/// stream; a returning node compares its logs with it to find where it diverged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineageEntry {
    pub epoch: u64,
    pub owner: NodeId,
    pub first_generation: Generation,
    /// Checksum of `first_generation - 1` (0 when `first_generation` is 1).
    pub prev_checksum: u32,
    /// The time window this epoch's mount asked time-window hubs to resubmit, if any. The
    /// owner may lose the server before every hub answered (one was down), and nothing tells
    /// its successor whether they did: a failover's mount asks for this window again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked_since: Option<TimeWindow>,
}

impl LineageEntry {
    /// The same epoch of the same stream: what an entry still asks of the hubs (which its
    /// owner clears once they all answered) says nothing about the logs.
    pub fn same_start(&self, other: &LineageEntry) -> bool {
        (
            self.epoch,
            self.owner,
            self.first_generation,
            self.prev_checksum,
        ) == (
            other.epoch,
            other.owner,
            other.first_generation,
            other.prev_checksum,
        )
    }
}

/// The wall-clock window of a time-window redelivery (Exchange's way): the mail a hub
/// delivered for earlier owners since the creation of the newest log the mounting copy holds
/// (stamped by the clock of the node that wrote it). Each hub compares its own delivery
/// stamps with it, so clocks that disagree move the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeWindow {
    pub since_wall: u64,
}

impl TimeWindow {
    /// One window covering both: the earlier start.
    pub fn earliest(a: Option<TimeWindow>, b: Option<TimeWindow>) -> Option<TimeWindow> {
        match (a, b) {
            (Some(a), Some(b)) => Some(TimeWindow {
                since_wall: a.since_wall.min(b.since_wall),
            }),
            (a, b) => a.or(b),
        }
    }
}

/// `Stop-ClusteredMailboxServer` / `Start-ClusteredMailboxServer`: the administrator's latest
/// word on whether the server should be online. Each command takes the next `seq`; wherever
/// two meet (heartbeats, state files, the witness) the newer wins, a stop winning a tie. A
/// stopped server stays offline on every node, across restarts and failovers, until started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CmsIntent {
    pub seq: u64,
    pub stopped: bool,
    /// The administrator's `-StopReason`, while stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl CmsIntent {
    pub fn newer_than(&self, other: &CmsIntent) -> bool {
        (self.seq, self.stopped) > (other.seq, other.stopped)
    }
}

/// What an administrator's backup copies: a full backup the database and the logs, an
/// incremental one the logs since the last backup. Either lets logs be truncated after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackupKind {
    Full,
    Incremental,
}

impl std::fmt::Display for BackupKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackupKind::Full => "full",
            BackupKind::Incremental => "incremental",
        })
    }
}

/// The newest backup of the storage group the cluster knows of, kept in each node's state
/// file and sent in every heartbeat: the generations up to `checkpoint` are in a backed-up
/// database file, so their logs may go once both copies' database files hold them too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupMark {
    pub checkpoint: Generation,
    /// A full backup exists (an incremental one builds on it).
    pub full: bool,
}

impl BackupMark {
    /// What two nodes know together: the later checkpoint, and whether either saw a full one.
    pub fn merge(self, other: BackupMark) -> BackupMark {
        BackupMark {
            checkpoint: self.checkpoint.max(other.checkpoint),
            full: self.full || other.full,
        }
    }
}

/// What a passive tells the owner about its copy (a move needs a healthy target).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyReport {
    pub status: SummaryCopyStatus,
    /// The copy cannot mount until it is reseeded (damaged at rest, diverged, or a log that
    /// kept failing inspection).
    #[serde(default)]
    pub reseed_required: bool,
    pub last_inspected: Generation,
    pub last_replayed: Generation,
    /// The administrator's `-SuspendComment`, while the copy is suspended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend_comment: Option<String>,
}

/// What a heartbeat tells of one storage group beyond the first (whose fields are the
/// heartbeat's own, as a one-group server's always were).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupBeat {
    pub serving: bool,
    pub open_generation: Option<Generation>,
    pub open_records: u32,
    pub last_closed: Generation,
    pub lineage: Vec<LineageEntry>,
    pub copy: Option<CopyReport>,
    #[serde(default)]
    pub backup: BackupMark,
    #[serde(default)]
    pub db_checkpoint: Generation,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The sender's monotonic clock when it sent this.
    pub stamp: u64,
    /// The newest `stamp` the sender has received from the receiver, echoed back.
    pub echo: Option<u64>,
    pub view: View,
    /// The sender agrees the receiver owns `view` and is not taking over: the echo is a lease.
    pub grants_lease: bool,
    pub serving: bool,
    /// Generation of the sender's open log and how many records it holds, when active.
    pub open_generation: Option<Generation>,
    pub open_records: u32,
    /// The sender's newest closed generation (0 for none).
    pub last_closed: Generation,
    /// The sender's lineage (authoritative when the sender owns `view`).
    pub lineage: Vec<LineageEntry>,
    /// The sender's copy, when it is a passive.
    pub copy: Option<CopyReport>,
    /// The sender reaches the hub on the public network (clients could reach it).
    pub public_ok: bool,
    /// The newest stop or start of the server the sender knows of.
    #[serde(default)]
    pub intent: CmsIntent,
    /// The newest backup the sender knows of.
    #[serde(default)]
    pub backup: BackupMark,
    /// The checkpoint the sender's database file durably holds: its logs up to there may be
    /// truncated after a backup, as far as the sender's copy is concerned.
    #[serde(default)]
    pub db_checkpoint: Generation,
    /// The same for the second storage group on (empty for a server of one): `serving` and
    /// the fields above are the first's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupBeat>,
}

impl Heartbeat {
    /// What this heartbeat tells of storage group `group`, if it tells anything.
    pub fn group(&self, group: u8) -> Option<GroupBeat> {
        if group == 0 {
            return Some(GroupBeat {
                serving: self.serving,
                open_generation: self.open_generation,
                open_records: self.open_records,
                last_closed: self.last_closed,
                lineage: self.lineage.clone(),
                copy: self.copy.clone(),
                backup: self.backup,
                db_checkpoint: self.db_checkpoint,
            });
        }
        self.groups.get(usize::from(group) - 1).cloned()
    }

    /// Whether the sender serves any storage group.
    pub fn serving_any(&self) -> bool {
        self.serving || self.groups.iter().any(|g| g.serving)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    Heartbeat(Heartbeat),

    /// A message about storage group `group` (1 for the second, …): its logs, its mail, its
    /// move. The first storage group's travel bare, as a one-group server's always did.
    ForGroup {
        group: u8,
        msg: Box<Msg>,
    },

    // Node → a node machine's log share, and its answers.
    FetchLog {
        generation: Generation,
    },
    /// Copy the open log as it stands; the share serves it only while that node's store is
    /// not running (the survivor's last attempt to copy everything after a failure).
    FetchOpenLog,
    FetchDatabase,
    /// The node's persisted cluster state (its lineage), for a survivor about to drain it.
    FetchState,
    LogFile {
        generation: Generation,
        #[serde(with = "base64_bytes")]
        bytes: Vec<u8>,
    },
    OpenLogFile {
        #[serde(with = "base64_bytes")]
        bytes: Vec<u8>,
    },
    DatabaseFile {
        #[serde(with = "base64_bytes")]
        bytes: Vec<u8>,
    },
    StateFile {
        #[serde(with = "base64_bytes")]
        bytes: Vec<u8>,
    },
    NoLog {
        generation: Option<Generation>,
        reason: String,
    },

    // Node ↔ witness. `head` is the newest generation of the log stream the sender knows
    // of; the witness keeps the highest it has heard (Windows keeps cluster state in the
    // witness share for the same reason: a node that was down must not form a cluster that
    // forgets what happened meanwhile).
    // The same goes for `view`: the witness answers with the newest ownership view it has
    // heard of, so a node with a stale view learns it was superseded.
    Arbitrate {
        stamp: u64,
        head: Generation,
        view: View,
        /// The heads of the second storage group on.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        heads: Vec<Generation>,
    },
    WitnessGranted {
        stamp: u64,
        epoch: u64,
        head: Generation,
        view: View,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        heads: Vec<Generation>,
        /// The newest stop or start the witness has recorded: a node taking over learns of
        /// a stop its peer recorded before it died.
        #[serde(default)]
        intent: CmsIntent,
    },
    WitnessDenied {
        stamp: u64,
        holder: NodeId,
        epoch: u64,
        head: Generation,
        view: View,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        heads: Vec<Generation>,
    },

    /// Node → witness: keep this stop or start of the server (the cluster database's copy on
    /// the witness share), answered with the newest the witness holds.
    RecordIntent {
        intent: CmsIntent,
    },
    IntentRecorded {
        intent: CmsIntent,
    },

    // Scheduled move, owner ↔ target.
    MovePrepare {
        move_id: u64,
        last_generation: Generation,
    },
    MoveReady {
        move_id: u64,
    },
    MoveAbandoned {
        move_id: u64,
        reason: String,
    },
    HandOver {
        view: View,
        comment: String,
        /// The target must first copy what the old owner's share still holds and apply the
        /// mount dial (the old owner's store failed; nobody made the target catch up).
        #[serde(default)]
        drain: bool,
        /// The old owner's failover window the hubs have not answered yet: the new owner
        /// asks for it with its own mount.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window: Option<TimeWindow>,
        /// The same for the second storage group on.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        windows: Vec<Option<TimeWindow>>,
    },

    // Hub ↔ node.
    /// The hub's `body` is the message's content as the client sent it (at most `size`
    /// bytes). The hub core leaves it empty: its host keeps bodies beside the queue (the
    /// simulator derives them from the id, the real hub stores them) and fills it in.
    Deliver {
        id: MessageId,
        size: u32,
        #[serde(default, with = "base64_bytes")]
        body: Vec<u8>,
    },
    Delivered {
        id: MessageId,
        generation: Generation,
        epoch: u64,
    },
    NotActive {
        view: View,
    },
    /// The owner mounted and serves clients.
    Mounted {
        view: View,
    },
    /// After every mount: redeliver what the lineage cannot account for. Repeated with every
    /// announcement until the hub confirms this `request`.
    Redeliver {
        epoch: u64,
        request: u64,
        lineage: Vec<LineageEntry>,
        /// Set after a failover: what a hub in time-window mode resubmits.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window: Option<TimeWindow>,
    },
    RedeliveryAccepted {
        request: u64,
    },
    /// Node → hub over the public network, every heartbeat: is my public network working?
    /// (What the cluster's network interface checks do for the IP Address resource.)
    Ping {
        stamp: u64,
    },
    Pong {
        stamp: u64,
    },
}

impl Msg {
    /// `msg` as a message of storage group `group`: bare for the first.
    pub fn for_group(group: u8, msg: Msg) -> Msg {
        if group == 0 {
            msg
        } else {
            Msg::ForGroup {
                group,
                msg: Box::new(msg),
            }
        }
    }

    /// The storage group a message is about and the message itself.
    pub fn into_group(self) -> (u8, Msg) {
        match self {
            Msg::ForGroup { group, msg } => (group, *msg),
            msg => (0, msg),
        }
    }

    /// Whether the message is one storage group's business (and so travels in `ForGroup` for
    /// every group but the first) rather than the cluster's.
    pub fn is_group_level(&self) -> bool {
        !matches!(
            self,
            Msg::Heartbeat(_)
                | Msg::ForGroup { .. }
                | Msg::Arbitrate { .. }
                | Msg::WitnessGranted { .. }
                | Msg::WitnessDenied { .. }
                | Msg::RecordIntent { .. }
                | Msg::IntentRecorded { .. }
                | Msg::HandOver { .. }
                | Msg::Ping { .. }
                | Msg::Pong { .. }
        )
    }

    /// The message with its bulk bytes (a log, a database, a body) left out, and those bytes:
    /// what a binary frame carries after the JSON, as they are. `None` for a message without
    /// a bulk field.
    pub fn without_bulk(&self) -> Option<(Msg, &[u8])> {
        let (light, bytes) = match self {
            Msg::LogFile { generation, bytes } => (
                Msg::LogFile {
                    generation: *generation,
                    bytes: Vec::new(),
                },
                bytes,
            ),
            Msg::ForGroup { group, msg } => {
                let (light, bytes) = msg.without_bulk()?;
                return Some((Msg::for_group(*group, light), bytes));
            }
            Msg::OpenLogFile { bytes } => (Msg::OpenLogFile { bytes: Vec::new() }, bytes),
            Msg::DatabaseFile { bytes } => (Msg::DatabaseFile { bytes: Vec::new() }, bytes),
            Msg::StateFile { bytes } => (Msg::StateFile { bytes: Vec::new() }, bytes),
            Msg::Deliver { id, size, body } => (
                Msg::Deliver {
                    id: *id,
                    size: *size,
                    body: Vec::new(),
                },
                body,
            ),
            _ => return None,
        };
        Some((light, bytes))
    }

    /// Where this message keeps its bulk bytes, if it has such a field.
    pub fn bulk_mut(&mut self) -> Option<&mut Vec<u8>> {
        match self {
            Msg::LogFile { bytes, .. }
            | Msg::OpenLogFile { bytes }
            | Msg::DatabaseFile { bytes }
            | Msg::StateFile { bytes } => Some(bytes),
            Msg::Deliver { body, .. } => Some(body),
            Msg::ForGroup { msg, .. } => msg.bulk_mut(),
            _ => None,
        }
    }
}

/// Bytes in a JSON frame as one base64 string: a byte array as JSON numbers would take up to
/// four times the room and parse a hundred times slower (a 1 MB log is copied in every frame).
pub mod base64_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|e| serde::de::Error::custom(format!("bytes: not base64: {e}")))
    }
}
