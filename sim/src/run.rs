//! Running one scenario with one seed: the world, the workload, the schedule, the liveness
//! phase and the end-of-run checks, all inside madsim on a fresh thread.

use std::sync::Arc;
use std::time::Duration;

use ccr_core::cluster::NodeId;
use ccr_core::storage::{Generation, MessageId};

use madsim::rand::Rng;

use crate::observer::{Invariant, Obs, StuckReport};
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
    let stuck = Arc::new(std::sync::Mutex::new(None));
    let out = stuck.clone();
    let (mut record, work) =
        match crate::try_run_seeded(seed, move || simulate(s, seed, full_trace, out)) {
            Ok(done) => done,
            Err(payload) if payload.is::<crate::budget::Stuck>() => {
                let report = stuck
                    .lock()
                    .expect("stuck")
                    .take()
                    .expect("a stuck run reports");
                (stuck_record(scenario, seed, report), Work::default())
            }
            Err(payload) => std::panic::resume_unwind(payload),
        };
    record.wall_ms = started.elapsed().as_millis() as u64;
    (record, work)
}

/// The record of a run that went over its budget: its outcome is `stuck`, with the trace's
/// last lines and the repro command like any failure.
fn stuck_record(scenario: &Scenario, seed: u64, report: StuckReport) -> RunRecord {
    RunRecord {
        scenario: scenario.name.clone(),
        description: scenario.description.clone(),
        source: scenario.source.clone(),
        seed,
        outcome: report.violation.invariant.name().to_string(),
        trace_hash: format!("{:016x}", report.trace_hash),
        sim_seconds: report.sim_seconds,
        wall_ms: 0,
        failovers: Vec::new(),
        acked: report.acked,
        lost: 0,
        lost_beyond_dumpster: 0,
        duplicated: 0,
        resubmitted: 0,
        lost_to_clock_skew: 0,
        violation: Some(report.violation),
        mounts: Vec::new(),
        final_state: "stuck: the run did not finish".into(),
        settings: report.settings,
        coverage: [("run ended stuck".to_string(), 1)].into(),
        timeline: Timeline::default(),
        trace: report.trace,
    }
}

async fn simulate(
    scenario: Scenario,
    seed: u64,
    full_trace: bool,
    stuck: Arc<std::sync::Mutex<Option<StuckReport>>>,
) -> (RunRecord, Work) {
    let obs = Arc::new(Obs::new(
        &scenario.cluster,
        &scenario.hub,
        scenario.expect.clone(),
        full_trace,
        scenario.duration_s + scenario.settle_s,
    ));
    obs.report_stuck_to(stuck);
    let world = Arc::new(World::new(&scenario, obs.clone()));
    let end = Duration::from_secs(scenario.duration_s);

    let mut steps = scenario.steps.clone();
    steps.sort_by_key(|s| s.at_ms);
    let end_ms = end.as_millis() as u64;
    let times = crate::scenario::jittered(&steps, scenario.jitter_ms, |j| {
        madsim::rand::thread_rng().gen_range(0..=j)
    });
    if scenario.source.starts_with("swarm") {
        obs.setting(format!(
            "swarm generator v{}: {}",
            crate::swarm::GENERATOR_VERSION,
            scenario.description
        ));
    }
    if let Some(wan) = &scenario.wan {
        let remote: Vec<String> = wan.remote.iter().map(|m| m.name()).collect();
        let bandwidth = match wan.link.bandwidth_mbit {
            b if b > 0.0 => format!("{b} Mbit/s"),
            _ => "unlimited".into(),
        };
        obs.setting(format!(
            "second site: {} over a WAN of {bandwidth}, {}-{} ms",
            remote.join(", "),
            wan.link.min_delay_ms,
            wan.link.max_delay_ms
        ));
    }
    for (step, at) in steps.iter().zip(&times) {
        if *at != step.at_ms {
            obs.setting(format!(
                "step {} at {:.3} s (scheduled {:.3} s, jitter up to {} ms)",
                step.fault.label(),
                (*at).min(end_ms) as f64 / 1000.0,
                step.at_ms as f64 / 1000.0,
                scenario.jitter_ms
            ));
        }
    }
    // Each step at its exact millisecond (the jitter never takes one past the end).
    let mut steps = steps
        .into_iter()
        .zip(times.into_iter().map(|t| t.min(end_ms)))
        .peekable();
    let mut samples = vec![sample(&world, &obs)];
    let mut liveness_from_s = None;
    let mut next_tick = 1000u64;
    while next_tick <= end_ms && obs.violation().is_none() {
        let wake = steps
            .peek()
            .map(|(_, at)| *at)
            .filter(|at| *at < next_tick)
            .unwrap_or(next_tick);
        tokio::time::sleep_until(start_plus(&obs, wake)).await;
        while let Some((step, _)) = steps.next_if(|(_, at)| *at <= obs.elapsed_ms()) {
            world.apply(&step.fault);
        }
        if wake == next_tick {
            obs.check_overdue();
            world.retry_failed_starts(next_tick / 1000);
            samples.push(sample(&world, &obs));
            next_tick += 1000;
        }
    }
    let submitted = world.submitted();

    // Each second of the settle: the newest closed log on each node's disk. The final check
    // of the passive's report compares with what the active had closed a while before the
    // end, not at its last instant: a log rolled (an idle roll, say) milliseconds before the
    // end cannot be in a truthful report yet.
    let mut closed_history: Vec<(u64, [Generation; 2])> = Vec::new();
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
            closed_history.push((
                obs.elapsed_ms(),
                NodeId::ALL.map(|n| crate::truth::last_closed_quick(&world.disk(n))),
            ));
        }
    }
    let c = &scenario.cluster;
    let report_delay_ms = 2 * c.heartbeat_interval_ms() + c.copy_timeout_ms + c.copy_retry_ms;
    let end_ms = obs.elapsed_ms();
    let closed_before_end = closed_history
        .iter()
        .rev()
        .find(|(at, _)| at + report_delay_ms <= end_ms)
        .map(|(_, closed)| *closed);
    let mut figures = Figures::default();
    let (acked, lost) = if obs.violation().is_none() {
        final_checks(
            &world,
            &obs,
            closed_before_end,
            &scenario.expect,
            crate::truth::ClientMail::of(&scenario.workload),
            &mut figures,
        )
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
        description: scenario.description.clone(),
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
        duplicated: figures.duplicated,
        resubmitted: obs.truth().redelivered(),
        lost_to_clock_skew: figures.lost_to_clock_skew,
        violation,
        mounts: obs
            .truth()
            .mounts()
            .into_iter()
            .map(|m| Mount {
                at_s: m.at_ms as f64 / 1000.0,
                node: m.node.to_string(),
                lost: m.missing,
            })
            .collect(),
        final_state,
        settings: obs.settings(),
        coverage: obs.coverage(),
        timeline: Timeline {
            machines: world.lanes(),
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
    let redelivered = obs.truth().redelivered();
    if redelivered < expect.redelivered_min {
        obs.violate(
            Invariant::Expectation,
            format!(
                "expected at least {} redelivered message(s), saw {redelivered}",
                expect.redelivered_min
            ),
        );
    }
    let coverage = obs.coverage();
    for (wanted, what, situation) in [
        (
            expect.dismounted_by_dial,
            "dismounted-by-dial",
            "dial kept a database dismounted",
        ),
        (expect.move_refused, "move-refused", "move refused"),
        (
            expect.reseed_required,
            "reseed-required",
            "copy asked for a reseed",
        ),
        (
            expect.rolled_back,
            "rolled-back",
            "diverged logs rolled back",
        ),
        (
            expect.stopped,
            "stopped",
            "clustered mailbox server stopped by an administrator",
        ),
        (
            expect.truncated,
            "truncated",
            "logs truncated after a backup",
        ),
        (expect.disk_full, "disk-full", "disk full: a write refused"),
    ] {
        if wanted && !coverage.contains_key(situation) {
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
        // The clients' lane is the last (see `World::lanes`).
        let out = s.machines.last().is_some_and(|c| c.state == "outage");
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

/// After healing and settling: one serving node whose disk holds every acknowledged message,
/// and a healthy passive whose disk holds the same stream. Judged from the disks and the wire;
/// what the nodes report is compared with that.
/// `closed_before_end`: each node's newest closed log a report's delay before the end (see
/// the settle loop); the active's at the end when there is none.
/// What the final checks counted on the disks, for the run record.
#[derive(Default)]
struct Figures {
    duplicated: usize,
    lost_to_clock_skew: usize,
}

fn final_checks(
    world: &World,
    obs: &Obs,
    closed_before_end: Option<[Generation; 2]>,
    expect: &crate::scenario::Expect,
    client: crate::truth::ClientMail,
    figures: &mut Figures,
) -> (usize, usize) {
    let acked = obs.acked_ids();
    let truth = obs.truth();
    let Some(active) = truth.serving(obs.elapsed_ms()) else {
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
    if world.serving() != Some(active) {
        obs.violate(
            Invariant::ReportsTruthful,
            format!(
                "{active} announces its mount on the wire, but {} reports serving",
                world
                    .serving()
                    .map_or("no node".to_string(), |n| n.to_string())
            ),
        );
        return (acked.len(), 0);
    }
    // A database file damaged at rest is found when that store next starts, and the other
    // copy then serves: with the logs before its checkpoint truncated, the mail the file held
    // is judged where it then is.
    let judged_on = if crate::truth::db_damaged(&world.disk(active)) {
        obs.cover("serving copy's database file damaged at rest");
        obs.trace(
            "check",
            &format!(
                "{active}'s database file is damaged at rest: acknowledged mail judged from {}'s disk (the copy that serves once the damage is found) and the logs on {active}'s, which it copies",
                active.peer()
            ),
        );
        active.peer()
    } else {
        active
    };
    let mut stored = crate::truth::durable_messages(&world.disk(judged_on));
    if judged_on != active {
        crate::truth::add_logged_messages(&mut stored, &world.disk(active));
    }
    let missing: Vec<MessageId> = acked
        .iter()
        .filter(|id| !stored.contains_key(id))
        .copied()
        .collect();
    // Held, but not as the client sent it: as lost as missing mail, and no dumpster excuses it.
    let acked_stored: std::collections::BTreeMap<_, _> = stored
        .into_iter()
        .filter(|(id, _)| acked.contains(id))
        .collect();
    if let Some(why) = crate::truth::unlike_sent(&acked_stored, client) {
        let damaged = acked_stored
            .iter()
            .filter(|(id, meta)| client.expected(**id) != **meta)
            .count();
        obs.violate(
            Invariant::NoAcknowledgedLoss,
            format!(
                "{damaged} acknowledged message(s) on {judged_on}'s disk are not what the client sent: {why}"
            ),
        );
        return (acked.len(), damaged);
    }
    if client.bodies && !acked_stored.is_empty() {
        obs.cover("stored message bodies compared with the client's");
    }
    let mut lost = Vec::new();
    let mut excused = Vec::new();
    let mut skewed = Vec::new();
    for id in missing {
        match (truth.loss_excuse(id), truth.skew_loss(id)) {
            (Some(evidence), _) => excused.push(evidence),
            (None, Some(evidence)) => skewed.push(evidence),
            (None, None) => lost.push(id),
        }
    }
    if !excused.is_empty() {
        obs.saw("lost-beyond-dumpster", excused.len() as u64);
        obs.cover("loss excused by the dumpster's limits");
        obs.trace(
            "check",
            &format!(
                "{} acknowledged message(s) lost beyond the dumpster's limits; evidence: {}",
                excused.len(),
                excused[..excused.len().min(3)].join("; ")
            ),
        );
    }
    if !lost.is_empty() {
        obs.violate(
            Invariant::NoAcknowledgedLoss,
            format!(
                "{} acknowledged message(s) missing from {judged_on}'s disk, e.g. {:?}",
                lost.len(),
                &lost[..lost.len().min(5)]
            ),
        );
        return (acked.len(), lost.len());
    }
    figures.lost_to_clock_skew = skewed.len();
    if !skewed.is_empty() {
        obs.cover("acknowledged mail lost to wall-clock skew");
        let evidence = format!(
            "{} acknowledged message(s) lost to wall-clock skew by time-window redelivery; {}",
            skewed.len(),
            skewed[..skewed.len().min(2)].join("; ")
        );
        obs.trace("check", &evidence);
        if !expect.lost_to_clock_skew {
            obs.violate(Invariant::LostToClockSkew, evidence);
            return (acked.len(), 0);
        }
    } else if expect.lost_to_clock_skew {
        obs.violate(
            Invariant::Expectation,
            "time-window redelivery was expected to lose mail to a skewed clock; nothing was lost"
                .into(),
        );
        return (acked.len(), 0);
    }
    figures.duplicated = crate::truth::duplicates(&world.disk(active));
    if figures.duplicated as u64 > expect.duplicates_max {
        obs.violate(
            Invariant::Duplicates,
            format!(
                "{active}'s mailbox holds {} acknowledged message(s) more than once (at most {} allowed)",
                figures.duplicated, expect.duplicates_max
            ),
        );
        return (acked.len(), 0);
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
    let status = passive_node.lock().expect("node").copy_status();
    let active_facts = crate::truth::DiskFacts::read(&world.disk(active));
    let passive_facts = crate::truth::DiskFacts::read(&world.disk(passive_id));
    // Judged from the disks: the passive must hold what the active had closed a report's
    // delay before the end (a log rolled in the last instants cannot be copied yet), and its
    // report may count as queued only what its disk really lacks.
    let caught_up_to = closed_before_end.map_or(active_facts.last_closed(), |c| c[active.index()]);
    let holds = passive_facts.contiguous();
    let lacks = active_facts.last_closed().saturating_sub(holds);
    let quiet = status.copy_queue_length == 0 && status.replay_queue_length == 0;
    if format!("{:?}", status.summary) != "Healthy" {
        obs.violate(
            Invariant::Liveness,
            format!("the passive copy is not healthy after healing: {status:?}"),
        );
    } else if holds < caught_up_to && quiet {
        obs.violate(
            Invariant::ReportsTruthful,
            format!(
                "{passive_id} reports a healthy copy with empty queues, but its disk holds the stream only to {holds:#x} of {active}'s {caught_up_to:#x}"
            ),
        );
    } else if holds < caught_up_to {
        obs.violate(
            Invariant::Liveness,
            format!(
                "the passive copy has not caught up after healing: {passive_id}'s disk holds the stream to {holds:#x}, {active} had closed {caught_up_to:#x}; it reports {status:?}"
            ),
        );
    } else if status.copy_queue_length > lacks
        || status.replay_queue_length > holds.saturating_sub(caught_up_to)
    {
        obs.violate(
            Invariant::ReportsTruthful,
            format!(
                "{passive_id} reports a copy queue of {} and a replay queue of {}, but its disk lacks {lacks} of {active}'s closed logs and holds all it had closed a report's delay before the end",
                status.copy_queue_length, status.replay_queue_length
            ),
        );
    } else if let Some(why) = {
        let base = obs.truth().stream_base();
        let d1 = world.disk(NodeId::Node1);
        let d2 = world.disk(NodeId::Node2);
        crate::truth::judge_replication([&d1, &d2], client, base.as_ref())
    } {
        obs.violate(Invariant::ReplicationSound, why);
    }
    (acked.len(), 0)
}
