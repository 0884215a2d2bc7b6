//! The passive copy's log inspector: a copied log moves on to replay only if it is this
//! storage group's, the very next generation, chained to its predecessor and intact.

use super::logfile::{parse_closed, ClosedLog, LogError};
use super::names::parse_group_log_name;
use super::{Generation, Signature};

/// Why inspection refused a copied log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("{name}: not a closed log's name")]
    BadName { name: String },
    #[error("{name}: corrupt: {error}")]
    Corrupt { name: String, error: LogError },
    #[error("{name}: header says generation {header:#x}, the name {named:#x}")]
    NameMismatch {
        name: String,
        named: Generation,
        header: Generation,
    },
    #[error("{name}: signature {found} does not match this storage group's {expected}")]
    WrongSignature {
        name: String,
        expected: Signature,
        found: Signature,
    },
    #[error("{name}: generation {found:#x} is not the next expected one ({expected:#x})")]
    UnexpectedGeneration {
        name: String,
        expected: Generation,
        found: Generation,
    },
    #[error(
        "{name}: chain checksum {found:08x} does not match generation {prev:#x}'s {expected:08x}"
    )]
    BrokenChain {
        name: String,
        prev: Generation,
        expected: u32,
        found: u32,
    },
}

/// What the inspector knows about the copy it guards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspector {
    signature: Signature,
    /// The storage group whose logs it inspects (their names carry its prefix).
    group: u8,
    next: Generation,
    /// Checksum of generation `next - 1`; `None` when unknown (a copy seeded from a database
    /// file whose last log we never saw), in which case the chain is checked from here on.
    prev_checksum: Option<u32>,
    last_inspected_ms: Option<u64>,
}

impl Inspector {
    pub fn new(signature: Signature, next: Generation, prev_checksum: Option<u32>) -> Inspector {
        Inspector {
            signature,
            group: 0,
            next,
            prev_checksum,
            last_inspected_ms: None,
        }
    }

    /// The same inspector for storage group `group`'s logs (a new one inspects the first's).
    pub fn of_group(mut self, group: u8) -> Inspector {
        self.group = group;
        self
    }

    /// The generation the inspector accepts next.
    pub fn next_expected(&self) -> Generation {
        self.next
    }

    pub fn last_inspected(&self) -> Generation {
        self.next - 1
    }

    /// Checksum of the last inspected generation, if known.
    pub fn last_checksum(&self) -> Option<u32> {
        self.prev_checksum
    }

    /// Creation time (writer's clock) of the last inspected log.
    pub fn last_inspected_ms(&self) -> Option<u64> {
        self.last_inspected_ms
    }

    pub fn signature(&self) -> Signature {
        self.signature
    }

    /// Inspects a copied log. On success the log is the next generation and the inspector now
    /// expects the one after it; on rejection nothing changes.
    pub fn inspect(&mut self, name: &str, bytes: &[u8]) -> Result<ClosedLog, Rejection> {
        let named = parse_group_log_name(self.group, name).ok_or_else(|| Rejection::BadName {
            name: name.to_string(),
        })?;
        let log = parse_closed(bytes).map_err(|error| Rejection::Corrupt {
            name: name.to_string(),
            error,
        })?;
        let h = &log.header;
        if h.generation != named {
            return Err(Rejection::NameMismatch {
                name: name.to_string(),
                named,
                header: h.generation,
            });
        }
        if h.signature != self.signature {
            return Err(Rejection::WrongSignature {
                name: name.to_string(),
                expected: self.signature,
                found: h.signature,
            });
        }
        if h.generation != self.next {
            return Err(Rejection::UnexpectedGeneration {
                name: name.to_string(),
                expected: self.next,
                found: h.generation,
            });
        }
        if let Some(expected) = self.prev_checksum {
            if h.prev_checksum != expected {
                return Err(Rejection::BrokenChain {
                    name: name.to_string(),
                    prev: self.next - 1,
                    expected,
                    found: h.prev_checksum,
                });
            }
        }
        self.next += 1;
        self.prev_checksum = Some(log.checksum);
        self.last_inspected_ms = Some(h.created_ms);
        Ok(log)
    }
}
