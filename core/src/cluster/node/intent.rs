//! Stop-ClusteredMailboxServer and Start-ClusteredMailboxServer: the administrator's word on
//! whether the server should be online at all.
//!
//! A stop is part of the cluster database: it lives in each node's state file, travels in
//! every heartbeat and is recorded on the witness share, so that neither a restart nor a
//! failover brings a stopped server online. (Windows keeps a resource that was taken offline
//! by hand offline wherever its group goes; the group still moves, which is why a node may
//! take over a stopped server — it owns it, dismounted.) The newest command wins wherever two
//! meet (`CmsIntent::newer_than`).
//!
//! A command is *done* — and says so with `CmsStopped` / `CmsStarted`, which is what the
//! administrator's cmdlet returns — once it is in the state file of the node it was run on
//! and recorded beyond that node (the peer's heartbeat or the witness's answer shows it) and,
//! for a stop, once no node serves: from then on no one lost machine or file can take the
//! stop with it.

use super::{Node, NodeEvent, OwnerState, Role};
use crate::cluster::wire::{CmsIntent, Heartbeat, Msg};
use crate::cluster::{Endpoint, Net, Now};

const STOPPED_BY_ADMIN: &str = "stopped by an administrator";

impl Node {
    /// Whether an administrator has stopped the server (as far as this node knows).
    pub fn cms_stopped(&self) -> bool {
        self.intent.stopped
    }

    /// What status shows while the server is stopped.
    pub(super) fn stopped_reason(&self) -> String {
        format!(
            "{STOPPED_BY_ADMIN}: {}",
            self.intent.reason.as_deref().unwrap_or("")
        )
    }

    /// Whether the stop keeps this node from bringing the server online. (The planted bug
    /// treats a stop as a one-off dismount, not as a state that lasts.)
    pub(super) fn held_stopped(&self) -> bool {
        self.intent.stopped && !self.bugs.takeover_ignores_stop
    }

    pub(super) fn stop_cms(&mut self, now: Now, reason: String) {
        let refusal = if reason.trim().is_empty() {
            Some("Stop-ClusteredMailboxServer needs a StopReason saying why")
        } else if self.intent.stopped {
            Some("the clustered mailbox server is already stopped")
        } else if self
            .groups()
            .any(|g| matches!(g.role, Role::Owner(OwnerState::Moving(_))))
        {
            Some("a move of the clustered mailbox server is under way")
        } else {
            None
        };
        if let Some(reason) = refusal {
            self.emit(NodeEvent::AdminRefused {
                reason: reason.into(),
            });
            return;
        }
        self.set_intent(
            now,
            CmsIntent {
                seq: self.intent.seq + 1,
                stopped: true,
                reason: Some(reason),
            },
        );
    }

    pub(super) fn start_cms(&mut self, now: Now) {
        if !self.intent.stopped {
            self.emit(NodeEvent::AdminRefused {
                reason: "the clustered mailbox server is not stopped".into(),
            });
            return;
        }
        self.set_intent(
            now,
            CmsIntent {
                seq: self.intent.seq + 1,
                stopped: false,
                reason: None,
            },
        );
    }

    fn set_intent(&mut self, now: Now, intent: CmsIntent) {
        self.intent_asked = Some(intent.seq);
        self.adopt_intent(now, intent);
        // Recorded on the witness at once, not at the next heartbeat.
        self.last_intent_record = None;
    }

    /// A newer stop or start from anywhere: kept in the state file and obeyed at once.
    fn adopt_intent(&mut self, now: Now, intent: CmsIntent) {
        self.intent = intent;
        self.persist_state();
        self.obey_intent(now, true);
    }

    pub(super) fn learn_intent_from_peer(&mut self, now: Now, hb: &Heartbeat) {
        self.peer_intent_seq = self.peer_intent_seq.max(hb.intent.seq);
        if hb.intent.newer_than(&self.intent) {
            self.adopt_intent(now, hb.intent.clone());
        }
    }

    pub(super) fn learn_intent_from_witness(&mut self, now: Now, intent: CmsIntent) {
        self.witness_intent_seq = self.witness_intent_seq.max(intent.seq);
        if intent.newer_than(&self.intent) {
            self.adopt_intent(now, intent);
        }
    }

    /// A stopped server is dismounted wherever it is on its way online (checked on every
    /// tick, `fresh` when the stop was just learnt). A move already handing the server over
    /// finishes; its target then obeys the stop.
    pub(super) fn obey_intent(&mut self, now: Now, fresh: bool) {
        if self.bugs.takeover_ignores_stop && !fresh {
            return;
        }
        if !self.intent.stopped {
            self.each_group(|node| {
                if let Role::Owner(OwnerState::Offline { reason }) = &node.sg.role {
                    if reason.starts_with(STOPPED_BY_ADMIN) {
                        node.sg.role = Role::Owner(OwnerState::Offline {
                            reason: "started by an administrator".into(),
                        });
                    }
                }
            });
            return;
        }
        let reason = self.stopped_reason();
        // No takeover of a stopped server: nothing should come online.
        self.arbitrate_at = None;
        self.each_group(|node| match &node.sg.role {
            Role::Owner(OwnerState::Moving(_)) => {}
            Role::Owner(OwnerState::Offline { reason: r }) if *r == reason => {}
            Role::Owner(_) => {
                node.sg.fetch = None;
                node.sg.ahead.clear();
                node.dismount(
                    now,
                    OwnerState::Offline {
                        reason: reason.clone(),
                    },
                );
            }
            Role::Passive => {}
        });
    }

    /// Asks the witness to keep a stop or start it does not hold yet (once per heartbeat
    /// interval until it answers).
    pub(super) fn record_intent_if_needed(&mut self, now: Now) {
        if self.intent.seq <= self.witness_intent_seq {
            return;
        }
        let due = self
            .last_intent_record
            .is_none_or(|t| now.mono >= t + self.config.heartbeat_interval_ms());
        if due {
            self.last_intent_record = Some(now.mono);
            self.send(
                Endpoint::Witness,
                Net::Public,
                Msg::RecordIntent {
                    intent: self.intent.clone(),
                },
            );
        }
    }

    /// Whether the peer is surely not serving: its heartbeat after the stop says it is not,
    /// or it is out of sight and any lease it could still count on has run out — the same
    /// waits a takeover's mount makes. (Owning the view is not enough: an old owner cut off
    /// from us may serve until its leases run out; swarm@10:1133.)
    fn peer_cannot_serve(&self, now: Now, seq: u64) -> bool {
        if !self.peer_down(now) {
            return self.peer_intent_seq >= seq
                && self.peer.as_ref().is_some_and(|p| !p.serving_any());
        }
        now.mono >= self.takeover_guard_until()
            && self.witness_valid(now)
            && self.witness_holder == Some(self.id)
            && now.mono >= self.witness.guard_until
    }

    /// Tells the administrator a command run here is done, once it is (see the module's
    /// comment).
    pub(super) fn confirm_intent(&mut self, now: Now) {
        let Some(seq) = self.intent_asked else {
            return;
        };
        if self.intent.seq != seq {
            // A newer command, here or elsewhere, replaced it.
            self.intent_asked = None;
            return;
        }
        // Kept in this node's state file and beyond it: no one lost machine or file (the
        // witness's, say, or this node's own write that a full disk refused) takes it along
        // (swarm@11:30).
        let recorded = self.intent_durable >= seq
            && (self.peer_intent_seq >= seq || self.witness_intent_seq >= seq);
        if !recorded {
            return;
        }
        if self.intent.stopped {
            let quiet_here = !self.serving_any()
                && self
                    .groups()
                    .all(|g| !g.commit_in_flight && g.batch_ids.is_empty());
            if !(quiet_here && self.peer_cannot_serve(now, seq)) {
                return;
            }
            self.intent_asked = None;
            self.emit(NodeEvent::CmsStopped {
                reason: self.intent.reason.clone().unwrap_or_default(),
            });
        } else {
            self.intent_asked = None;
            self.emit(NodeEvent::CmsStarted);
        }
    }
}
