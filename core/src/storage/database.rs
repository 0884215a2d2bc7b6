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
use crate::disk::{replace_atomically, DiskOp};

/// What the database keeps about one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageMeta {
    pub size: u32,
    pub body_crc: u32,
}

impl MessageMeta {
    pub fn of(size: u32, body: &[u8]) -> MessageMeta {
        MessageMeta {
            size,
            body_crc: crc32c::crc32c(body),
        }
    }
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
                let meta = MessageMeta::of(*size, body);
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
    /// Changes that reached `durable` since the database file was last written.
    delta: Delta,
    /// Bytes of the database file (0: there is none yet, the next write is a snapshot) and of
    /// its snapshot part; deltas are appended until they outgrow the snapshot.
    file_bytes: u64,
    snapshot_bytes: u64,
    /// The checkpoint the database file records.
    file_checkpoint: Generation,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Delta {
    inserted: BTreeMap<MessageId, MessageMeta>,
    deleted: std::collections::BTreeSet<MessageId>,
}

impl Delta {
    fn is_empty(&self) -> bool {
        self.inserted.is_empty() && self.deleted.is_empty()
    }
}

// The database file: magic, then frames `len u32 | crc32c(payload) u32 | payload`. The first
// frame is a snapshot (the whole durable content at a checkpoint); each later frame is a delta
// that moves the checkpoint forward. Writing a checkpoint appends one delta and syncs — the
// file is never rewritten in place, and a torn last frame only loses that checkpoint (the
// logs after the previous one are still there to replay).
const IMAGE_MAGIC: &[u8; 8] = b"CCREDB02";
const IMAGE_ENTRY: usize = 16;
const FRAME_SNAPSHOT: u8 = 1;
const FRAME_DELTA: u8 = 2;

impl Database {
    pub fn new(llr_depth: u32) -> Database {
        Database {
            llr_depth,
            durable: Content::default(),
            checkpoint: 0,
            held_back: VecDeque::new(),
            partial: Vec::new(),
            current: Content::default(),
            delta: Delta::default(),
            file_bytes: 0,
            snapshot_bytes: 0,
            file_checkpoint: 0,
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

    /// The checkpoint the database file records once the writes `persist_ops` returned have
    /// been carried out.
    pub fn file_checkpoint(&self) -> Generation {
        self.file_checkpoint
    }

    pub fn llr_depth(&self) -> u32 {
        self.llr_depth
    }

    pub fn digest(&self) -> Digest {
        Digest(self.current.digest)
    }

    /// The digest of what the database file holds (the durable content).
    pub fn durable_digest(&self) -> Digest {
        Digest(self.durable.digest)
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

    /// Whether `id` was inserted by a record of the generation still being written.
    pub fn in_open_generation(&self, id: MessageId) -> bool {
        self.partial
            .iter()
            .any(|r| matches!(r, Record::Insert { id: i, .. } if *i == id))
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

    pub fn messages(&self) -> impl Iterator<Item = (MessageId, MessageMeta)> + '_ {
        self.current.messages.iter().map(|(id, meta)| (*id, *meta))
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
                match r {
                    Record::Insert { id, .. } => {
                        if let Some(meta) = self.durable.messages.get(id) {
                            self.delta.deleted.remove(id);
                            self.delta.inserted.insert(*id, *meta);
                        }
                    }
                    Record::Delete { id } => {
                        if self.delta.inserted.remove(id).is_none() {
                            self.delta.deleted.insert(*id);
                        }
                    }
                }
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

    /// Forgets the newest `count` records of the open generation: accepted, never written to
    /// its log (a store that stopped serving before its next append).
    pub fn forget_unwritten(&mut self, count: usize) {
        if count == 0 {
            return;
        }
        self.partial
            .truncate(self.partial.len().saturating_sub(count));
        self.current = self.durable.clone();
        for (_, records) in &self.held_back {
            for r in records {
                self.current.apply(r);
            }
        }
        for r in &self.partial {
            self.current.apply(r);
        }
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

    /// A complete database file: a snapshot of the durable content at the checkpoint.
    pub fn image(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.durable.messages.len() * IMAGE_ENTRY);
        out.extend_from_slice(IMAGE_MAGIC);
        let mut payload = Vec::with_capacity(13 + self.durable.messages.len() * IMAGE_ENTRY);
        payload.push(FRAME_SNAPSHOT);
        payload.extend_from_slice(&self.checkpoint.to_le_bytes());
        payload.extend_from_slice(&(self.durable.messages.len() as u64).to_le_bytes());
        for (id, meta) in &self.durable.messages {
            put_entry(&mut payload, *id, *meta);
        }
        put_frame(&mut out, &payload);
        out
    }

    /// Writes that bring the database file at `path` up to the checkpoint: one appended delta
    /// (and a sync), or — when there is no file yet or the deltas have outgrown the snapshot —
    /// a new snapshot that replaces the file atomically.
    pub fn persist_ops(&mut self, path: &str) -> Vec<DiskOp> {
        let delta_bytes = self.file_bytes.saturating_sub(self.snapshot_bytes);
        if self.file_bytes == 0 || delta_bytes > self.snapshot_bytes.max(64 * 1024) {
            let image = self.image();
            self.file_bytes = image.len() as u64;
            self.snapshot_bytes = self.file_bytes;
            self.file_checkpoint = self.checkpoint;
            self.delta = Delta::default();
            return replace_atomically(path, &format!("{path}.tmp"), image);
        }
        if self.delta.is_empty() && self.file_checkpoint == self.checkpoint {
            return Vec::new();
        }
        self.file_checkpoint = self.checkpoint;
        let delta = std::mem::take(&mut self.delta);
        let mut payload =
            Vec::with_capacity(21 + delta.inserted.len() * IMAGE_ENTRY + delta.deleted.len() * 8);
        payload.push(FRAME_DELTA);
        payload.extend_from_slice(&self.checkpoint.to_le_bytes());
        payload.extend_from_slice(&(delta.inserted.len() as u64).to_le_bytes());
        for (id, meta) in &delta.inserted {
            put_entry(&mut payload, *id, *meta);
        }
        payload.extend_from_slice(&(delta.deleted.len() as u64).to_le_bytes());
        for id in &delta.deleted {
            payload.extend_from_slice(&id.0.to_le_bytes());
        }
        let mut frame = Vec::with_capacity(payload.len() + 8);
        put_frame(&mut frame, &payload);
        self.file_bytes += frame.len() as u64;
        vec![
            DiskOp::Append {
                path: path.to_string(),
                data: frame,
            },
            DiskOp::Sync {
                path: path.to_string(),
            },
        ]
    }

    /// A write from `persist_ops` failed: the file may hold neither the old nor the new state
    /// the deltas assume, so the next persist writes a whole snapshot (replacing the file
    /// atomically) instead of appending a delta to a file whose content is not known.
    pub fn persist_failed(&mut self) {
        self.file_bytes = 0;
        self.snapshot_bytes = 0;
    }

    /// Loads a database file; logs after its checkpoint must then be replayed. A torn last
    /// frame (a checkpoint write cut by a crash) is ignored; anything else damaged is an error.
    pub fn from_image(bytes: &[u8], llr_depth: u32) -> Result<Database, DbError> {
        if bytes.len() < IMAGE_MAGIC.len() || &bytes[..IMAGE_MAGIC.len()] != IMAGE_MAGIC {
            return Err(DbError::BadImage("not a CCR database file"));
        }
        let mut at = IMAGE_MAGIC.len();
        let mut content: Option<Content> = None;
        let mut checkpoint = 0;
        let mut snapshot_bytes = 0;
        while at < bytes.len() {
            let Some(payload) = read_frame(&bytes[at..]) else {
                // Torn or damaged: acceptable only as the very last frame.
                if (at + 1..bytes.len()).any(|p| read_frame(&bytes[p..]).is_some()) {
                    return Err(DbError::BadImage(
                        "a damaged frame is followed by valid ones",
                    ));
                }
                break;
            };
            let frame_len = 8 + payload.len();
            let mut r = Reader(payload);
            let kind = r.u8()?;
            let at_checkpoint = r.u32()?;
            match (kind, content.as_mut()) {
                (FRAME_SNAPSHOT, None) => {
                    let mut c = Content::default();
                    for _ in 0..r.u64()? {
                        let (id, meta) = r.entry()?;
                        if c.messages.insert(id, meta).is_some() {
                            return Err(DbError::BadImage("duplicate message id"));
                        }
                        c.digest = c.digest.wrapping_add(entry_hash(id, meta));
                    }
                    content = Some(c);
                    snapshot_bytes = (at + frame_len) as u64;
                }
                (FRAME_DELTA, Some(c)) => {
                    if at_checkpoint < checkpoint {
                        return Err(DbError::BadImage("checkpoint moves backwards"));
                    }
                    for _ in 0..r.u64()? {
                        let (id, meta) = r.entry()?;
                        if let Some(old) = c.messages.insert(id, meta) {
                            c.digest = c.digest.wrapping_sub(entry_hash(id, old));
                        }
                        c.digest = c.digest.wrapping_add(entry_hash(id, meta));
                    }
                    for _ in 0..r.u64()? {
                        let id = MessageId(r.u64()?);
                        if let Some(old) = c.messages.remove(&id) {
                            c.digest = c.digest.wrapping_sub(entry_hash(id, old));
                        }
                    }
                }
                _ => return Err(DbError::BadImage("frames out of order")),
            }
            if !r.0.is_empty() {
                return Err(DbError::BadImage("frame longer than its entries"));
            }
            checkpoint = at_checkpoint;
            at += frame_len;
        }
        let content = content.ok_or(DbError::BadImage("no snapshot"))?;
        // A torn tail (a checkpoint write a power loss cut) stays in the file: appending the
        // next delta after it would leave a damaged frame followed by valid ones, which no
        // later load accepts. So the next persist writes a whole snapshot instead.
        let torn = at < bytes.len();
        let (file_bytes, snapshot_bytes) = if torn {
            (0, 0)
        } else {
            (at as u64, snapshot_bytes)
        };
        Ok(Database {
            llr_depth,
            durable: content.clone(),
            checkpoint,
            held_back: VecDeque::new(),
            partial: Vec::new(),
            current: content,
            delta: Delta::default(),
            file_bytes,
            snapshot_bytes,
            file_checkpoint: checkpoint,
        })
    }
}

fn put_entry(out: &mut Vec<u8>, id: MessageId, meta: MessageMeta) {
    out.extend_from_slice(&id.0.to_le_bytes());
    out.extend_from_slice(&meta.size.to_le_bytes());
    out.extend_from_slice(&meta.body_crc.to_le_bytes());
}

fn put_frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// The payload of the frame at the start of `bytes`, if it is whole and intact.
fn read_frame(bytes: &[u8]) -> Option<&[u8]> {
    let len = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    let payload = bytes.get(8..8usize.checked_add(len)?)?;
    (crc32c::crc32c(payload) == crc && !payload.is_empty()).then_some(payload)
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DbError> {
        if self.0.len() < n {
            return Err(DbError::BadImage("frame shorter than its entries"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, DbError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, DbError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn u64(&mut self) -> Result<u64, DbError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    fn entry(&mut self) -> Result<(MessageId, MessageMeta), DbError> {
        let id = MessageId(self.u64()?);
        let size = self.u32()?;
        let body_crc = self.u32()?;
        Ok((id, MessageMeta { size, body_crc }))
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
    fn unwritten_records_of_the_open_generation_can_be_forgotten() {
        let mut db = Database::new(2);
        db.apply_log(1, &[ins(1)]).unwrap();
        for id in 2..=4 {
            db.apply_record(2, ins(id)).unwrap();
        }
        let written = {
            let mut w = Database::new(2);
            w.apply_log(1, &[ins(1)]).unwrap();
            w.apply_record(2, ins(2)).unwrap();
            w
        };
        db.forget_unwritten(2);
        assert!(db.contains(MessageId(2)) && !db.contains(MessageId(3)));
        assert_eq!(db.digest(), written.digest());
        // The generation completes with what was written only.
        db.complete_generation(2).unwrap();
        assert_eq!(db.len(), 2);
        db.forget_unwritten(0);
        assert_eq!(db.len(), 2);
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
    fn a_file_with_a_torn_tail_is_replaced_whole_never_appended_to() {
        let mut db = Database::new(0);
        let mut file = Vec::new();
        for g in 1..=3 {
            db.apply_log(g, &[ins(u64::from(g))]).unwrap();
            for op in db.persist_ops("db/mailbox.edb") {
                if let DiskOp::Append { data, .. } = op {
                    file.extend_from_slice(&data);
                }
            }
            if g == 1 {
                file = db.image();
            }
        }
        // A power loss cut the last delta halfway.
        file.truncate(file.len() - 5);
        let mut loaded = Database::from_image(&file, 0).unwrap();
        assert_eq!(loaded.checkpoint(), 2);
        loaded.apply_log(3, &[ins(3)]).unwrap();
        let ops = loaded.persist_ops("db/mailbox.edb");
        assert!(
            matches!(ops.last(), Some(DiskOp::Rename { .. })),
            "a delta appended after a torn frame would make the file unreadable: {ops:?}"
        );
    }

    #[test]
    fn damaged_image_is_refused() {
        let mut db = Database::new(0);
        db.apply_log(1, &[ins(1)]).unwrap();
        let mut image = db.image();
        image[21] ^= 1;
        assert!(
            Database::from_image(&image, 0).is_err(),
            "a damaged snapshot"
        );
        assert!(Database::from_image(b"short", 0).is_err());
    }

    #[test]
    fn the_file_grows_by_deltas_and_reloads_to_the_same_content() {
        use crate::disk::{execute_all, Disk, MemDisk, Tear};
        let mut disk = MemDisk::default();
        let mut db = Database::new(1);
        let mut g = 0;
        for round in 0..40u64 {
            g += 1;
            db.apply_log(
                g,
                &[
                    ins(round),
                    Record::Delete {
                        id: MessageId(round / 2),
                    },
                ],
            )
            .unwrap();
            let ops = db.persist_ops("db");
            execute_all(&mut disk, &ops).unwrap();
            let loaded = Database::from_image(&disk.read("db").unwrap().value, 1).unwrap();
            assert_eq!(loaded.checkpoint(), db.checkpoint());
            assert_eq!(loaded.digest(), db.clone().durable_digest());
        }
        // A delta torn by a crash loses only that checkpoint.
        g += 1;
        db.apply_log(g, &[ins(1_000)]).unwrap();
        let before = db.checkpoint();
        g += 1;
        db.apply_log(g, &[ins(1_001)]).unwrap();
        let ops = db.persist_ops("db");
        let (head, tail) = ops.split_at(1);
        execute_all(&mut disk, head).unwrap();
        let _ = tail;
        disk.crash(Tear::Clean);
        let loaded = Database::from_image(&disk.read("db").unwrap().value, 1).unwrap();
        assert!(loaded.checkpoint() < before + 1);
    }
}
