//! Any interleaving of appends, rolls, syncs and crashes on the in-memory disk recovers to a
//! log stream that holds every synced record and is a prefix of what was written: never a
//! hole, never a record that was not written (so never an unverified one).

mod common;

use ccr_core::disk::{MemDisk, Tear};
use ccr_core::storage::record::Record;
use ccr_core::storage::Signature;
use common::{insert, Stream};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

#[derive(Debug, Clone)]
enum Step {
    Append {
        count: usize,
        size: u32,
        body: usize,
    },
    Sync,
    Roll,
    Crash {
        torn: bool,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (1usize..4, 0u32..400, 0usize..40)
            .prop_map(|(count, size, body)| Step::Append { count, size, body }),
        2 => Just(Step::Sync),
        1 => Just(Step::Roll),
        1 => any::<bool>().prop_map(|torn| Step::Crash { torn }),
    ]
}

fn is_prefix(short: &[Record], long: &[Record]) -> bool {
    short.len() <= long.len() && long[..short.len()] == *short
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn crashes_recover_a_prefix_that_holds_every_synced_record(
        steps in proptest::collection::vec(step(), 1..80),
        log_size in 100u64..3_000,
        tear_seed in any::<u64>(),
    ) {
        let mut disk = MemDisk::default();
        let mut rng = StdRng::seed_from_u64(tear_seed);
        let mut stream = Stream::create(&mut disk, Signature(7), log_size);
        // Everything written, in order, and how much of it was durable at the last sync.
        let mut written: Vec<Record> = Vec::new();
        let mut synced = 0usize;
        let mut next_id = 0u64;
        for step in steps {
            match step {
                Step::Append { count, size, body } => {
                    let records: Vec<Record> = (0..count)
                        .map(|_| { next_id += 1; insert(next_id, size, body) })
                        .collect();
                    written.extend(records.iter().cloned());
                    if stream.append(&mut disk, &records) {
                        synced = written.len();
                    }
                }
                Step::Sync => {
                    stream.sync(&mut disk);
                    synced = written.len();
                }
                Step::Roll => {
                    stream.roll(&mut disk);
                    synced = written.len();
                }
                Step::Crash { torn } => {
                    let tear = if torn { Tear::Torn(&mut rng) } else { Tear::Clean };
                    disk.crash(tear);
                    let (resumed, recovered) = Stream::recover(&mut disk, log_size);
                    let records: Vec<Record> = recovered.records().cloned().collect();
                    prop_assert!(records.len() >= synced,
                        "lost synced records: recovered {} of {} synced", records.len(), synced);
                    prop_assert!(is_prefix(&records, &written),
                        "recovered records are not a prefix of what was written");
                    // Generations are contiguous from 1 and the writer continues after them.
                    for (i, log) in recovered.closed.iter().enumerate() {
                        prop_assert_eq!(log.header.generation, i as u32 + 1);
                    }
                    prop_assert_eq!(resumed.writer.generation(),
                        recovered.closed.len() as u32 + 1);
                    // Recovery's repairs are durable: what it found is the new baseline.
                    written = records;
                    synced = written.len();
                    // A second crash right after recovery finds the same stream.
                    disk.crash(Tear::Clean);
                    let (again, second) = Stream::recover(&mut disk, log_size);
                    prop_assert!(second.repairs.is_empty(), "recovery was not idempotent");
                    prop_assert_eq!(second.records().cloned().collect::<Vec<_>>(), written.clone());
                    stream = again;
                }
            }
        }
    }
}
