//! The CCR simulator. It grows with the simulator issue: simulated machines, networks, disks and
//! clocks under madsim, fault schedules, workload, checkers and the `ccr-sim` runner.
//!
//! What is here now is the runtime seam the simulator stands on: [`run_seeded`] runs a future
//! on a fresh thread in madsim's deterministic runtime (under `--cfg madsim`), so every
//! simulation is reproducible from its seed.

#[cfg(madsim)]
pub use runtime::run_seeded;

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
        std::thread::spawn(move || {
            let runtime =
                madsim::runtime::Runtime::with_seed_and_config(seed, madsim::Config::default());
            runtime.block_on(make())
        })
        .join()
        .expect("simulation thread panicked")
    }
}
