//! What a node that rejoins as passive does with logs the owner's stream may not contain.
//!
//! Each owner records where its writing began (a [`LineageEntry`]: its epoch, its first
//! generation and the checksum of the generation before it). Two kinds of evidence show how
//! far a node's logs are the owner's:
//! - *lineage*: where the node's lineage and the owner's agree entry for entry, the same
//!   owners wrote the same generations;
//! - *anchors*: an owner entry says "generation g has checksum c"; logs chain, so a node whose
//!   generation g has checksum c shares every generation up to g.
//!
//! Anything a node holds past what the evidence proves shared was written on a branch the
//! cluster abandoned (or cannot be shown not to be): it is rolled back if the database can
//! still undo it (lost-log resilience), and otherwise the copy needs a reseed. Diverged
//! histories are never merged.

use std::collections::BTreeMap;

use super::wire::LineageEntry;
use crate::storage::Generation;

/// A node's own log stream as the resolver needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnStream<'a> {
    /// Checksums of the closed logs the node holds.
    pub closed: &'a BTreeMap<Generation, u32>,
    /// Its open log, if it holds records: generation and the checksum it would have closed.
    pub open: Option<(Generation, u32)>,
    /// The database file's checkpoint: the deepest generation a rollback can reach.
    pub db_checkpoint: Generation,
}

impl OwnStream<'_> {
    fn checksum(&self, generation: Generation) -> Option<u32> {
        self.closed.get(&generation).copied().or(match self.open {
            Some((g, c)) if g == generation => Some(c),
            _ => None,
        })
    }

    fn head(&self) -> Generation {
        let last_closed = self.closed.keys().next_back().copied().unwrap_or(0);
        self.open.map_or(last_closed, |(g, _)| g.max(last_closed))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Everything the node holds is part of the owner's stream; it continues copying. With
    /// `seal_open`, its open log is a generation the owner already has (copied from this
    /// node's share after it failed), so it is closed in place.
    InLine { seal_open: bool },
    /// Generations after `to` (and the open log) diverged and are discarded.
    RollBack { to: Generation, discarded: u32 },
    /// The divergence is deeper than the database can undo.
    ReseedRequired { reason: String },
}

/// The last generation two lineages certainly share (`None`: no bound, one is a prefix of
/// the other).
pub fn common_until(own: &[LineageEntry], owner: &[LineageEntry]) -> Option<Generation> {
    let same = own
        .iter()
        .zip(owner)
        .take_while(|(a, b)| a.same_start(b))
        .count();
    let starts = [own.get(same), owner.get(same)];
    starts
        .into_iter()
        .flatten()
        .map(|e| e.first_generation.saturating_sub(1))
        .min()
}

pub fn resolve(
    own_lineage: &[LineageEntry],
    owner_lineage: &[LineageEntry],
    own: OwnStream<'_>,
) -> Resolution {
    let by_lineage = if own_lineage.is_empty() {
        0
    } else {
        common_until(own_lineage, owner_lineage).unwrap_or(Generation::MAX)
    };
    let mut common = by_lineage;
    for entry in owner_lineage {
        let anchor = entry.first_generation.saturating_sub(1);
        if anchor == 0 {
            continue;
        }
        match own.checksum(anchor) {
            Some(c) if c == entry.prev_checksum => common = common.max(anchor),
            Some(c) if anchor <= by_lineage => {
                return Resolution::ReseedRequired {
                    reason: format!(
                        "generation {anchor:#x} differs from the owner's (checksum {c:08x}, the \
                         owner's lineage says {:08x})",
                        entry.prev_checksum
                    ),
                };
            }
            _ => {}
        }
    }

    let head = own.head();
    if head <= common {
        return Resolution::InLine {
            seal_open: own.open.is_some(),
        };
    }
    let discarded = head - common;
    if common >= own.db_checkpoint {
        Resolution::RollBack {
            to: common,
            discarded,
        }
    } else {
        Resolution::ReseedRequired {
            reason: format!(
                "diverged by {discarded} generation(s) after {common:#x}, but the database \
                 file already holds up to {:#x} (beyond lost-log resilience)",
                own.db_checkpoint
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::NodeId::{Node1, Node2};

    fn entry(
        epoch: u64,
        owner: crate::cluster::NodeId,
        first: Generation,
        prev: u32,
    ) -> LineageEntry {
        LineageEntry {
            epoch,
            owner,
            first_generation: first,
            prev_checksum: prev,
            asked_since: None,
        }
    }

    fn closed(upto: Generation) -> BTreeMap<Generation, u32> {
        (1..=upto).map(|g| (g, 1000 + g)).collect()
    }

    #[test]
    fn divergence_table() {
        let base = vec![entry(0, Node1, 1, 0)];
        // node2 took over in epoch 1 at generation 21, after generation 20 (checksum 1020).
        let after_failover = vec![entry(0, Node1, 1, 0), entry(1, Node2, 21, 1020)];
        let mut llr10 = closed(25);
        // (case, own lineage, own closed logs, open log with records, db checkpoint, expected)
        type Case = (
            &'static str,
            Vec<LineageEntry>,
            BTreeMap<Generation, u32>,
            Option<(Generation, u32)>,
            Generation,
            Resolution,
        );
        let cases: Vec<Case> = vec![
            (
                "behind, same lineage",
                base.clone(),
                closed(12),
                None,
                2,
                Resolution::InLine { seal_open: false },
            ),
            (
                "old active, nothing past the branch",
                base.clone(),
                closed(20),
                None,
                10,
                Resolution::InLine { seal_open: false },
            ),
            (
                "old active, open log copied by the new owner",
                base.clone(),
                closed(19),
                Some((20, 1020)),
                9,
                Resolution::InLine { seal_open: true },
            ),
            (
                "diverged by 6 within LLR 10",
                base.clone(),
                closed(25),
                Some((26, 9)),
                16,
                Resolution::RollBack {
                    to: 20,
                    discarded: 6,
                },
            ),
            (
                "diverged only in the open log",
                base.clone(),
                closed(20),
                Some((21, 9)),
                10,
                Resolution::RollBack {
                    to: 20,
                    discarded: 1,
                },
            ),
            (
                "diverged beyond LLR",
                base.clone(),
                closed(25),
                Some((26, 9)),
                21,
                Resolution::ReseedRequired {
                    reason: String::new(),
                },
            ),
            (
                "already on the new lineage",
                after_failover.clone(),
                closed(30),
                None,
                20,
                Resolution::InLine { seal_open: false },
            ),
        ];
        for (name, own_lineage, own_closed, open, checkpoint, expected) in cases {
            let got = resolve(
                &own_lineage,
                &after_failover,
                OwnStream {
                    closed: &own_closed,
                    open,
                    db_checkpoint: checkpoint,
                },
            );
            match (&expected, &got) {
                (Resolution::ReseedRequired { .. }, Resolution::ReseedRequired { reason }) => {
                    assert!(
                        reason.contains("beyond lost-log resilience"),
                        "{name}: {reason}"
                    )
                }
                _ => assert_eq!(got, expected, "{name}"),
            }
        }
        // Same generation number, different bytes at the branch point: never merged.
        llr10.insert(20, 4242);
        let got = resolve(
            &base,
            &after_failover,
            OwnStream {
                closed: &llr10,
                open: None,
                db_checkpoint: 15,
            },
        );
        assert!(matches!(got, Resolution::ReseedRequired { .. }), "{got:?}");
    }

    #[test]
    fn common_history_of_lineages() {
        let a = vec![entry(0, Node1, 1, 0), entry(2, Node2, 40, 7)];
        let b = vec![entry(0, Node1, 1, 0), entry(3, Node1, 35, 9)];
        assert_eq!(common_until(&a, &b), Some(34));
        assert_eq!(common_until(&a, &a), None);
        assert_eq!(common_until(&a[..1], &a), Some(39));
        assert_eq!(common_until(&[], &a), Some(0));
        // What an epoch still asks of the hubs is not part of its stream.
        let mut asked = a.clone();
        asked[1].asked_since = Some(crate::cluster::wire::TimeWindow { since_wall: 5 });
        assert_eq!(common_until(&asked, &a), None);
    }
}
