//! The in-memory disk's fault model, and what recovery makes of faults it cannot repair: a
//! clear error that names the file, and nothing on disk changed.

mod common;

use ccr_core::disk::{Disk, DiskError, MemDisk, MemDiskConfig, Tear};
use ccr_core::storage::names::{closed_log_name, LogFolder, OPEN_LOG};
use ccr_core::storage::recovery::{recover, RecoveryError};
use ccr_core::storage::Signature;
use common::{insert, Stream, DIR};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::time::Duration;

#[test]
fn a_crash_drops_unsynced_bytes() {
    let mut disk = MemDisk::default();
    disk.create("f").unwrap();
    disk.append("f", b"durable").unwrap();
    disk.sync("f").unwrap();
    disk.append("f", b" pending").unwrap();
    assert_eq!(disk.read("f").unwrap().value, b"durable pending");
    disk.crash(Tear::Clean);
    assert_eq!(disk.read("f").unwrap().value, b"durable");
    assert_eq!(disk.used(), 7);
}

#[test]
fn a_torn_crash_never_touches_synced_bytes() {
    for seed in 0..200 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut disk = MemDisk::default();
        disk.create("f").unwrap();
        disk.append("f", &[7u8; 700]).unwrap();
        disk.sync("f").unwrap();
        disk.append("f", &[9u8; 2000]).unwrap();
        disk.crash(Tear::Torn(&mut rng));
        let data = disk.read("f").unwrap().value;
        assert!(data.len() >= 700 && data.len() <= 2700);
        assert_eq!(&data[..700], &[7u8; 700][..], "seed {seed}");
    }
}

#[test]
fn a_full_disk_refuses_the_whole_append() {
    let mut disk = MemDisk::new(MemDiskConfig {
        capacity: 10,
        ..MemDiskConfig::default()
    });
    disk.create("f").unwrap();
    disk.append("f", b"12345678").unwrap();
    assert!(matches!(
        disk.append("f", b"abc"),
        Err(DiskError::Full {
            needed: 3,
            free: 2,
            ..
        })
    ));
    assert_eq!(disk.read("f").unwrap().value, b"12345678");
    disk.set_capacity(100);
    disk.append("f", b"abc").unwrap();
}

#[test]
fn latency_grows_with_size_sync_and_slowdown() {
    let mut disk = MemDisk::default();
    disk.create("f").unwrap();
    let small = disk.append("f", &[0; 10]).unwrap().latency;
    let large = disk.append("f", &[0; 10_000_000]).unwrap().latency;
    let sync = disk.sync("f").unwrap().latency;
    assert!(large > small && sync > small);
    disk.set_slowdown(10);
    assert_eq!(disk.append("f", &[0; 10]).unwrap().latency, small * 10);
    assert!(large >= Duration::from_millis(40));
}

fn stream_with_logs(disk: &mut MemDisk) {
    let mut stream = Stream::create(disk, Signature(5), 400);
    for id in 0..30 {
        stream.append(disk, &[insert(id, 60, 2)]);
    }
    stream.sync(disk);
}

#[test]
fn a_corrupted_closed_log_is_an_error_naming_it() {
    let mut disk = MemDisk::default();
    stream_with_logs(&mut disk);
    let victim = format!("{DIR}/{}", closed_log_name(2));
    disk.corrupt(&victim, 60, 0x10).unwrap();
    let before = disk.clone();
    let err = recover(&mut disk, &LogFolder::first(DIR), 400, 0).unwrap_err();
    assert!(
        matches!(&err, RecoveryError::CorruptLog { path, .. } if *path == victim),
        "{err}"
    );
    assert!(err.to_string().contains("E0000000002.log"), "{err}");
    assert_eq!(
        disk.paths(),
        before.paths(),
        "recovery changed the disk after refusing"
    );
}

#[test]
fn a_missing_generation_is_a_gap() {
    let mut disk = MemDisk::default();
    stream_with_logs(&mut disk);
    disk.remove(&format!("{DIR}/{}", closed_log_name(2)))
        .unwrap();
    let err = recover(&mut disk, &LogFolder::first(DIR), 400, 0).unwrap_err();
    assert!(
        matches!(
            err,
            RecoveryError::Gap {
                expected: 2,
                found: 3,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn corruption_inside_the_open_log_is_not_mistaken_for_a_torn_tail() {
    let mut disk = MemDisk::default();
    let mut stream = Stream::create(&mut disk, Signature(5), u64::MAX);
    for id in 0..5 {
        stream.append(&mut disk, &[insert(id, 60, 2)]);
    }
    stream.sync(&mut disk);
    let open = format!("{DIR}/{OPEN_LOG}");
    // Inside the second record, synced long ago, with valid records after it.
    disk.corrupt(&open, 40 + 29 + 12, 0x01).unwrap();
    let err = recover(&mut disk, &LogFolder::first(DIR), u64::MAX, 0).unwrap_err();
    assert!(matches!(err, RecoveryError::CorruptOpenLog { .. }), "{err}");
}

#[test]
fn a_torn_open_log_is_cut_back_to_its_valid_prefix() {
    let mut disk = MemDisk::default();
    let mut stream = Stream::create(&mut disk, Signature(5), u64::MAX);
    stream.append(&mut disk, &[insert(1, 60, 2)]);
    stream.sync(&mut disk);
    let open = format!("{DIR}/{OPEN_LOG}");
    disk.append(&open, &[0xAB; 13]).unwrap();
    disk.sync(&open).unwrap();
    let recovered = recover(&mut disk, &LogFolder::first(DIR), u64::MAX, 0).unwrap();
    assert_eq!(recovered.open_records, vec![insert(1, 60, 2)]);
    assert!(recovered.discarded_tail.is_some());
    let again = recover(&mut disk, &LogFolder::first(DIR), u64::MAX, 0).unwrap();
    assert!(again.repairs.is_empty() && again.discarded_tail.is_none());
}

/// A node boots from a disk whose copy is damaged at rest: it starts with its copy marked
/// damaged (naming the file), nothing loaded and nothing on disk changed; a damaged cluster
/// state file stays an error naming it.
#[test]
fn a_damaged_copy_boots_marked_damaged_and_a_damaged_state_file_is_an_error() {
    use ccr_core::cluster::boot::boot;
    use ccr_core::cluster::config::ClusterConfig;
    use ccr_core::cluster::node::STATE_FILE;
    let config = ClusterConfig {
        signature: Signature(5),
        ..ClusterConfig::default()
    };
    let mut disk = MemDisk::default();
    stream_with_logs(&mut disk);
    let healthy = boot(&mut disk.clone(), &config, 0).unwrap();
    assert!(healthy.damaged().is_none());
    assert!(healthy.groups[0].db.applied() >= 2);

    let victim = format!("{DIR}/{}", closed_log_name(2));
    disk.corrupt(&victim, 60, 0x10).unwrap();
    let before = disk.clone();
    let damaged = boot(&mut disk, &config, 0).unwrap();
    let reason = damaged.damaged().expect("marked damaged").to_string();
    assert!(reason.contains("E0000000002.log"), "{reason}");
    assert_eq!(
        damaged.groups[0].db.applied(),
        0,
        "nothing of a damaged copy is loaded"
    );
    assert!(damaged.groups[0].log_files.contains(&victim));
    assert_eq!(disk.paths(), before.paths(), "boot changed a damaged disk");
    for path in disk.paths() {
        assert_eq!(disk.durable(&path), before.durable(&path), "{path} changed");
    }

    disk.create(STATE_FILE).unwrap();
    disk.append(STATE_FILE, b"{ not json").unwrap();
    let err = boot(&mut disk, &config, 0).unwrap_err();
    assert!(!err.is_copy_damage());
    assert!(err.to_string().contains(STATE_FILE), "{err}");
}
