//! Quorum: who hears whom, the leases that let an owner serve, the witness vote, and the one
//! question every mount asks — may this node mount now without any chance that the other one
//! is still serving? (The argument is in ARCHITECTURE.md, "Why two nodes never both serve".)

use super::{Node, NodeEvent, OwnerState, Role};
use crate::cluster::wire::{GroupBeat, Heartbeat, Msg, View};
use crate::cluster::{Endpoint, Net, Now};
use crate::storage::Generation;

impl Node {
    pub(super) fn on_heartbeat(&mut self, now: Now, net: Net, hb: Heartbeat) {
        self.learn_intent_from_peer(now, &hb);
        self.each_group(|node| {
            if let Some(beat) = hb.group(node.focused) {
                node.learn_backup(beat.backup);
            }
        });
        self.note_heard(now, net);
        let heard = &mut self.last_heard[net.index()];
        *heard = Some(heard.map_or(now.mono, |h| h.max(now.mono)));
        self.peer_stamp = Some(self.peer_stamp.map_or(hb.stamp, |s| s.max(hb.stamp)));
        // An echo is a lease only when the peer agrees we own the current view.
        if hb.grants_lease && hb.view == self.view && self.view.owner == self.id {
            // Only a stamp this process sent: the peer may still echo one of a predecessor's
            // (from before a restart), which grants this process nothing.
            let ours = |s: &u64| (self.boot_mono..=now.mono).contains(s);
            if let Some(stamp) = hb.echo.filter(ours) {
                let until = stamp + self.config.peer_lease_ms;
                self.peer_lease_until = Some(self.peer_lease_until.map_or(until, |u| u.max(until)));
            }
        }
        self.each_group(|node| {
            if let Some(beat) = hb.group(node.focused) {
                node.learn_peer_head(hb.view, &beat);
            }
        });
        if hb.view.epoch > self.view.epoch {
            self.adopt_view(now, hb.view);
        }
        // Only an owner that writes has a stream to compare with; one still gathering the
        // logs (perhaps ours) is left alone.
        let from_owner = hb.view == self.view && hb.view.owner == self.id.peer();
        let mut lineages = Vec::new();
        self.each_group(|node| {
            let beat = hb.group(node.focused);
            let serving = beat.as_ref().is_some_and(|b| b.serving);
            lineages.push(
                (from_owner && serving)
                    .then(|| beat.as_ref().map(|b| b.lineage.clone()).unwrap_or_default()),
            );
            node.sg.peer = beat;
        });
        self.peer = Some(hb);
        // The owner is alive after all: no takeover — unless it says its copy is damaged and
        // it cannot serve (the cluster resource failing for good on that node).
        if !self.owner_copy_damaged() {
            self.arbitrate_at = None;
        }
        let mut lineages = lineages.into_iter();
        self.each_group(|node| {
            if let Some(lineage) = lineages.next().flatten() {
                node.follow_owner_lineage(now, &lineage);
            }
        });
    }

    /// What the peer's heartbeat says of the newest generation of the group's stream.
    fn learn_peer_head(&mut self, view: View, beat: &GroupBeat) {
        // (An owner whose copy is damaged reports a copy instead, and no stream: it has none
        // loaded, and what it wrote before is not undone by its saying nothing of it.)
        if view.owner != self.id.peer() || beat.copy.is_some() {
            return;
        }
        let head = match beat.open_generation {
            Some(g) if beat.open_records > 0 => g,
            _ => beat.last_closed,
        };
        if view.epoch >= self.view.epoch {
            self.sg.peer_head = head;
        } else {
            // The owner we are replacing, still writing in its epoch (resumed from a
            // pause, say, before it learned of ours): what it wrote is the end of the
            // stream we take over, and the mount dial must count it.
            self.sg.peer_head = self.sg.peer_head.max(head);
        }
    }

    /// The owner of our view is up but serves nothing and reports a copy Failed, needing a
    /// reseed (damaged at rest): it will never mount, so the server must move here.
    pub(super) fn owner_copy_damaged(&self) -> bool {
        self.peer.as_ref().is_some_and(|p| {
            p.view == self.view
                && p.view.owner == self.id.peer()
                && !p.serving_any()
                && (0..self.group_count())
                    .filter_map(|g| p.group(g))
                    .any(|b| b.copy.as_ref().is_some_and(|c| c.reseed_required))
        })
    }

    /// Whether our heartbeats grant the peer a lease: we agree it owns the view and we are not
    /// trying to take over.
    pub(super) fn grants_lease(&self) -> bool {
        self.view.owner == self.id.peer()
            && self.arbitrate_at.is_none()
            && self.groups().all(|g| matches!(g.role, Role::Passive))
    }

    pub(super) fn peer_lease_valid(&self, now: Now) -> bool {
        self.peer_lease_until.is_some_and(|u| now.mono < u)
    }

    pub(super) fn witness_valid(&self, now: Now) -> bool {
        self.witness.until.is_some_and(|u| now.mono < u)
    }

    /// Quorum: two of three votes — our own plus the peer's (its lease) or the witness's.
    pub fn has_quorum(&self, now: Now) -> bool {
        self.peer_lease_valid(now) || self.witness_valid(now)
    }

    fn last_heard_any(&self) -> Option<u64> {
        self.last_heard.iter().flatten().copied().max()
    }

    /// When the peer counts as down: the threshold of missed heartbeats on every network,
    /// counted from the last one heard (or from our own start).
    pub(super) fn peer_down_at(&self) -> u64 {
        let mut after = self.config.peer_down_after_ms();
        if self.bugs.detect_one_heartbeat_early {
            after -= self.config.heartbeat_interval_ms();
        }
        self.last_heard_any().unwrap_or(0).max(self.boot_mono) + after
    }

    pub fn peer_down(&self, now: Now) -> bool {
        now.mono >= self.peer_down_at()
    }

    /// No mount before this unless the peer currently agrees we own the server: any peer
    /// lease the other node could hold from our echoes has run out by then.
    pub(super) fn takeover_guard_until(&self) -> u64 {
        self.last_heard_any().unwrap_or(0).max(self.boot_mono) + self.config.takeover_guard_ms()
    }

    /// Why this node may not mount now, or `Ok` if it may.
    pub fn may_mount(&self, now: Now) -> Result<(), &'static str> {
        if self.view.owner != self.id {
            return Err("not the owner");
        }
        if !self.has_quorum(now) {
            return Err("no quorum");
        }
        if self.peer_lease_valid(now) || self.bugs.skip_takeover_guard {
            // The peer agrees we own the server, so it is not serving.
            return Ok(());
        }
        if now.mono < self.takeover_guard_until() {
            return Err("waiting for the peer's lease to run out");
        }
        if now.mono < self.witness.guard_until {
            return Err("waiting for any earlier witness lease to run out");
        }
        Ok(())
    }

    /// A serving owner without quorum stops at once.
    pub(super) fn check_quorum(&mut self, now: Now) {
        if self.serving_any() && !self.has_quorum(now) {
            self.each_group(|node| {
                if node.is_serving() {
                    node.dismount(
                        now,
                        OwnerState::Offline {
                            reason: "lost quorum: cannot see the peer and does not hold the \
                                     witness"
                                .into(),
                        },
                    );
                }
            });
        }
    }

    /// Asks the witness for its vote when we need it: an owner whose peer lease is about to
    /// run out, or a passive taking over. Once per heartbeat interval.
    pub(super) fn request_witness_if_needed(&mut self, now: Now) {
        let wanted = if self.owner_side() {
            self.peer_lease_until
                .is_none_or(|u| now.mono + self.config.witness_prefetch_ms >= u)
        } else {
            self.arbitrate_at.is_some_and(|at| now.mono >= at)
        };
        let due = self
            .witness
            .last_request
            .is_none_or(|t| now.mono >= t + self.config.heartbeat_interval_ms());
        if wanted && due {
            self.witness.last_request = Some(now.mono);
            let mut heads = Vec::new();
            self.each_group(|node| heads.push(node.known_head()));
            let head = heads.remove(0);
            self.send(
                Endpoint::Witness,
                Net::Public,
                Msg::Arbitrate {
                    stamp: now.mono,
                    head,
                    view: self.view,
                    heads,
                },
            );
        }
    }

    /// The newest generation of the stream this node knows exists: its own, or what the
    /// owner's heartbeats or the witness reported.
    pub(super) fn known_head(&self) -> Generation {
        let own = match &self.sg.writer {
            Some(w) if w.records_in_open_log() > 0 => w.generation(),
            _ => self.last_closed(),
        };
        own.max(self.sg.peer_head).max(self.sg.witness_head)
    }

    /// What the witness remembers: the stream's head and a newer ownership view, if any.
    pub(super) fn learn_from_witness(
        &mut self,
        now: Now,
        head: Generation,
        heads: &[Generation],
        view: View,
    ) {
        self.each_group(|node| {
            let head = match node.focused {
                0 => Some(head),
                g => heads.get(usize::from(g) - 1).copied(),
            };
            if let Some(head) = head {
                node.sg.witness_head = node.sg.witness_head.max(head);
            }
        });
        if view.epoch > self.view.epoch {
            self.adopt_view(now, view);
        }
    }

    pub(super) fn on_witness_granted(&mut self, now: Now, stamp: u64, epoch: u64) {
        let fresh = self.witness.epoch != Some(epoch);
        if fresh {
            // Someone may have held the lock until just now (the witness may even have lost
            // its file): wait out any lease they could still think they have.
            self.witness.epoch = Some(epoch);
            self.witness.guard_until = now.mono + self.config.witness_guard_ms();
            self.emit(NodeEvent::WitnessWon { epoch, fresh });
        }
        let until = stamp + self.config.witness_lease_ms;
        self.witness.until = Some(self.witness.until.map_or(until, |u| u.max(until)));
        self.witness_holder = Some(self.id);
        if self.arbitrate_at.is_some() && !self.owner_side() {
            self.win_takeover(now);
        }
    }
}
