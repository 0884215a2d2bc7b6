//! Who owns the clustered mailbox server and how ownership moves: automatic takeover through the
//! witness, the mount dial, mounting and dismounting, and the scheduled move.

use super::{Io, MoveState, Node, NodeEvent, OwnerState, Role};
use crate::cluster::dial::{self, MountDecision};
use crate::cluster::status::SummaryCopyStatus;
use crate::cluster::wire::{LineageEntry, Msg, TimeWindow, View};
use crate::cluster::{Endpoint, Net, NodeId, Now};
use crate::disk::DiskOp;
use crate::storage::writer::LogWriter;
use crate::storage::Generation;

impl Node {
    /// A passive whose owner is down (or cannot serve) starts a takeover of the whole server,
    /// when one of its copies could be mounted.
    pub(super) fn progress_takeover(&mut self, now: Now) {
        if self.arbitrate_at.is_some() || self.owner_side() {
            return;
        }
        let may_take_over = self.view.owner == self.id.peer()
            && (self.peer_down(now) || self.owner_copy_damaged())
            && self
                .groups()
                .any(|g| g.reseed_required.is_none() && !g.seeding)
            && self.store_failure.is_none()
            && !self.held_stopped();
        if may_take_over {
            self.arbitrate_at = Some(now.mono + self.config.passive_arbitration_delay_ms);
            self.emit(NodeEvent::TakeoverStarted);
        }
    }

    pub(super) fn progress_role(&mut self, now: Now) {
        match self.sg.role.clone() {
            Role::Passive => {}
            Role::Owner(OwnerState::Offline { .. }) => {
                if self.store_failure.is_none()
                    && !self.held_stopped()
                    && self.sg.unmountable().is_none()
                    && self.may_mount(now).is_ok()
                {
                    if self.mounted_in_this_epoch() {
                        // Our own stream continues: a remount.
                        self.sg.role = Role::Owner(OwnerState::Onlining {
                            ready_at: now.mono + self.config.online_delay_ms,
                            lost: 0,
                            forced: false,
                            judged: false,
                        });
                    } else {
                        // Owner of an epoch we never served in (a takeover cut short by a
                        // restart): finish it the way a takeover does.
                        self.start_drain(now);
                    }
                }
            }
            Role::Owner(OwnerState::Draining { deadline }) => {
                let drained = self.sg.fetch.is_none() && self.sg.drain_finished;
                if (drained || now.mono >= deadline) && !self.sg.copy_writing {
                    self.finish_drain(now);
                }
            }
            Role::Owner(OwnerState::Blocked { retry_at, .. }) => {
                if self.peer_stream_is_newer(now) {
                    self.hand_over_to_newer_stream(now);
                } else if now.mono >= retry_at {
                    self.start_drain(now);
                }
            }
            Role::Owner(OwnerState::Onlining {
                ready_at,
                forced,
                judged,
                ..
            }) => {
                if now.mono >= ready_at && self.may_mount(now).is_ok() {
                    // The store checks the dial as it mounts (a heartbeat of the old owner,
                    // resumed from a pause, may have told of newer logs since the decision).
                    if judged && forced {
                        // A forced mount accepts whatever is missing, but reports it as it
                        // stands now: the old owner may have told of newer logs meanwhile.
                        let have = self.sg.inspector.last_inspected();
                        let missing = self.known_head().max(have) - have;
                        if let Role::Owner(OwnerState::Onlining { lost, .. }) = &mut self.sg.role {
                            *lost = (*lost).max(missing);
                        }
                    } else if judged {
                        match self.judge_dial() {
                            MountDecision::Mount { lost } => {
                                if let Role::Owner(OwnerState::Onlining { lost: l, .. }) =
                                    &mut self.sg.role
                                {
                                    *l = lost;
                                }
                            }
                            refused @ MountDecision::StayDismounted { .. } => {
                                self.apply_dial(now, refused);
                                return;
                            }
                        }
                    }
                    self.mount(now);
                }
            }
            Role::Owner(OwnerState::Serving) => {}
            Role::Owner(OwnerState::Moving(m)) => self.progress_move(now, m),
        }
    }

    /// Whether this node already wrote in the current epoch (its lineage says where it began).
    fn mounted_in_this_epoch(&self) -> bool {
        let first_formation = self.view.epoch == 0 && self.sg.lineage.is_empty();
        first_formation
            || self
                .sg
                .lineage
                .last()
                .is_some_and(|e| e.epoch == self.view.epoch && e.owner == self.id)
    }

    /// A higher epoch seen from the peer.
    pub(super) fn adopt_view(&mut self, now: Now, view: View) {
        debug_assert!(view.epoch > self.view.epoch);
        self.view = view;
        self.emit(NodeEvent::ViewChanged { view });
        self.persist_state();
        self.arbitrate_at = None;
        self.each_group(|node| {
            if view.owner == node.id && node.sg.copy_damaged {
                // Nothing of the copy is loaded: stay passive, reporting it damaged, so that
                // the peer takes the server back.
                node.demote(now, "this copy is damaged and cannot mount");
            } else if view.owner == node.id {
                // A hand-over whose message we missed, or our own takeover that a restart
                // made us forget: mount the way an owner new to its epoch does (drain, dial,
                // redelivery).
                node.sg.move_target = None;
                node.sg.role = Role::Owner(OwnerState::Offline {
                    reason: "became the owner".into(),
                });
            } else {
                node.demote(now, "another node owns the clustered mailbox server");
            }
        });
    }

    /// Becomes a passive copy: the store dismounts and an empty open log is dropped (the new
    /// owner writes that generation). An open log with records stays until it is compared with
    /// the owner's lineage.
    pub(super) fn demote(&mut self, _now: Now, reason: &str) {
        if self.is_serving() {
            self.emit(NodeEvent::Dismounted {
                reason: reason.into(),
            });
        }
        self.sg.role = Role::Passive;
        self.sg.replayed_at_takeover = None;
        // Mail accepted but not yet written belongs to this epoch's stream, which another
        // owner carries on now: unacknowledged, the hub sends it to that owner. Kept, it was
        // written into this node's next stream, epochs later, beside the copy the other owner
        // had written meanwhile (swarm@6:3912, found by the duplicates check).
        self.sg.db.forget_unwritten(self.sg.batch.len());
        self.sg.batch.clear();
        for (id, _) in std::mem::take(&mut self.sg.batch_ids) {
            self.sg.unsynced.remove(&id);
        }
        // After a failed write the writer in memory may have rolled on while the disk did
        // not (the close mark never landed): "empty" would then remove the log that holds the
        // records. The restart from disk decides instead.
        if self.store_failure.is_none()
            && self
                .sg
                .writer
                .as_ref()
                .is_some_and(|w| w.records_in_open_log() == 0)
        {
            self.sg.writer = None;
            self.disk(
                vec![DiskOp::Remove {
                    path: self.sg.files.logs.open_path(),
                }],
                Io::Cleanup,
            );
        }
        self.sg.resolved = false;
        self.sg.fetch = None;
        self.sg.ahead.clear();
        self.sg.blocked_since = None;
        self.sg.copy_round += 1;
        // A copy failure from before this node owned the database says nothing about the copy
        // it starts now.
        self.sg.copy_failure = None;
        self.reset_inspector();
    }

    /// The witness is ours: the passive becomes the owner in a new epoch and first copies what
    /// the lost node's share still has.
    pub(super) fn win_takeover(&mut self, now: Now) {
        let seen = self.peer.as_ref().map_or(0, |p| p.view.epoch);
        let view = View {
            epoch: self.view.epoch.max(seen) + 1,
            owner: self.id,
        };
        self.view = view;
        self.emit(NodeEvent::ViewChanged { view });
        self.persist_state();
        // Register the new view at the witness at once, so that a node coming back while we
        // work learns it was superseded.
        self.witness.last_request = None;
        self.arbitrate_at = None;
        self.each_group(|node| {
            if node.sg.copy_damaged {
                // Stays a passive that reports its copy damaged (see `adopt_view`).
            } else if let Some(reason) = node.sg.unmountable() {
                // The other groups mount; this one stays dismounted (Partially Online).
                node.sg.role = Role::Owner(OwnerState::Offline { reason });
            } else {
                node.start_drain(now);
            }
        });
    }

    pub(super) fn start_drain(&mut self, now: Now) {
        // An open log left from an earlier epoch is ours: it joins our stream as it stands,
        // before anything is copied after it.
        if let Some(w) = self.sg.writer.take() {
            let ops = if w.records_in_open_log() > 0 {
                self.close_open_log(&w)
            } else {
                vec![DiskOp::Remove {
                    path: self.sg.files.logs.open_path(),
                }]
            };
            self.disk(ops, Io::Background);
        }
        self.sg.fetch = None;
        self.sg.ahead.clear();
        self.sg.drain_finished = false;
        self.sg.drain_state_done = false;
        self.sg.open_log_due = false;
        // The open log is copied only after the takeover guard (see `copy_if_needed`): the
        // copy timeout runs from whichever is later.
        let from = if self.old_owner_stopped(now) {
            now.mono
        } else {
            now.mono.max(self.takeover_guard_until())
        };
        self.sg.role = Role::Owner(OwnerState::Draining {
            deadline: from + self.config.lost_log_copy_timeout_ms,
        });
        self.sg
            .replayed_at_takeover
            .get_or_insert(self.sg.db.applied());
    }

    /// The lost node's logs are copied as far as they could be: apply the mount dial.
    fn finish_drain(&mut self, now: Now) {
        self.sg.fetch = None;
        self.replay_ready();
        let decision = self.judge_dial();
        self.apply_dial(now, decision);
    }

    /// The mount dial on what this node holds and what it knows the stream's head to be.
    fn judge_dial(&mut self) -> MountDecision {
        let have = self.sg.inspector.last_inspected();
        let source_last = self.known_head().max(have);
        let mut decision = dial::decide(
            self.config.mount_dial,
            &self.config.dial_limits,
            have,
            source_last,
        );
        if self.bugs.ignore_mount_dial || (self.sg.force_mount && self.sg.mount_asked) {
            if let MountDecision::StayDismounted { missing, .. } = decision {
                decision = MountDecision::Mount { lost: missing };
            }
        }
        if self.bugs.ignore_mount_dial_quietly {
            if let MountDecision::StayDismounted { allowed, .. } = decision {
                decision = MountDecision::Mount { lost: allowed };
            }
        }
        decision
    }

    fn apply_dial(&mut self, now: Now, decision: MountDecision) {
        match decision {
            MountDecision::Mount { lost } => {
                let forced = self.sg.force_mount;
                self.sg.force_mount = false;
                self.sg.mount_asked = false;
                self.sg.blocked_since = None;
                // The store replays what the copy had not when the takeover began.
                let replayed = self
                    .sg
                    .replayed_at_takeover
                    .take()
                    .map_or(0, |from| self.sg.db.applied().saturating_sub(from));
                let replay_ms = u64::from(replayed) * self.config.storage.replay_ms_per_log;
                self.sg.role = Role::Owner(OwnerState::Onlining {
                    ready_at: now.mono + self.config.online_delay_ms + replay_ms,
                    lost,
                    forced,
                    judged: true,
                })
            }
            MountDecision::StayDismounted { missing, allowed } => {
                let since = *self.sg.blocked_since.get_or_insert(now.mono);
                let force_at = self
                    .config
                    .forced_database_mount_after_ms
                    .map(|after| since + after);
                if force_at.is_some_and(|at| now.mono >= at) {
                    // ForcedDatabaseMountAfter has run out: mount what there is, accepting the
                    // loss by design, as an administrator's Restore-StorageGroupCopy does.
                    self.sg.force_mount = true;
                    self.apply_dial(now, MountDecision::Mount { lost: missing });
                    return;
                }
                self.emit(NodeEvent::StayDismounted { missing, allowed });
                let retry_at = now.mono + self.config.copy_retry_ms;
                self.sg.role = Role::Owner(OwnerState::Blocked {
                    missing,
                    allowed,
                    retry_at: force_at.map_or(retry_at, |at| retry_at.min(at)),
                });
            }
        }
    }

    fn mount(&mut self, now: Now) {
        let may = self.may_mount(now);
        assert!(
            may.is_ok(),
            "{}: mount refused by the quorum rules ({may:?}): this would risk two active copies",
            self.id
        );
        let Role::Owner(OwnerState::Onlining {
            lost,
            forced,
            judged,
            ..
        }) = self.sg.role
        else {
            unreachable!("mount only from Onlining");
        };
        // For hubs in time-window mode: a failover's mount (one the dial judged, as after any
        // unscheduled outage) asks for what they delivered since the newest log this copy
        // holds was begun, by the clock that began it — also when it counts no logs lost: the
        // old owner may have begun one after its last word reached us (swarm@6:57).
        let window = (judged || lost > 0).then(|| TimeWindow {
            since_wall: self.sg.inspector.last_inspected_ms().unwrap_or(0),
        });
        // The owner we take over from may have lost the server before every hub answered
        // its own request (a hub down, then the owner paused: swarm@9:1372), and nothing
        // tells us whether they did. A failover asks again for what it asked.
        let window = window.map(|w| {
            let before = self.sg.lineage.last().and_then(|e| e.asked_since);
            TimeWindow::earliest(Some(w), before).unwrap_or(w)
        });
        // Every mount asks: the hub redelivers only what our lineage cannot account for, so a
        // clean remount or a move costs nothing, and a stream someone wrote while we could not
        // know (a witness that lost its file, say) is repaired. Set before the state is
        // persisted, so that the request survives a restart.
        if !self.bugs.skip_redelivery {
            let request = now.mono.max(self.last_redelivery_request + 1);
            self.last_redelivery_request = request;
            // A failover's window not yet carried out (the hub was unreachable) stays: a
            // remount after a restart must not replace it with none (swarm@6:257).
            // So does one the old owner handed over with the server (swarm@6:9165).
            let unanswered = TimeWindow::earliest(
                self.sg.redelivery_pending.and(self.sg.redelivery_window),
                self.sg.inherited_window.take(),
            );
            self.sg.redelivery_window = TimeWindow::earliest(unanswered, window);
            self.sg.redelivery_pending = Some(request);
            self.sg.redelivery_confirmed.clear();
        }
        let asked = self.sg.redelivery_pending.and(self.sg.redelivery_window);
        self.replay_ready();
        let mut ops = Vec::new();
        let new_epoch = self
            .sg
            .lineage
            .last()
            .is_none_or(|e| e.epoch != self.view.epoch);
        if new_epoch || self.sg.writer_recovered {
            // An open log left from an earlier epoch or an earlier process is closed as it
            // stands, as ESE does after crash recovery: a survivor that copied it from our
            // share holds exactly these bytes, so we must not append to them.
            if let Some(w) = self.sg.writer.take() {
                if w.records_in_open_log() > 0 {
                    ops.extend(self.close_open_log(&w));
                } else {
                    ops.push(DiskOp::Remove {
                        path: self.sg.files.logs.open_path(),
                    });
                }
            }
            self.sg.writer_recovered = false;
            self.reset_inspector();
        }
        if new_epoch {
            // This epoch's writing starts with a fresh generation, recorded in the lineage.
            // Entries that begin at or after it describe logs we never received (a lineage
            // adopted from the peer's heartbeats): our stream replaces them.
            let first_generation = self.sg.inspector.next_expected();
            while self
                .sg
                .lineage
                .last()
                .is_some_and(|e| e.first_generation >= first_generation)
            {
                self.sg.lineage.pop();
            }
            self.sg.lineage.push(LineageEntry {
                epoch: self.view.epoch,
                owner: self.id,
                first_generation,
                prev_checksum: self.sg.inspector.last_checksum().unwrap_or(0),
                asked_since: asked,
            });
        }
        if self.sg.writer.is_none() {
            let next = self.sg.inspector.next_expected();
            let last = self.sg.inspector.last_checksum().map(|c| (next - 1, c));
            let (writer, start) = LogWriter::start(
                &self.sg.files.logs,
                self.config.storage.log_size,
                self.config.group_signature(self.sg.index),
                next,
                last.filter(|(g, _)| *g > 0),
                now.wall,
            );
            ops.extend(start);
            self.sg.writer = Some(writer);
            self.sg.open_log_since = None;
        }
        ops.extend(self.persisted_state().persist_ops());
        self.disk(ops, Io::Background);
        self.sg.role = Role::Owner(OwnerState::Serving);
        self.sg.fetch = None;
        // Whatever move to this node was under way ended with this mount.
        self.sg.move_target = None;
        self.sg.move_promised = None;
        self.emit(NodeEvent::Mounted {
            view: self.view,
            lost: if self.bugs.report_no_loss { 0 } else { lost },
            forced,
        });
        self.announce();
    }

    pub(super) fn dismount(&mut self, _now: Now, next: OwnerState) {
        if self.is_serving() {
            let reason = match &next {
                OwnerState::Offline { reason } => reason.clone(),
                OwnerState::Moving(m) => format!("moving to {}: {}", m.target, m.comment),
                other => format!("{other:?}"),
            };
            self.emit(NodeEvent::Dismounted { reason });
        }
        self.sg.role = Role::Owner(next);
    }

    /// Whether the peer, up and talking, holds a stream written in a later epoch than ours:
    /// the logs the dial misses are its, and they cannot be merged into our stream.
    fn peer_stream_is_newer(&self, now: Now) -> bool {
        let ours = self.sg.lineage.last().map_or(0, |e| e.epoch);
        !self.peer_down(now)
            && self.sg.peer.as_ref().is_some_and(|p| {
                // A copy being seeded holds nothing to mount.
                let has_copy = p
                    .copy
                    .as_ref()
                    .is_some_and(|c| c.status != SummaryCopyStatus::Seeding && !c.reseed_required);
                has_copy && p.lineage.last().is_some_and(|theirs| theirs.epoch > ours)
            })
    }

    /// Blocked by the dial while the newest stream is the peer's: give it the server (the
    /// cluster failing the resource over to the node where the database can mount) instead of
    /// waiting forever for logs that only it has.
    fn hand_over_to_newer_stream(&mut self, now: Now) {
        let target = self.id.peer();
        let comment = format!(
            "cluster: {target} holds the newest logs; {} cannot mount without them",
            self.id
        );
        self.hand_over_group(now, target, comment, false);
    }

    /// The store failed. While this node owns the server that is a failure of a clustered
    /// resource, which Windows' restart policy counts: within the policy the store restarts in
    /// place (the host boots the services again from disk after `store_restart_ms`); one
    /// failure more within the policy's period fails the whole group over to the other node —
    /// when that node is up with a healthy copy to take it; otherwise it keeps restarting here.
    pub(super) fn store_failed(&mut self, now: Now, reason: String) {
        self.store_failure = Some(reason.clone());
        self.store_restart_at = Some(now.mono + self.config.store_restart_ms);
        self.emit(NodeEvent::StoreFailed {
            reason: reason.clone(),
        });
        if !self.owner_side() {
            return;
        }
        let handing_over = self
            .groups()
            .any(|g| matches!(&g.role, Role::Owner(OwnerState::Moving(m)) if m.handing_over));
        if handing_over {
            // The server is already going (the new view is being persisted): let the
            // hand-over finish; this node restarts as the passive.
            return;
        }
        let (threshold, period) = self.config.restart_policy();
        // A failure from a wall clock that has since gone back stays counted: the policy errs
        // towards failing over, never towards restarting forever.
        if !self.bugs.restart_count_never_expires {
            self.store_failures
                .retain(|&t| now.wall < t.saturating_add(period));
        }
        self.store_failures.push(now.wall);
        let failures = self.store_failures.len();
        if failures > threshold as usize
            && self.peer_can_take_the_group(now)
            && !self.bugs.restart_forever
        {
            self.store_failures.clear();
            let target = self.id.peer();
            let comment = format!(
                "cluster: the store failed {failures} times within {} s, past the restart \
                 policy's {threshold}: the group fails over to {target} ({reason})",
                period / 1000
            );
            self.hand_over_group(now, target, comment, true);
        } else {
            self.each_group(|node| {
                if matches!(node.sg.role, Role::Owner(_)) {
                    node.dismount(
                        now,
                        OwnerState::Offline {
                            reason: reason.clone(),
                        },
                    );
                }
            });
            // Kept for a rebuilt node too; on a failing disk this write may fail, and the
            // host's in-place restart carries the count anyway.
            self.persist_state();
        }
    }

    /// The peer is up and one of its copies could become an active one.
    fn peer_can_take_the_group(&self, now: Now) -> bool {
        !self.peer_down(now)
            && self.groups().any(|g| {
                g.peer.as_ref().is_some_and(|p| {
                    p.copy.as_ref().is_some_and(|c| {
                        c.status == SummaryCopyStatus::Healthy && !c.reseed_required
                    })
                })
            })
    }

    /// Every storage group's copy on the peer is Healthy, as a scheduled move needs.
    fn peer_copies_healthy(&self) -> Result<(), String> {
        for g in self.groups() {
            let status = g
                .peer
                .as_ref()
                .and_then(|p| p.copy.as_ref())
                .map(|c| c.status);
            if status != Some(SummaryCopyStatus::Healthy) {
                let group = if self.group_count() > 1 {
                    format!(" of {}", g.files.logs.prefix())
                } else {
                    String::new()
                };
                return Err(format!(
                    "the copy{group} on {} is not healthy ({status:?})",
                    self.id.peer()
                ));
            }
        }
        Ok(())
    }

    /// Gives the server to `target` at once, without waiting for it to catch up: the cluster
    /// moving the group. With `drain`, the target copies what this node's share still holds
    /// and applies the mount dial before it mounts.
    fn hand_over_group(&mut self, now: Now, target: NodeId, comment: String, drain: bool) {
        self.begin_move(now, target, comment, true, drain);
        let view = View {
            epoch: self.view.epoch + 1,
            owner: target,
        };
        self.view = view;
        self.emit(NodeEvent::ViewChanged { view });
        let ops = self.persisted_state().persist_ops();
        self.disk(ops, Io::HandOver { view });
    }

    /// `Restore-StorageGroupCopy`: mount this copy whatever the dial says.
    pub(super) fn restore_copy(&mut self, now: Now) {
        if self.sg.copy_damaged {
            self.emit(NodeEvent::AdminRefused {
                reason: "Restore-StorageGroupCopy: this copy is damaged; reseed it first".into(),
            });
            return;
        }
        if self.held_stopped() {
            self.emit(NodeEvent::AdminRefused {
                reason: "Restore-StorageGroupCopy: the clustered mailbox server is stopped; \
                         start it first"
                    .into(),
            });
            return;
        }
        match self.sg.role.clone() {
            // Readied: the loss is accepted, and Mount-Database mounts it.
            Role::Owner(OwnerState::Blocked { .. }) | Role::Owner(OwnerState::Draining { .. }) => {
                self.sg.force_mount = true;
                self.emit(NodeEvent::CopyRestored);
            }
            Role::Passive if self.view.owner == self.id.peer() && self.peer_down(now) => {
                self.sg.force_mount = true;
                self.arbitrate_at = Some(now.mono);
                self.emit(NodeEvent::CopyRestored);
                self.emit(NodeEvent::TakeoverStarted);
            }
            _ => self.emit(NodeEvent::AdminRefused {
                reason: "Restore-StorageGroupCopy: the active copy is still online".into(),
            }),
        }
    }

    /// `Mount-Database`: mounts a database the mount dial keeps dismounted, once
    /// `Restore-StorageGroupCopy` has readied this copy (accepting what it lacks). Given while
    /// a readied takeover is still on its way, it mounts when the takeover gets there.
    pub(super) fn mount_database(&mut self, now: Now) {
        let refuse = |node: &mut Node, why: &str| {
            node.emit(NodeEvent::AdminRefused {
                reason: format!("Mount-Database: {why}"),
            })
        };
        if self.held_stopped() {
            return refuse(
                self,
                "the clustered mailbox server is stopped; start it first",
            );
        }
        match self.sg.role.clone() {
            Role::Owner(OwnerState::Serving) => refuse(self, "the database is already mounted"),
            Role::Owner(OwnerState::Blocked { .. }) | Role::Owner(OwnerState::Draining { .. })
                if !self.sg.force_mount =>
            {
                refuse(
                    self,
                    "the mount dial keeps it dismounted until the missing logs come; \
                     Restore-StorageGroupCopy first to accept the loss",
                )
            }
            Role::Owner(OwnerState::Blocked { .. }) | Role::Owner(OwnerState::Draining { .. })
                if self.sg.force_mount =>
            {
                self.sg.mount_asked = true;
                self.finish_drain(now);
            }
            Role::Passive if self.sg.force_mount => self.sg.mount_asked = true,
            _ => refuse(
                self,
                "no database here waits for it (only one the dial keeps dismounted, after \
                 Restore-StorageGroupCopy)",
            ),
        }
    }

    /// `Move-ClusteredMailboxServer`: refused unless this node serves and the target is up
    /// with a healthy copy.
    pub(super) fn start_move(&mut self, now: Now, target: NodeId, comment: String) {
        let refusal = if comment.trim().is_empty() {
            Some("Move-ClusteredMailboxServer needs a MoveComment saying why".to_string())
        } else if target == self.id {
            Some(format!(
                "{target} already owns the clustered mailbox server"
            ))
        } else if !self.serving_any() {
            Some("the clustered mailbox server is not online on this node".to_string())
        } else if self.peer_down(now) {
            Some(format!("{target} is not an operational machine"))
        } else {
            self.peer_copies_healthy().err()
        };
        if let Some(reason) = refusal {
            self.emit(NodeEvent::MoveRefused { reason });
            return;
        }
        self.begin_move(now, target, comment, false, false);
    }

    /// Announces a move of the server to `target` and dismounts into it: a scheduled move
    /// that waits for the target to catch up, or (`handing_over`) one that gives the server
    /// at once from what this node has closed.
    fn begin_move(
        &mut self,
        now: Now,
        target: NodeId,
        comment: String,
        handing_over: bool,
        drain: bool,
    ) {
        self.emit(NodeEvent::MoveStarted {
            target,
            comment: comment.clone(),
        });
        // Every storage group dismounts into the move; each catches its target copy up on its
        // own, and the server goes over once all of them are ready.
        self.each_group(|node| {
            if !matches!(node.sg.role, Role::Owner(_)) {
                return;
            }
            let prepared = handing_over.then(|| node.last_closed());
            node.dismount(
                now,
                OwnerState::Moving(MoveState {
                    id: now.mono,
                    target,
                    comment: comment.clone(),
                    deadline: now.mono + node.config.move_timeout_ms,
                    prepared,
                    ready: handing_over,
                    handing_over,
                    drain,
                }),
            );
        });
    }

    fn progress_move(&mut self, now: Now, m: MoveState) {
        if m.handing_over {
            return;
        }
        if now.mono >= m.deadline {
            self.abort_move(now, m.id, "the target did not catch up in time".into());
            return;
        }
        if m.prepared.is_none() && !self.sg.commit_in_flight && self.sg.batch_ids.is_empty() {
            // Everything acknowledged is durable; close the open log so the target can copy it.
            if self
                .sg
                .writer
                .as_ref()
                .is_some_and(|w| w.records_in_open_log() > 0)
            {
                let ops = self.roll_open_log(now);
                self.disk(ops, Io::Background);
            }
            let last_generation = self.last_closed();
            if let Role::Owner(OwnerState::Moving(state)) = &mut self.sg.role {
                state.prepared = Some(last_generation);
            }
            self.send(
                Endpoint::Node(m.target),
                self.peer_net(now),
                Msg::MovePrepare {
                    move_id: m.id,
                    last_generation,
                },
            );
        }
    }

    pub(super) fn on_move_ready(&mut self, _now: Now, move_id: u64) {
        let Role::Owner(OwnerState::Moving(m)) = &mut self.sg.role else {
            return;
        };
        if m.id != move_id || m.prepared.is_none() || m.handing_over {
            return;
        }
        m.ready = true;
        self.hand_over_if_all_ready(move_id);
    }

    /// Once the target said every storage group's copy is caught up, the new view is
    /// persisted and the server handed over.
    fn hand_over_if_all_ready(&mut self, move_id: u64) {
        let mut moving = self.groups().filter_map(|g| match &g.role {
            Role::Owner(OwnerState::Moving(m)) => Some(m),
            _ => None,
        });
        let Some(first) = moving.next().cloned() else {
            return;
        };
        let all_ready = std::iter::once(&first)
            .chain(moving)
            .all(|m| m.id == move_id && m.ready && !m.handing_over);
        if !all_ready {
            return;
        }
        self.each_group(|node| {
            if let Role::Owner(OwnerState::Moving(m)) = &mut node.sg.role {
                m.handing_over = true;
            }
        });
        let view = View {
            epoch: self.view.epoch + 1,
            owner: first.target,
        };
        self.last_move_comment = Some(first.comment);
        self.view = view;
        self.emit(NodeEvent::ViewChanged { view });
        let ops = self.persisted_state().persist_ops();
        self.disk(ops, Io::HandOver { view });
    }

    pub(super) fn on_hand_over_persisted(
        &mut self,
        now: Now,
        view: View,
        result: Result<(), crate::disk::DiskError>,
    ) {
        if let Err(e) = result {
            self.emit(NodeEvent::StoreFailed {
                reason: format!("persisting the hand-over: {e}"),
            });
        }
        let m = self.groups().find_map(|g| match &g.role {
            Role::Owner(OwnerState::Moving(m)) if m.handing_over => Some(m.clone()),
            _ => None,
        });
        let Some(m) = m else {
            return;
        };
        // Each storage group's failover window the hubs have not answered yet goes along.
        let mut windows: Vec<Option<TimeWindow>> = self
            .groups()
            .map(|g| g.redelivery_pending.and(g.redelivery_window))
            .collect();
        let window = windows.remove(0);
        for net in Net::ALL {
            self.send(
                Endpoint::Node(m.target),
                net,
                Msg::HandOver {
                    view,
                    comment: m.comment.clone(),
                    drain: m.drain,
                    window,
                    windows: windows.clone(),
                },
            );
        }
        self.emit(NodeEvent::MoveCompleted {
            target: m.target,
            comment: m.comment,
        });
        self.each_group(|node| {
            if matches!(node.sg.role, Role::Owner(_)) {
                node.demote(now, "moved");
            }
        });
    }

    pub(super) fn abort_move(&mut self, now: Now, move_id: u64, reason: String) {
        match &self.sg.role {
            Role::Owner(OwnerState::Moving(m)) if m.id == move_id && !m.handing_over => {
                let target = m.target;
                self.send(
                    Endpoint::Node(target),
                    self.peer_net(now),
                    Msg::MoveAbandoned {
                        move_id,
                        reason: reason.clone(),
                    },
                );
                self.emit(NodeEvent::MoveFailed {
                    reason: reason.clone(),
                });
                self.sg.role = Role::Owner(OwnerState::Offline {
                    reason: format!("move failed: {reason}"),
                });
            }
            Role::Passive if self.sg.move_target.is_some_and(|(id, _)| id == move_id) => {
                self.sg.move_target = None;
                self.sg.move_promised = None;
            }
            Role::Passive => self.sg.move_promised = None,
            _ => {}
        }
    }

    pub(super) fn on_hand_over(
        &mut self,
        now: Now,
        view: View,
        comment: String,
        drain: bool,
        window: Option<TimeWindow>,
        windows: Vec<Option<TimeWindow>>,
    ) {
        if view.epoch <= self.view.epoch || view.owner != self.id {
            return;
        }
        self.last_move_comment = Some(comment);
        let mut promised = Vec::new();
        self.each_group(|node| promised.push(node.sg.move_promised.take()));
        self.adopt_view(now, view);
        self.each_group(|node| {
            let g = usize::from(node.focused);
            let window = if g == 0 {
                window
            } else {
                windows.get(g - 1).copied().flatten()
            };
            node.take_handed_over_group(now, drain, window, promised[g]);
        });
    }

    /// One storage group of a server handed over to this node.
    fn take_handed_over_group(
        &mut self,
        now: Now,
        drain: bool,
        window: Option<TimeWindow>,
        promised: Option<Generation>,
    ) {
        if self.sg.copy_damaged {
            // `adopt_view` left it passive.
            return;
        }
        self.sg.inherited_window = TimeWindow::earliest(self.sg.inherited_window, window);
        if let Some(reason) = self.sg.unmountable() {
            self.sg.role = Role::Owner(OwnerState::Offline { reason });
            return;
        }
        {
            if drain || promised.is_some_and(|g| self.sg.inspector.last_inspected() < g) {
                // This copy no longer holds what it promised the old owner (a reseed slipped
                // in between, say): take the server as after a failure — copy what the old
                // owner's share has, and let the mount dial judge what is still missing.
                self.start_drain(now);
            } else {
                // The old owner dismounted and waited for our MoveReady (or handed us the
                // newer stream we hold): we are caught up.
                self.sg.role = Role::Owner(OwnerState::Onlining {
                    ready_at: now.mono + self.config.online_delay_ms,
                    lost: 0,
                    forced: false,
                    judged: false,
                });
            }
        }
    }
}
