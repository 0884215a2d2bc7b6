//! Whole log files: the header every log starts with, and the two ways to read a log — strictly
//! (a closed log must verify end to end) and leniently (the open log's valid prefix, as
//! recovery needs after a crash).
//!
//! Layout: `header (40 bytes) | record frames… | close frame` (the close frame only once the
//! log is closed). The checksum that chains generations is the crc32c of the whole closed file.

use super::record::{decode_frame, CloseMark, Frame, FrameError, Record};
use super::{Generation, Signature};

/// The magic ends in the format version (big-endian), so a log of another version is told
/// apart from a file that is not a log at all.
pub const MAGIC: [u8; 8] = *b"CCRLOG\x00\x01";
pub const LOG_FORMAT_VERSION: u16 = 1;
pub const HEADER_LEN: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogHeader {
    pub signature: Signature,
    pub generation: Generation,
    /// When the log was created, in milliseconds of the writer's clock (as the caller gave it).
    pub created_ms: u64,
    /// crc32c of the whole previous closed log, or 0 for the first generation of a lineage.
    pub prev_checksum: u32,
}

impl LogHeader {
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..16].copy_from_slice(&self.signature.0.to_le_bytes());
        b[16..20].copy_from_slice(&self.generation.to_le_bytes());
        b[20..28].copy_from_slice(&self.created_ms.to_le_bytes());
        b[28..32].copy_from_slice(&self.prev_checksum.to_le_bytes());
        // 32..36 reserved, zero.
        let crc = crc32c::crc32c(&b[0..36]);
        b[36..40].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub fn decode(bytes: &[u8]) -> Result<LogHeader, LogError> {
        if bytes.len() < HEADER_LEN {
            return Err(LogError::ShortHeader { len: bytes.len() });
        }
        let b = &bytes[..HEADER_LEN];
        if b[0..8] != MAGIC {
            if b[0..6] == MAGIC[0..6] {
                return Err(LogError::Version {
                    found: u16::from_be_bytes([b[6], b[7]]),
                });
            }
            return Err(LogError::BadMagic);
        }
        let field = |r: std::ops::Range<usize>| b[r].to_vec();
        let u32_at = |at: usize| u32::from_le_bytes(field(at..at + 4).try_into().expect("4"));
        let u64_at = |at: usize| u64::from_le_bytes(field(at..at + 8).try_into().expect("8"));
        let stored = u32_at(36);
        let computed = crc32c::crc32c(&b[0..36]);
        if stored != computed || u32_at(32) != 0 {
            return Err(LogError::HeaderChecksum);
        }
        Ok(LogHeader {
            signature: Signature(u64_at(8)),
            generation: u32_at(16),
            created_ms: u64_at(20),
            prev_checksum: u32_at(28),
        })
    }
}

/// Why a log file does not verify. Offsets are byte offsets into the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    #[error("header truncated ({len} of {HEADER_LEN} bytes)")]
    ShortHeader { len: usize },
    #[error("not a CCR log file (bad magic)")]
    BadMagic,
    #[error(
        "a CCR log of format version {found}; this build reads version {}",
        LOG_FORMAT_VERSION
    )]
    Version { found: u16 },
    #[error("header checksum mismatch")]
    HeaderChecksum,
    #[error("at byte {offset}: {error}")]
    Frame { offset: usize, error: FrameError },
    #[error("log is not closed (no close mark)")]
    NotClosed,
    #[error("close mark at byte {offset} counts {declared} records, the log holds {actual}")]
    CountMismatch {
        offset: usize,
        declared: u32,
        actual: u32,
    },
    #[error("close mark at byte {offset} does not match the bytes before it")]
    BodyChecksum { offset: usize },
    #[error("{extra} bytes after the close mark")]
    TrailingBytes { extra: usize },
}

/// A closed log that verified end to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedLog {
    pub header: LogHeader,
    pub records: Vec<Record>,
    /// crc32c of the whole file: what the next generation's header chains to.
    pub checksum: u32,
}

/// Parses a closed log strictly: valid header, every frame valid, a close mark whose count and
/// checksum match, and nothing after it.
pub fn parse_closed(bytes: &[u8]) -> Result<ClosedLog, LogError> {
    let scan = scan(bytes)?;
    if let Some((offset, error)) = scan.stopped_at {
        return Err(LogError::Frame { offset, error });
    }
    let Some(close_at) = scan.closed_at else {
        return Err(LogError::NotClosed);
    };
    let extra = bytes.len() - scan.valid_len;
    if extra > 0 {
        return Err(LogError::TrailingBytes { extra });
    }
    debug_assert_eq!(close_at + CloseMark::FRAME_LEN, bytes.len());
    Ok(ClosedLog {
        header: scan.header,
        records: scan.records,
        checksum: crc32c::crc32c(bytes),
    })
}

/// What a lenient read of a log found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    pub header: LogHeader,
    /// Records of the valid prefix, in order.
    pub records: Vec<Record>,
    /// Bytes from the start of the file that verified (header, records, close mark if any).
    pub valid_len: usize,
    /// Offset of a verified close mark, if the log was closed.
    pub closed_at: Option<usize>,
    /// Where reading stopped before the end of the file, and why (a torn tail or corruption).
    pub stopped_at: Option<(usize, FrameError)>,
}

/// Reads a log's valid prefix. Fails only if the header itself is unreadable or a close mark
/// contradicts the records before it; anything else invalid just ends the prefix.
pub fn scan(bytes: &[u8]) -> Result<Scan, LogError> {
    let header = LogHeader::decode(bytes)?;
    let mut records = Vec::new();
    let mut offset = HEADER_LEN;
    let mut closed_at = None;
    let mut stopped_at = None;
    while offset < bytes.len() {
        match decode_frame(&bytes[offset..]) {
            Ok((Frame::Record(r), len)) => {
                records.push(r);
                offset += len;
            }
            Ok((Frame::Close(mark), len)) => {
                let actual = records.len() as u32;
                if mark.record_count != actual {
                    return Err(LogError::CountMismatch {
                        offset,
                        declared: mark.record_count,
                        actual,
                    });
                }
                if mark.body_crc != crc32c::crc32c(&bytes[..offset]) {
                    return Err(LogError::BodyChecksum { offset });
                }
                closed_at = Some(offset);
                offset += len;
                break;
            }
            Err(error) => {
                stopped_at = Some((offset, error));
                break;
            }
        }
    }
    Ok(Scan {
        header,
        records,
        valid_len: offset,
        closed_at,
        stopped_at,
    })
}

/// The bytes a log stands for (the bodies its records leave out counted at their size): what
/// it would weigh on a real disk or wire. Unreadable bytes count as they are.
pub fn nominal_len(bytes: &[u8]) -> u64 {
    match scan(bytes) {
        Ok(found) => {
            let records: u64 = found.records.iter().map(Record::nominal_len).sum();
            let unread = bytes.len().saturating_sub(found.valid_len) as u64;
            let close = if found.closed_at.is_some() {
                CloseMark::FRAME_LEN as u64
            } else {
                0
            };
            HEADER_LEN as u64 + records + close + unread
        }
        Err(_) => bytes.len() as u64,
    }
}

/// Turns a copy of another node's open log into the closed log its writer would have produced:
/// its valid prefix plus a close mark. Used when a survivor copies the last, still open log of
/// a node whose store failed.
pub fn seal(open_log: &[u8]) -> Result<Vec<u8>, LogError> {
    let scan = scan(open_log)?;
    if scan.closed_at.is_some() {
        return Ok(open_log[..scan.valid_len].to_vec());
    }
    let mut out = open_log[..scan.valid_len].to_vec();
    CloseMark {
        record_count: scan.records.len() as u32,
        body_crc: crc32c::crc32c(&out),
    }
    .encode_into(&mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_detects_flips() {
        let h = LogHeader {
            signature: Signature(0xDEAD_BEEF),
            generation: 42,
            created_ms: 123_456,
            prev_checksum: 0xABCD,
        };
        let enc = h.encode();
        assert_eq!(LogHeader::decode(&enc), Ok(h));
        for bit in 0..HEADER_LEN * 8 {
            let mut bad = enc;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(LogHeader::decode(&bad).is_err(), "bit {bit} flip accepted");
        }
        let mut newer = enc;
        newer[7] = 2;
        let e = LogHeader::decode(&newer).expect_err("another version");
        assert_eq!(e, LogError::Version { found: 2 });
        assert!(e.to_string().contains("version 2"), "{e}");
        assert!(e.to_string().contains("reads version 1"), "{e}");
    }

    #[test]
    fn a_log_weighs_what_its_messages_do() {
        let header = LogHeader {
            signature: Signature(1),
            generation: 1,
            created_ms: 0,
            prev_checksum: 0,
        };
        let mut bytes = header.encode().to_vec();
        let records = [
            Record::Insert {
                id: crate::storage::MessageId(1),
                size: 20_000,
                body: Vec::new(),
            },
            Record::Insert {
                id: crate::storage::MessageId(2),
                size: 10,
                body: b"0123456789".to_vec(),
            },
        ];
        for r in &records {
            r.encode_into(&mut bytes);
        }
        let open = nominal_len(&bytes);
        assert_eq!(open, bytes.len() as u64 + 20_000);
        let closed = seal(&bytes).expect("seals");
        assert_eq!(nominal_len(&closed), closed.len() as u64 + 20_000);
        assert_eq!(nominal_len(b"not a log"), 9);
    }
}
