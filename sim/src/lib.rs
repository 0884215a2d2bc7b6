//! The CCR simulator: the real CCR logic (`ccr-core`'s state machines, driven by its async
//! host) on simulated machines, networks, disks and clocks, under madsim, reproducible from a
//! seed.
//!
//! Rooms: `net` (the two networks and their faults), `clock` (machine clocks), `world`
//! (machines, processes, the hub machine with the witness, fault application), `observer`
//! (trace, trace hash and the invariant checkers; `truth`, `restart_watch`,
//! `idle_roll_watch` and `takeover_watch` judge from what the world recorded), `scenario` (workload, config,
//! fault schedule, expectations; the built-ins), `run` (one seed of one scenario, end to
//! end).
//! Everything but `scenario` needs the madsim runtime: build with `--cfg madsim`
//! (`cargo xtask sim`).

pub mod file;
pub mod guide;
pub mod idle_roll_watch;
pub mod knobs;
pub mod restart_watch;
pub mod scenario;
pub mod strategy;
pub mod swarm;
pub mod takeover_watch;
pub mod topology;
#[cfg(madsim)]
pub mod truth;

#[cfg(madsim)]
pub mod bench;
#[cfg(madsim)]
pub mod budget;
#[cfg(madsim)]
pub mod clock;
#[cfg(madsim)]
pub mod disk;
#[cfg(madsim)]
pub mod net;
#[cfg(madsim)]
pub mod observer;
#[cfg(madsim)]
pub mod run;
#[cfg(madsim)]
pub mod shrink;
#[cfg(madsim)]
pub mod sweep;
#[cfg(madsim)]
pub mod world;

#[cfg(madsim)]
pub use runtime::{run_seeded, try_run_seeded};

#[cfg(madsim)]
mod runtime {
    use std::future::Future;

    /// Runs `make()`'s future in a fresh madsim runtime seeded with `seed`, on a fresh thread:
    /// madsim keeps per-thread state, so sharing a thread between runs would leak it.
    pub fn run_seeded<F, Fut, T>(seed: u64, make: F) -> T
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
        T: Send + 'static,
    {
        try_run_seeded(seed, make).unwrap_or_else(|p| std::panic::resume_unwind(p))
    }

    /// [`run_seeded`], handing back what the simulation unwound with instead of unwinding.
    pub fn try_run_seeded<F, Fut, T>(seed: u64, make: F) -> Result<T, Box<dyn std::any::Any + Send>>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
        T: Send + 'static,
    {
        std::thread::spawn(move || {
            let runtime =
                madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
            runtime.block_on(make())
        })
        .join()
    }
}
