//! The active store: messages from the hub go into the open log; a batch is acknowledged once a
//! sync made it durable (group commit); full logs roll.

use super::{Group, Io, Node};
use crate::cluster::wire::Msg;
use crate::cluster::{Endpoint, HubId, Net, Now};
use crate::disk::{DiskError, DiskOp};
use crate::storage::record::Record;
use crate::storage::writer::LogWriter;
use crate::storage::{Generation, MessageId};

impl Node {
    pub(super) fn on_deliver(
        &mut self,
        now: Now,
        hub: HubId,
        id: MessageId,
        size: u32,
        mut body: Vec<u8>,
    ) {
        if !self.is_serving() {
            self.send(
                Endpoint::Hub(hub),
                Net::Public,
                Msg::NotActive { view: self.view },
            );
            return;
        }
        assert!(
            self.has_quorum(now),
            "{}: serving without quorum must be impossible (check_quorum runs first)",
            self.id
        );
        let generation = self
            .sg
            .writer
            .as_ref()
            .expect("serving has a writer")
            .generation();
        if self.sg.db.contains(id) && !self.bugs.store_keeps_resubmissions {
            if self.sg.unsynced.contains(&id) {
                // Acknowledged with the next sync, once it is durable.
                self.sg.batch_ids.push((id, hub));
            } else {
                // Durable already: in the open log, or in a closed one — where the last
                // complete generation is an upper bound, which is what the dumpster needs
                // (it may then redeliver too much, never too little).
                let generation = if self.sg.db.in_open_generation(id) {
                    generation
                } else {
                    self.sg.db.applied()
                };
                self.confirm(hub, id, generation, self.view.epoch);
            }
        } else {
            if self.bugs.store_truncates_body {
                body.pop();
            }
            // A body longer than the size the hub declared is the hub's mistake; the record
            // keeps the message whole and counts what it carries.
            let size = size.max(u32::try_from(body.len()).unwrap_or(u32::MAX));
            let record = Record::Insert { id, size, body };
            self.sg
                .db
                .apply_record(generation, record.clone())
                .expect("the open generation follows the applied ones");
            self.sg.batch.push(record);
            self.sg.batch_ids.push((id, hub));
            self.sg.unsynced.insert(id);
        }
        self.maybe_flush(now);
    }

    /// Tells the hub a message is durable, and where (for the dumpster's redelivery decisions).
    fn confirm(&mut self, hub: HubId, id: MessageId, generation: Generation, epoch: u64) {
        self.send(
            Endpoint::Hub(hub),
            Net::Public,
            Msg::Delivered {
                id,
                generation,
                epoch,
            },
        );
    }

    /// Writes the waiting batch with one append and one sync, unless a commit is in flight.
    pub(super) fn maybe_flush(&mut self, now: Now) {
        if self.sg.commit_in_flight || self.sg.batch_ids.is_empty() {
            return;
        }
        let Some(writer) = self.sg.writer.as_mut() else {
            return;
        };
        let generation = writer.generation();
        let mut ops = Vec::new();
        if !self.sg.batch.is_empty() {
            if self.bugs.idle_roll_timer_restarts {
                self.sg.open_log_since = Some(now.mono);
            } else {
                self.sg.open_log_since.get_or_insert(now.mono);
            }
            ops.push(writer.append(&self.sg.batch));
        }
        ops.push(writer.sync_op());
        let full = writer.is_full();
        self.sg.batch.clear();
        let ids = std::mem::take(&mut self.sg.batch_ids);
        if full {
            ops.extend(self.roll_open_log(now));
        }
        self.sg.commit_in_flight = true;
        self.disk(
            ops,
            Io::Commit {
                ids,
                generation,
                epoch: self.view.epoch,
            },
        );
    }

    pub(super) fn on_commit_done(
        &mut self,
        now: Now,
        ids: Vec<(MessageId, HubId)>,
        generation: Generation,
        epoch: u64,
        result: Result<(), DiskError>,
    ) {
        self.sg.commit_in_flight = false;
        match result {
            Ok(()) => {
                // Durable here, but acknowledged only while this node still serves the epoch it
                // wrote in: once it lost quorum (a sync that finished while it was paused) a new
                // owner may already have asked the hub for redelivery, and an acknowledgement
                // landing in the dumpster after that would never be redelivered. Unconfirmed,
                // the hub sends the message again to whoever serves.
                let serving = self.is_serving() && self.view.epoch == epoch;
                for (id, hub) in ids {
                    self.sg.unsynced.remove(&id);
                    if serving {
                        self.confirm(hub, id, generation, epoch);
                    }
                }
                self.maybe_flush(now);
            }
            Err(e) => {
                // The log disk failed: what was not synced is not acknowledged, and the store
                // stops; the host restarts the node's services from disk a little later (its
                // recovery finds what is durable), again and again while the disk fails.
                self.store_failed(now, format!("transaction log write failed: {e}"));
            }
        }
    }

    /// When an idle roll is due: the serving owner's open log has held records for the
    /// configured time.
    pub(super) fn idle_roll_at(&self, group: &Group) -> Option<u64> {
        let since = group.open_log_since?;
        group
            .is_serving()
            .then_some(since + self.config.idle_log_roll()?)
    }

    /// Idle log roll (SP1): a quiet store closes its partly filled log, so the passive can
    /// copy it and a lossy failover at low load loses at most that much. Waits for a commit
    /// in flight (its records belong in the log it is closing).
    pub(super) fn roll_idle_log(&mut self, now: Now) {
        if self.idle_roll_at(&self.sg).is_none_or(|at| now.mono < at)
            || self.sg.commit_in_flight
            || !self.sg.batch_ids.is_empty()
            || self.store_failure.is_some()
            || self
                .sg
                .writer
                .as_ref()
                .is_none_or(|w| w.records_in_open_log() == 0)
        {
            return;
        }
        let ops = self.roll_open_log(now);
        self.disk(ops, Io::Background);
    }

    /// Rolls the open log; returns the writes (and a database flush when one is due).
    pub(super) fn roll_open_log(&mut self, now: Now) -> Vec<DiskOp> {
        self.sg.open_log_since = None;
        let writer = self.sg.writer.as_mut().expect("rolling needs an open log");
        let rolled = writer.roll(now.wall);
        self.sg.closed.insert(rolled.generation, rolled.checksum);
        self.sg
            .db
            .complete_generation(rolled.generation)
            .expect("the rolled generation is the open one");
        self.reset_inspector();
        let mut ops = rolled.ops;
        ops.extend(self.flush_db_if_due());
        ops
    }

    /// Closes `writer`'s log in place (no next log): for an open log left from an earlier role.
    pub(super) fn close_open_log(&mut self, writer: &LogWriter) -> Vec<DiskOp> {
        let rolled = writer.close();
        self.sg.closed.insert(rolled.generation, rolled.checksum);
        if self.sg.db.applied() + 1 == rolled.generation {
            self.sg
                .db
                .complete_generation(rolled.generation)
                .expect("the open generation follows the applied ones");
        }
        self.reset_inspector();
        rolled.ops
    }

    /// The database file is rewritten every `db_flush_every` completed generations (it then
    /// holds everything up to its checkpoint, which lags by the LLR depth).
    pub(super) fn flush_db_if_due(&mut self) -> Vec<DiskOp> {
        if self.sg.db.applied() < self.sg.flushed_applied + self.config.db_flush_every {
            return Vec::new();
        }
        self.sg.flushed_applied = self.sg.db.applied();
        self.sg.db.persist_ops(&self.sg.files.db)
    }
}
