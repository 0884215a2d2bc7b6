//! The simulator's benchmarks, behind `ccr-sim bench` (`cargo xtask bench` runs them beside
//! the real binary's and writes `BENCHMARKS.md`). Every figure is measured on the machine and
//! build that runs it; each one is a JSON line naming its benchmark, so the caller can read
//! them as they come.
//!
//! Benchmarks time behaviour; they assert nothing but that the run they time did what it
//! should (the standard workload passes, the planted failure fails), so a figure is never
//! taken from a broken run.

use std::time::{Duration, Instant};

use ccr_core::cluster::NodeId;
use serde_json::{json, Value};

use crate::observer::Invariant;
use crate::run::{run, run_measured};
use crate::scenario::{Expect, Fault, Planted, Scenario, Step, Workload};
use crate::shrink::shrink;
use crate::swarm::{Family, Swarm};
use crate::sweep::{sweep, SweepOptions};
use crate::world::Work;

pub const ALL: &[&str] = &[
    "compression",
    "overhead",
    "seeds",
    "replay",
    "shrink",
    "catch",
    "guided",
];

/// The coverage rows the guided-versus-unguided comparison counts, fixed before it was first
/// run: the five rarest outcome rows of the 10,000-seed unguided sweep of generator 3 (stuck
/// runs aside; fault-kind rows left out).
pub const GUIDED_ROWS: [&str; 5] = [
    "mount reported more logs lost than the disks show",
    "loss excused by the dumpster's limits",
    "torn open-log tail cut at boot",
    "power loss tore an unsynced write",
    "mount short of what the wire had told (dial blind spot)",
];

#[derive(Debug, Clone)]
pub struct Options {
    /// Which benchmarks (names from [`ALL`]).
    pub only: Vec<String>,
    /// Ten-minute swarm seeds for the seeds-per-hour figure.
    pub seeds: u64,
    /// Parallel runs for the seeds-per-hour and time-to-catch figures (all cores by default).
    pub jobs: usize,
    /// At most this many swarm seeds per planted bug for the time-to-catch figures.
    pub catch_max: u64,
    /// Seeds per range and mode for the guided comparison.
    pub guided_seeds: u64,
}

/// Every bug the repository can plant, by name: what the time-to-catch figures sweep for.
pub fn planted_bugs() -> Vec<(&'static str, Planted)> {
    use ccr_core::cluster::node::PlantedBugs;
    let node = |bugs: PlantedBugs| Planted {
        nodes: bugs,
        ..Planted::default()
    };
    let none = PlantedBugs::default;
    vec![
        (
            "ignore_mount_dial",
            node(PlantedBugs {
                ignore_mount_dial: true,
                ..none()
            }),
        ),
        (
            "ignore_mount_dial_quietly",
            node(PlantedBugs {
                ignore_mount_dial_quietly: true,
                ..none()
            }),
        ),
        (
            "report_no_loss",
            node(PlantedBugs {
                report_no_loss: true,
                ..none()
            }),
        ),
        (
            "skip_takeover_guard",
            node(PlantedBugs {
                skip_takeover_guard: true,
                ..none()
            }),
        ),
        (
            "skip_redelivery",
            node(PlantedBugs {
                skip_redelivery: true,
                ..none()
            }),
        ),
        (
            "lossy_replay",
            node(PlantedBugs {
                lossy_replay: true,
                ..none()
            }),
        ),
        (
            "move_one_log_short",
            node(PlantedBugs {
                move_one_log_short: true,
                ..none()
            }),
        ),
        // Judged by `restart-policy` from the restarts the world carried out: the swarm
        // catches the first where its store fails for longer than the policy's restarts, the
        // second only where failures come spaced wider than a drawn period.
        (
            "restart_forever",
            node(PlantedBugs {
                restart_forever: true,
                ..none()
            }),
        ),
        (
            "restart_count_never_expires",
            node(PlantedBugs {
                restart_count_never_expires: true,
                ..none()
            }),
        ),
        (
            "idle_roll_timer_restarts",
            node(PlantedBugs {
                idle_roll_timer_restarts: true,
                ..none()
            }),
        ),
        (
            "detect_one_heartbeat_early",
            node(PlantedBugs {
                detect_one_heartbeat_early: true,
                ..none()
            }),
        ),
        (
            "store_keeps_resubmissions",
            node(PlantedBugs {
                store_keeps_resubmissions: true,
                ..none()
            }),
        ),
        // Both bite only in the seeds that carry message bodies (one in twenty).
        (
            "store_truncates_body",
            node(PlantedBugs {
                store_truncates_body: true,
                ..none()
            }),
        ),
        (
            "replay_truncates_body",
            node(PlantedBugs {
                replay_truncates_body: true,
                ..none()
            }),
        ),
        (
            "redelivery_first_hub_only",
            node(PlantedBugs {
                redelivery_first_hub_only: true,
                ..none()
            }),
        ),
        // Bites only in the seeds where an administrator stops the server (v10: a third of
        // those with the admin family).
        (
            "takeover_ignores_stop",
            node(PlantedBugs {
                takeover_ignores_stop: true,
                ..none()
            }),
        ),
        // Bites only where a backup is taken while the passive's database lags the active's
        // (v11: backups in half the seeds).
        (
            "truncation_ignores_passive",
            node(PlantedBugs {
                truncation_ignores_passive: true,
                ..none()
            }),
        ),
        (
            "truncation_ignores_backup",
            node(PlantedBugs {
                truncation_ignores_backup: true,
                ..none()
            }),
        ),
        (
            "witness_grants_everyone",
            Planted {
                witness_grants_everyone: true,
                ..Planted::default()
            },
        ),
        (
            "hub_skips_redelivery",
            Planted {
                hub_skips_redelivery: true,
                ..Planted::default()
            },
        ),
        (
            "hub_evicts_early",
            Planted {
                hub_evicts_early: true,
                ..Planted::default()
            },
        ),
        ("no_redelivery (node and hub)", Planted::no_redelivery()),
    ]
}

/// The standard workload: one simulated hour of steady mail at 50 messages/s (20 kB each,
/// so about one 1 MB log a second), the active losing power at 30 minutes and restarting two
/// minutes later, then the usual liveness phase.
pub fn standard_workload() -> Scenario {
    Scenario {
        name: "standard-hour".into(),
        description: "One simulated hour at 50 messages/s with one failover (the benchmark \
                      workload)."
            .into(),
        duration_s: 3600,
        workload: Workload {
            messages_per_s: 50.0,
            message_size: 20_000,
            bodies: false,
        },
        steps: vec![
            Step {
                at_ms: 1_800_000,
                fault: Fault::PowerLossActive,
            },
            Step {
                at_ms: 1_920_000,
                fault: Fault::Restart {
                    node: NodeId::Node1,
                },
            },
        ],
        expect: Expect {
            failover: Some(true),
            ..Expect::default()
        },
        source: "ccr-sim bench".into(),
        ..Scenario::default()
    }
}

/// Runs the chosen benchmarks, handing each result to `emit` as it is ready.
pub fn run_all(opts: &Options, mut emit: impl FnMut(Value)) -> Result<(), String> {
    let wants = |name: &str| opts.only.is_empty() || opts.only.iter().any(|o| o == name);
    if wants("compression") || wants("overhead") {
        let (ours, work, sim_seconds) = standard_runs()?;
        if wants("compression") {
            emit(json!({
                "bench": "compression",
                "scenario": "standard-hour",
                "sim_seconds": sim_seconds,
                "wall_s": secs(ours),
                "compression": sim_seconds / secs(ours),
                "runs": 3,
            }));
        }
        if wants("overhead") {
            let bare = median(
                (0..3)
                    .map(|_| bare_madsim(work, (sim_seconds * 1000.0) as u64))
                    .collect(),
            );
            emit(json!({
                "bench": "overhead",
                "messages": work.messages,
                "wakes": work.wakes(),
                "node_steps": work.node_steps,
                "hub_wakes": work.hub_wakes,
                "postman_wakes": work.postman_wakes,
                "ours_wall_s": secs(ours),
                "bare_wall_s": secs(bare),
                "ratio": secs(ours) / secs(bare),
                "ns_per_wake_ours": ours.as_nanos() as f64 / work.wakes() as f64,
                "ns_per_wake_bare": bare.as_nanos() as f64 / work.wakes() as f64,
            }));
        }
    }
    if wants("seeds") {
        let sweep_opts = SweepOptions {
            seeds: (0, opts.seeds),
            jobs: opts.jobs,
            determinism_every: 0,
            ..SweepOptions::default()
        };
        let started = Instant::now();
        let result = sweep(&sweep_opts, |_| {});
        let took = started.elapsed();
        let failed = result.records.iter().filter(|r| !r.passed()).count();
        let sim_seconds: f64 = result.records.iter().map(|r| r.sim_seconds).sum();
        emit(json!({
            "bench": "seeds",
            "seeds": opts.seeds,
            "seed_duration_s": Swarm::default().duration_s,
            "jobs": opts.jobs,
            "wall_s": secs(took),
            "seeds_per_hour": opts.seeds as f64 / secs(took) * 3600.0,
            "sim_seconds_per_wall_second": sim_seconds / secs(took),
            "failed": failed,
        }));
    }
    if wants("catch") {
        for (bug, planted) in planted_bugs() {
            emit(time_to_catch(bug, planted, opts)?);
        }
    }
    if wants("guided") {
        for figure in guided_versus_unguided(opts) {
            emit(figure);
        }
    }
    if wants("replay") || wants("shrink") {
        let (scenario, seed, invariant) = planted_failure()?;
        if wants("replay") {
            let dir = tempfile::tempdir().map_err(|e| format!("temporary folder: {e}"))?;
            let path = dir.path().join("trace.txt");
            let started = Instant::now();
            let record = run(&scenario, seed, true);
            let trace = record.trace.unwrap_or_default();
            std::fs::write(&path, trace.join("\n"))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            let took = started.elapsed();
            if record.violation.map(|v| v.invariant) != Some(invariant) {
                return Err(format!("replay of {} did not fail again", scenario.name));
            }
            emit(json!({
                "bench": "replay",
                "scenario": scenario.name,
                "seed": seed,
                "sim_seconds": record.sim_seconds,
                "trace_lines": trace.len(),
                "wall_s": secs(took),
            }));
        }
        if wants("shrink") {
            let started = Instant::now();
            let shrunk = shrink(&scenario, seed, invariant, 400);
            let took = started.elapsed();
            emit(json!({
                "bench": "shrink",
                "scenario": scenario.name,
                "seed": seed,
                "steps_before": shrunk.steps_before,
                "steps_after": shrunk.scenario.steps.len(),
                "runs": shrunk.runs,
                "wall_s": secs(took),
            }));
        }
    }
    Ok(())
}

/// Five seed ranges, each swept unguided and guided (batches of a tenth of the range): per
/// fixed row, how many runs reached it. One figure per range and row, and the totals.
fn guided_versus_unguided(opts: &Options) -> Vec<Value> {
    let n = opts.guided_seeds.max(10);
    let reached = |result: &crate::sweep::SweepResult, row: &str| {
        result
            .records
            .iter()
            .filter(|r| r.coverage.contains_key(row))
            .count()
    };
    let mut figures = Vec::new();
    let mut totals = [(0usize, 0usize); GUIDED_ROWS.len()];
    for k in 0..5u64 {
        let seeds = (1_000_000 + k * n, 1_000_000 + (k + 1) * n);
        let base = SweepOptions {
            seeds,
            jobs: opts.jobs,
            determinism_every: 0,
            ..SweepOptions::default()
        };
        let started = Instant::now();
        let plain = sweep(&base, |_| {});
        let plain_s = secs(started.elapsed());
        let started = Instant::now();
        let guided = sweep(
            &SweepOptions {
                guided_batch: (n as usize / 10).max(1),
                ..base.clone()
            },
            |_| {},
        );
        let guided_s = secs(started.elapsed());
        for (i, row) in GUIDED_ROWS.iter().enumerate() {
            let (u, g) = (reached(&plain, row), reached(&guided, row));
            totals[i].0 += u;
            totals[i].1 += g;
            figures.push(json!({
                "bench": "guided",
                "seeds": [seeds.0, seeds.1],
                "row": row,
                "unguided": u,
                "guided": g,
                "unguided_wall_s": plain_s,
                "guided_wall_s": guided_s,
            }));
        }
    }
    for (row, (u, g)) in GUIDED_ROWS.iter().zip(totals) {
        figures.push(json!({
            "bench": "guided-total",
            "seeds_per_mode": 5 * n,
            "row": row,
            "unguided": u,
            "guided": g,
        }));
    }
    figures
}

/// Sweeps the default swarm with `planted` in batches on every core, from seed 0, until a
/// run fails: how many seeds and how much wall time finding the bug took.
fn time_to_catch(bug: &str, planted: Planted, opts: &Options) -> Result<Value, String> {
    let batch = (opts.jobs as u64 * 4).max(1);
    let started = Instant::now();
    let mut from = 0;
    while from < opts.catch_max {
        let to = (from + batch).min(opts.catch_max);
        let sweep_opts = SweepOptions {
            seeds: (from, to),
            jobs: opts.jobs,
            determinism_every: 0,
            planted,
            ..SweepOptions::default()
        };
        let result = sweep(&sweep_opts, |_| {});
        if let Some(first) = result
            .records
            .iter()
            .filter(|r| !r.passed())
            .min_by_key(|r| r.seed)
        {
            return Ok(json!({
                "bench": "catch",
                "bug": bug,
                "caught": true,
                "seed": first.seed,
                "seeds_run": to,
                "invariant": first.outcome,
                "wall_s": secs(started.elapsed()),
            }));
        }
        from = to;
    }
    Ok(json!({
        "bench": "catch",
        "bug": bug,
        "caught": false,
        "seeds_run": opts.catch_max,
        "wall_s": secs(started.elapsed()),
    }))
}

/// Three seeds of the standard workload: median wall time, the work of the median run and
/// its simulated seconds.
fn standard_runs() -> Result<(Duration, Work, f64), String> {
    let scenario = standard_workload();
    let mut runs = Vec::new();
    for seed in 1..=3 {
        let started = Instant::now();
        let (record, work) = run_measured(&scenario, seed, false);
        let took = started.elapsed();
        if let Some(v) = record.violation {
            return Err(format!(
                "the standard workload failed with seed {seed}: {}: {}",
                v.invariant.name(),
                v.message
            ));
        }
        runs.push((took, work, record.sim_seconds));
    }
    runs.sort_by_key(|r| r.0);
    Ok(runs[1])
}

/// The same work through bare madsim: four tasks (as node1, node2, the hub and the postman)
/// share `work.wakes() - work.messages` timer wakes spread over the same simulated time, and on
/// them send `work.messages` messages to four receivers whose handlers do nothing. What our
/// run costs beyond this is the CCR logic, the simulated disks and clocks, and the checkers.
pub fn bare_madsim(work: Work, sim_ms: u64) -> Duration {
    const TASKS: u64 = 4;
    let started = Instant::now();
    crate::run_seeded(0, move || async move {
        let timers = work.wakes().saturating_sub(work.messages);
        let share = |total: u64, i: u64| total / TASKS + u64::from(i < total % TASKS);
        let mut tasks = Vec::new();
        for i in 0..TASKS {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
            tasks.push(tokio::spawn(async move {
                let mut sum = 0u64;
                while let Some(x) = rx.recv().await {
                    sum = sum.wrapping_add(x);
                }
                std::hint::black_box(sum);
            }));
            let (wakes, messages) = (share(timers, i).max(1), share(work.messages, i));
            let gap = Duration::from_micros(sim_ms * 1000 / wakes);
            tasks.push(tokio::spawn(async move {
                let mut sent = 0;
                for k in 1..=wakes {
                    tokio::time::sleep(gap).await;
                    while sent < k * messages / wakes {
                        let _ = tx.send(sent);
                        sent += 1;
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
    started.elapsed()
}

/// The planted failure the replay and shrink figures use: the must-show's bug (redelivery
/// never asked for), found by a sweep of five-minute power and network seeds.
fn planted_failure() -> Result<(Scenario, u64, Invariant), String> {
    let planted = Planted::no_redelivery();
    let opts = SweepOptions {
        seeds: (0, 40),
        jobs: 1,
        determinism_every: 0,
        swarm: Swarm {
            duration_s: 300,
            families: vec![Family::Power, Family::Network],
            ..Swarm::default()
        },
        planted,
        ..SweepOptions::default()
    };
    for seed in opts.seeds() {
        let scenario = opts.scenario(seed);
        if let Some(v) = run(&scenario, seed, false).violation {
            return Ok((scenario, seed, v.invariant));
        }
    }
    Err("no seed in 0..40 fails with the planted bug".into())
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}
