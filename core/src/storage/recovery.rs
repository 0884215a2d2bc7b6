//! Reading a log folder back after a crash: which closed logs verify, what the open log's valid
//! prefix is, and which repairs make the folder consistent again. Planning is pure
//! ([`plan_recovery`]); [`recover`] reads the folder from a disk and performs the repairs.

use std::collections::BTreeMap;

use super::logfile::{parse_closed, scan, ClosedLog, LogError, LogHeader, HEADER_LEN};
use super::names::LogFolder;
use super::record::{decode_frame, FrameError, Record};
use super::writer::LogWriter;
use super::{Generation, Signature};
use crate::disk::{execute_all, join, replace_atomically, Disk, DiskError, DiskOp};

/// A log folder as recovery found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// The writer positioned after the last valid record, or `None` if the folder holds no log
    /// stream at all.
    pub writer: Option<LogWriter>,
    /// Closed logs in generation order, each verified and chained to the one before.
    pub closed: Vec<ClosedLog>,
    /// Records of the open log's valid prefix.
    pub open_records: Vec<Record>,
    /// The torn tail recovery cut off the open log, if any: its offset and what was wrong.
    pub discarded_tail: Option<(usize, FrameError)>,
    /// Writes that make the folder match what was recovered; run them before appending.
    pub repairs: Vec<DiskOp>,
}

impl Recovered {
    /// Every recovered record in log order: closed logs first, then the open log.
    pub fn records(&self) -> impl Iterator<Item = &Record> {
        self.closed
            .iter()
            .flat_map(|l| l.records.iter())
            .chain(self.open_records.iter())
    }
}

/// Why a log folder cannot be recovered without losing data it claims to hold. Each names the
/// file at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryError {
    #[error("{path}: {error}")]
    CorruptLog { path: String, error: LogError },
    #[error("{path}: header says generation {header_generation:#x}, the name another")]
    NameMismatch {
        path: String,
        header_generation: Generation,
    },
    #[error("{path}: signature {found} is not this stream's {expected}")]
    ForeignSignature {
        path: String,
        expected: Signature,
        found: Signature,
    },
    #[error("{path}: expected generation {expected:#x} here, found {found:#x} (missing logs)")]
    Gap {
        path: String,
        expected: Generation,
        found: Generation,
    },
    #[error("{path}: does not chain to the log before it (checksum {found:08x}, expected {expected:08x})")]
    BrokenChain {
        path: String,
        expected: u32,
        found: u32,
    },
    #[error(
        "{path}: valid records follow a corrupted one at byte {offset} ({error}); not a torn tail"
    )]
    CorruptOpenLog {
        path: String,
        offset: usize,
        error: FrameError,
    },
    #[error("{path}: closed log has {extra} bytes after its close mark")]
    TrailingAfterClose { path: String, extra: usize },
    #[error(transparent)]
    Disk(#[from] DiskError),
}

/// Reads every file of `folder` that recovery cares about.
pub fn read_log_folder(
    disk: &mut dyn Disk,
    folder: &LogFolder,
) -> Result<BTreeMap<String, Vec<u8>>, DiskError> {
    let mut files = BTreeMap::new();
    let (open, repair) = (folder.open_name(), folder.repair_name());
    for name in disk.list(folder.dir())?.value {
        if name == open || name == repair || folder.parse_closed(&name).is_some() {
            let bytes = disk.read(&join(folder.dir(), &name))?.value;
            files.insert(name, bytes);
        }
    }
    Ok(files)
}

/// Recovers the log stream in `folder` of `disk` and performs the repairs.
pub fn recover(
    disk: &mut dyn Disk,
    folder: &LogFolder,
    log_size: u64,
    now_ms: u64,
) -> Result<Recovered, RecoveryError> {
    let files = read_log_folder(disk, folder)?;
    let recovered = plan_recovery(folder, &files, log_size, now_ms)?;
    execute_all(disk, &recovered.repairs)?;
    Ok(recovered)
}

/// Decides what the log stream in `files` (name → contents of one folder) is.
pub fn plan_recovery(
    folder: &LogFolder,
    files: &BTreeMap<String, Vec<u8>>,
    log_size: u64,
    now_ms: u64,
) -> Result<Recovered, RecoveryError> {
    let path = |name: &str| join(folder.dir(), name);
    let (open_name, repair_name) = (folder.open_name(), folder.repair_name());
    let mut repairs = Vec::new();
    if files.contains_key(&repair_name) {
        // A repair that crashed before its rename; E00.log is still the original.
        repairs.push(DiskOp::Remove {
            path: path(&repair_name),
        });
    }

    let mut closed: Vec<ClosedLog> = Vec::new();
    let mut by_generation: Vec<(Generation, &String)> = files
        .keys()
        .filter_map(|name| folder.parse_closed(name).map(|g| (g, name)))
        .collect();
    by_generation.sort();
    for (generation, name) in by_generation {
        let log = parse_closed(&files[name]).map_err(|error| RecoveryError::CorruptLog {
            path: path(name),
            error,
        })?;
        if log.header.generation != generation {
            return Err(RecoveryError::NameMismatch {
                path: path(name),
                header_generation: log.header.generation,
            });
        }
        check_follows(closed.last(), &log.header, &path(name))?;
        closed.push(log);
    }
    let last_closed = closed.last().map(|l| (l.header.generation, l.checksum));

    let mut recovered = Recovered {
        writer: None,
        closed,
        open_records: Vec::new(),
        discarded_tail: None,
        repairs,
    };
    let open_path = path(&open_name);
    let open = files.get(&open_name);

    let header = match open.map(|bytes| (bytes, LogHeader::decode(bytes))) {
        Some((_, Ok(header))) => Some(header),
        // A header that never reached the disk whole: the crash hit while E00.log was being
        // created, before anything could be written after it.
        Some((bytes, Err(_))) if bytes.len() <= HEADER_LEN => None,
        Some((_, Err(error))) => {
            return Err(RecoveryError::CorruptLog {
                path: open_path,
                error,
            })
        }
        None => None,
    };
    let Some(header) = header else {
        match (last_closed, open.is_some()) {
            (Some(last), _) => {
                let signature = recovered.closed[0].header.signature;
                let (writer, ops) =
                    LogWriter::start(folder, log_size, signature, last.0 + 1, Some(last), now_ms);
                recovered.repairs.extend(ops);
                recovered.writer = Some(writer);
            }
            (None, true) => recovered.repairs.push(DiskOp::Remove { path: open_path }),
            (None, false) => {}
        }
        return Ok(recovered);
    };

    let bytes = open.expect("header came from the open log");
    check_follows(recovered.closed.last(), &header, &open_path)?;
    let scan = scan(bytes).map_err(|error| RecoveryError::CorruptLog {
        path: open_path.clone(),
        error,
    })?;

    if scan.closed_at.is_some() {
        // Crashed after closing E00.log but before renaming it: finish the roll.
        let extra = bytes.len() - scan.valid_len;
        if extra > 0 {
            return Err(RecoveryError::TrailingAfterClose {
                path: open_path,
                extra,
            });
        }
        let log = parse_closed(bytes).map_err(|error| RecoveryError::CorruptLog {
            path: open_path.clone(),
            error,
        })?;
        let generation = log.header.generation;
        let last = (generation, log.checksum);
        recovered.repairs.push(DiskOp::Rename {
            from: open_path,
            to: folder.closed_path(generation),
        });
        recovered.closed.push(log);
        let (writer, ops) = LogWriter::start(
            folder,
            log_size,
            header.signature,
            generation + 1,
            Some(last),
            now_ms,
        );
        recovered.repairs.extend(ops);
        recovered.writer = Some(writer);
        return Ok(recovered);
    }

    if let Some((offset, error)) = &scan.stopped_at {
        if valid_frame_follows(bytes, *offset) {
            return Err(RecoveryError::CorruptOpenLog {
                path: open_path,
                offset: *offset,
                error: error.clone(),
            });
        }
        // A torn tail: rewrite the valid prefix, then swap it in atomically.
        recovered.repairs.extend(replace_atomically(
            &open_path,
            &path(&repair_name),
            bytes[..scan.valid_len].to_vec(),
        ));
        recovered.discarded_tail = scan.stopped_at.clone();
    }
    recovered.writer = Some(LogWriter::resume(
        folder,
        log_size,
        &header,
        &bytes[..scan.valid_len],
        &scan.records,
        last_closed,
    ));
    recovered.open_records = scan.records;
    Ok(recovered)
}

/// Checks that a log with `header` may come right after `prev` in one stream.
fn check_follows(
    prev: Option<&ClosedLog>,
    header: &LogHeader,
    path: &str,
) -> Result<(), RecoveryError> {
    let Some(prev) = prev else { return Ok(()) };
    if header.signature != prev.header.signature {
        return Err(RecoveryError::ForeignSignature {
            path: path.to_string(),
            expected: prev.header.signature,
            found: header.signature,
        });
    }
    if header.generation != prev.header.generation + 1 {
        return Err(RecoveryError::Gap {
            path: path.to_string(),
            expected: prev.header.generation + 1,
            found: header.generation,
        });
    }
    if header.prev_checksum != prev.checksum {
        return Err(RecoveryError::BrokenChain {
            path: path.to_string(),
            expected: prev.checksum,
            found: header.prev_checksum,
        });
    }
    Ok(())
}

/// A torn tail is garbage to the end of the file. If any verifying frame starts after the
/// point where reading stopped, bytes in the middle went bad instead: corruption of data that
/// had been synced, which recovery must not quietly drop.
fn valid_frame_follows(bytes: &[u8], offset: usize) -> bool {
    (offset + 1..bytes.len()).any(|at| decode_frame(&bytes[at..]).is_ok())
}
