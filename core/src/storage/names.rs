//! Exchange's log file names: `E00.log` is the open log, closed ones are `E00` followed by the
//! generation as 8 hex digits, e.g. `E0000000A1B.log`.

use super::Generation;

/// The name of the log currently being written.
pub const OPEN_LOG: &str = "E00.log";

/// Where recovery writes a repaired open log before renaming it over `E00.log`.
pub const REPAIR_TMP: &str = "E00.tmp";

pub fn closed_log_name(generation: Generation) -> String {
    format!("E00{generation:08X}.log")
}

/// The generation named by a closed log's file name, or `None` if the name is not one.
pub fn parse_closed_log_name(name: &str) -> Option<Generation> {
    let hex = name.strip_prefix("E00")?.strip_suffix(".log")?;
    if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Generation::from_str_radix(hex, 16).ok()
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
}
