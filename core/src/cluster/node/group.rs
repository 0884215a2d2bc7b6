//! A storage group as one node holds it: its log stream and the lineage that names it, its
//! copy (fetch, inspector, replay queue), its database, its store's pending writes and its
//! redelivery request. The node's cluster service (view, quorum, role) is shared by all of a
//! clustered mailbox server's storage groups; what is here is each one's own.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::{Ahead, Fetch, OwnerState, Role, DB_FILE, INSPECT_DIR, LOG_DIR};
use crate::cluster::boot::{GroupBoot, GroupState};
use crate::cluster::config::ClusterConfig;
use crate::cluster::wire::GroupBeat;
use crate::cluster::wire::{BackupMark, LineageEntry, TimeWindow};
use crate::cluster::HubId;
use crate::disk::join;
use crate::storage::database::Database;
use crate::storage::inspect::Inspector;
use crate::storage::logfile::ClosedLog;
use crate::storage::names::LogFolder;
use crate::storage::record::Record;
use crate::storage::writer::LogWriter;
use crate::storage::{Generation, MessageId};

/// Where one storage group's files live on a node's disk. The first keeps the layout a node
/// of one storage group always had (`logs/`, `inspector/`, `db/mailbox.edb`); each further one
/// has a folder named for its prefix (`E01/logs/E01.log`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupFiles {
    /// The closed and open logs.
    pub logs: LogFolder,
    /// Copied logs wait here while they are inspected, under their final names.
    pub inspector: LogFolder,
    /// The database file.
    pub db: String,
}

impl GroupFiles {
    /// The files of storage group `group` (0 for the first).
    pub fn of(group: u8) -> GroupFiles {
        if group == 0 {
            return GroupFiles {
                logs: LogFolder::first(LOG_DIR),
                inspector: LogFolder::first(INSPECT_DIR),
                db: DB_FILE.to_string(),
            };
        }
        let root = format!("E{group:02X}");
        GroupFiles {
            logs: LogFolder::new(&join(&root, LOG_DIR), group),
            inspector: LogFolder::new(&join(&root, INSPECT_DIR), group),
            db: join(&root, DB_FILE),
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Group {
    /// Its number (0 for the first).
    pub(super) index: u8,
    pub(super) files: GroupFiles,
    /// What this node does with the group's database: every group of an owner mounts on its
    /// own, so some may serve while others wait (Partially Online).
    pub(super) role: Role,
    /// What the peer's newest heartbeat told of this group.
    pub(super) peer: Option<GroupBeat>,
    /// When a move to this node is over for certain, whatever became of it: its source gives
    /// up after `move_timeout_ms`. (A source that restarted meanwhile never says so.)
    pub(super) move_over_by: u64,
    pub(super) lineage: Vec<LineageEntry>,
    // Storage.
    pub(super) db: Database,
    pub(super) closed: BTreeMap<Generation, u32>,
    pub(super) writer: Option<LogWriter>,
    /// The open log was recovered from disk, not opened by this process: it is closed, not
    /// continued (a survivor may already hold a sealed copy of it).
    pub(super) writer_recovered: bool,
    pub(super) inspector: Inspector,
    pub(super) replay_queue: VecDeque<ClosedLog>,
    pub(super) flushed_applied: Generation,
    /// The checkpoint the database file durably holds: the last database write that
    /// completed (see `backup.rs`).
    pub(super) db_file_checkpoint: Generation,
    /// Database writes in flight: their disk token and the checkpoint each brings the file to.
    pub(super) db_writes: BTreeMap<u64, Generation>,
    /// The newest backup the cluster knows of (persisted).
    pub(super) backup: BackupMark,
    /// The newest generation the peer is known to have written while it owned the server.
    pub(super) peer_head: Generation,
    /// The newest generation the witness has heard of.
    pub(super) witness_head: Generation,
    // Replication service.
    pub(super) fetch: Option<(Fetch, u64)>,
    /// Logs after `fetch`'s asked for before their turn (`ClusterConfig::copy_window`), by
    /// generation; they are inspected in order, each when it becomes the next.
    pub(super) ahead: BTreeMap<Generation, Ahead>,
    pub(super) copy_retry_at: u64,
    pub(super) copy_writing: bool,
    pub(super) suspended: bool,
    /// The administrator's `-SuspendComment`, shown while the copy stays suspended.
    pub(super) suspend_comment: Option<String>,
    pub(super) copy_failure: Option<String>,
    pub(super) reseed_required: Option<String>,
    /// Files of a copy found damaged at boot, which a reseed removes (nothing of them was
    /// loaded, so the usual bookkeeping does not know them).
    pub(super) damaged_files: Vec<String>,
    /// Nothing of this node's copy is loaded (it was damaged at boot) until a seed arrives:
    /// it must never own a mounted database before then.
    pub(super) copy_damaged: bool,
    /// The generation whose copies failed inspection in a row, and how many times: the third
    /// makes the log irrecoverable and the copy asks for a reseed, as Exchange's does.
    pub(super) inspection_failures: Option<(Generation, u32)>,
    /// Why the copy needed a reseed before the one under way (restored if it is given up).
    pub(super) reseed_before: Option<String>,
    pub(super) seeding: bool,
    pub(super) resolved: bool,
    pub(super) move_target: Option<(u64, Generation)>,
    /// As a move's target: the generation this copy told the owner it holds (`MoveReady`),
    /// until the hand-over or the move's end. The hand-over mounts on that promise.
    pub(super) move_promised: Option<Generation>,
    /// Bumped whenever the copy starts over (a reseed, a role change): a log copy still being
    /// written from before belongs to a history this copy no longer follows.
    pub(super) copy_round: u64,
    /// Draining: the closed logs are copied; the open log is next, once the old owner's
    /// leases have surely run out.
    pub(super) open_log_due: bool,
    /// Draining a lost node's share found nothing more to copy.
    pub(super) drain_finished: bool,
    /// The lost node's lineage was fetched (or could not be) before draining its logs.
    pub(super) drain_state_done: bool,
    /// An admin restore (Restore-StorageGroupCopy): the loss is accepted; with `mount_asked`
    /// the next mount ignores the dial.
    pub(super) force_mount: bool,
    /// Mount-Database after a restore.
    pub(super) mount_asked: bool,
    /// The generation this copy had replayed when its takeover began: the mount replays the
    /// rest first (`StorageConfig::replay_ms_per_log`).
    pub(super) replayed_at_takeover: Option<Generation>,
    /// When the mount dial first kept this takeover's database dismounted (for
    /// `forced_database_mount_after_ms`), on the monotonic clock.
    pub(super) blocked_since: Option<u64>,
    pub(super) last_replayed_ms: Option<u64>,
    // Store.
    pub(super) batch: Vec<Record>,
    /// Messages waiting for the next sync, each with the hub that delivered it (the one to
    /// tell when it is durable).
    pub(super) batch_ids: Vec<(MessageId, HubId)>,
    pub(super) unsynced: BTreeSet<MessageId>,
    pub(super) commit_in_flight: bool,
    /// When the open log got its first record (this process's clock): the idle roll's start.
    pub(super) open_log_since: Option<u64>,
    /// The redelivery request of the last mount; repeated to each hub until that hub confirms
    /// it, and kept in the cluster state so that a restart does not forget it.
    pub(super) redelivery_pending: Option<u64>,
    /// The hubs that confirmed the pending request. Not persisted: after a restart every hub
    /// is asked again, and one that carried the request out already only confirms it.
    pub(super) redelivery_confirmed: BTreeSet<HubId>,
    /// The pending request's failover window, for hubs in time-window mode (persisted with it).
    pub(super) redelivery_window: Option<TimeWindow>,
    /// A failover window an old owner handed over with the server, for our mount to ask.
    pub(super) inherited_window: Option<TimeWindow>,
}

impl Group {
    /// Storage group `index` as this node boots it: `owner` when the view says this node owns
    /// the server.
    pub(super) fn new(
        index: u8,
        boot: GroupBoot,
        state: GroupState,
        owner: bool,
        config: &ClusterConfig,
    ) -> Group {
        let GroupBoot {
            db,
            closed,
            writer,
            damaged,
            log_files,
        } = boot;
        // A damaged copy never serves, even where the view says this node owns the server:
        // it stays a passive that reports its copy Failed, the peer takes the server over,
        // and an administrator reseeds it.
        let role = if owner && damaged.is_none() {
            Role::Owner(OwnerState::Offline {
                reason: "starting".into(),
            })
        } else {
            Role::Passive
        };
        Group {
            index,
            files: GroupFiles::of(index),
            role,
            peer: None,
            move_over_by: 0,
            lineage: state.lineage,
            // A passive copies only once it has compared its logs with a serving owner's
            // lineage and adopted it; an owner's stream is its own.
            resolved: owner,
            flushed_applied: db.applied(),
            db_file_checkpoint: db.file_checkpoint(),
            db,
            closed,
            writer_recovered: writer.is_some(),
            writer,
            // Replaced by the node's reset_inspector once the logs are in place.
            inspector: Inspector::new(config.group_signature(index), 1, Some(0)).of_group(index),
            replay_queue: VecDeque::new(),
            db_writes: BTreeMap::new(),
            backup: state.backup,
            peer_head: 0,
            witness_head: 0,
            fetch: None,
            ahead: BTreeMap::new(),
            copy_retry_at: 0,
            copy_writing: false,
            suspended: false,
            suspend_comment: None,
            copy_failure: None,
            reseed_required: damaged.clone(),
            copy_damaged: damaged.is_some(),
            damaged_files: log_files,
            inspection_failures: None,
            reseed_before: None,
            seeding: false,
            move_target: None,
            move_promised: None,
            drain_finished: false,
            open_log_due: false,
            copy_round: 0,
            drain_state_done: false,
            force_mount: false,
            mount_asked: false,
            replayed_at_takeover: None,
            blocked_since: None,
            last_replayed_ms: None,
            batch: Vec::new(),
            batch_ids: Vec::new(),
            unsynced: BTreeSet::new(),
            commit_in_flight: false,
            open_log_since: None,
            redelivery_pending: state.redelivery_pending,
            redelivery_confirmed: BTreeSet::new(),
            redelivery_window: state.redelivery_window,
            inherited_window: None,
        }
    }

    /// Why this copy cannot be mounted at all, if it cannot: nothing of it is loaded, it
    /// diverged, or a seed is under way.
    pub(super) fn unmountable(&self) -> Option<String> {
        if self.copy_damaged {
            Some("this copy is damaged and cannot mount".into())
        } else if let Some(reason) = &self.reseed_required {
            Some(format!("this copy needs a reseed: {reason}"))
        } else if self.seeding {
            Some("this copy is being seeded".into())
        } else {
            None
        }
    }

    /// Its share of the persisted cluster state.
    pub(super) fn persisted(&self) -> GroupState {
        GroupState {
            lineage: self.lineage.clone(),
            redelivery_pending: self.redelivery_pending,
            redelivery_window: self.redelivery_window,
            backup: self.backup,
        }
    }

    pub(super) fn is_serving(&self) -> bool {
        matches!(self.role, Role::Owner(OwnerState::Serving))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_group_keeps_the_old_layout_and_others_have_their_folder() {
        let first = GroupFiles::of(0);
        assert_eq!(first.logs.open_path(), "logs/E00.log");
        assert_eq!(first.inspector.closed_path(1), "inspector/E0000000001.log");
        assert_eq!(first.db, "db/mailbox.edb");
        let second = GroupFiles::of(1);
        assert_eq!(second.logs.open_path(), "E01/logs/E01.log");
        assert_eq!(
            second.inspector.closed_path(1),
            "E01/inspector/E0100000001.log"
        );
        assert_eq!(second.db, "E01/db/mailbox.edb");
    }
}
