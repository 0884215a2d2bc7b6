//! Log records and their on-disk frames.
//!
//! A frame is `len: u32 LE | crc: u32 LE | payload[len]`, where `crc` is crc32c over the length
//! bytes and the payload, so a flipped bit anywhere in a frame, a truncated frame or a torn
//! tail is detected. The payload's first byte is the record kind.

use super::MessageId;

/// The largest payload a frame may declare; anything bigger is garbage, not a record.
pub const MAX_PAYLOAD: usize = 16 * 1024 * 1024;
pub const FRAME_OVERHEAD: usize = 8;

const KIND_INSERT: u8 = 1;
const KIND_DELETE: u8 = 2;
const KIND_CLOSE: u8 = 0xFF;

/// What a transaction log records about the mailbox database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A message delivered into the database. `size` is the message's size as the client sent
    /// it; `body` carries as much of it as the caller chose to store (the simulator stores
    /// none), and the log's nominal size counts `size`, so logs roll as Exchange's would.
    Insert {
        id: MessageId,
        size: u32,
        body: Vec<u8>,
    },
    Delete {
        id: MessageId,
    },
}

impl Record {
    /// Bytes this record stands for in the log's nominal size: its frame, plus the part of the
    /// message body it does not carry.
    pub fn nominal_len(&self) -> u64 {
        let frame = self.frame_len() as u64;
        match self {
            Record::Insert { size, body, .. } => {
                frame + u64::from(*size).saturating_sub(body.len() as u64)
            }
            Record::Delete { .. } => frame,
        }
    }

    pub fn frame_len(&self) -> usize {
        FRAME_OVERHEAD + self.payload_len()
    }

    fn payload_len(&self) -> usize {
        match self {
            Record::Insert { body, .. } => 1 + 8 + 4 + 4 + body.len(),
            Record::Delete { .. } => 1 + 8,
        }
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut payload = Vec::with_capacity(self.payload_len());
        match self {
            Record::Insert { id, size, body } => {
                payload.push(KIND_INSERT);
                payload.extend_from_slice(&id.0.to_le_bytes());
                payload.extend_from_slice(&size.to_le_bytes());
                payload.extend_from_slice(&(body.len() as u32).to_le_bytes());
                payload.extend_from_slice(body);
            }
            Record::Delete { id } => {
                payload.push(KIND_DELETE);
                payload.extend_from_slice(&id.0.to_le_bytes());
            }
        }
        encode_frame(&payload, out);
    }
}

/// The last frame of a closed log: how many records it holds and the crc32c of every byte of
/// the file before this frame. A log without it was never closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseMark {
    pub record_count: u32,
    pub body_crc: u32,
}

impl CloseMark {
    pub const FRAME_LEN: usize = FRAME_OVERHEAD + 1 + 4 + 4;

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let mut payload = Vec::with_capacity(9);
        payload.push(KIND_CLOSE);
        payload.extend_from_slice(&self.record_count.to_le_bytes());
        payload.extend_from_slice(&self.body_crc.to_le_bytes());
        encode_frame(&payload, out);
    }
}

fn encode_frame(payload: &[u8], out: &mut Vec<u8>) {
    let len = (payload.len() as u32).to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len), payload);
    out.extend_from_slice(&len);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Record(Record),
    Close(CloseMark),
}

/// Why the bytes at some offset are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame truncated: {available} bytes left, {needed} needed")]
    Truncated { available: usize, needed: usize },
    #[error("frame declares {len} payload bytes, more than the {MAX_PAYLOAD} allowed")]
    TooLarge { len: usize },
    #[error("frame checksum mismatch (stored {stored:08x}, computed {computed:08x})")]
    Checksum { stored: u32, computed: u32 },
    #[error("unknown record kind {kind:#04x}")]
    UnknownKind { kind: u8 },
    #[error("record of kind {kind:#04x} is malformed: {why}")]
    Malformed { kind: u8, why: &'static str },
}

/// Decodes the frame at the start of `bytes`, returning it and its length in bytes.
pub fn decode_frame(bytes: &[u8]) -> Result<(Frame, usize), FrameError> {
    if bytes.len() < FRAME_OVERHEAD {
        return Err(FrameError::Truncated {
            available: bytes.len(),
            needed: FRAME_OVERHEAD,
        });
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes")) as usize;
    if len > MAX_PAYLOAD {
        return Err(FrameError::TooLarge { len });
    }
    let total = FRAME_OVERHEAD + len;
    if bytes.len() < total {
        return Err(FrameError::Truncated {
            available: bytes.len(),
            needed: total,
        });
    }
    let stored = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    let payload = &bytes[8..total];
    let computed = crc32c::crc32c_append(crc32c::crc32c(&bytes[0..4]), payload);
    if stored != computed {
        return Err(FrameError::Checksum { stored, computed });
    }
    Ok((decode_payload(payload)?, total))
}

fn decode_payload(payload: &[u8]) -> Result<Frame, FrameError> {
    let Some((&kind, rest)) = payload.split_first() else {
        return Err(FrameError::Malformed {
            kind: 0,
            why: "empty payload",
        });
    };
    let malformed = |why| FrameError::Malformed { kind, why };
    let u64_at = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(rest.get(at..at + 8)?.try_into().ok()?))
    };
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(rest.get(at..at + 4)?.try_into().ok()?))
    };
    match kind {
        KIND_INSERT => {
            let id = u64_at(0).ok_or(malformed("short header"))?;
            let size = u32_at(8).ok_or(malformed("short header"))?;
            let body_len = u32_at(12).ok_or(malformed("short header"))? as usize;
            let body = rest.get(16..).ok_or(malformed("short header"))?;
            if body.len() != body_len {
                return Err(malformed("body length disagrees with frame length"));
            }
            if body_len as u64 > u64::from(size) {
                return Err(malformed("body longer than the message size"));
            }
            Ok(Frame::Record(Record::Insert {
                id: MessageId(id),
                size,
                body: body.to_vec(),
            }))
        }
        KIND_DELETE => {
            if rest.len() != 8 {
                return Err(malformed("wrong length"));
            }
            Ok(Frame::Record(Record::Delete {
                id: MessageId(u64_at(0).expect("checked length")),
            }))
        }
        KIND_CLOSE => {
            if rest.len() != 8 {
                return Err(malformed("wrong length"));
            }
            Ok(Frame::Close(CloseMark {
                record_count: u32_at(0).expect("checked length"),
                body_crc: u32_at(4).expect("checked length"),
            }))
        }
        kind => Err(FrameError::UnknownKind { kind }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let records = [
            Record::Insert {
                id: MessageId(7),
                size: 50_000,
                body: b"hello".to_vec(),
            },
            Record::Delete { id: MessageId(7) },
        ];
        for r in records {
            let mut buf = Vec::new();
            r.encode_into(&mut buf);
            assert_eq!(buf.len(), r.frame_len());
            assert_eq!(decode_frame(&buf), Ok((Frame::Record(r), buf.len())));
        }
    }

    #[test]
    fn nominal_length_counts_the_missing_body() {
        let r = Record::Insert {
            id: MessageId(1),
            size: 1000,
            body: vec![],
        };
        assert_eq!(r.nominal_len(), r.frame_len() as u64 + 1000);
    }
}
