//! One storage group: its transaction log stream, the inspection a passive copy applies to
//! copied logs, replay, and the mailbox database with lost-log resilience.
//!
//! Writing is split in two: pure code decides *what* to write ([`writer::LogWriter`] emits
//! [`crate::disk::DiskOp`]s), and whoever owns the disk executes it. Recovery is the same in
//! reverse: [`recovery::plan_recovery`] looks at file contents and says what the stream is and
//! which repairs to perform.

pub mod body;
pub mod database;
pub mod inspect;
pub mod logfile;
pub mod names;
pub mod record;
pub mod recovery;
pub mod replay;
pub mod writer;

use serde::{Deserialize, Serialize};

/// A log generation number. Exchange numbers them from 1 and prints them as 8 hex digits.
pub type Generation = u32;

/// Identifies one storage group's log lineage. A copied log with another signature belongs to
/// another storage group (or another lineage after a reseed from elsewhere) and is rejected.
///
/// In files it is a hex string (`"0xE2C7CC1200000001"`; TOML integers stop at 2^63), and a
/// plain integer is accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Signature(pub u64);

impl Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:#018X}", self.0).replacen("0X", "0x", 1))
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Signature, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Number(u64),
            Text(String),
        }
        match Either::deserialize(d)? {
            Either::Number(n) => Ok(Signature(n)),
            Either::Text(t) => {
                let digits = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X"));
                digits
                    .and_then(|h| u64::from_str_radix(h, 16).ok())
                    .map(Signature)
                    .ok_or_else(|| {
                        serde::de::Error::custom(format!(
                            "signature `{t}`: expected a hex number like 0xE2C7CC1200000001"
                        ))
                    })
            }
        }
    }
}

impl std::fmt::Display for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A message's unique id; the store never holds two messages with the same id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MessageId(pub u64);

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "msg-{}", self.0)
    }
}

/// Numbers of the storage group that CCR.md names as defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Nominal size of one log file; Exchange 2007 uses 1 MB logs.
    pub log_size: u64,
    /// Lost-log resilience depth: how many newest generations the database file holds back.
    pub llr_depth: u32,
    /// What replaying one log costs a mounting database: a takeover's mount first replays
    /// every log its copy had not replayed when the takeover began (its replay queue and the
    /// logs copied from the lost node), so the failover takes longer the more it must replay.
    pub replay_ms_per_log: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            log_size: 1024 * 1024,
            llr_depth: 10,
            replay_ms_per_log: 100,
        }
    }
}
