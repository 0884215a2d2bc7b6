//! Starting a node from its disk: the persisted cluster state, the log folder (recovered after
//! any crash) and the database file, with every log after the database's checkpoint replayed.
//! Both hosts (simulated and real) boot through here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::config::ClusterConfig;
use super::node::{DB_FILE, INSPECT_DIR, LOG_DIR, STATE_FILE};
use super::wire::{LineageEntry, View};
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
        }
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
    pub db: Database,
    /// Checksums of the closed logs in the log folder.
    pub closed: BTreeMap<Generation, u32>,
    /// The open log, when the node was writing one.
    pub writer: Option<LogWriter>,
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
    #[error("{LOG_DIR}: the database file holds up to generation {checkpoint:#x}, but the logs start at {first:#x}: logs needed for recovery are missing")]
    MissingLogs {
        checkpoint: Generation,
        first: Generation,
    },
    #[error(transparent)]
    Disk(#[from] DiskError),
}

/// Boots a node from `disk`: recovers, repairs and replays. A missing state file or database
/// means a fresh node; a damaged one is an error naming it, and nothing is overwritten.
pub fn boot(disk: &mut dyn Disk, config: &ClusterConfig, now_wall: u64) -> Result<Boot, BootError> {
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
    let mut db = match disk.read(DB_FILE) {
        Ok(done) => {
            Database::from_image(&done.value, config.storage.llr_depth).map_err(|error| {
                BootError::Database {
                    path: DB_FILE.into(),
                    error,
                }
            })?
        }
        Err(DiskError::NotFound { .. }) => Database::new(config.storage.llr_depth),
        Err(e) => return Err(e.into()),
    };
    let recovered = recover(disk, LOG_DIR, config.storage.log_size, now_wall)?;
    for stale in disk.list(INSPECT_DIR)?.value {
        disk.remove(&join(INSPECT_DIR, &stale))?;
    }
    if let Some(found) = recovered
        .closed
        .first()
        .map(|l| l.header.signature)
        .or(recovered.writer.as_ref().map(|w| w.signature()))
    {
        if found != config.signature {
            return Err(BootError::ForeignLogs {
                path: LOG_DIR.into(),
                expected: config.signature,
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
                checkpoint: db.applied(),
                first: generation,
            });
        }
        db.apply_log(generation, &log.records)
            .map_err(|error| BootError::Database {
                path: DB_FILE.into(),
                error,
            })?;
    }
    if let Some(writer) = &recovered.writer {
        if writer.generation() != db.applied() + 1 {
            return Err(BootError::MissingLogs {
                checkpoint: db.applied(),
                first: writer.generation(),
            });
        }
        for r in &recovered.open_records {
            db.apply_record(writer.generation(), r.clone())
                .map_err(|error| BootError::Database {
                    path: DB_FILE.into(),
                    error,
                })?;
        }
    }
    Ok(Boot {
        state,
        db,
        closed,
        writer: recovered.writer,
    })
}
