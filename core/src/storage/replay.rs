//! A passive copy: copied logs pass the inspector, wait in the replay queue, and are replayed
//! into the copy's database in generation order.
//!
//! Queue lengths are derived from three generations, never counted separately: the newest
//! closed generation on the source, the last inspected, the last replayed.

use std::collections::VecDeque;

use super::database::{Database, DbError};
use super::inspect::{Inspector, Rejection};
use super::logfile::ClosedLog;
use super::{Generation, Signature};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassiveCopy {
    inspector: Inspector,
    /// Inspected logs not yet replayed, in generation order.
    inspected: VecDeque<ClosedLog>,
    db: Database,
    /// The newest closed generation the source reported.
    source_last_closed: Generation,
    last_replayed_ms: Option<u64>,
}

/// The numbers `Get-StorageGroupCopyStatus` shows for a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLengths {
    pub copy_queue: u32,
    pub replay_queue: u32,
    pub last_inspected: Generation,
    pub last_replayed: Generation,
    pub last_inspected_ms: Option<u64>,
    pub last_replayed_ms: Option<u64>,
}

impl PassiveCopy {
    /// A copy whose database is `db`; it expects the log after `db.applied()`.
    /// `last_checksum` is the checksum of that applied generation, if known.
    pub fn new(signature: Signature, db: Database, last_checksum: Option<u32>) -> PassiveCopy {
        let next = db.applied() + 1;
        PassiveCopy {
            inspector: Inspector::new(signature, next, last_checksum),
            inspected: VecDeque::new(),
            source_last_closed: db.applied(),
            db,
            last_replayed_ms: None,
        }
    }

    /// Records what the source says its newest closed generation is.
    pub fn note_source(&mut self, last_closed: Generation) {
        self.source_last_closed = last_closed;
    }

    /// Inspects a copied log; an accepted one joins the replay queue.
    pub fn receive(&mut self, name: &str, bytes: &[u8]) -> Result<Generation, Rejection> {
        let log = self.inspector.inspect(name, bytes)?;
        let generation = log.header.generation;
        self.source_last_closed = self.source_last_closed.max(generation);
        self.inspected.push_back(log);
        Ok(generation)
    }

    /// Replays the oldest inspected log, if any; returns its generation.
    pub fn replay_next(&mut self) -> Result<Option<Generation>, DbError> {
        let Some(log) = self.inspected.pop_front() else {
            return Ok(None);
        };
        let generation = log.header.generation;
        self.db.apply_log(generation, &log.records)?;
        self.last_replayed_ms = Some(log.header.created_ms);
        Ok(Some(generation))
    }

    /// Replays everything inspected.
    pub fn replay_all(&mut self) -> Result<(), DbError> {
        while self.replay_next()?.is_some() {}
        Ok(())
    }

    pub fn queues(&self) -> QueueLengths {
        let last_inspected = self.inspector.last_inspected();
        let last_replayed = self.db.applied();
        debug_assert_eq!(
            (last_inspected - last_replayed) as usize,
            self.inspected.len()
        );
        QueueLengths {
            copy_queue: self.source_last_closed.saturating_sub(last_inspected),
            replay_queue: last_inspected - last_replayed,
            last_inspected,
            last_replayed,
            last_inspected_ms: self.inspector.last_inspected_ms(),
            last_replayed_ms: self.last_replayed_ms,
        }
    }

    pub fn next_expected(&self) -> Generation {
        self.inspector.next_expected()
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    pub fn inspector(&self) -> &Inspector {
        &self.inspector
    }

    /// Gives up the copy's database, e.g. to mount it as the new active.
    pub fn into_database(self) -> Database {
        self.db
    }
}
