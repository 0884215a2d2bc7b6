//! Running one scenario with one seed: the world, the workload, the schedule, the liveness
//! phase and the end-of-run checks, all inside madsim on a fresh thread.

use std::sync::Arc;
use std::time::Duration;

use ccr_core::cluster::NodeId;
use ccr_core::storage::MessageId;

use crate::observer::{Invariant, Obs};
use crate::scenario::Scenario;
use crate::world::{Work, World};

pub use ccr_reports::record::{Failover, Mount, RunRecord, Timeline};

/// Runs `scenario` with `seed` on a fresh thread under madsim. `full_trace` keeps every trace
/// line (for `--trace`); the hash covers them either way.
pub fn run(scenario: &Scenario, seed: u64, full_trace: bool) -> RunRecord {
    run_measured(scenario, seed, full_trace).0
}

/// [`run`], also returning the runtime work the run did (for the benchmarks).
pub fn run_measured(scenario: &Scenario, seed: u64, full_trace: bool) -> (RunRecord, Work) {
    let started = std::time::Instant::now();
    let s = scenario.clone();
    let (mut record, work) = crate::run_seeded(seed, move || simulate(s, seed, full_trace));
    record.wall_ms = started.elapsed().as_millis() as u64;
    (record, work)
}

async fn simulate(scenario: Scenario, seed: u64, full_trace: bool) -> (RunRecord, Work) {
    let obs = Arc::new(Obs::new(
        &scenario.cluster,
        scenario.expect.clone(),
        full_trace,
    ));
    let world = Arc::new(World::new(&scenario, obs.clone()));
    let end = Duration::from_secs(scenario.duration_s);

    let mut steps = scenario.steps.clone();
    steps.sort_by_key(|s| s.at_ms);
    let mut steps = steps.into_iter().peekable();
    let mut t = 0u64;
    let mut samples = vec![sample(&world, &obs)];
    let mut liveness_from_s = None;
    while t < end.as_millis() as u64 && obs.violation().is_none() {
        t += 1000;
        tokio::time::sleep_until(start_plus(&obs, t)).await;
        while let Some(step) = steps.next_if(|s| s.at_ms <= obs.elapsed_ms()) {
            world.apply(&step.fault);
        }
        obs.check_overdue();
        world.retry_failed_starts(t / 1000);
        samples.push(sample(&world, &obs));
    }
    let submitted = world.submitted();

    if obs.violation().is_none() {
        obs.stop_failover_clock();
        world.heal_everything();
        liveness_from_s = Some(obs.elapsed_ms() as f64 / 1000.0);
        let settle = obs.elapsed_ms() + scenario.settle_s * 1000;
        while obs.elapsed_ms() < settle && obs.violation().is_none() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            world.retry_failed_starts(obs.elapsed_ms() / 1000);
            world.operator_actions(obs.elapsed_ms() / 1000);
            samples.push(sample(&world, &obs));
        }
    }
    let (acked, lost) = if obs.violation().is_none() {
        final_checks(&world, &obs)
    } else {
        (obs.acked_ids().len(), 0)
    };
    if obs.violation().is_none() {
        check_expectations(&scenario.expect, &obs, world.serving(), &samples);
    }
    obs.trace(
        "world",
        &format!("end: {submitted} submitted, {acked} acknowledged, {lost} lost"),
    );
    let final_state = describe_end(&world);
    let work = world.work();
    world.teardown();
    // Let the aborted tasks be dropped (with what they hold) before the runtime ends.
    tokio::time::sleep(Duration::from_millis(1)).await;
    let violation = obs.violation();
    let record = RunRecord {
        scenario: scenario.name.clone(),
        source: scenario.source.clone(),
        seed,
        outcome: violation
            .as_ref()
            .map_or("pass".to_string(), |v| v.invariant.name().to_string()),
        trace_hash: format!("{:016x}", obs.hash()),
        sim_seconds: obs.elapsed_ms() as f64 / 1000.0,
        wall_ms: 0,
        failovers: obs
            .failovers()
            .into_iter()
            .map(|duration_s| Failover { duration_s })
            .collect(),
        acked,
        lost,
        lost_beyond_dumpster: obs.seen("lost-beyond-dumpster") as usize,
        duplicated: obs.duplicated(),
        violation,
        mounts: obs
            .mounts()
            .into_iter()
            .map(|(at, node, lost)| Mount {
                at_s: at as f64 / 1000.0,
                node: node.to_string(),
                lost,
            })
            .collect(),
        final_state,
        timeline: Timeline {
            machines: ["node1", "node2", "hub", "clients"]
                .map(String::from)
                .to_vec(),
            samples,
            steps: obs.steps(),
            failover_windows: obs.failover_windows(),
            liveness_from_s,
        },
        trace: obs.full_trace(),
    };
    (record, work)
}

fn sample(world: &World, obs: &Obs) -> ccr_reports::record::Sample {
    world.sample(obs.elapsed_ms() as f64 / 1000.0, obs.acked_count() as u64)
}

fn describe_end(world: &World) -> String {
    let serving = world
        .serving()
        .map_or("nobody serves".to_string(), |n| format!("{n} serves"));
    let passive = world
        .serving()
        .and_then(|n| world.node(n.peer()))
        .map(|p| {
            let s = p.lock().expect("node").copy_status();
            format!(
                "{} copy {:?}, copy queue {}, replay queue {}",
                s.node, s.summary, s.copy_queue_length, s.replay_queue_length
            )
        })
        .unwrap_or_else(|| "no passive".to_string());
    format!("{serving}; {passive}")
}

/// What the scenario said would happen, beyond the always-on invariants.
fn check_expectations(
    expect: &crate::scenario::Expect,
    obs: &Obs,
    serving: Option<NodeId>,
    samples: &[ccr_reports::record::Sample],
) {
    if let Some(wanted) = expect.ends_on {
        if serving != Some(wanted) {
            obs.violate(
                Invariant::Expectation,
                format!(
                    "expected {wanted} to serve at the end; {}",
                    serving.map_or("nobody does".into(), |n| format!("{n} does"))
                ),
            );
        }
    }
    if let Some(max) = expect.outage_max_s {
        let longest = longest_outage_s(samples);
        if longest > max {
            obs.violate(
                Invariant::Expectation,
                format!("clients were without service for {longest:.0} s at a stretch; at most {max:.0} s expected"),
            );
        }
    }
    if expect.failover == Some(true) && obs.failovers().is_empty() {
        obs.violate(
            Invariant::Expectation,
            "a failover was expected, none happened".into(),
        );
    }
    let redelivered = obs.seen("redelivered");
    if redelivered < expect.redelivered_min {
        obs.violate(
            Invariant::Expectation,
            format!(
                "expected at least {} redelivered message(s), saw {redelivered}",
                expect.redelivered_min
            ),
        );
    }
    for (wanted, what) in [
        (expect.dismounted_by_dial, "dismounted-by-dial"),
        (expect.move_refused, "move-refused"),
        (expect.reseed_required, "reseed-required"),
        (expect.rolled_back, "rolled-back"),
    ] {
        if wanted && obs.seen(what) == 0 {
            obs.violate(
                Invariant::Expectation,
                format!("expected `{what}` to happen; it did not"),
            );
        }
    }
}

/// The longest stretch (s) in which clients could not reach a serving node, once one had
/// served.
fn longest_outage_s(samples: &[ccr_reports::record::Sample]) -> f64 {
    let mut longest = 0.0f64;
    let mut since: Option<f64> = None;
    let mut served_once = false;
    for s in samples {
        let out = s.machines.get(3).is_some_and(|c| c.state == "outage");
        if !out {
            served_once = true;
            since = None;
        } else if served_once {
            let from = *since.get_or_insert(s.t_s);
            longest = longest.max(s.t_s - from);
        }
    }
    longest
}

fn start_plus(obs: &Obs, ms: u64) -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_millis(ms.saturating_sub(obs.elapsed_ms()))
}

/// After healing and settling: one serving node holding every acknowledged message, and a
/// healthy passive caught up to the same content.
fn final_checks(world: &World, obs: &Obs) -> (usize, usize) {
    let acked = obs.acked_ids();
    let Some(active) = world.serving() else {
        obs.violate(
            Invariant::Liveness,
            format!(
                "after healing, no node serves the database ({})",
                NodeId::ALL
                    .map(|n| match (world.node(n), world.boot_error(n)) {
                        (Some(node), _) => {
                            let node = node.lock().expect("node");
                            format!(
                                "{n} {}: {:?}",
                                node.role_name(),
                                node.cms_status(Default::default()).reason
                            )
                        }
                        (None, Some(e)) => format!("{n} cannot start: {e}"),
                        (None, None) => format!("{n} down"),
                    })
                    .join("; ")
            ),
        );
        return (acked.len(), 0);
    };
    let active_node = world.node(active).expect("serving node runs");
    let a = active_node.lock().expect("node");
    let missing: Vec<MessageId> = acked
        .iter()
        .filter(|id| !a.database().contains(**id))
        .copied()
        .collect();
    let (explained, lost): (Vec<MessageId>, Vec<MessageId>) =
        missing.iter().partition(|id| obs.loss_explained(**id));
    if !explained.is_empty() {
        obs.saw("lost-beyond-dumpster", explained.len() as u64);
        obs.trace(
            "check",
            &format!(
                "{} acknowledged message(s) lost beyond the dumpster's limits (evicted before the last redelivery), e.g. {:?}",
                explained.len(),
                &explained[..explained.len().min(5)]
            ),
        );
    }
    if !lost.is_empty() {
        obs.violate(
            Invariant::NoAcknowledgedLoss,
            format!(
                "{} acknowledged message(s) missing from {active}'s database, e.g. {:?}",
                lost.len(),
                &lost[..lost.len().min(5)]
            ),
        );
        return (acked.len(), lost.len());
    }
    let passive_id: NodeId = active.peer();
    let Some(passive_node) = world.node(passive_id) else {
        obs.violate(
            Invariant::Liveness,
            format!(
                "{passive_id} is not running after healing{}",
                world
                    .boot_error(passive_id)
                    .map_or(String::new(), |e| format!(": it cannot start: {e}"))
            ),
        );
        return (acked.len(), 0);
    };
    let p = passive_node.lock().expect("node");
    let status = p.copy_status();
    if format!("{:?}", status.summary) != "Healthy"
        || status.copy_queue_length > 0
        || status.replay_queue_length > 0
    {
        obs.violate(
            Invariant::Liveness,
            format!("the passive copy is not healthy after healing: {status:?}"),
        );
    } else if p.database().applied() != a.last_closed()
        || p.database().digest() != a.database().complete_digest()
    {
        obs.violate(
            Invariant::ReplicationSound,
            format!(
                "copies differ: passive at {:#x} digest {}, active closed {:#x} digest {}",
                p.database().applied(),
                p.database().digest(),
                a.last_closed(),
                a.database().complete_digest()
            ),
        );
    } else if let Some((g, _)) = p
        .closed_logs()
        .iter()
        .find(|(g, c)| a.closed_logs().get(g).is_some_and(|ac| ac != *c))
    {
        obs.violate(
            Invariant::ReplicationSound,
            format!("generation {g:#x} differs between the copies"),
        );
    }
    (acked.len(), 0)
}
