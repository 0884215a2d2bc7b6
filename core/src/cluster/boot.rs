//! Starting a node from its disk: the persisted cluster state, the log folder (recovered after
//! any crash) and the database file, with every log after the database's checkpoint replayed.
//! Both hosts (simulated and real) boot through here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::config::ClusterConfig;
use super::node::{GroupFiles, STATE_FILE};
use super::wire::{BackupMark, CmsIntent, LineageEntry, TimeWindow, View};
use crate::disk::{join, replace_atomically, Disk, DiskError, DiskOp};
use crate::storage::database::{Database, DbError};
use crate::storage::recovery::{recover, RecoveryError};
use crate::storage::writer::LogWriter;
use crate::storage::{Generation, Signature};

/// The node's share of the cluster database, kept in `cluster/state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistedState {
    pub view: View,
    pub lineage: Vec<LineageEntry>,
    pub last_move_comment: Option<String>,
    /// A mount asked the hub for redelivery (this request id) and the hub has not confirmed
    /// it yet.
    #[serde(default)]
    pub redelivery_pending: Option<u64>,
    /// The newest redelivery request id this node used: the next is larger, whatever its
    /// clock reads (the hub takes a request id it has carried out for a repeat).
    #[serde(default)]
    pub last_redelivery_request: u64,
    /// The pending request's time window (a lossy mount), for hubs in time-window mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redelivery_window: Option<TimeWindow>,
    /// The restart policy's count: when the store failed while this node owned the server
    /// (wall clock, ms), within the policy's period.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub store_failures: Vec<u64>,
    /// The newest Stop- or Start-ClusteredMailboxServer this node knows of: a stopped server
    /// stays offline across restarts until an administrator starts it.
    #[serde(default, skip_serializing_if = "is_default")]
    pub intent: CmsIntent,
    /// The newest backup this node knows of (logs up to its checkpoint may be truncated).
    #[serde(default, skip_serializing_if = "is_no_backup")]
    pub backup: BackupMark,
    /// The second storage group on: the fields above that belong to one storage group
    /// (`lineage`, `redelivery_pending`, `redelivery_window`, `backup`) are the first's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupState>,
}

/// One storage group's share of the persisted state (the second on).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupState {
    pub lineage: Vec<LineageEntry>,
    #[serde(default)]
    pub redelivery_pending: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redelivery_window: Option<TimeWindow>,
    #[serde(default, skip_serializing_if = "is_no_backup")]
    pub backup: BackupMark,
}

fn is_no_backup(backup: &BackupMark) -> bool {
    *backup == BackupMark::default()
}

fn is_default(intent: &CmsIntent) -> bool {
    *intent == CmsIntent::default()
}

impl PersistedState {
    pub fn initial(config: &ClusterConfig) -> PersistedState {
        PersistedState {
            view: View {
                epoch: 0,
                owner: config.initial_owner,
            },
            lineage: Vec::new(),
            last_move_comment: None,
            redelivery_pending: None,
            last_redelivery_request: 0,
            redelivery_window: None,
            store_failures: Vec::new(),
            intent: CmsIntent::default(),
            backup: BackupMark::default(),
            groups: Vec::new(),
        }
    }

    /// Storage group `group`'s share (the default for one never persisted).
    pub fn group(&self, group: u8) -> GroupState {
        if group == 0 {
            return GroupState {
                lineage: self.lineage.clone(),
                redelivery_pending: self.redelivery_pending,
                redelivery_window: self.redelivery_window,
                backup: self.backup,
            };
        }
        self.groups
            .get(usize::from(group) - 1)
            .cloned()
            .unwrap_or_default()
    }

    /// Sets storage group `group`'s share.
    pub fn set_group(&mut self, group: u8, state: GroupState) {
        if group == 0 {
            self.lineage = state.lineage;
            self.redelivery_pending = state.redelivery_pending;
            self.redelivery_window = state.redelivery_window;
            self.backup = state.backup;
            return;
        }
        let i = usize::from(group) - 1;
        if self.groups.len() <= i {
            self.groups.resize(i + 1, GroupState::default());
        }
        self.groups[i] = state;
    }

    /// Writes that replace the state file atomically.
    pub fn persist_ops(&self) -> Vec<DiskOp> {
        let json = serde_json::to_vec_pretty(self).expect("state serialises");
        replace_atomically(STATE_FILE, &format!("{STATE_FILE}.tmp"), json)
    }
}

/// Everything a node starts from.
#[derive(Debug, Clone)]
pub struct Boot {
    pub state: PersistedState,
    /// Each storage group's copy, the first first.
    pub groups: Vec<GroupBoot>,
}

impl Boot {
    /// The first storage group's copy damage, if any: the node reports it and asks for a
    /// reseed.
    pub fn damaged(&self) -> Option<&str> {
        self.groups.iter().find_map(|g| g.damaged.as_deref())
    }
}

/// One storage group's copy as a node starts from it.
#[derive(Debug, Clone)]
pub struct GroupBoot {
    pub db: Database,
    /// Checksums of the closed logs in the log folder.
    pub closed: BTreeMap<Generation, u32>,
    /// The open log, when the node was writing one.
    pub writer: Option<LogWriter>,
    /// The logs or the database file are damaged at rest (the error names the file): the
    /// node starts with nothing of its copy loaded and asks for a reseed, and the files stay
    /// as they are until the administrator's `Update-StorageGroupCopy` replaces them.
    pub damaged: Option<String>,
    /// Every file in the log folder, for the reseed to remove when the copy is damaged.
    pub log_files: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootError {
    #[error("{path}: {message}")]
    State { path: String, message: String },
    #[error(transparent)]
    Logs(#[from] RecoveryError),
    #[error("{path}: {error}")]
    Database { path: String, error: DbError },
    #[error("{path}: signature {found} is not this storage group's {expected}")]
    ForeignLogs {
        path: String,
        expected: Signature,
        found: Signature,
    },
    #[error("{path}: the database file holds up to generation {checkpoint:#x}, but the logs start at {first:#x}: logs needed for recovery are missing")]
    MissingLogs {
        path: String,
        checkpoint: Generation,
        first: Generation,
    },
    #[error(transparent)]
    Disk(#[from] DiskError),
}

impl BootError {
    /// Damage to the copy's data (logs, database file), which a reseed from the other copy
    /// repairs — as opposed to a damaged cluster state file, another storage group's logs or a
    /// disk that cannot be read, which stop the node.
    pub fn is_copy_damage(&self) -> bool {
        match self {
            BootError::Logs(RecoveryError::Disk(_)) => false,
            BootError::Logs(_) | BootError::Database { .. } | BootError::MissingLogs { .. } => true,
            BootError::State { .. } | BootError::ForeignLogs { .. } | BootError::Disk(_) => false,
        }
    }
}

/// Boots a node from `disk`: recovers, repairs and replays. A missing state file or database
/// means a fresh node. A damaged state file is an error naming it; damaged logs or database
/// file boot the node with its copy marked damaged (see [`Boot::damaged`]). Either way
/// nothing already on disk is overwritten.
pub fn boot(disk: &mut dyn Disk, config: &ClusterConfig, now_wall: u64) -> Result<Boot, BootError> {
    let state = read_state(disk, config)?;
    let groups = (0..config.storage_groups)
        .map(|group| boot_group(disk, config, group, now_wall))
        .collect::<Result<_, _>>()?;
    Ok(Boot { state, groups })
}

fn boot_group(
    disk: &mut dyn Disk,
    config: &ClusterConfig,
    group: u8,
    now_wall: u64,
) -> Result<GroupBoot, BootError> {
    let files = GroupFiles::of(group);
    match load_copy(disk, config, &files, now_wall) {
        Ok((db, closed, writer)) => Ok(GroupBoot {
            db,
            closed,
            writer,
            damaged: None,
            log_files: Vec::new(),
        }),
        Err(e) if e.is_copy_damage() => Ok(GroupBoot {
            db: Database::new(config.storage.llr_depth),
            closed: BTreeMap::new(),
            writer: None,
            damaged: Some(e.to_string()),
            log_files: disk
                .list(files.logs.dir())?
                .value
                .into_iter()
                .map(|name| join(files.logs.dir(), &name))
                .collect(),
        }),
        Err(e) => Err(e),
    }
}

fn read_state(disk: &mut dyn Disk, config: &ClusterConfig) -> Result<PersistedState, BootError> {
    let state = match disk.read(STATE_FILE) {
        Ok(done) => {
            serde_json::from_slice::<PersistedState>(&done.value).map_err(|e| BootError::State {
                path: STATE_FILE.into(),
                message: format!("line {}, column {}: {e}", e.line(), e.column()),
            })?
        }
        Err(DiskError::NotFound { .. }) => PersistedState::initial(config),
        Err(e) => return Err(e.into()),
    };
    Ok(state)
}

type Copy = (Database, BTreeMap<Generation, u32>, Option<LogWriter>);

/// The database file and the log folder, recovered and replayed.
fn load_copy(
    disk: &mut dyn Disk,
    config: &ClusterConfig,
    files: &GroupFiles,
    now_wall: u64,
) -> Result<Copy, BootError> {
    let db_file = files.db.as_str();
    let mut db = match disk.read(db_file) {
        Ok(done) => {
            Database::from_image(&done.value, config.storage.llr_depth).map_err(|error| {
                BootError::Database {
                    path: db_file.into(),
                    error,
                }
            })?
        }
        Err(DiskError::NotFound { .. }) => Database::new(config.storage.llr_depth),
        Err(e) => return Err(e.into()),
    };
    let recovered = recover(disk, &files.logs, config.storage.log_size, now_wall)?;
    let inspector = files.inspector.dir();
    for stale in disk.list(inspector)?.value {
        disk.remove(&join(inspector, &stale))?;
    }
    if let Some(found) = recovered
        .closed
        .first()
        .map(|l| l.header.signature)
        .or(recovered.writer.as_ref().map(|w| w.signature()))
    {
        let expected = config.group_signature(files.logs.group());
        if found != expected {
            return Err(BootError::ForeignLogs {
                path: files.logs.dir().into(),
                expected,
                found,
            });
        }
    }

    let mut closed = BTreeMap::new();
    for log in &recovered.closed {
        let generation = log.header.generation;
        closed.insert(generation, log.checksum);
        if generation <= db.applied() {
            continue;
        }
        if generation != db.applied() + 1 {
            return Err(BootError::MissingLogs {
                path: files.logs.dir().into(),
                checkpoint: db.applied(),
                first: generation,
            });
        }
        db.apply_log(generation, &log.records)
            .map_err(|error| BootError::Database {
                path: db_file.into(),
                error,
            })?;
    }
    if let Some(writer) = &recovered.writer {
        if writer.generation() != db.applied() + 1 {
            return Err(BootError::MissingLogs {
                path: files.logs.dir().into(),
                checkpoint: db.applied(),
                first: writer.generation(),
            });
        }
        for r in &recovered.open_records {
            db.apply_record(writer.generation(), r.clone())
                .map_err(|error| BootError::Database {
                    path: db_file.into(),
                    error,
                })?;
        }
    }
    Ok((db, closed, recovered.writer))
}
