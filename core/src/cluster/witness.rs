//! The file share witness: an exclusive lock on a file, with an owner, a lease and an epoch that
//! grows with every new holder (the fencing token).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::config::ClusterConfig;
use super::wire::{CmsIntent, Msg, View};
use super::{Endpoint, NodeId, Now};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub holder: NodeId,
    pub epoch: u64,
    /// Witness clock when the holder last renewed.
    pub renewed_at: u64,
}

/// Serialisable (less its pending answers and planted bug): the real hub keeps it in a file,
/// as the witness's state lives on a file share that outlives the service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Witness {
    /// How long after a renewal the lock stays the holder's, on the witness's clock.
    hold_ms: u64,
    lock: Option<Lock>,
    epoch: u64,
    /// The newest stream generation each arbitrating node reported (kept in the witness
    /// file). A node is told its peer's: its own is on its own disk, and what it once reported
    /// may since have been rolled back as diverged — counting that would wait forever for a
    /// generation no stream has.
    known_heads: [u32; 2],
    /// The same for the second storage group on, per node.
    #[serde(default, skip_serializing_if = "no_more_heads")]
    known_more_heads: [Vec<u32>; 2],
    /// The newest ownership view any arbitrating node reported (kept in the witness file).
    known_view: Option<View>,
    /// The newest stop or start of the server any node recorded (kept in the witness file).
    #[serde(default)]
    known_intent: CmsIntent,
    #[serde(skip)]
    out: VecDeque<(Endpoint, Msg)>,
    /// Test-only planted bug: grant every request, as a broken witness would.
    #[serde(skip)]
    grants_everyone: bool,
}

fn no_more_heads(heads: &[Vec<u32>; 2]) -> bool {
    heads.iter().all(Vec::is_empty)
}

impl Witness {
    pub fn new(config: &ClusterConfig) -> Witness {
        Witness {
            hold_ms: config.outlast(config.witness_lease_ms),
            lock: None,
            epoch: 0,
            known_heads: [0; 2],
            known_more_heads: [Vec::new(), Vec::new()],
            known_view: None,
            known_intent: CmsIntent::default(),
            out: VecDeque::new(),
            grants_everyone: false,
        }
    }

    /// Plants a bug for checker tests: a node asking while another holds the lock is told it
    /// holds the same lock (two holders, one epoch), and nothing is remembered.
    pub fn plant_bug_grant_everyone(&mut self) {
        self.grants_everyone = true;
    }

    pub fn lock(&self) -> Option<Lock> {
        self.lock
    }

    /// The witness file was lost (deleted, share recreated): nobody holds the lock. The epoch
    /// counter lives with the witness service, so epochs still only grow.
    pub fn lose_file(&mut self) {
        self.lock = None;
        self.known_heads = [0; 2];
        self.known_more_heads = [Vec::new(), Vec::new()];
        self.known_view = None;
        self.known_intent = CmsIntent::default();
    }

    pub fn handle(&mut self, now: Now, from: NodeId, msg: Msg) {
        let (stamp, head, view, heads) = match msg {
            Msg::Arbitrate {
                stamp,
                head,
                view,
                heads,
            } => (stamp, head, view, heads),
            Msg::RecordIntent { intent } => {
                if intent.newer_than(&self.known_intent) && !self.grants_everyone {
                    self.known_intent = intent;
                }
                self.out.push_back((
                    Endpoint::Node(from),
                    Msg::IntentRecorded {
                        intent: self.known_intent.clone(),
                    },
                ));
                return;
            }
            _ => return,
        };
        let intent = self.known_intent.clone();
        let (head, view, heads) = if self.grants_everyone {
            // The planted bug remembers nothing either: a dumb share.
            (head, view, heads)
        } else {
            let mine = &mut self.known_heads[from.index()];
            *mine = (*mine).max(head);
            let more = &mut self.known_more_heads[from.index()];
            if more.len() < heads.len() {
                more.resize(heads.len(), 0);
            }
            for (known, head) in more.iter_mut().zip(heads) {
                *known = (*known).max(head);
            }
            if self.known_view.is_none_or(|v| view.epoch > v.epoch) {
                self.known_view = Some(view);
            }
            (
                self.known_heads[from.peer().index()],
                self.known_view.expect("just set"),
                self.known_more_heads[from.peer().index()].clone(),
            )
        };
        let reply = match self.lock {
            Some(l) if l.holder == from && now.mono < l.renewed_at + self.hold_ms => {
                self.lock = Some(Lock {
                    renewed_at: now.mono,
                    ..l
                });
                Msg::WitnessGranted {
                    stamp,
                    epoch: l.epoch,
                    head,
                    view,
                    intent,
                    heads: heads.clone(),
                }
            }
            Some(l) if now.mono < l.renewed_at + self.hold_ms && self.grants_everyone => {
                // The planted bug: a second holder is told it holds the same lock.
                Msg::WitnessGranted {
                    stamp,
                    epoch: l.epoch,
                    head,
                    view,
                    intent,
                    heads: heads.clone(),
                }
            }
            Some(l) if now.mono < l.renewed_at + self.hold_ms => Msg::WitnessDenied {
                stamp,
                holder: l.holder,
                epoch: l.epoch,
                head,
                view,
                heads: heads.clone(),
            },
            _ => {
                self.epoch += 1;
                self.lock = Some(Lock {
                    holder: from,
                    epoch: self.epoch,
                    renewed_at: now.mono,
                });
                Msg::WitnessGranted {
                    stamp,
                    epoch: self.epoch,
                    head,
                    view,
                    intent,
                    heads: heads.clone(),
                }
            }
        };
        self.out.push_back((Endpoint::Node(from), reply));
    }

    pub fn poll_send(&mut self) -> Option<(Endpoint, Msg)> {
        self.out.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(w: &mut Witness, t: u64, node: NodeId) -> Msg {
        let view = View {
            epoch: 0,
            owner: NodeId::Node1,
        };
        w.handle(
            Now::at(t),
            node,
            Msg::Arbitrate {
                stamp: t,
                head: 0,
                view,
                heads: Vec::new(),
            },
        );
        w.poll_send().unwrap().1
    }

    #[test]
    fn one_holder_at_a_time_with_growing_epochs() {
        let c = ClusterConfig::default();
        let mut w = Witness::new(&c);
        assert_eq!(
            ask(&mut w, 0, NodeId::Node1),
            Msg::WitnessGranted {
                stamp: 0,
                epoch: 1,
                head: 0,
                view: View {
                    epoch: 0,
                    owner: NodeId::Node1
                },
                intent: CmsIntent::default(),
                heads: Vec::new(),
            }
        );
        assert!(matches!(
            ask(&mut w, 100, NodeId::Node2),
            Msg::WitnessDenied {
                holder: NodeId::Node1,
                ..
            }
        ));
        assert!(matches!(
            ask(&mut w, 1_000, NodeId::Node1),
            Msg::WitnessGranted { epoch: 1, .. }
        ));
        let expiry = 1_000 + c.outlast(c.witness_lease_ms);
        assert!(matches!(
            ask(&mut w, expiry - 1, NodeId::Node2),
            Msg::WitnessDenied { .. }
        ));
        assert!(matches!(
            ask(&mut w, expiry, NodeId::Node2),
            Msg::WitnessGranted { epoch: 2, .. }
        ));
        w.lose_file();
        assert!(matches!(
            ask(&mut w, expiry + 1, NodeId::Node1),
            Msg::WitnessGranted { epoch: 3, .. }
        ));
    }
}
