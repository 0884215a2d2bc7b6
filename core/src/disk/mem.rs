//! The in-memory disk with a fault model. It belongs to a simulated machine, not to a process:
//! a process crash or a power loss is a call on it, and everything not yet synced is lost then.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};

use super::{check_path, Disk, DiskError, DiskResult, IoDone};

/// The size of a torn write's unit: a crash can leave part of the last sector garbage.
const SECTOR: usize = 512;

/// The space a file of `len` bytes at `path` takes when every `*.log` file takes at least
/// `nominal_log_size` (0: none does).
fn charge(nominal_log_size: u64, path: &str, len: usize) -> u64 {
    let len = len as u64;
    if nominal_log_size > 0 && path.ends_with(".log") {
        len.max(nominal_log_size)
    } else {
        len
    }
}

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
    /// When not zero, every `*.log` file takes at least this much space from its creation:
    /// Exchange creates each log at its full size, and a simulation whose records leave the
    /// message bodies out must still fill the log disk as a megabyte per log would.
    pub nominal_log_size: u64,
}

impl Default for MemDiskConfig {
    fn default() -> Self {
        MemDiskConfig {
            capacity: 64 * 1024 * 1024 * 1024,
            op_latency: Duration::from_micros(50),
            sync_latency: Duration::from_millis(2),
            bytes_per_sec: 200 * 1024 * 1024,
            nominal_log_size: 0,
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

/// What a mutating operation changed, so that a power loss can take back work the disk had
/// not finished: an operation's effect is applied when it is issued (the host's disk queue
/// issues whole batches at once), but it completes only after its latency.
#[derive(Debug, Clone)]
enum Undo {
    Create {
        path: String,
        prev: Option<MemFile>,
    },
    Append {
        path: String,
        len: usize,
    },
    Sync {
        path: String,
        synced: usize,
    },
    Rename {
        from: String,
        to: String,
        prev_to: Option<MemFile>,
    },
    Remove {
        path: String,
        file: MemFile,
    },
}

/// An operation still being carried out by the disk, on the timeline of [`MemDisk::set_now`]
/// (nanoseconds): it started at `start` (after everything issued before it) and ends at `end`.
#[derive(Debug, Clone)]
struct InFlight {
    start: u64,
    end: u64,
    undo: Undo,
}

/// What a power loss did to the work in flight and to the unsynced bytes (for coverage).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PowerLossEffect {
    /// Operations the disk had not finished, taken back.
    pub undone_ops: usize,
    /// Of those, syncs: their bytes were no longer durable.
    pub undone_syncs: usize,
    /// Unsynced bytes dropped.
    pub dropped_bytes: u64,
    /// Files cut inside their unsynced suffix (a prefix kept).
    pub torn_files: usize,
    /// Files whose kept tail ends in garbage (a sector written halfway).
    pub garbage_tails: usize,
}

#[derive(Debug, Clone)]
pub struct MemDisk {
    config: MemDiskConfig,
    files: BTreeMap<String, MemFile>,
    used: u64,
    /// Multiplies every latency: 1 is normal, larger is a slow (gray-failing) disk.
    slowdown: u32,
    /// Extra latency of the operations issued until it is set again (a simulated disk draws
    /// one per operation: the tail of a real disk's latency).
    hiccup: Duration,
    /// The clock of in-flight tracking, when the owner keeps one (`set_now`): operations
    /// are then queued on the disk one after another, and a power loss takes back those not
    /// finished.
    now: Option<u64>,
    busy_until: u64,
    in_flight: std::collections::VecDeque<InFlight>,
    /// Log files removed since [`MemDisk::take_removed_logs`] last emptied it: what the
    /// simulator's checkers judge truncation by (a node's word on what it deleted is not
    /// evidence).
    removed_logs: Vec<String>,
    /// Writes refused because the disk was full, since `take_refused_full`.
    refused_full: u64,
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
            hiccup: Duration::ZERO,
            now: None,
            busy_until: 0,
            in_flight: Default::default(),
            removed_logs: Vec::new(),
            refused_full: 0,
        }
    }

    /// The space a file of `len` bytes at `path` takes (see [`MemDiskConfig::nominal_log_size`]).
    fn charge(&self, path: &str, len: usize) -> u64 {
        charge(self.config.nominal_log_size, path, len)
    }

    /// Refuses (and counts) a write that needs `needed` bytes more where `freed` are given
    /// back first.
    fn make_room(&mut self, path: &str, needed: u64, freed: u64) -> Result<(), DiskError> {
        let free = self.config.capacity.saturating_sub(self.used - freed);
        if needed <= free {
            return Ok(());
        }
        self.refused_full += 1;
        Err(DiskError::Full {
            path: path.to_string(),
            needed,
            free,
        })
    }

    /// How many writes this disk refused because it was full since the last call.
    pub fn take_refused_full(&mut self) -> u64 {
        std::mem::take(&mut self.refused_full)
    }

    /// The log files removed since the last call, in order.
    pub fn take_removed_logs(&mut self) -> Vec<String> {
        std::mem::take(&mut self.removed_logs)
    }

    /// Turns on in-flight tracking and tells the disk the time (ns, any fixed origin): each
    /// mutating operation from now on starts when the ones before it have finished and takes
    /// its latency, as the host's disk queue assumes; [`MemDisk::power_loss`] takes back what
    /// had not finished by then.
    pub fn set_now(&mut self, now_ns: u64) {
        self.now = Some(now_ns);
        while self.in_flight.front().is_some_and(|op| op.end <= now_ns) {
            self.in_flight.pop_front();
        }
    }

    /// A process crash: what the operating system accepted it keeps and finishes (as after
    /// `kill -9`), so nothing in flight can be taken back any more.
    pub fn finish_in_flight(&mut self) {
        self.in_flight.clear();
    }

    /// A power loss at `now_ns`: operations not finished by then are taken back (newest
    /// first; an append already under way stays, unsynced), then every unsynced byte is torn
    /// as [`MemDisk::crash`] does.
    pub fn power_loss(&mut self, now_ns: u64, rng: &mut dyn RngCore) -> PowerLossEffect {
        let mut effect = PowerLossEffect::default();
        while let Some(op) = self.in_flight.pop_back() {
            if op.end <= now_ns {
                break;
            }
            let started = op.start < now_ns;
            if started && matches!(op.undo, Undo::Append { .. }) {
                continue;
            }
            effect.undone_ops += 1;
            if matches!(op.undo, Undo::Sync { .. }) {
                effect.undone_syncs += 1;
            }
            self.undo(op.undo);
        }
        self.in_flight.clear();
        self.busy_until = 0;
        let crash = self.crash_counted(Tear::Torn(rng));
        PowerLossEffect {
            dropped_bytes: crash.dropped_bytes,
            torn_files: crash.torn_files,
            garbage_tails: crash.garbage_tails,
            ..effect
        }
    }

    fn undo(&mut self, undo: Undo) {
        match undo {
            Undo::Create { path, prev } => {
                self.put_file(&path, prev);
            }
            Undo::Append { path, len } => {
                let cur = self.files.get(&path).map(|f| f.data.len());
                if let Some(cur) = cur.filter(|&cur| len <= cur) {
                    self.used -= self.charge(&path, cur) - self.charge(&path, len);
                    let f = self.files.get_mut(&path).expect("just read");
                    f.data.truncate(len);
                    f.synced = f.synced.min(len);
                }
            }
            Undo::Sync { path, synced } => {
                if let Some(f) = self.files.get_mut(&path) {
                    f.synced = f.synced.min(synced);
                }
            }
            Undo::Rename { from, to, prev_to } => {
                let moved = self.put_file(&to, prev_to);
                self.put_file(&from, moved);
            }
            Undo::Remove { path, file } => {
                self.put_file(&path, Some(file));
            }
        }
    }

    /// Puts `file` at `path` (or nothing), returning what was there; keeps `used` right.
    fn put_file(&mut self, path: &str, file: Option<MemFile>) -> Option<MemFile> {
        let old = match file {
            Some(f) => {
                self.used += self.charge(path, f.data.len());
                self.files.insert(path.to_string(), f)
            }
            None => self.files.remove(path),
        };
        if let Some(o) = &old {
            self.used -= self.charge(path, o.data.len());
        }
        old
    }

    /// Records an operation just carried out, when tracking is on.
    fn issued(&mut self, latency: Duration, undo: impl FnOnce() -> Undo) {
        let Some(now) = self.now else { return };
        let start = self.busy_until.max(now);
        let end = start + latency.as_nanos() as u64;
        self.busy_until = end;
        if end > now {
            self.in_flight.push_back(InFlight {
                start,
                end,
                undo: undo(),
            });
        }
    }

    /// The bytes of `path` that survive a power loss now: its synced prefix, less what a sync
    /// still in flight would give back (and, for a file whose creation or renaming onto it is
    /// still in flight, what the path held before). Ground truth for the simulator's checkers, which must not ask a node
    /// what it holds. "Now" is the last [`MemDisk::set_now`]: an owner reading the truth
    /// brings it up to date first.
    pub fn durable(&self, path: &str) -> Option<&[u8]> {
        let f = self.files.get(path)?;
        let mut synced = f.synced;
        let pending = self
            .in_flight
            .iter()
            .filter(|op| self.now.is_some_and(|now| op.end > now));
        for op in pending {
            match &op.undo {
                Undo::Sync {
                    path: p,
                    synced: before,
                } if p == path => synced = synced.min(*before),
                // Taken back, the path would hold what it held before.
                Undo::Create { path: p, prev } if p == path => {
                    return prev.as_ref().map(|f| &f.data[..f.synced])
                }
                Undo::Rename { to, prev_to, .. } if to == path => {
                    return prev_to.as_ref().map(|f| &f.data[..f.synced])
                }
                _ => {}
            }
        }
        Some(&f.data[..synced.min(f.data.len())])
    }

    /// The last name (in sort order) directly under `dir/`, without listing the folder.
    pub fn last_in(&self, dir: &str) -> Option<&str> {
        let prefix = format!("{dir}/");
        let end = format!("{dir}0"); // '0' follows '/'
        self.files
            .range(prefix.clone()..end)
            .map(|(p, _)| &p[prefix.len()..])
            .rfind(|name| !name.contains('/'))
    }

    /// Every path under `dir/` (directly), sorted, without any latency or tracking.
    pub fn names_in(&self, dir: &str) -> Vec<String> {
        let prefix = format!("{dir}/");
        self.files
            .range(prefix.clone()..)
            .take_while(|(p, _)| p.starts_with(&prefix))
            .filter_map(|(p, _)| {
                let name = &p[prefix.len()..];
                (!name.contains('/')).then(|| name.to_string())
            })
            .collect()
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

    pub fn set_hiccup(&mut self, extra: Duration) {
        self.hiccup = extra;
    }

    pub fn set_slowdown(&mut self, factor: u32) {
        self.slowdown = factor.max(1);
    }

    /// A process crash or power loss: every unsynced byte is lost, or torn (see [`Tear`]).
    pub fn crash(&mut self, tear: Tear<'_>) {
        self.crash_counted(tear);
    }

    fn crash_counted(&mut self, tear: Tear<'_>) -> PowerLossEffect {
        let mut effect = PowerLossEffect::default();
        let mut rng = match tear {
            Tear::Clean => None,
            Tear::Torn(rng) => Some(rng),
        };
        let nominal = self.config.nominal_log_size;
        for (path, file) in self.files.iter_mut() {
            let pending = file.data.len() - file.synced;
            if pending == 0 {
                continue;
            }
            let keep = match rng.as_deref_mut() {
                Some(rng) => rng.random_range(0..=pending),
                None => 0,
            };
            let new_len = file.synced + keep;
            self.used -= charge(nominal, path, file.data.len()) - charge(nominal, path, new_len);
            effect.dropped_bytes += (file.data.len() - new_len) as u64;
            if keep > 0 {
                effect.torn_files += 1;
            }
            file.data.truncate(new_len);
            if let Some(rng) = rng.as_deref_mut() {
                if keep > 0 && rng.random_bool(0.5) {
                    effect.garbage_tails += 1;
                    // Garbage from the start of the last, partly written sector to the end of
                    // what was kept; never before the synced bytes.
                    let sector_start = (new_len - 1) / SECTOR * SECTOR;
                    let from = sector_start.max(file.synced);
                    rng.fill_bytes(&mut file.data[from..new_len]);
                }
            }
            file.synced = file.data.len();
        }
        effect
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
        (self.config.op_latency + transfer + sync) * self.slowdown + self.hiccup
    }

    fn done<T>(&self, value: T, bytes: usize, sync: bool) -> DiskResult<T> {
        Ok(IoDone {
            value,
            latency: self.latency(bytes, sync),
        })
    }
}

impl Disk for MemDisk {
    fn idle_in(&self) -> Option<Duration> {
        let now = self.now?;
        Some(Duration::from_nanos(self.busy_until.saturating_sub(now)))
    }

    fn create(&mut self, path: &str) -> DiskResult<()> {
        check_path(path)?;
        let freed = self
            .files
            .get(path)
            .map_or(0, |old| self.charge(path, old.data.len()));
        let needed = self.charge(path, 0);
        self.make_room(path, needed, freed)?;
        let prev = self.files.insert(path.to_string(), MemFile::default());
        self.used = self.used - freed + needed;
        let latency = self.latency(0, false);
        self.issued(latency, || Undo::Create {
            path: path.to_string(),
            prev,
        });
        self.done((), 0, false)
    }

    fn append(&mut self, path: &str, data: &[u8]) -> DiskResult<()> {
        check_path(path)?;
        let len = self.file_mut(path)?.data.len();
        let needed = self.charge(path, len + data.len()) - self.charge(path, len);
        self.make_room(path, needed, 0)?;
        self.file_mut(path)?.data.extend_from_slice(data);
        self.used += needed;
        let latency = self.latency(data.len(), false);
        self.issued(latency, || Undo::Append {
            path: path.to_string(),
            len,
        });
        self.done((), data.len(), false)
    }

    fn sync(&mut self, path: &str) -> DiskResult<()> {
        check_path(path)?;
        let file = self.file_mut(path)?;
        let flushed = file.data.len() - file.synced;
        let synced = file.synced;
        file.synced = file.data.len();
        let latency = self.latency(flushed, true);
        self.issued(latency, || Undo::Sync {
            path: path.to_string(),
            synced,
        });
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
        self.used =
            self.used - self.charge(from, file.data.len()) + self.charge(to, file.data.len());
        let prev_to = self.files.insert(to.to_string(), file);
        if let Some(old) = &prev_to {
            self.used -= self.charge(to, old.data.len());
        }
        let latency = self.latency(0, false);
        self.issued(latency, || Undo::Rename {
            from: from.to_string(),
            to: to.to_string(),
            prev_to,
        });
        self.done((), 0, false)
    }

    fn remove(&mut self, path: &str) -> DiskResult<()> {
        check_path(path)?;
        let old = self.files.remove(path).ok_or_else(|| DiskError::NotFound {
            path: path.to_string(),
        })?;
        self.used -= self.charge(path, old.data.len());
        if path.ends_with(".log") {
            self.removed_logs.push(path.to_string());
        }
        let latency = self.latency(0, false);
        self.issued(latency, || Undo::Remove {
            path: path.to_string(),
            file: old,
        });
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(7)
    }

    #[test]
    fn log_files_take_their_nominal_size_and_removals_are_journaled() {
        let mut d = MemDisk::new(MemDiskConfig {
            capacity: 3_000,
            nominal_log_size: 1_000,
            ..Default::default()
        });
        d.create("logs/E00.log").unwrap();
        d.append("logs/E00.log", &[1; 10]).unwrap();
        assert_eq!(
            d.used(),
            1_000,
            "a log takes its nominal size from its creation"
        );
        d.create("db.edb").unwrap();
        d.append("db.edb", &[2; 500]).unwrap();
        d.rename("logs/E00.log", "logs/E0000000001.log").unwrap();
        d.create("logs/E00.log").unwrap();
        assert_eq!(d.used(), 2_500);
        // A third log does not fit; neither does growing the database past the capacity.
        assert!(matches!(
            d.create("logs/E00.tmp.log"),
            Err(DiskError::Full {
                needed: 1_000,
                free: 500,
                ..
            })
        ));
        assert!(d.append("db.edb", &[3; 501]).is_err());
        // Past its nominal size a log grows byte for byte.
        d.append("logs/E00.log", &[4; 1_200]).unwrap();
        assert_eq!(d.used(), 2_700);
        d.remove("logs/E0000000001.log").unwrap();
        d.remove("db.edb").unwrap();
        assert_eq!(d.used(), 1_200);
        assert_eq!(
            d.take_removed_logs(),
            vec!["logs/E0000000001.log".to_string()]
        );
        assert!(d.take_removed_logs().is_empty());
    }

    #[test]
    fn a_power_loss_before_a_sync_finishes_leaves_its_bytes_undurable() {
        let mut d = MemDisk::default();
        d.set_now(0);
        d.create("logs/E00.log").unwrap();
        d.append("logs/E00.log", &[1; 4096]).unwrap();
        let synced = d.sync("logs/E00.log").unwrap();
        assert!(synced.latency >= Duration::from_millis(2));
        // The sync was issued but the power goes 1 ms later, before it is done.
        let effect = d.power_loss(1_000_000, &mut rng());
        assert!(effect.undone_syncs == 1, "{effect:?}");
        // Its bytes were as unsynced as any: a random prefix survives, the rest is gone.
        let kept = d.durable("logs/E00.log").unwrap().len() as u64;
        assert_eq!(kept + effect.dropped_bytes, 4096, "{effect:?}");
    }

    #[test]
    fn durable_counts_a_sync_only_once_it_has_finished() {
        let mut d = MemDisk::default();
        d.set_now(0);
        d.create("a/f").unwrap();
        d.set_now(1_000_000_000);
        d.append("a/f", b"hello").unwrap();
        d.sync("a/f").unwrap();
        // Issued, not finished: a power loss now would take it back, so it is not durable.
        assert_eq!(d.durable("a/f"), Some(&b""[..]));
        d.set_now(2_000_000_000);
        assert_eq!(d.durable("a/f"), Some(&b"hello"[..]));
        // A file whose creation is still in flight does not survive at all.
        d.create("a/g").unwrap();
        assert_eq!(d.durable("a/g"), None);
    }

    #[test]
    fn a_power_loss_after_the_work_finished_takes_nothing_back() {
        let mut d = MemDisk::default();
        d.set_now(0);
        d.create("a/f").unwrap();
        d.append("a/f", b"hello").unwrap();
        d.sync("a/f").unwrap();
        d.set_now(1_000_000_000);
        let effect = d.power_loss(1_000_000_000, &mut rng());
        assert_eq!(effect, PowerLossEffect::default());
        assert_eq!(d.durable("a/f"), Some(&b"hello"[..]));
    }

    #[test]
    fn a_rename_queued_behind_an_unfinished_sync_is_taken_back_with_it() {
        let mut d = MemDisk::default();
        d.set_now(0);
        d.create("a/old").unwrap();
        d.append("a/old", b"old").unwrap();
        d.sync("a/old").unwrap();
        d.set_now(10_000_000_000);
        for op in crate::disk::replace_atomically("a/old", "a/tmp", b"new".to_vec()) {
            op.execute(&mut d).unwrap();
        }
        // Issued but not finished, the replacement is not durable yet.
        assert_eq!(d.durable("a/old"), Some(&b"old"[..]));
        d.power_loss(10_000_000_001, &mut rng());
        // The staging file's sync had not finished: the rename never happened.
        assert_eq!(d.durable("a/old"), Some(&b"old"[..]));
        assert_eq!(
            d.used(),
            3 + d.durable("a/tmp").map_or(0, |b| b.len() as u64)
        );
    }

    #[test]
    fn a_process_crash_keeps_what_was_issued() {
        let mut d = MemDisk::default();
        d.set_now(0);
        d.create("a/f").unwrap();
        d.append("a/f", b"hello").unwrap();
        d.sync("a/f").unwrap();
        d.finish_in_flight();
        d.power_loss(1, &mut rng());
        assert_eq!(d.durable("a/f"), Some(&b"hello"[..]));
    }
}
