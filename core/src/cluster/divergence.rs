//! What a node that rejoins as passive does with logs the owner's stream may not contain.
//!
//! Each owner records where its writing began (a [`LineageEntry`]). Two lineages agree up to
//! their first differing entry; the generations before the earlier of the two differing
//! entries are common history. Anything a node holds past that point was written on a branch
//! the cluster abandoned (a lossy failover): it is rolled back if the database can still undo
//! it (lost-log resilience), and otherwise the copy needs a reseed. Diverged histories are
//! never merged.

use std::collections::BTreeMap;

use super::wire::LineageEntry;
use crate::storage::Generation;

/// A node's own log stream as the resolver needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnStream<'a> {
    /// Checksums of the closed logs the node holds.
    pub closed: &'a BTreeMap<Generation, u32>,
    /// Generation of its open log, if it has one holding records.
    pub open_with_records: Option<Generation>,
    /// The database file's checkpoint: the deepest generation a rollback can reach.
    pub db_checkpoint: Generation,
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
    let same = own.iter().zip(owner).take_while(|(a, b)| a == b).count();
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
    let last_closed = own.closed.keys().next_back().copied().unwrap_or(0);
    let head = own.open_with_records.unwrap_or(last_closed);
    let common = common_until(own_lineage, owner_lineage).unwrap_or(Generation::MAX);

    // Where the owner's stream branched off at `common + 1`, its entry names the checksum of
    // `common`; a node holding that generation must hold the same bytes.
    let branch = owner_lineage
        .iter()
        .find(|e| e.first_generation == common.saturating_add(1));
    if let (Some(entry), Some(&mine)) = (branch, own.closed.get(&common)) {
        if common > 0 && entry.prev_checksum != mine {
            return Resolution::ReseedRequired {
                reason: format!(
                    "generation {common:#x} differs from the owner's (checksum {mine:08x}, \
                     owner's lineage says {:08x})",
                    entry.prev_checksum
                ),
            };
        }
    }

    if head <= common {
        return Resolution::InLine {
            seal_open: own.open_with_records.is_some(),
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
            Option<Generation>,
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
                Some(20),
                9,
                Resolution::InLine { seal_open: true },
            ),
            (
                "diverged by 6 within LLR 10",
                base.clone(),
                closed(25),
                Some(26),
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
                Some(21),
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
                Some(26),
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
                    open_with_records: open,
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
                open_with_records: None,
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
    }
}
