//! Mail with bodies, and checking it where it is stored: the receipt a client keeps for each
//! acknowledged message, and `ccr verify --data`, which recomputes digests from the bytes in a
//! node's data directory instead of asking the node.

use std::collections::BTreeMap;
use std::path::Path;

use ccr_core::cluster::node::{DB_FILE, LOG_DIR};
use ccr_core::storage::database::Database;
use ccr_core::storage::logfile::scan;
use ccr_core::storage::names::{parse_closed_log_name, OPEN_LOG};
use ccr_core::storage::record::Record;
use ccr_core::storage::MessageId;
use sha2::{Digest, Sha256};

/// The body a client sends for message `id`: derived from the id, so a test can also tell
/// what any message should hold.
pub fn body(id: u64, size: u32) -> Vec<u8> {
    ccr_core::storage::body::generate(MessageId(id), size)
}

/// What a client keeps about a message the hub acknowledged: its size and two digests of the
/// body it sent (SHA-256 to compare with bytes found in a log; crc32c for a message only a
/// database file still holds, which keeps that checksum and not the body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    pub id: u64,
    pub size: u32,
    pub crc32c: u32,
    pub sha256: [u8; 32],
}

impl Receipt {
    pub fn of(id: u64, size: u32, body: &[u8]) -> Receipt {
        Receipt {
            id,
            size,
            crc32c: crc32c::crc32c(body),
            sha256: Sha256::digest(body).into(),
        }
    }

    /// One line of an acknowledged-mail file: `id size crc32c sha256`.
    pub fn line(&self) -> String {
        let sha: String = self.sha256.iter().map(|b| format!("{b:02x}")).collect();
        format!("{} {} {:08x} {sha}", self.id, self.size, self.crc32c)
    }

    /// Parses [`Receipt::line`]'s format; a line holding only an id (the older format) is
    /// `Ok(None)`: presence is all it can vouch for.
    pub fn parse(line: &str) -> Result<Result<Receipt, u64>, String> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let id = |s: &str| {
            s.parse::<u64>()
                .map_err(|e| format!("`{s}` is not a message id: {e}"))
        };
        match fields[..] {
            [only] => Ok(Err(id(only)?)),
            [i, size, crc, sha] => {
                let size = size
                    .parse::<u32>()
                    .map_err(|e| format!("`{size}` is not a size: {e}"))?;
                let crc32c = u32::from_str_radix(crc, 16)
                    .map_err(|e| format!("`{crc}` is not a crc32c in hex: {e}"))?;
                if sha.len() != 64 || !sha.is_ascii() {
                    return Err(format!("`{sha}` is not a SHA-256 in hex (64 digits)"));
                }
                let mut sha256 = [0u8; 32];
                for (i, b) in sha256.iter_mut().enumerate() {
                    *b = u8::from_str_radix(&sha[2 * i..2 * i + 2], 16)
                        .map_err(|e| format!("`{sha}` is not a SHA-256 in hex: {e}"))?;
                }
                Ok(Ok(Receipt {
                    id: id(i)?,
                    size,
                    crc32c,
                    sha256,
                }))
            }
            _ => Err(format!(
                "expected `ID` or `ID SIZE CRC32C SHA256`, found {} field(s)",
                fields.len()
            )),
        }
    }
}

/// Reads an acknowledged-mail file, naming the line of anything it cannot read.
pub fn read_receipts(path: &Path) -> Result<Vec<Result<Receipt, u64>>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| Receipt::parse(l).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1)))
        .collect()
}

/// How a stored message was found.
#[derive(Debug, Clone, Copy)]
struct Stored {
    size: u32,
    crc32c: u32,
    /// From a log record's bytes; `None` for a message only the database file holds.
    sha256: Option<[u8; 32]>,
}

/// What `ccr verify --data` found.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Matched on the SHA-256 of the body bytes in a log.
    pub by_bytes: usize,
    /// Matched on size and crc32c in the database file (no log holds them any more).
    pub by_checksum: usize,
    /// Present, digests not recorded (an id-only line).
    pub present_only: usize,
    pub missing: Vec<u64>,
    /// Stored, but not what the client sent: id and what differs.
    pub damaged: Vec<(u64, String)>,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.missing.is_empty() && self.damaged.is_empty()
    }
}

/// Checks acknowledged mail against a node's data directory: its database file and every
/// log, read as the node would after a restart (a torn open-log tail is left out).
pub fn verify_data_dir(dir: &Path, receipts: &[Result<Receipt, u64>]) -> Result<Verdict, String> {
    let mut stored: BTreeMap<MessageId, Stored> = BTreeMap::new();
    let db_path = dir.join(DB_FILE);
    match std::fs::read(&db_path) {
        Ok(bytes) => {
            let db = Database::from_image(&bytes, 0)
                .map_err(|e| format!("{}: {e}", db_path.display()))?;
            for (id, meta) in db.messages() {
                stored.insert(
                    id,
                    Stored {
                        size: meta.size,
                        crc32c: meta.body_crc,
                        sha256: None,
                    },
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{}: {e}", db_path.display())),
    }
    let log_dir = dir.join(LOG_DIR);
    let mut logs = Vec::new();
    for entry in std::fs::read_dir(&log_dir).map_err(|e| format!("{}: {e}", log_dir.display()))? {
        let entry = entry.map_err(|e| format!("{}: {e}", log_dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // Closed logs in generation order, then the open one.
        let order = match parse_closed_log_name(&name) {
            Some(g) => u64::from(g),
            None if name == OPEN_LOG => u64::MAX,
            None => continue,
        };
        logs.push((order, entry.path()));
    }
    logs.sort();
    for (_, path) in logs {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            // Renamed since it was listed (the open log rolled): its mail is in a closed log
            // this pass did not list, so it shows as missing and a caller may look again.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let scanned = scan(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        for record in scanned.records {
            if let Record::Insert { id, size, body } = record {
                let from_log = Stored {
                    size,
                    crc32c: crc32c::crc32c(&body),
                    sha256: Some(Sha256::digest(&body).into()),
                };
                // The first insert of an id is the one the database keeps; a log that repeats
                // what the database file holds supplies its bytes.
                let e = stored.entry(id).or_insert(from_log);
                if e.sha256.is_none() && e.size == size && e.crc32c == from_log.crc32c {
                    *e = from_log;
                }
            }
        }
    }
    let mut verdict = Verdict::default();
    for r in receipts {
        match r {
            Err(id) => match stored.get(&MessageId(*id)) {
                Some(_) => verdict.present_only += 1,
                None => verdict.missing.push(*id),
            },
            Ok(r) => match stored.get(&MessageId(r.id)) {
                None => verdict.missing.push(r.id),
                Some(s) if s.size != r.size => verdict.damaged.push((
                    r.id,
                    format!("stored {} bytes, the client sent {}", s.size, r.size),
                )),
                Some(Stored {
                    sha256: Some(sha), ..
                }) => {
                    if *sha == r.sha256 {
                        verdict.by_bytes += 1;
                    } else {
                        verdict.damaged.push((
                            r.id,
                            "the body in the log is not the one the client sent".into(),
                        ));
                    }
                }
                Some(s) => {
                    if s.crc32c == r.crc32c {
                        verdict.by_checksum += 1;
                    } else {
                        verdict.damaged.push((
                            r.id,
                            format!(
                                "the database file's body checksum {:08x} is not the client's {:08x}",
                                s.crc32c, r.crc32c
                            ),
                        ));
                    }
                }
            },
        }
    }
    Ok(verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receipt_line_reads_back_and_bad_lines_say_why() {
        let r = Receipt::of(42, 5, b"hello");
        assert_eq!(Receipt::parse(&r.line()), Ok(Ok(r)));
        assert_eq!(Receipt::parse("17"), Ok(Err(17)));
        for (line, says) in [
            ("x", "not a message id"),
            ("1 2 3", "found 3 field(s)"),
            ("1 big 0 00", "not a size"),
            ("1 2 zz 00", "crc32c"),
            ("1 2 0 abc", "64 digits"),
        ] {
            let e = Receipt::parse(line).expect_err(line);
            assert!(e.contains(says), "{line}: {e}");
        }
    }
}
