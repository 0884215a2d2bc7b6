//! A simulated machine's disk: the core's `MemDisk` on the simulation's clock, so that work
//! issued to it takes time and a power loss can land inside it — between the appends of a
//! batch, before its sync finishes, or halfway through a write (torn). The host's disk queue
//! (shared with the real binary) issues a batch at once and waits for its latency; this disk
//! keeps the same queue of completion times and takes back whatever had not finished.

use std::ops::{Deref, DerefMut};

use ccr_core::disk::{Disk, DiskResult, MemDisk, PowerLossEffect};
use madsim::rand::Rng;
use rand::RngCore;

use crate::clock::Elapsed;

pub struct SimDisk {
    mem: MemDisk,
    clock: Elapsed,
}

impl SimDisk {
    /// A fresh disk on the current madsim runtime's clock, on which every log file takes
    /// at least `nominal_log_size` bytes (see `MemDiskConfig::nominal_log_size`).
    pub fn start(nominal_log_size: u64) -> SimDisk {
        SimDisk {
            mem: MemDisk::new(ccr_core::disk::MemDiskConfig {
                nominal_log_size,
                ..Default::default()
            }),
            clock: Elapsed::start(),
        }
    }

    /// Brings the disk to the simulation's now, and draws the next operation's latency tail:
    /// one operation in a hundred stalls, Pareto-distributed from 10 ms, at most 100 ms.
    fn tick(&mut self) {
        self.mem.set_now(self.clock.ns());
        let mut rng = madsim::rand::thread_rng();
        let (roll, u) = (rng.gen::<f64>(), rng.gen::<f64>());
        let extra_ms = if roll < 0.01 {
            crate::topology::pareto_ms(1.0 - u, 10, 100)
        } else {
            0
        };
        self.mem
            .set_hiccup(std::time::Duration::from_millis(extra_ms));
    }

    /// Brings the disk's clock to now without drawing anything: work that has finished
    /// stops counting as in flight, so [`MemDisk::durable`] reads what survives now.
    pub fn catch_up(&mut self) {
        self.mem.set_now(self.clock.ns());
    }

    /// The machine loses power now.
    pub fn power_loss(&mut self, rng: &mut dyn RngCore) -> PowerLossEffect {
        self.tick();
        let now = self.clock.ns();
        self.mem.power_loss(now, rng)
    }

    /// Drops the contents (the run is over).
    pub fn wipe(&mut self) {
        self.mem = MemDisk::default();
    }
}

impl Deref for SimDisk {
    type Target = MemDisk;
    fn deref(&self) -> &MemDisk {
        &self.mem
    }
}

impl DerefMut for SimDisk {
    fn deref_mut(&mut self) -> &mut MemDisk {
        &mut self.mem
    }
}

impl Disk for SimDisk {
    fn create(&mut self, path: &str) -> DiskResult<()> {
        self.tick();
        self.mem.create(path)
    }
    fn append(&mut self, path: &str, data: &[u8]) -> DiskResult<()> {
        self.tick();
        self.mem.append(path, data)
    }
    fn sync(&mut self, path: &str) -> DiskResult<()> {
        self.tick();
        self.mem.sync(path)
    }
    fn read(&mut self, path: &str) -> DiskResult<Vec<u8>> {
        self.mem.read(path)
    }
    fn rename(&mut self, from: &str, to: &str) -> DiskResult<()> {
        self.tick();
        self.mem.rename(from, to)
    }
    fn remove(&mut self, path: &str) -> DiskResult<()> {
        self.tick();
        self.mem.remove(path)
    }
    fn list(&mut self, dir: &str) -> DiskResult<Vec<String>> {
        self.mem.list(dir)
    }
    fn idle_in(&self) -> Option<std::time::Duration> {
        self.mem.idle_in()
    }
}
