//! The mailbox database a copy replays logs into, with lost-log resilience (LLR).
//!
//! LLR is modelled the way Exchange does it: the database *file* never holds the effects of
//! the newest `llr_depth` complete generations. Those stay held back (they are still in the
//! logs), so a copy can be rolled back by up to that many generations — what a returning old
//! active needs after a lossy failover. The in-memory view, which clients and digests see,
//! includes everything applied.

use std::collections::{BTreeMap, VecDeque};

use super::record::Record;
use super::{Generation, MessageId};
use crate::disk::DiskOp;

/// What the database keeps about one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageMeta {
    pub size: u32,
    pub body_crc: u32,
}

/// An order-independent digest of a database's content, so two copies can be compared cheaply.
/// It is a sum of per-message hashes, so it updates in O(1) per insert or delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Digest(pub u128);

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn entry_hash(id: MessageId, meta: MessageMeta) -> u128 {
    let a = splitmix(id.0);
    let b = splitmix(a ^ (u64::from(meta.size) << 32 | u64::from(meta.body_crc)));
    let c = splitmix(b ^ 0xC2B2_AE3D_27D4_EB4F);
    u128::from(b) << 64 | u128::from(c)
}

/// A set of messages with its digest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Content {
    messages: BTreeMap<MessageId, MessageMeta>,
    digest: u128,
}

impl Content {
    fn apply(&mut self, record: &Record) {
        match record {
            Record::Insert { id, size, body } => {
                let meta = MessageMeta {
                    size: *size,
                    body_crc: crc32c::crc32c(body),
                };
                // The store drops duplicates by id: a second insert of an id changes nothing.
                if let std::collections::btree_map::Entry::Vacant(e) = self.messages.entry(*id) {
                    e.insert(meta);
                    self.digest = self.digest.wrapping_add(entry_hash(*id, meta));
                }
            }
            Record::Delete { id } => {
                if let Some(meta) = self.messages.remove(id) {
                    self.digest = self.digest.wrapping_sub(entry_hash(*id, meta));
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DbError {
    #[error("generation {got:#x} applied out of order: expected {expected:#x}")]
    OutOfOrder {
        expected: Generation,
        got: Generation,
    },
    #[error("cannot roll back to generation {target:#x}: the database file already holds up to {checkpoint:#x} (LLR depth exceeded)")]
    BeyondLlr {
        target: Generation,
        checkpoint: Generation,
    },
    #[error("cannot roll back to generation {target:#x}: only {applied:#x} is applied")]
    Ahead {
        target: Generation,
        applied: Generation,
    },
    #[error("database image: {0}")]
    BadImage(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    llr_depth: u32,
    /// What the database file holds: every generation up to `checkpoint`.
    durable: Content,
    checkpoint: Generation,
    /// Complete generations newer than `checkpoint`, at most `llr_depth` of them.
    held_back: VecDeque<(Generation, Vec<Record>)>,
    /// Records of the generation being written (the active's open log).
    partial: Vec<Record>,
    /// Everything applied, held back and partial included: what clients and digests see.
    current: Content,
}

const IMAGE_MAGIC: &[u8; 8] = b"CCREDB01";
const IMAGE_ENTRY: usize = 16;

impl Database {
    pub fn new(llr_depth: u32) -> Database {
        Database {
            llr_depth,
            durable: Content::default(),
            checkpoint: 0,
            held_back: VecDeque::new(),
            partial: Vec::new(),
            current: Content::default(),
        }
    }

    /// The last complete generation applied.
    pub fn applied(&self) -> Generation {
        self.checkpoint + self.held_back.len() as Generation
    }

    /// The last generation whose effects the database file holds.
    pub fn checkpoint(&self) -> Generation {
        self.checkpoint
    }

    pub fn llr_depth(&self) -> u32 {
        self.llr_depth
    }

    pub fn digest(&self) -> Digest {
        Digest(self.current.digest)
    }

    /// The digest of the complete generations only (without the open generation's records):
    /// what a passive copy at [`Self::applied`] must have.
    pub fn complete_digest(&self) -> Digest {
        let mut content = self.durable.clone();
        for (_, records) in &self.held_back {
            for r in records {
                content.apply(r);
            }
        }
        Digest(content.digest)
    }

    pub fn contains(&self, id: MessageId) -> bool {
        self.current.messages.contains_key(&id)
    }

    pub fn len(&self) -> usize {
        self.current.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.current.messages.is_empty()
    }

    pub fn message_ids(&self) -> impl Iterator<Item = MessageId> + '_ {
        self.current.messages.keys().copied()
    }

    /// Applies one record of generation `generation`, which must be the one after
    /// [`Self::applied`] (the open generation).
    pub fn apply_record(&mut self, generation: Generation, record: Record) -> Result<(), DbError> {
        self.expect_next(generation)?;
        self.current.apply(&record);
        self.partial.push(record);
        Ok(())
    }

    /// Marks generation `generation` complete (its log is closed). Generations older than the
    /// newest `llr_depth` then reach the database file.
    pub fn complete_generation(&mut self, generation: Generation) -> Result<(), DbError> {
        self.expect_next(generation)?;
        let records = std::mem::take(&mut self.partial);
        self.held_back.push_back((generation, records));
        while self.held_back.len() > self.llr_depth as usize {
            let (g, records) = self.held_back.pop_front().expect("non-empty");
            for r in &records {
                self.durable.apply(r);
            }
            self.checkpoint = g;
        }
        Ok(())
    }

    /// Replays a whole closed log.
    pub fn apply_log(&mut self, generation: Generation, records: &[Record]) -> Result<(), DbError> {
        self.expect_next(generation)?;
        for r in records {
            self.current.apply(r);
        }
        self.partial.extend_from_slice(records);
        self.complete_generation(generation)
    }

    fn expect_next(&self, generation: Generation) -> Result<(), DbError> {
        let expected = self.applied() + 1;
        if generation != expected {
            return Err(DbError::OutOfOrder {
                expected,
                got: generation,
            });
        }
        Ok(())
    }

    /// Undoes every generation after `target` (and the open generation's records). Possible only
    /// while those generations are held back by LLR.
    pub fn rollback_to(&mut self, target: Generation) -> Result<(), DbError> {
        if target < self.checkpoint {
            return Err(DbError::BeyondLlr {
                target,
                checkpoint: self.checkpoint,
            });
        }
        if target > self.applied() {
            return Err(DbError::Ahead {
                target,
                applied: self.applied(),
            });
        }
        self.held_back.truncate((target - self.checkpoint) as usize);
        self.partial.clear();
        self.current = self.durable.clone();
        for (_, records) in &self.held_back {
            for r in records {
                self.current.apply(r);
            }
        }
        Ok(())
    }

    /// The database file's bytes: the checkpoint and the durable content, checksummed.
    pub fn image(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(24 + self.durable.messages.len() * IMAGE_ENTRY);
        out.extend_from_slice(IMAGE_MAGIC);
        out.extend_from_slice(&self.checkpoint.to_le_bytes());
        out.extend_from_slice(&(self.durable.messages.len() as u64).to_le_bytes());
        for (id, meta) in &self.durable.messages {
            out.extend_from_slice(&id.0.to_le_bytes());
            out.extend_from_slice(&meta.size.to_le_bytes());
            out.extend_from_slice(&meta.body_crc.to_le_bytes());
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Writes that replace the database file at `path` atomically with [`Self::image`].
    pub fn persist_ops(&self, path: &str) -> Vec<DiskOp> {
        let tmp = format!("{path}.tmp");
        vec![
            DiskOp::Create { path: tmp.clone() },
            DiskOp::Append {
                path: tmp.clone(),
                data: self.image(),
            },
            DiskOp::Sync { path: tmp.clone() },
            DiskOp::Rename {
                from: tmp,
                to: path.to_string(),
            },
        ]
    }

    /// Loads a database file; logs after its checkpoint must then be replayed.
    pub fn from_image(bytes: &[u8], llr_depth: u32) -> Result<Database, DbError> {
        if bytes.len() < 24 || &bytes[..8] != IMAGE_MAGIC {
            return Err(DbError::BadImage("not a CCR database file"));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32c::crc32c(body) != u32::from_le_bytes(crc.try_into().expect("4")) {
            return Err(DbError::BadImage("checksum mismatch"));
        }
        let checkpoint = u32::from_le_bytes(body[8..12].try_into().expect("4"));
        let count = u64::from_le_bytes(body[12..20].try_into().expect("8"));
        let entries = &body[20..];
        if entries.len() as u64 != count.saturating_mul(IMAGE_ENTRY as u64) {
            return Err(DbError::BadImage("entry count disagrees with length"));
        }
        let mut content = Content::default();
        for e in entries.chunks_exact(IMAGE_ENTRY) {
            let id = MessageId(u64::from_le_bytes(e[0..8].try_into().expect("8")));
            let meta = MessageMeta {
                size: u32::from_le_bytes(e[8..12].try_into().expect("4")),
                body_crc: u32::from_le_bytes(e[12..16].try_into().expect("4")),
            };
            if content.messages.insert(id, meta).is_some() {
                return Err(DbError::BadImage("duplicate message id"));
            }
            content.digest = content.digest.wrapping_add(entry_hash(id, meta));
        }
        Ok(Database {
            llr_depth,
            durable: content.clone(),
            checkpoint,
            held_back: VecDeque::new(),
            partial: Vec::new(),
            current: content,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ins(id: u64) -> Record {
        Record::Insert {
            id: MessageId(id),
            size: 100,
            body: vec![],
        }
    }

    #[test]
    fn database_file_lags_by_llr_depth() {
        let mut db = Database::new(2);
        for g in 1..=5 {
            db.apply_log(g, &[ins(u64::from(g))]).unwrap();
        }
        assert_eq!(db.applied(), 5);
        assert_eq!(db.checkpoint(), 3);
        let reloaded = Database::from_image(&db.image(), 2).unwrap();
        assert_eq!(reloaded.checkpoint(), 3);
        assert_eq!(reloaded.len(), 3);
        assert!(!reloaded.contains(MessageId(4)));
    }

    #[test]
    fn rollback_within_llr_only() {
        let mut db = Database::new(2);
        for g in 1..=5 {
            db.apply_log(g, &[ins(u64::from(g))]).unwrap();
        }
        assert_eq!(
            db.rollback_to(2),
            Err(DbError::BeyondLlr {
                target: 2,
                checkpoint: 3
            })
        );
        db.rollback_to(3).unwrap();
        assert_eq!(db.applied(), 3);
        assert!(!db.contains(MessageId(4)));
        assert_eq!(
            db.apply_log(5, &[]),
            Err(DbError::OutOfOrder {
                expected: 4,
                got: 5
            })
        );
    }

    #[test]
    fn damaged_image_is_refused() {
        let mut db = Database::new(0);
        db.apply_log(1, &[ins(1)]).unwrap();
        let mut image = db.image();
        image[21] ^= 1;
        assert!(Database::from_image(&image, 0).is_err());
        assert!(Database::from_image(b"short", 0).is_err());
    }
}
