//! The same behavioural tests against the in-memory disk and the real disk (in a temporary
//! folder): what the log stream relies on must hold for both.

mod common;

use ccr_core::disk::{Disk, DiskError, MemDisk, RealDisk};
use ccr_core::storage::names::{closed_log_name, OPEN_LOG};
use ccr_core::storage::record::Record;
use ccr_core::storage::Signature;
use common::{insert, Stream, DIR};

fn file_operations(disk: &mut dyn Disk) {
    assert_eq!(disk.list("d").unwrap().value, Vec::<String>::new());
    disk.create("d/a").unwrap();
    disk.append("d/a", b"hello ").unwrap();
    disk.append("d/a", b"world").unwrap();
    disk.sync("d/a").unwrap();
    assert_eq!(disk.read("d/a").unwrap().value, b"hello world");

    // create truncates
    disk.create("d/b").unwrap();
    disk.append("d/b", b"old").unwrap();
    disk.create("d/b").unwrap();
    assert_eq!(disk.read("d/b").unwrap().value, b"");

    // rename replaces the target atomically
    disk.append("d/b", b"new").unwrap();
    disk.rename("d/b", "d/a").unwrap();
    assert_eq!(disk.read("d/a").unwrap().value, b"new");
    assert!(matches!(disk.read("d/b"), Err(DiskError::NotFound { .. })));

    // list is sorted, shallow and files only
    disk.create("d/sub/c").unwrap();
    disk.create("d/0").unwrap();
    assert_eq!(disk.list("d").unwrap().value, vec!["0", "a"]);
    assert_eq!(disk.list("d/sub").unwrap().value, vec!["c"]);

    disk.remove("d/a").unwrap();
    assert!(matches!(
        disk.remove("d/a"),
        Err(DiskError::NotFound { .. })
    ));
    assert!(matches!(
        disk.append("d/missing", b"x"),
        Err(DiskError::NotFound { .. })
    ));
    assert!(matches!(
        disk.sync("d/missing"),
        Err(DiskError::NotFound { .. })
    ));

    for bad in ["/abs", "../up", "d/../x", ""] {
        assert!(
            matches!(disk.create(bad), Err(DiskError::InvalidPath { .. })),
            "{bad:?} accepted"
        );
    }
}

fn log_stream_round_trip(disk: &mut dyn Disk) {
    let mut stream = Stream::create(disk, Signature(3), 600);
    let mut written: Vec<Record> = Vec::new();
    for id in 0..40 {
        let r = insert(id, 90, 4);
        written.push(r.clone());
        stream.append(disk, &[r]);
    }
    stream.sync(disk);
    let generation = stream.writer.generation();
    assert!(
        generation > 3,
        "600-byte logs should have rolled a few times"
    );
    let names = disk.list(DIR).unwrap().value;
    assert!(names.contains(&OPEN_LOG.to_string()));
    assert!(names.contains(&closed_log_name(1)));

    let (resumed, recovered) = Stream::recover(disk, 600);
    assert!(recovered.repairs.is_empty());
    assert_eq!(recovered.records().cloned().collect::<Vec<_>>(), written);
    assert_eq!(
        resumed.writer, stream.writer,
        "recovery rebuilt a different writer"
    );
}

fn with_temp_real_disk(test: fn(&mut dyn Disk)) {
    let dir = tempfile::tempdir().unwrap();
    test(&mut RealDisk::new(dir.path()));
}

#[test]
fn mem_disk_file_operations() {
    file_operations(&mut MemDisk::default());
}

#[test]
fn real_disk_file_operations() {
    with_temp_real_disk(file_operations);
}

#[test]
fn mem_disk_log_stream_round_trip() {
    log_stream_round_trip(&mut MemDisk::default());
}

#[test]
fn real_disk_log_stream_round_trip() {
    with_temp_real_disk(log_stream_round_trip);
}
