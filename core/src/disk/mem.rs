//! The in-memory disk with a fault model. It belongs to a simulated machine, not to a process:
//! a process crash or a power loss is a call on it, and everything not yet synced is lost then.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};

use super::{check_path, Disk, DiskError, DiskResult, IoDone};

/// The size of a torn write's unit: a crash can leave part of the last sector garbage.
const SECTOR: usize = 512;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemDiskConfig {
    /// Bytes the disk holds; appends beyond it fail with [`DiskError::Full`].
    pub capacity: u64,
    /// Fixed cost of every operation.
    pub op_latency: Duration,
    /// Extra cost of a sync (the flush to stable media).
    pub sync_latency: Duration,
    /// Transfer rate for reads and appends.
    pub bytes_per_sec: u64,
}

impl Default for MemDiskConfig {
    fn default() -> Self {
        MemDiskConfig {
            capacity: 64 * 1024 * 1024 * 1024,
            op_latency: Duration::from_micros(50),
            sync_latency: Duration::from_millis(2),
            bytes_per_sec: 200 * 1024 * 1024,
        }
    }
}

/// How a crash treats writes that were never synced.
pub enum Tear<'a> {
    /// All of them vanish.
    Clean,
    /// Each file keeps a random prefix of its unsynced bytes, and the last sector of what it
    /// keeps may be garbage — what a power cut in the middle of a write leaves behind.
    Torn(&'a mut dyn RngCore),
}

#[derive(Debug, Clone, Default)]
struct MemFile {
    data: Vec<u8>,
    /// Bytes of `data` that survive a crash.
    synced: usize,
}

#[derive(Debug, Clone)]
pub struct MemDisk {
    config: MemDiskConfig,
    files: BTreeMap<String, MemFile>,
    used: u64,
    /// Multiplies every latency: 1 is normal, larger is a slow (gray-failing) disk.
    slowdown: u32,
}

impl Default for MemDisk {
    fn default() -> Self {
        MemDisk::new(MemDiskConfig::default())
    }
}

impl MemDisk {
    pub fn new(config: MemDiskConfig) -> MemDisk {
        MemDisk {
            config,
            files: BTreeMap::new(),
            used: 0,
            slowdown: 1,
        }
    }

    pub fn used(&self) -> u64 {
        self.used
    }

    pub fn capacity(&self) -> u64 {
        self.config.capacity
    }

    /// Changes the capacity; lowering it below what is used makes every append fail (a full
    /// disk) without touching stored data.
    pub fn set_capacity(&mut self, capacity: u64) {
        self.config.capacity = capacity;
    }

    pub fn slowdown(&self) -> u32 {
        self.slowdown
    }

    pub fn set_slowdown(&mut self, factor: u32) {
        self.slowdown = factor.max(1);
    }

    /// A process crash or power loss: every unsynced byte is lost, or torn (see [`Tear`]).
    pub fn crash(&mut self, tear: Tear<'_>) {
        let mut rng = match tear {
            Tear::Clean => None,
            Tear::Torn(rng) => Some(rng),
        };
        for file in self.files.values_mut() {
            let pending = file.data.len() - file.synced;
            if pending == 0 {
                continue;
            }
            let keep = match rng.as_deref_mut() {
                Some(rng) => rng.random_range(0..=pending),
                None => 0,
            };
            let new_len = file.synced + keep;
            self.used -= (file.data.len() - new_len) as u64;
            file.data.truncate(new_len);
            if let Some(rng) = rng.as_deref_mut() {
                if keep > 0 && rng.random_bool(0.5) {
                    // Garbage from the start of the last, partly written sector to the end of
                    // what was kept; never before the synced bytes.
                    let sector_start = (new_len - 1) / SECTOR * SECTOR;
                    let from = sector_start.max(file.synced);
                    rng.fill_bytes(&mut file.data[from..new_len]);
                }
            }
            file.synced = file.data.len();
        }
    }

    /// Flips bits of durable bytes at rest (a bad sector); the file's length is unchanged.
    pub fn corrupt(&mut self, path: &str, offset: usize, mask: u8) -> Result<(), DiskError> {
        let file = self.file_mut(path)?;
        match file.data.get_mut(offset) {
            Some(byte) => {
                *byte ^= mask.max(1);
                Ok(())
            }
            None => Err(DiskError::Io {
                path: path.to_string(),
                message: format!("offset {offset} is past the end of the file"),
            }),
        }
    }

    /// Paths of every file, sorted (for tests and reports).
    pub fn paths(&self) -> Vec<String> {
        self.files.keys().cloned().collect()
    }

    fn file_mut(&mut self, path: &str) -> Result<&mut MemFile, DiskError> {
        self.files.get_mut(path).ok_or_else(|| DiskError::NotFound {
            path: path.to_string(),
        })
    }

    fn latency(&self, bytes: usize, sync: bool) -> Duration {
        let transfer = Duration::from_nanos(
            (bytes as u128 * 1_000_000_000 / u128::from(self.config.bytes_per_sec.max(1))) as u64,
        );
        let sync = if sync {
            self.config.sync_latency
        } else {
            Duration::ZERO
        };
        (self.config.op_latency + transfer + sync) * self.slowdown
    }

    fn done<T>(&self, value: T, bytes: usize, sync: bool) -> DiskResult<T> {
        Ok(IoDone {
            value,
            latency: self.latency(bytes, sync),
        })
    }
}

impl Disk for MemDisk {
    fn create(&mut self, path: &str) -> DiskResult<()> {
        check_path(path)?;
        if let Some(old) = self.files.insert(path.to_string(), MemFile::default()) {
            self.used -= old.data.len() as u64;
        }
        self.done((), 0, false)
    }

    fn append(&mut self, path: &str, data: &[u8]) -> DiskResult<()> {
        check_path(path)?;
        let free = self.config.capacity.saturating_sub(self.used);
        if data.len() as u64 > free {
            return Err(DiskError::Full {
                path: path.to_string(),
                needed: data.len() as u64,
                free,
            });
        }
        self.file_mut(path)?.data.extend_from_slice(data);
        self.used += data.len() as u64;
        self.done((), data.len(), false)
    }

    fn sync(&mut self, path: &str) -> DiskResult<()> {
        check_path(path)?;
        let file = self.file_mut(path)?;
        let flushed = file.data.len() - file.synced;
        file.synced = file.data.len();
        self.done((), flushed, true)
    }

    fn read(&mut self, path: &str) -> DiskResult<Vec<u8>> {
        check_path(path)?;
        let data = self.file_mut(path)?.data.clone();
        let len = data.len();
        self.done(data, len, false)
    }

    fn rename(&mut self, from: &str, to: &str) -> DiskResult<()> {
        check_path(from)?;
        check_path(to)?;
        let file = self.files.remove(from).ok_or_else(|| DiskError::NotFound {
            path: from.to_string(),
        })?;
        if let Some(old) = self.files.insert(to.to_string(), file) {
            self.used -= old.data.len() as u64;
        }
        self.done((), 0, false)
    }

    fn remove(&mut self, path: &str) -> DiskResult<()> {
        check_path(path)?;
        let old = self.files.remove(path).ok_or_else(|| DiskError::NotFound {
            path: path.to_string(),
        })?;
        self.used -= old.data.len() as u64;
        self.done((), 0, false)
    }

    fn list(&mut self, dir: &str) -> DiskResult<Vec<String>> {
        check_path(dir)?;
        let prefix = format!("{dir}/");
        let names = self
            .files
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter_map(|(p, _)| {
                let name = &p[prefix.len()..];
                (!name.contains('/')).then(|| name.to_string())
            })
            .collect();
        self.done(names, 0, false)
    }
}
