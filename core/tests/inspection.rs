//! Inspection rejects every single-bit flip, every truncation, and any log that is not the
//! next generation of this storage group's chain.

mod common;

use ccr_core::disk::{Disk, MemDisk};
use ccr_core::storage::inspect::{Inspector, Rejection};
use ccr_core::storage::names::closed_log_name;
use ccr_core::storage::Signature;
use common::{insert, Stream, DIR};
use proptest::prelude::*;

/// Three closed logs of one stream: (name, bytes) for generations 1, 2, 3.
fn chain(signature: Signature, salt: u64) -> Vec<(String, Vec<u8>)> {
    let mut disk = MemDisk::default();
    let mut stream = Stream::create(&mut disk, signature, u64::MAX);
    (1..=3)
        .map(|g| {
            stream.append(
                &mut disk,
                &[
                    insert(g * 10 + salt, 500, 3),
                    insert(g * 10 + salt + 1, 20, 0),
                ],
            );
            let generation = stream.roll(&mut disk);
            let name = closed_log_name(generation);
            let bytes = disk.read(&format!("{DIR}/{name}")).unwrap().value;
            (name, bytes)
        })
        .collect()
}

/// An inspector that has accepted generation 1 and expects 2.
fn after_first(logs: &[(String, Vec<u8>)]) -> Inspector {
    let mut inspector = Inspector::new(Signature(1), 1, None);
    inspector
        .inspect(&logs[0].0, &logs[0].1)
        .expect("generation 1 is fine");
    inspector
}

#[test]
fn the_intact_chain_is_accepted_in_order() {
    let logs = chain(Signature(1), 0);
    let mut inspector = Inspector::new(Signature(1), 1, None);
    for (name, bytes) in &logs {
        inspector.inspect(name, bytes).unwrap();
    }
    assert_eq!(inspector.next_expected(), 4);
}

#[test]
fn out_of_order_foreign_and_unchained_logs_are_rejected() {
    let logs = chain(Signature(1), 0);
    let mut inspector = after_first(&logs);
    let before = inspector.clone();
    assert!(matches!(
        inspector.inspect(&logs[2].0, &logs[2].1),
        Err(Rejection::UnexpectedGeneration {
            expected: 2,
            found: 3,
            ..
        })
    ));
    assert!(matches!(
        inspector.inspect(&logs[0].0, &logs[0].1),
        Err(Rejection::UnexpectedGeneration {
            expected: 2,
            found: 1,
            ..
        })
    ));
    let foreign = chain(Signature(2), 0);
    assert!(matches!(
        inspector.inspect(&foreign[1].0, &foreign[1].1),
        Err(Rejection::WrongSignature { .. })
    ));
    // Same storage group, same generation, another history: a diverged branch.
    let branch = chain(Signature(1), 5);
    assert!(matches!(
        inspector.inspect(&branch[1].0, &branch[1].1),
        Err(Rejection::BrokenChain { prev: 1, .. })
    ));
    assert!(matches!(
        inspector.inspect(&logs[2].0, &logs[1].1),
        Err(Rejection::NameMismatch {
            named: 3,
            header: 2,
            ..
        })
    ));
    assert!(matches!(
        inspector.inspect("E00.log", &logs[1].1),
        Err(Rejection::BadName { .. })
    ));
    assert_eq!(inspector, before, "a rejection changed the inspector");
    inspector.inspect(&logs[1].0, &logs[1].1).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_single_bit_flip_is_rejected(bit in any::<proptest::sample::Index>()) {
        let logs = chain(Signature(1), 0);
        let mut inspector = after_first(&logs);
        let (name, bytes) = &logs[1];
        let mut bad = bytes.clone();
        let bit = bit.index(bad.len() * 8);
        bad[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(inspector.inspect(name, &bad).is_err(), "flip of bit {} accepted", bit);
        prop_assert_eq!(inspector.next_expected(), 2);
    }

    #[test]
    fn every_truncation_is_rejected(cut in any::<proptest::sample::Index>()) {
        let logs = chain(Signature(1), 0);
        let mut inspector = after_first(&logs);
        let (name, bytes) = &logs[1];
        let len = cut.index(bytes.len());
        prop_assert!(inspector.inspect(name, &bytes[..len]).is_err(), "truncation to {} accepted", len);
    }

    #[test]
    fn appended_garbage_is_rejected(extra in proptest::collection::vec(any::<u8>(), 1..64)) {
        let logs = chain(Signature(1), 0);
        let mut inspector = after_first(&logs);
        let (name, bytes) = &logs[1];
        let mut long = bytes.clone();
        long.extend(extra);
        prop_assert!(inspector.inspect(name, &long).is_err());
    }
}

#[test]
fn exhaustive_bit_flips_of_one_log() {
    let logs = chain(Signature(1), 0);
    let (name, bytes) = &logs[1];
    for bit in 0..bytes.len() * 8 {
        let mut bad = bytes.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(
            after_first(&logs).inspect(name, &bad).is_err(),
            "bit {bit} accepted"
        );
    }
}
