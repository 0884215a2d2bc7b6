//! The active copy's log writer. Pure: it decides what to write and returns the
//! [`DiskOp`]s; its owner executes them in order.

use super::logfile::{LogHeader, HEADER_LEN};
use super::names::LogFolder;
use super::record::{CloseMark, Record};
use super::{Generation, Signature};
use crate::disk::DiskOp;

/// The state of the open log, `E00.log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogWriter {
    folder: LogFolder,
    log_size: u64,
    signature: Signature,
    /// Generation of the open log.
    generation: Generation,
    /// crc32c of every byte written to the open log so far.
    file_crc: u32,
    record_count: u32,
    nominal: u64,
    /// The last closed generation and its checksum (what the open log's header chains to).
    last_closed: Option<(Generation, u32)>,
}

/// What a roll produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rolled {
    pub generation: Generation,
    pub checksum: u32,
    pub ops: Vec<DiskOp>,
}

impl LogWriter {
    /// Starts a new open log of generation `generation` in `folder`, chained to `last_closed`
    /// (`None` for the first generation of a lineage). Returns the writer and the writes that
    /// create `E00.log` durably.
    pub fn start(
        folder: &LogFolder,
        log_size: u64,
        signature: Signature,
        generation: Generation,
        last_closed: Option<(Generation, u32)>,
        now_ms: u64,
    ) -> (LogWriter, Vec<DiskOp>) {
        let header = LogHeader {
            signature,
            generation,
            created_ms: now_ms,
            prev_checksum: last_closed.map_or(0, |(_, c)| c),
        }
        .encode();
        let writer = LogWriter {
            folder: folder.clone(),
            log_size,
            signature,
            generation,
            file_crc: crc32c::crc32c(&header),
            record_count: 0,
            nominal: HEADER_LEN as u64,
            last_closed,
        };
        let path = writer.open_path();
        let ops = vec![
            DiskOp::Create { path: path.clone() },
            DiskOp::Append {
                path: path.clone(),
                data: header.to_vec(),
            },
            DiskOp::Sync { path },
        ];
        (writer, ops)
    }

    /// Resumes an open log that recovery verified: `prefix` is its valid bytes.
    pub(crate) fn resume(
        folder: &LogFolder,
        log_size: u64,
        header: &LogHeader,
        prefix: &[u8],
        records: &[Record],
        last_closed: Option<(Generation, u32)>,
    ) -> LogWriter {
        LogWriter {
            folder: folder.clone(),
            log_size,
            signature: header.signature,
            generation: header.generation,
            file_crc: crc32c::crc32c(prefix),
            record_count: records.len() as u32,
            nominal: HEADER_LEN as u64 + records.iter().map(Record::nominal_len).sum::<u64>(),
            last_closed,
        }
    }

    /// Appends records to the open log (one write). They are durable after [`Self::sync_op`].
    pub fn append(&mut self, records: &[Record]) -> DiskOp {
        let mut data = Vec::with_capacity(records.iter().map(Record::frame_len).sum());
        for r in records {
            r.encode_into(&mut data);
            self.nominal += r.nominal_len();
        }
        self.record_count += records.len() as u32;
        self.file_crc = crc32c::crc32c_append(self.file_crc, &data);
        DiskOp::Append {
            path: self.open_path(),
            data,
        }
    }

    pub fn sync_op(&self) -> DiskOp {
        DiskOp::Sync {
            path: self.open_path(),
        }
    }

    /// True once the open log has reached its nominal size and should be closed.
    pub fn is_full(&self) -> bool {
        self.nominal >= self.log_size
    }

    /// Closes the open log and opens the next generation: write the close mark, sync, rename
    /// to the generation's name, create a new `E00.log`. A crash between any two of these
    /// writes is repaired by recovery.
    pub fn roll(&mut self, now_ms: u64) -> Rolled {
        let mut rolled = self.close();
        let (next, start) = LogWriter::start(
            &self.folder,
            self.log_size,
            self.signature,
            rolled.generation + 1,
            Some((rolled.generation, rolled.checksum)),
            now_ms,
        );
        *self = next;
        rolled.ops.extend(start);
        rolled
    }

    /// Closes the open log without opening another (a node giving up the active role, or
    /// sealing a log it finds the owner already has).
    pub fn close(&self) -> Rolled {
        let mut close = Vec::with_capacity(CloseMark::FRAME_LEN);
        CloseMark {
            record_count: self.record_count,
            body_crc: self.file_crc,
        }
        .encode_into(&mut close);
        let checksum = crc32c::crc32c_append(self.file_crc, &close);
        let open = self.open_path();
        let ops = vec![
            DiskOp::Append {
                path: open.clone(),
                data: close,
            },
            DiskOp::Sync { path: open.clone() },
            DiskOp::Rename {
                from: open,
                to: self.closed_path(self.generation),
            },
        ];
        Rolled {
            generation: self.generation,
            checksum,
            ops,
        }
    }

    pub fn signature(&self) -> Signature {
        self.signature
    }

    /// Generation of the open log.
    pub fn generation(&self) -> Generation {
        self.generation
    }

    /// The newest closed generation and its checksum, if any.
    pub fn last_closed(&self) -> Option<(Generation, u32)> {
        self.last_closed
    }

    pub fn records_in_open_log(&self) -> u32 {
        self.record_count
    }

    pub fn folder(&self) -> &LogFolder {
        &self.folder
    }

    pub fn open_path(&self) -> String {
        self.folder.open_path()
    }

    pub fn closed_path(&self, generation: Generation) -> String {
        self.folder.closed_path(generation)
    }
}
