//! Backups and log truncation. Logs pile up in the log folder until a backup: a full backup
//! copies the database file and the logs after its checkpoint, an incremental one the logs
//! since the last backup (it needs a full one before it). Either may be taken from either
//! copy. After it, each node deletes its logs up to the newest backup's checkpoint once both
//! copies' database files durably hold them — never a log the other copy still needs, so a
//! passive that is behind, suspended or out of sight holds truncation back on the active,
//! as Exchange's replication does. Without backups the log disk fills.
//!
//! The durable checkpoint is what the last *completed* database write recorded (`Node::disk`
//! notes each write and `on_disk_done` its completion): a write still in flight, or one
//! that failed on a full disk, proves nothing.

use super::{Node, NodeEvent};
use crate::cluster::wire::{BackupKind, BackupMark};
use crate::cluster::Now;
use crate::disk::DiskOp;
use crate::storage::Generation;

impl Node {
    /// The newest backup this node knows of.
    pub fn backup_mark(&self) -> BackupMark {
        self.sg.backup
    }

    /// The checkpoint this node's database file durably holds.
    pub fn db_file_checkpoint(&self) -> Generation {
        self.sg.db_file_checkpoint
    }

    pub(super) fn take_backup(&mut self, now: Now, kind: BackupKind) {
        let refusal = if self.sg.copy_damaged || self.sg.reseed_required.is_some() {
            Some("this copy needs a reseed (Update-StorageGroupCopy); back up the other copy")
        } else if self.sg.seeding {
            Some("this copy is being seeded")
        } else if self.sg.db_file_checkpoint == 0 {
            Some("this copy's database file holds no complete generation yet")
        } else if kind == BackupKind::Incremental && !self.sg.backup.full {
            Some("an incremental backup needs a full backup before it")
        } else if kind == BackupKind::Incremental
            && self.sg.db_file_checkpoint > self.sg.backup.checkpoint
            && self
                .sg
                .closed
                .keys()
                .next()
                .is_none_or(|&oldest| oldest > self.sg.backup.checkpoint + 1)
        {
            // A reseeded copy starts its logs at its seed: an incremental backup of it would
            // leave a gap after the last backup (swarm@11:203).
            Some("this copy lacks logs written since the last backup; take a full backup")
        } else {
            None
        };
        if let Some(reason) = refusal {
            self.emit(NodeEvent::AdminRefused {
                reason: format!("backup: {reason}"),
            });
            return;
        }
        let checkpoint = self.sg.db_file_checkpoint;
        // The host copies the files when it sees this, before the truncation below is issued.
        self.emit(NodeEvent::BackupTaken { kind, checkpoint });
        self.learn_backup(BackupMark {
            checkpoint,
            full: kind == BackupKind::Full,
        });
        self.truncate_logs(now);
    }

    /// A backup the peer told of (or this node took): kept in the state file.
    pub(super) fn learn_backup(&mut self, mark: BackupMark) {
        let merged = self.sg.backup.merge(mark);
        if merged != self.sg.backup {
            self.sg.backup = merged;
            self.persist_state();
        }
    }

    /// Deletes the closed logs both copies' database files hold, up to the newest backup's
    /// checkpoint. The newest closed log always stays: the next log chains to it.
    pub(super) fn truncate_logs(&mut self, now: Now) {
        let Some(&oldest) = self.sg.closed.keys().next() else {
            return;
        };
        let backed_up = if self.bugs.truncation_ignores_backup {
            Generation::MAX
        } else {
            self.sg.backup.checkpoint
        };
        if backed_up < oldest || self.sg.copy_damaged || self.sg.seeding {
            return;
        }
        let peer_checkpoint = if self.bugs.truncation_ignores_passive {
            Generation::MAX
        } else {
            match self.sg.peer.as_ref().filter(|_| !self.peer_down(now)) {
                Some(peer) => peer.db_checkpoint,
                None => return,
            }
        };
        let through = backed_up
            .min(self.sg.db_file_checkpoint)
            .min(peer_checkpoint)
            .min(self.last_closed().saturating_sub(1));
        if through < oldest {
            return;
        }
        let doomed: Vec<Generation> = self.sg.closed.range(..=through).map(|(g, _)| *g).collect();
        for g in &doomed {
            self.sg.closed.remove(g);
        }
        let ops = doomed
            .iter()
            .map(|&g| DiskOp::Remove {
                path: self.sg.files.logs.closed_path(g),
            })
            .collect();
        self.disk(ops, super::Io::Cleanup);
        self.emit(NodeEvent::LogsTruncated {
            through,
            removed: doomed.len() as u32,
        });
    }
}
