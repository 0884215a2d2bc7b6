//! Exchange's log file names. Each storage group's files carry its prefix, `E00` for the first,
//! `E01` for the second and so on: `E00.log` is the open log, closed ones are the prefix
//! followed by the generation as 8 hex digits, e.g. `E0000000A1B.log`.

use crate::disk::join;

use super::Generation;

/// The first storage group's open log.
pub const OPEN_LOG: &str = "E00.log";

/// Where recovery writes the first storage group's repaired open log before renaming it over
/// `E00.log`.
pub const REPAIR_TMP: &str = "E00.tmp";

/// The first storage group's name for a closed log.
pub fn closed_log_name(generation: Generation) -> String {
    format!("E00{generation:08X}.log")
}

/// The generation named by a first storage group's closed log file name, or `None` if the
/// name is not one.
pub fn parse_closed_log_name(name: &str) -> Option<Generation> {
    parse_with_prefix("E00", name)
}

fn parse_with_prefix(prefix: &str, name: &str) -> Option<Generation> {
    let hex = name.strip_prefix(prefix)?.strip_suffix(".log")?;
    if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Generation::from_str_radix(hex, 16).ok()
}

/// The generation named by storage group `group`'s closed log file name (`E01…` for group 1).
pub fn parse_group_log_name(group: u8, name: &str) -> Option<Generation> {
    let rest = name.strip_prefix('E')?;
    let digits = rest.get(..2)?;
    if u8::from_str_radix(digits, 16).ok()? != group || digits != format!("{group:02X}") {
        return None;
    }
    parse_with_prefix(&name[..3], name)
}

/// One storage group's log stream on disk: the folder its logs live in and the prefix its
/// files carry (`E00`, `E01`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFolder {
    dir: String,
    group: u8,
    prefix: String,
}

impl LogFolder {
    /// The log folder `dir` of storage group `group` (0 for the first, prefix `E00`).
    pub fn new(dir: &str, group: u8) -> LogFolder {
        LogFolder {
            dir: dir.to_string(),
            group,
            prefix: format!("E{group:02X}"),
        }
    }

    /// The first storage group's logs in `dir`.
    pub fn first(dir: &str) -> LogFolder {
        LogFolder::new(dir, 0)
    }

    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// The storage group's number (0 for the first).
    pub fn group(&self) -> u8 {
        self.group
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The open log's file name (`E00.log`).
    pub fn open_name(&self) -> String {
        format!("{}.log", self.prefix)
    }

    /// Where recovery writes a repaired open log before renaming it over the open log.
    pub fn repair_name(&self) -> String {
        format!("{}.tmp", self.prefix)
    }

    pub fn closed_name(&self, generation: Generation) -> String {
        format!("{}{generation:08X}.log", self.prefix)
    }

    /// The generation a closed log of this stream is named for, or `None` if `name` is not
    /// one (another storage group's logs included).
    pub fn parse_closed(&self, name: &str) -> Option<Generation> {
        parse_with_prefix(&self.prefix, name)
    }

    pub fn open_path(&self) -> String {
        join(&self.dir, &self.open_name())
    }

    pub fn closed_path(&self, generation: Generation) -> String {
        join(&self.dir, &self.closed_name(generation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_exchange() {
        assert_eq!(closed_log_name(0xA1B), "E0000000A1B.log");
        assert_eq!(parse_closed_log_name("E0000000A1B.log"), Some(0xA1B));
        assert_eq!(parse_closed_log_name("e0000000a1b.log"), None);
        assert_eq!(parse_closed_log_name("E00.log"), None);
        assert_eq!(parse_closed_log_name("E000000A1B.log"), None);
        assert_eq!(parse_closed_log_name("E00+0000A1B.log"), None);
    }

    #[test]
    fn each_storage_group_has_its_prefix() {
        let second = LogFolder::new("logs", 1);
        assert_eq!(second.open_path(), "logs/E01.log");
        assert_eq!(second.closed_path(0xA1B), "logs/E0100000A1B.log");
        assert_eq!(second.parse_closed("E0100000A1B.log"), Some(0xA1B));
        assert_eq!(second.parse_closed("E0000000A1B.log"), None);
        assert_eq!(parse_group_log_name(1, "E0100000A1B.log"), Some(0xA1B));
        assert_eq!(parse_group_log_name(1, "E0000000A1B.log"), None);
        assert_eq!(parse_group_log_name(10, "E0a00000A1B.log"), None);
        assert_eq!(parse_group_log_name(10, "E0A00000A1B.log"), Some(0xA1B));
        assert_eq!(parse_group_log_name(0, "E0"), None);
        let first = LogFolder::first("logs");
        assert_eq!(first.open_name(), OPEN_LOG);
        assert_eq!(first.repair_name(), REPAIR_TMP);
        assert_eq!(first.closed_name(7), closed_log_name(7));
    }
}
