//! Helpers shared by the tests: a log stream driven against any disk, and (in `world`) a small
//! network of the cluster's state machines.
#![allow(dead_code)]

pub mod world;

use ccr_core::disk::{execute_all, Disk, DiskOp};
use ccr_core::storage::names::LogFolder;
use ccr_core::storage::record::Record;
use ccr_core::storage::recovery::{recover, Recovered};
use ccr_core::storage::writer::LogWriter;
use ccr_core::storage::{MessageId, Signature};

pub const DIR: &str = "logs";

pub fn insert(id: u64, size: u32, body_len: usize) -> Record {
    Record::Insert {
        id: MessageId(id),
        size: size.max(body_len as u32),
        body: (0..body_len).map(|i| (id as usize + i) as u8).collect(),
    }
}

pub fn run(disk: &mut dyn Disk, ops: &[DiskOp]) {
    execute_all(disk, ops).expect("disk op failed");
}

/// A log stream on a disk: a writer plus the disk it writes to.
pub struct Stream {
    pub writer: LogWriter,
}

impl Stream {
    pub fn create(disk: &mut dyn Disk, signature: Signature, log_size: u64) -> Stream {
        let (writer, ops) =
            LogWriter::start(&LogFolder::first(DIR), log_size, signature, 1, None, 1_000);
        run(disk, &ops);
        Stream { writer }
    }

    pub fn recover(disk: &mut dyn Disk, log_size: u64) -> (Stream, Recovered) {
        let recovered =
            recover(disk, &LogFolder::first(DIR), log_size, 2_000).expect("recovery failed");
        let writer = recovered.writer.clone().expect("a stream was on disk");
        (Stream { writer }, recovered)
    }

    /// Appends records, rolling whenever the log is full. Returns whether it rolled.
    pub fn append(&mut self, disk: &mut dyn Disk, records: &[Record]) -> bool {
        let op = self.writer.append(records);
        run(disk, &[op]);
        if self.writer.is_full() {
            self.roll(disk);
            true
        } else {
            false
        }
    }

    pub fn sync(&mut self, disk: &mut dyn Disk) {
        run(disk, &[self.writer.sync_op()]);
    }

    pub fn roll(&mut self, disk: &mut dyn Disk) -> u32 {
        let rolled = self.writer.roll(3_000);
        run(disk, &rolled.ops);
        rolled.generation
    }
}
