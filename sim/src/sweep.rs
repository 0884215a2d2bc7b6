//! Sweeps: many swarm seeds on parallel threads (each simulation still runs alone on its own
//! fresh thread, so every run stays deterministic), a sample rerun to compare trace hashes,
//! and each failure shrunk to a scenario file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use crate::run::{run, RunRecord, Timeline};
use crate::scenario::{Planted, Scenario};
use crate::shrink::{shrink, Shrunk};
use crate::swarm::Swarm;

#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// Half-open seed range.
    pub seeds: (u64, u64),
    pub jobs: usize,
    /// `(k, n)`: this shard runs the seeds `s` with `s % n == k` (0 ≤ k < n).
    pub shard: (u64, u64),
    /// Rerun every seed divisible by this and compare trace hashes (0: never).
    pub determinism_every: u64,
    /// Shrink each failure and write it as a scenario file into this folder.
    pub shrink_into: Option<PathBuf>,
    pub swarm: Swarm,
    /// Test-only: bugs planted in every run.
    pub planted: Planted,
    /// Guided (see [`crate::guide`]): seeds run in batches of this many, each batch's family
    /// weights drawn from what the batches before it reached. 0: unguided.
    pub guided_batch: usize,
}

impl Default for SweepOptions {
    fn default() -> Self {
        SweepOptions {
            seeds: (0, 100),
            jobs: 1,
            shard: (0, 1),
            determinism_every: 100,
            shrink_into: None,
            swarm: Swarm::default(),
            planted: Planted::default(),
            guided_batch: 0,
        }
    }
}

impl SweepOptions {
    /// The seeds this shard runs.
    pub fn seeds(&self) -> Vec<u64> {
        let (k, n) = self.shard;
        (self.seeds.0..self.seeds.1)
            .filter(|s| s % n.max(1) == k)
            .collect()
    }

    pub fn scenario(&self, seed: u64) -> Scenario {
        self.scenario_of(&self.swarm, seed)
    }

    /// Seed `seed` of `swarm` (a guided batch's), with this sweep's planted bugs.
    fn scenario_of(&self, swarm: &Swarm, seed: u64) -> Scenario {
        let mut s = swarm.generate(seed);
        s.planted = self.planted;
        s
    }
}

#[derive(Debug, Default)]
pub struct SweepResult {
    /// Every run, in seed order; passing runs without their timelines (a 10,000-seed sweep
    /// would otherwise hold gigabytes).
    pub records: Vec<RunRecord>,
    /// Seeds whose rerun gave a different trace hash.
    pub nondeterministic: Vec<u64>,
    /// Seeds rerun for the determinism sample.
    pub determinism_checked: usize,
    pub shrunk: Vec<(u64, Shrunk, PathBuf)>,
}

/// Runs the sweep; `each` sees every record as it completes (progress, `--json` lines).
pub fn sweep(opts: &SweepOptions, mut each: impl FnMut(&RunRecord)) -> SweepResult {
    let seeds = opts.seeds();
    let mut result = SweepResult::default();
    // The swarm each seed was drawn from (guided batches differ), to shrink its failures.
    let mut swarms: Vec<(u64, Swarm)> = Vec::new();
    if opts.guided_batch == 0 {
        run_seeds(opts, &opts.swarm, &seeds, &mut each, &mut result);
    } else {
        let mut guide = crate::guide::Guide::default();
        for batch in seeds.chunks(opts.guided_batch) {
            let swarm = Swarm {
                weights: guide.weights(),
                ..opts.swarm.clone()
            };
            let first = result.records.len();
            run_seeds(opts, &swarm, batch, &mut each, &mut result);
            let mut done: Vec<&RunRecord> = result.records[first..].iter().collect();
            done.sort_by_key(|r| r.seed);
            for r in done {
                guide.observe(swarm.families_of(r.seed), r.coverage.keys().cloned());
            }
            swarms.extend(batch.iter().map(|s| (*s, swarm.clone())));
        }
    }
    result.records.sort_by_key(|r| r.seed);
    result.nondeterministic.sort();
    if let Some(dir) = &opts.shrink_into {
        for r in result.records.iter().filter(|r| !r.passed()) {
            let invariant = r.violation.as_ref().expect("failed").invariant;
            let swarm = swarms
                .iter()
                .find(|(s, _)| *s == r.seed)
                .map_or(&opts.swarm, |(_, w)| w);
            let shrunk = shrink(&opts.scenario_of(swarm, r.seed), r.seed, invariant, 400);
            if let Ok(path) = write_shrunk(dir, &shrunk) {
                result.shrunk.push((r.seed, shrunk, path));
            }
        }
    }
    result
}

/// Runs `seeds` of `swarm` on `opts.jobs` threads into `result`.
fn run_seeds(
    opts: &SweepOptions,
    swarm: &Swarm,
    seeds: &[u64],
    each: &mut impl FnMut(&RunRecord),
    result: &mut SweepResult,
) {
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(RunRecord, Option<bool>)>();
    std::thread::scope(|scope| {
        for _ in 0..opts.jobs.max(1) {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&seed) = seeds.get(i) else { break };
                let scenario = opts.scenario_of(swarm, seed);
                let mut record = run(&scenario, seed, false);
                let same = (opts.determinism_every > 0 && seed % opts.determinism_every == 0)
                    .then(|| run(&scenario, seed, false).trace_hash == record.trace_hash);
                if record.passed() {
                    record.timeline = Timeline::default();
                }
                if tx.send((record, same)).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        for (record, same) in rx {
            each(&record);
            if let Some(same) = same {
                result.determinism_checked += 1;
                if !same {
                    result.nondeterministic.push(record.seed);
                }
            }
            result.records.push(record);
        }
    });
}

/// Writes a shrunk failure as `DIR/<name>.toml` and returns its path.
pub fn write_shrunk(dir: &Path, shrunk: &Shrunk) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(format!("{}.toml", shrunk.scenario.name));
    let header = format!(
        "{}\nReplay: cargo xtask sim run {} --seed {} --trace trace.txt",
        shrunk.explain(),
        path.display(),
        shrunk.seed
    );
    std::fs::write(&path, crate::file::to_toml(&shrunk.scenario, &header))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}
