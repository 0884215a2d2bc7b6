//! The replication service: the passive pulls closed logs from the owner's log share, inspects
//! them, moves them into its log folder and replays them; it resolves divergence against the
//! owner's lineage, reseeds on request, and catches up for a scheduled move. The same copier
//! drains a lost node's share after a takeover.

use super::{Ahead, Fetch, Io, Node, NodeEvent, OwnerState, Role};
use crate::cluster::boot::PersistedState;
use crate::cluster::config::ReplicationNetworks;
use crate::cluster::divergence::{resolve, OwnStream, Resolution};
use crate::cluster::wire::{LineageEntry, Msg};
use crate::cluster::{Endpoint, Net, Now};
use crate::disk::{join, replace_atomically, DiskError, DiskOp};
use crate::storage::database::Database;
use crate::storage::inspect::{Inspector, Rejection};
use crate::storage::logfile::{scan, seal, ClosedLog};
use crate::storage::Generation;

/// Copies of one log that may fail inspection in a row before the copy needs a reseed.
const INSPECTION_ATTEMPTS: u32 = 3;

impl Node {
    /// Forgets every log after generation `keep` (closed ones and the open one); returns the
    /// removals.
    fn discard_logs_after(&mut self, keep: Generation) -> Vec<DiskOp> {
        let mut ops: Vec<DiskOp> = self
            .sg
            .closed
            .split_off(&(keep + 1))
            .into_keys()
            .map(|g| DiskOp::Remove {
                path: self.sg.files.logs.closed_path(g),
            })
            .collect();
        if self.sg.writer.take().is_some() {
            ops.push(DiskOp::Remove {
                path: self.sg.files.logs.open_path(),
            });
        }
        ops
    }

    /// Makes the inspector expect the generation after everything this node holds.
    pub(super) fn reset_inspector(&mut self) {
        let next = self.last_closed().max(self.sg.db.applied()) + 1;
        let prev = match self.sg.closed.get(&(next - 1)) {
            Some(c) => Some(*c),
            None if next == 1 => Some(0),
            None => None,
        };
        self.sg.inspector = Inspector::new(self.config.group_signature(self.sg.index), next, prev)
            .of_group(self.sg.files.logs.group());
    }

    /// Whether the node that owned the stream before us can no longer append to its open log:
    /// every lease it could hold has run out, or it told us (in a heartbeat) that it follows
    /// our view and does not serve.
    pub(super) fn old_owner_stopped(&self, now: Now) -> bool {
        // (The planted skip-the-guard bug skips this wait too: it stands for every lease wait.)
        self.bugs.skip_takeover_guard
            || now.mono >= self.takeover_guard_until()
            || self
                .peer
                .as_ref()
                .is_some_and(|p| p.view == self.view && !p.serving_any())
    }

    /// Sends the next copy request if one is due.
    pub(super) fn copy_if_needed(&mut self, now: Now) {
        if let Some((what, deadline)) = self.sg.fetch {
            if now.mono < deadline {
                return;
            }
            self.sg.fetch = None;
            if matches!(self.sg.role, Role::Owner(OwnerState::Draining { .. })) {
                // The lost node's share does not answer: nothing more to learn or copy.
                self.sg.drain_state_done = true;
                self.sg.drain_finished = true;
                return;
            }
            // A request overtaken by events (the log arrived another way, say while this node
            // owned the database for a while) is no failure of the copy.
            let stale = matches!(what, Fetch::Log(g) if g < self.sg.inspector.next_expected());
            if !stale {
                self.copy_failed(now, format!("copy request {what:?} timed out"));
            }
        }
        // After a failed write this node's memory no longer says what its disk holds (a log
        // closed in memory may still be open on disk): copying on from there would build on
        // what is not there. The restart from disk sets both straight first.
        if self.sg.copy_writing || now.mono < self.sg.copy_retry_at || self.store_failure.is_some()
        {
            return;
        }
        if self.sg.seeding && matches!(self.sg.role, Role::Passive) {
            if !self.peer_serving(now) {
                // The active stopped serving before the seed came: give the reseed up. The
                // old copy is still whole on disk (it goes only when a seed arrives), and it
                // may be what the cluster needs to fail over to now.
                self.sg.seeding = false;
                self.sg.reseed_required = self.sg.reseed_before.take();
                self.copy_failed(
                    now,
                    "seeding abandoned: the active stopped serving before the seed came".into(),
                );
                return;
            }
            // A seed that did not arrive (the active was unreachable): ask again.
            self.request(now, Fetch::Database, Msg::FetchDatabase);
            return;
        }
        let next = self.sg.inspector.next_expected();
        let draining = matches!(self.sg.role, Role::Owner(OwnerState::Draining { .. }));
        if draining && !self.sg.drain_state_done {
            self.request(now, Fetch::State, Msg::FetchState);
            return;
        }
        if draining && self.sg.open_log_due {
            // An old owner whose process only stalled may still append to its open log until
            // every lease it could hold has run out; a copy sealed before that could be a
            // prefix of what it acknowledged. Closed logs never change: only this one waits.
            if self.old_owner_stopped(now) {
                self.sg.open_log_due = false;
                self.request(now, Fetch::OpenLog, Msg::FetchOpenLog);
            }
            return;
        }
        match &self.sg.role {
            Role::Owner(OwnerState::Draining { .. }) => {
                if !self.sg.drain_finished {
                    self.request(now, Fetch::Log(next), Msg::FetchLog { generation: next });
                }
            }
            Role::Passive => {
                let following = self.sg.resolved
                    && self.sg.reseed_required.is_none()
                    && !self.sg.seeding
                    && !self.sg.suspended
                    && self.view.owner == self.id.peer();
                let source_last = self
                    .peer
                    .as_ref()
                    .filter(|p| p.view.owner == self.id.peer())
                    .and(self.sg.peer.as_ref())
                    .map_or(0, |p| p.last_closed)
                    .max(self.sg.move_target.map_or(0, |(_, g)| g));
                if following && next <= source_last {
                    self.copy_window(now, next, source_last);
                }
            }
            Role::Owner(_) => {}
        }
    }

    /// Makes `next` the awaited log — inspecting it at once if it came before its turn — and
    /// asks for the logs after it, up to the copy window and the source's newest closed one.
    fn copy_window(&mut self, now: Now, next: Generation, source_last: Generation) {
        let (round, view) = (self.sg.copy_round, self.view);
        // A log asked for in another round, of another owner's stream, or too long ago (the
        // source may have lost and rewritten an unsynced log since) no longer counts.
        self.sg.ahead.retain(|&g, a| {
            g >= next && a.round == round && a.view == view && now.mono < a.deadline
        });
        match self.sg.ahead.remove(&next) {
            Some(Ahead {
                bytes: Some(bytes), ..
            }) => self.accept_copy(now, &self.sg.files.logs.closed_name(next), bytes),
            // Asked for already: its answer is the one awaited now, and timed from now (it
            // may queue behind the logs asked for before it).
            Some(Ahead { bytes: None, .. }) => {
                self.sg.fetch = Some((Fetch::Log(next), now.mono + self.config.copy_timeout_ms));
            }
            None => self.request(now, Fetch::Log(next), Msg::FetchLog { generation: next }),
        }
        let last = source_last.min(next.saturating_add(self.config.copy_window.max(1) - 1));
        for generation in next + 1..=last {
            if self.sg.ahead.contains_key(&generation) {
                continue;
            }
            self.sg.ahead.insert(
                generation,
                Ahead {
                    round,
                    view,
                    deadline: now.mono + self.config.copy_timeout_ms,
                    bytes: None,
                },
            );
            self.send_to_source(now, Msg::FetchLog { generation });
        }
    }

    fn request(&mut self, now: Now, what: Fetch, msg: Msg) {
        self.sg.fetch = Some((what, now.mono + self.config.copy_timeout_ms));
        self.send_to_source(now, msg);
    }

    fn send_to_source(&mut self, now: Now, msg: Msg) {
        let net = match self.config.replication_networks {
            ReplicationNetworks::Public => Net::Public,
            ReplicationNetworks::PublicAndPrivate => self.peer_net(now),
        };
        self.send(Endpoint::Share(self.id.peer()), net, msg);
    }

    fn copy_failed(&mut self, now: Now, reason: String) {
        // Whatever came ahead is asked for again after the retry wait, from a clean start.
        self.sg.ahead.clear();
        self.sg.copy_failure = Some(reason.clone());
        self.sg.copy_retry_at = now.mono + self.config.copy_retry_ms;
        self.emit(NodeEvent::CopyFailed { reason });
    }

    pub(super) fn on_log_file(&mut self, now: Now, generation: Generation, bytes: Vec<u8>) {
        if self.sg.fetch.map(|(w, _)| w) != Some(Fetch::Log(generation)) {
            if let Some(ahead) = self.sg.ahead.get_mut(&generation) {
                ahead.bytes.get_or_insert(bytes);
            }
            return;
        }
        self.sg.fetch = None;
        self.accept_copy(now, &self.sg.files.logs.closed_name(generation), bytes);
    }

    /// The lost node's open log, from its share: sealed as its writer would have closed it.
    pub(super) fn on_open_log_file(&mut self, now: Now, bytes: Vec<u8>) {
        if self.sg.fetch.map(|(w, _)| w) != Some(Fetch::OpenLog) {
            return;
        }
        self.sg.fetch = None;
        self.sg.drain_finished = true;
        // An open log without records holds nothing of the lost node's to keep: the new
        // owner writes that generation itself.
        let Ok(found) = scan(&bytes) else { return };
        if found.records.is_empty() {
            return;
        }
        if let Ok(sealed) = seal(&bytes) {
            let name = self.sg.files.logs.closed_name(found.header.generation);
            self.accept_copy(now, &name, sealed);
        }
    }

    /// Inspects a copied log, then writes it through the inspector folder into the log folder.
    fn accept_copy(&mut self, now: Now, name: &str, bytes: Vec<u8>) {
        let mut inspector = self.sg.inspector.clone();
        match inspector.inspect(name, &bytes) {
            Ok(log) => {
                let files = &self.sg.files;
                let ops = replace_atomically(
                    &join(files.logs.dir(), name),
                    &join(files.inspector.dir(), name),
                    bytes,
                );
                self.sg.copy_writing = true;
                self.disk(
                    ops,
                    Io::CopyLog {
                        log: Box::new(log),
                        inspector: Box::new(inspector),
                        round: self.sg.copy_round,
                    },
                );
            }
            Err(rejection) => {
                let reason = rejection.to_string();
                self.emit(NodeEvent::LogRejected {
                    reason: reason.clone(),
                });
                if matches!(rejection, Rejection::BrokenChain { .. })
                    && matches!(self.sg.role, Role::Passive)
                {
                    // Same generation, another history: this copy diverged in a way the
                    // lineage did not show. Never replayed blindly.
                    self.sg.reseed_required = Some(format!("diverged copy: {reason}"));
                    self.emit(NodeEvent::Diverged { outcome: reason });
                } else {
                    let generation = self.sg.inspector.next_expected();
                    let failures = match self.sg.inspection_failures {
                        Some((g, n)) if g == generation => n + 1,
                        _ => 1,
                    };
                    self.sg.inspection_failures = Some((generation, failures));
                    if failures >= INSPECTION_ATTEMPTS && matches!(self.sg.role, Role::Passive) {
                        self.sg.reseed_required = Some(format!(
                            "{name} failed inspection {failures} times, the last: {reason}"
                        ));
                    }
                    self.copy_failed(now, reason);
                }
            }
        }
    }

    /// The copy was reset (a reseed, a role change) while this write was in flight: the log
    /// belongs to a history this copy no longer follows. Take it back out of the log folder
    /// unless that generation is accounted for otherwise. (Separate batches: a batch stops at
    /// its first missing file.)
    pub(super) fn on_stale_copy_written(&mut self, generation: Generation) {
        self.sg.copy_writing = false;
        let name = self.sg.files.logs.closed_name(generation);
        if !self.sg.closed.contains_key(&generation) {
            let path = join(self.sg.files.logs.dir(), &name);
            self.disk(vec![DiskOp::Remove { path }], Io::Cleanup);
        }
        let staged = join(self.sg.files.inspector.dir(), &name);
        self.disk(vec![DiskOp::Remove { path: staged }], Io::Cleanup);
    }

    pub(super) fn on_copy_written(
        &mut self,
        now: Now,
        log: ClosedLog,
        inspector: Inspector,
        result: Result<(), DiskError>,
    ) {
        self.sg.copy_writing = false;
        let generation = log.header.generation;
        if generation != self.sg.inspector.next_expected() {
            self.on_stale_copy_written(generation);
            return;
        }
        if let Err(e) = result {
            let staged = self.sg.files.inspector.closed_path(generation);
            self.disk(vec![DiskOp::Remove { path: staged }], Io::Cleanup);
            self.copy_failed(now, format!("copying generation {generation:#x}: {e}"));
            return;
        }
        self.sg.closed.insert(generation, log.checksum);
        self.sg.inspector = inspector;
        self.sg.copy_failure = None;
        self.sg.inspection_failures = None;
        self.emit(NodeEvent::LogCopied { generation });
        self.sg.replay_queue.push_back(log);
        self.replay_ready();
        self.check_move_ready();
    }

    /// Replays every inspected log (unless the copy is suspended).
    pub(super) fn replay_ready(&mut self) {
        if self.sg.suspended && matches!(self.sg.role, Role::Passive) {
            return;
        }
        while let Some(log) = self.sg.replay_queue.pop_front() {
            let generation = log.header.generation;
            let mut records = std::borrow::Cow::Borrowed(if self.bugs.lossy_replay {
                log.records.get(1..).unwrap_or_default()
            } else {
                &log.records[..]
            });
            if self.bugs.replay_truncates_body {
                for r in records.to_mut() {
                    if let crate::storage::record::Record::Insert { body, .. } = r {
                        body.pop();
                    }
                }
            }
            if let Err(e) = self.sg.db.apply_log(generation, &records) {
                self.sg.reseed_required =
                    Some(format!("replay of generation {generation:#x}: {e}"));
                self.sg.replay_queue.clear();
                return;
            }
            self.sg.last_replayed_ms = Some(log.header.created_ms);
            self.emit(NodeEvent::LogReplayed { generation });
        }
        let ops = self.flush_db_if_due();
        self.disk(ops, Io::Background);
    }

    pub(super) fn on_no_log(&mut self, now: Now, generation: Option<Generation>, reason: String) {
        // A log asked for ahead that the source does not have (yet): asked again in its turn.
        if let Some(g) = generation {
            self.sg.ahead.remove(&g);
        }
        let Some((what, _)) = self.sg.fetch else {
            return;
        };
        let draining = matches!(self.sg.role, Role::Owner(OwnerState::Draining { .. }));
        match (what, generation) {
            (Fetch::Log(g), Some(n)) if g == n => {
                self.sg.fetch = None;
                if draining {
                    // The closed logs are copied; the open one waits (in `copy_if_needed`)
                    // until the old owner can no longer be writing to it.
                    self.sg.open_log_due = true;
                    self.copy_if_needed(now);
                } else {
                    self.sg.copy_retry_at = now.mono + self.config.copy_retry_ms;
                }
            }
            (Fetch::State, None) => {
                self.sg.fetch = None;
                self.sg.drain_state_done = true;
            }
            (Fetch::OpenLog, None) => {
                self.sg.fetch = None;
                self.sg.drain_finished = true;
            }
            (Fetch::Database, None) => {
                // Still seeding: the old copy is gone, so ask again after the retry wait.
                self.sg.fetch = None;
                self.copy_failed(now, format!("seeding failed: {reason}"));
            }
            _ => {}
        }
    }

    /// Compares this passive's logs with the serving owner's lineage (see `divergence`).
    pub(super) fn follow_owner_lineage(&mut self, now: Now, owner_lineage: &[LineageEntry]) {
        // After a failed write memory no longer says what the disk holds: rolling back or
        // sealing from it would act on logs that are not there. The restart from disk first.
        if !matches!(self.sg.role, Role::Passive)
            || self.sg.seeding
            || self.sg.reseed_required.is_some()
            || self.store_failure.is_some()
        {
            return;
        }
        if self.sg.resolved && same_stream(&self.sg.lineage, owner_lineage) {
            // Only what the owner still asks of the hubs may have changed.
            if self.sg.lineage != owner_lineage {
                self.sg.lineage = owner_lineage.to_vec();
            }
            return;
        }
        match self.reconcile(owner_lineage) {
            Some(Ok(())) => {
                self.sg.resolved = true;
                self.copy_if_needed(now);
            }
            Some(Err(reason)) => {
                self.sg.reseed_required = Some(format!("reseed required: {reason}"));
            }
            None => {}
        }
    }

    /// A survivor about to drain a lost owner's logs reads that node's lineage first: its
    /// stream is the one to continue, if it is newer than ours.
    pub(super) fn on_state_file(&mut self, now: Now, bytes: Vec<u8>) {
        if self.sg.fetch.map(|(w, _)| w) != Some(Fetch::State) {
            return;
        }
        self.sg.fetch = None;
        self.sg.drain_state_done = true;
        let Ok(state) = serde_json::from_slice::<PersistedState>(&bytes) else {
            return;
        };
        let lineage = state.group(self.sg.index).lineage;
        let theirs = lineage.last().map(|e| e.epoch);
        let ours = self.sg.lineage.last().map(|e| e.epoch);
        if theirs > ours {
            if let Some(Err(_)) = self.reconcile(&lineage) {
                // Our stream cannot continue theirs: keep ours, copy nothing of theirs; the
                // lost node will find itself diverged when it returns.
                self.sg.drain_finished = true;
            }
        }
        self.copy_if_needed(now);
    }

    /// Makes this node's logs a prefix of the stream `lineage` describes: keeps them, rolls the
    /// diverged generations back, or reports why it cannot (a reseed is needed). `None` when it
    /// cannot decide yet (logs still waiting for replay).
    fn reconcile(&mut self, lineage: &[LineageEntry]) -> Option<Result<(), String>> {
        self.replay_ready();
        if !self.sg.replay_queue.is_empty() {
            return None;
        }
        let open = self
            .sg
            .writer
            .as_ref()
            .filter(|w| w.records_in_open_log() > 0)
            .map(|w| (w.generation(), w.close().checksum));
        let resolution = resolve(
            &self.sg.lineage,
            lineage,
            OwnStream {
                closed: &self.sg.closed,
                open,
                db_checkpoint: self.sg.db.checkpoint(),
            },
        );
        match resolution {
            Resolution::InLine { seal_open } => {
                if let Some(w) = self.sg.writer.take() {
                    let ops = if seal_open {
                        self.close_open_log(&w)
                    } else {
                        vec![DiskOp::Remove {
                            path: self.sg.files.logs.open_path(),
                        }]
                    };
                    self.disk(ops, Io::Background);
                }
            }
            Resolution::RollBack { to, discarded } => {
                if let Err(e) = self.sg.db.rollback_to(to) {
                    self.emit(NodeEvent::Diverged {
                        outcome: e.to_string(),
                    });
                    return Some(Err(e.to_string()));
                }
                let ops = self.discard_logs_after(to);
                self.disk(ops, Io::Background);
                self.emit(NodeEvent::Diverged {
                    outcome: format!("rolled back {discarded} diverged generation(s) to {to:#x}"),
                });
            }
            Resolution::ReseedRequired { reason } => {
                self.emit(NodeEvent::Diverged {
                    outcome: reason.clone(),
                });
                return Some(Err(reason));
            }
        }
        self.sg.lineage = lineage.to_vec();
        self.reset_inspector();
        self.persist_state();
        Some(Ok(()))
    }

    /// `Update-StorageGroupCopy`: discard this copy and seed it from the owner's database file,
    /// then copy the logs after its checkpoint.
    pub(super) fn start_reseed(&mut self, now: Now) {
        self.forget_move_if_over(now);
        if self.sg.move_promised.is_some() || self.sg.move_target.is_some() {
            // The owner may hand the server over at any moment, on the promise that this copy
            // holds its every log; a reseed would discard them (swarm seed 1902).
            self.emit(NodeEvent::AdminRefused {
                reason: format!(
                    "Update-StorageGroupCopy: a scheduled move to {} is under way",
                    self.id
                ),
            });
            return;
        }
        if !matches!(self.sg.role, Role::Passive)
            || !self.peer_serving(now)
            || self.view.owner == self.id
        {
            // (A damaged copy whose node still owns the server waits for the peer to take
            // it over: reseeded in place, it would be a healthy copy nobody mounts.)
            self.emit(NodeEvent::AdminRefused {
                reason: "Update-StorageGroupCopy needs a passive copy and a serving active".into(),
            });
            return;
        }
        // The old copy stays on disk until the seed has arrived: a seed that never comes (the
        // active failed meanwhile) must not have cost the cluster this copy too.
        self.sg.replay_queue.clear();
        self.sg.copy_round += 1;
        self.sg.seeding = true;
        self.sg.reseed_before = self.sg.reseed_required.take();
        self.sg.copy_failure = None;
        self.sg.inspection_failures = None;
        self.request(now, Fetch::Database, Msg::FetchDatabase);
    }

    pub(super) fn on_database_file(&mut self, now: Now, bytes: Vec<u8>) {
        if self.sg.fetch.map(|(w, _)| w) != Some(Fetch::Database) {
            return;
        }
        self.sg.fetch = None;
        match Database::from_image(&bytes, self.config.storage.llr_depth) {
            Ok(db) => {
                let mut ops = self.discard_logs_after(0);
                ops.extend(
                    std::mem::take(&mut self.sg.damaged_files)
                        .into_iter()
                        .map(|path| DiskOp::Remove { path }),
                );
                self.disk(ops, Io::Cleanup);
                self.sg.seeding = false;
                self.sg.reseed_before = None;
                self.sg.copy_damaged = false;
                self.sg.db = db;
                self.sg.flushed_applied = self.sg.db.applied();
                // The seed becomes this copy's database file as it came.
                let ops = replace_atomically(
                    &self.sg.files.db,
                    &format!("{}.tmp", self.sg.files.db),
                    bytes,
                );
                self.disk(ops, Io::Background);
                self.sg.lineage = self
                    .sg
                    .peer
                    .as_ref()
                    .map(|p| p.lineage.clone())
                    .unwrap_or_default();
                self.sg.resolved = true;
                self.reset_inspector();
                self.persist_state();
                self.emit(NodeEvent::Reseeded {
                    checkpoint: self.sg.db.checkpoint(),
                });
            }
            // Keep seeding (asked again after the retry wait): the copy asked to be replaced.
            Err(e) => self.copy_failed(now, format!("seeding failed: {e}")),
        }
    }

    /// Target of a scheduled move: copy up to the owner's last generation, then say so.
    pub(super) fn on_move_prepare(&mut self, now: Now, move_id: u64, last_generation: Generation) {
        let healthy = matches!(self.sg.role, Role::Passive)
            && self.sg.resolved
            && self.sg.reseed_required.is_none()
            && !self.sg.seeding
            && !self.sg.suspended;
        if healthy {
            self.sg.move_target = Some((move_id, last_generation));
            self.sg.move_over_by = now.mono + self.config.outlast(self.config.move_timeout_ms);
            self.check_move_ready();
        } else {
            self.send(
                Endpoint::Node(self.id.peer()),
                self.peer_net(now),
                Msg::MoveAbandoned {
                    move_id,
                    reason: format!("the copy on {} is not healthy", self.id),
                },
            );
        }
    }

    /// A move to this node whose source can no longer be waiting (it timed out, or it
    /// restarted and forgot it) binds this copy no more: a reseed may go ahead (swarm@8:10).
    pub(super) fn forget_move_if_over(&mut self, now: Now) {
        if (self.sg.move_target.is_some() || self.sg.move_promised.is_some())
            && now.mono >= self.sg.move_over_by
        {
            self.sg.move_target = None;
            self.sg.move_promised = None;
        }
    }

    fn check_move_ready(&mut self) {
        let Some((move_id, generation)) = self.sg.move_target else {
            return;
        };
        let generation = if self.bugs.move_one_log_short {
            generation.saturating_sub(1)
        } else {
            generation
        };
        if self.sg.inspector.last_inspected() >= generation && self.sg.replay_queue.is_empty() {
            self.sg.move_target = None;
            self.sg.move_promised = Some(generation);
            for net in Net::ALL {
                self.send(
                    Endpoint::Node(self.id.peer()),
                    net,
                    Msg::MoveReady { move_id },
                );
            }
        }
    }
}

/// Two lineages describe the same stream: the same epochs, owners and starting points,
/// whatever each epoch still asks of the hubs.
fn same_stream(a: &[LineageEntry], b: &[LineageEntry]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_start(y))
}
