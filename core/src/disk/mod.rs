//! Storage as the core sees it: a handful of file operations, with a real implementation on
//! `std::fs` and an in-memory one with a fault model that the simulator owns per machine.
//!
//! Paths are relative, `/`-separated (`logs/E00.log`). File data written by `append` is
//! durable only after `sync`; metadata operations (`create`, `rename`, `remove`) are durable
//! when they return — the real disk fsyncs the directory to make that true.
//!
//! Every operation reports the latency it took, so a simulated host can wait for it; the real
//! disk reports zero because the call itself already took the time.

mod mem;
mod real;

pub use mem::{MemDisk, MemDiskConfig, PowerLossEffect, Tear};
pub use real::RealDisk;

use std::time::Duration;

/// The value of a completed operation and how long the disk took for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoDone<T> {
    pub value: T,
    pub latency: Duration,
}

pub type DiskResult<T> = Result<IoDone<T>, DiskError>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiskError {
    #[error("{path}: no such file")]
    NotFound { path: String },
    #[error("{path}: disk full ({needed} bytes needed, {free} free)")]
    Full {
        path: String,
        needed: u64,
        free: u64,
    },
    #[error("{path}: invalid path ({why})")]
    InvalidPath { path: String, why: &'static str },
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

/// The operations the log stream and the database need. Everything the core's host does to
/// storage goes through this trait.
pub trait Disk {
    /// Creates an empty file (truncating an existing one), creating parent folders as needed.
    fn create(&mut self, path: &str) -> DiskResult<()>;
    /// Appends to an existing file; the bytes are durable only after [`Disk::sync`].
    fn append(&mut self, path: &str, data: &[u8]) -> DiskResult<()>;
    /// Makes every byte appended to `path` so far durable.
    fn sync(&mut self, path: &str) -> DiskResult<()>;
    fn read(&mut self, path: &str) -> DiskResult<Vec<u8>>;
    /// Atomically renames `from` to `to`, replacing `to` if it exists.
    fn rename(&mut self, from: &str, to: &str) -> DiskResult<()>;
    fn remove(&mut self, path: &str) -> DiskResult<()>;
    /// Names of the files directly in `dir`, sorted; an absent folder lists as empty.
    fn list(&mut self, dir: &str) -> DiskResult<Vec<String>>;
    /// How long until the disk has finished everything issued to it so far, by anyone (a
    /// process that has since died, a boot's repairs), when it keeps such a queue: a
    /// simulated disk does; a real one has finished each call when it returns (`None`).
    fn idle_in(&self) -> Option<Duration> {
        None
    }
}

/// One storage operation as data, so that pure code can decide what to write and its host can
/// carry it out later (and a trace can record it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskOp {
    Create { path: String },
    Append { path: String, data: Vec<u8> },
    Sync { path: String },
    Rename { from: String, to: String },
    Remove { path: String },
}

impl DiskOp {
    pub fn path(&self) -> &str {
        match self {
            DiskOp::Create { path }
            | DiskOp::Append { path, .. }
            | DiskOp::Sync { path }
            | DiskOp::Remove { path } => path,
            DiskOp::Rename { from, .. } => from,
        }
    }

    pub fn execute(&self, disk: &mut dyn Disk) -> DiskResult<()> {
        match self {
            DiskOp::Create { path } => disk.create(path),
            DiskOp::Append { path, data } => disk.append(path, data),
            DiskOp::Sync { path } => disk.sync(path),
            DiskOp::Rename { from, to } => disk.rename(from, to),
            DiskOp::Remove { path } => disk.remove(path),
        }
    }
}

/// Writes that replace `path` with `data` atomically: write `staging`, sync it, rename it over
/// `path`. A crash leaves either the old file or the new one, never a mix.
pub fn replace_atomically(path: &str, staging: &str, data: Vec<u8>) -> Vec<DiskOp> {
    vec![
        DiskOp::Create {
            path: staging.to_string(),
        },
        DiskOp::Append {
            path: staging.to_string(),
            data,
        },
        DiskOp::Sync {
            path: staging.to_string(),
        },
        DiskOp::Rename {
            from: staging.to_string(),
            to: path.to_string(),
        },
    ]
}

/// Executes `ops` in order, stopping at the first error; returns the summed latency.
pub fn execute_all(disk: &mut dyn Disk, ops: &[DiskOp]) -> DiskResult<()> {
    let mut latency = Duration::ZERO;
    for op in ops {
        latency += op.execute(disk)?.latency;
    }
    Ok(IoDone { value: (), latency })
}

/// Joins a folder and a file name the way every `Disk` expects.
pub fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// Rejects paths that could escape the disk's root or name nothing.
pub(crate) fn check_path(path: &str) -> Result<(), DiskError> {
    let invalid = |why| {
        Err(DiskError::InvalidPath {
            path: path.to_string(),
            why,
        })
    };
    if path.is_empty() {
        return invalid("empty");
    }
    if path.starts_with('/') || path.contains('\\') {
        return invalid("must be relative and /-separated");
    }
    if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return invalid("empty, '.' or '..' component");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked() {
        assert!(check_path("logs/E00.log").is_ok());
        for bad in ["", "/etc/passwd", "a/../b", "a//b", "./a", "a\\b"] {
            assert!(check_path(bad).is_err(), "{bad:?} accepted");
        }
    }
}
