//! Replaying the same logs into two databases gives equal digests; rolling back by at most
//! `llr_depth` generations and replaying another branch gives that branch's digest.

mod common;

use ccr_core::disk::{Disk, MemDisk};
use ccr_core::storage::database::{Database, DbError};
use ccr_core::storage::names::closed_log_name;
use ccr_core::storage::record::Record;
use ccr_core::storage::replay::PassiveCopy;
use ccr_core::storage::{MessageId, Signature};
use common::{Stream, DIR};
use proptest::prelude::*;

fn record() -> impl Strategy<Value = Record> {
    prop_oneof![
        3 => (0u64..40, 1u32..10_000, proptest::collection::vec(any::<u8>(), 0..8))
            .prop_map(|(id, size, body)| Record::Insert { id: MessageId(id), size: size.max(body.len() as u32), body }),
        1 => (0u64..40).prop_map(|id| Record::Delete { id: MessageId(id) }),
    ]
}

fn generations(max: usize) -> impl Strategy<Value = Vec<Vec<Record>>> {
    proptest::collection::vec(proptest::collection::vec(record(), 0..6), 0..max)
}

fn replayed(llr_depth: u32, gens: &[Vec<Record>]) -> Database {
    let mut db = Database::new(llr_depth);
    for (i, records) in gens.iter().enumerate() {
        db.apply_log(i as u32 + 1, records).unwrap();
    }
    db
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_same_logs_give_the_same_digest(gens in generations(20), llr in 0u32..12) {
        let a = replayed(llr, &gens);
        let b = replayed(llr + 1, &gens);
        prop_assert_eq!(a.digest(), b.digest());
        prop_assert_eq!(a.message_ids().collect::<Vec<_>>(), b.message_ids().collect::<Vec<_>>());
        // A database reloaded from its file and replayed forward agrees too.
        let mut reloaded = Database::from_image(&a.image(), llr).unwrap();
        for g in reloaded.applied() + 1..=gens.len() as u32 {
            reloaded.apply_log(g, &gens[g as usize - 1]).unwrap();
        }
        prop_assert_eq!(reloaded.digest(), a.digest());
    }

    #[test]
    fn rollback_within_llr_then_another_branch_gives_that_branch(
        common in generations(15),
        branch_a in generations(12),
        branch_b in generations(12),
        llr in 0u32..12,
    ) {
        let mut db = replayed(llr, &common.iter().chain(&branch_a).cloned().collect::<Vec<_>>());
        let fork = common.len() as u32;
        let result = db.rollback_to(fork);
        if branch_a.len() as u32 <= llr {
            prop_assert!(result.is_ok(), "rollback of {} gens refused at depth {}", branch_a.len(), llr);
            for (i, records) in branch_b.iter().enumerate() {
                db.apply_log(fork + 1 + i as u32, records).unwrap();
            }
            let expected = replayed(llr, &common.iter().chain(&branch_b).cloned().collect::<Vec<_>>());
            prop_assert_eq!(db.digest(), expected.digest());
            prop_assert_eq!(db.applied(), expected.applied());
        } else {
            let refused = matches!(result, Err(DbError::BeyondLlr { .. }));
            prop_assert!(refused, "rollback past the LLR depth was not refused");
        }
    }

    /// End to end: what the active wrote, copied as files and replayed by a passive copy,
    /// gives the active's digest at the same generation.
    #[test]
    fn a_passive_copy_converges_on_the_active(gens in generations(10), llr in 0u32..4) {
        let mut disk = MemDisk::default();
        let mut stream = Stream::create(&mut disk, Signature(9), u64::MAX);
        let mut active = Database::new(llr);
        let mut passive = PassiveCopy::new(Signature(9), Database::new(llr), None);
        for records in &gens {
            let generation = stream.writer.generation();
            for r in records {
                active.apply_record(generation, r.clone()).unwrap();
            }
            stream.append(&mut disk, records);
            stream.roll(&mut disk);
            active.complete_generation(generation).unwrap();
            passive.note_source(generation);
            prop_assert_eq!(passive.queues().copy_queue, 1);
            let name = closed_log_name(generation);
            let bytes = disk.read(&format!("{DIR}/{name}")).unwrap().value;
            passive.receive(&name, &bytes).unwrap();
            // Nothing replayed yet: every inspected generation waits in the replay queue.
            prop_assert_eq!(passive.queues().replay_queue, generation);
            prop_assert_eq!(passive.queues().copy_queue, 0);
        }
        passive.replay_all().unwrap();
        let q = passive.queues();
        prop_assert_eq!((q.copy_queue, q.replay_queue), (0, 0));
        prop_assert_eq!(passive.database().applied(), active.applied());
        prop_assert_eq!(passive.database().digest(), active.digest());
    }
}
