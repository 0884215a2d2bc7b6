//! Running one scenario with one seed: the world, the workload, the schedule, the liveness
//! phase and the end-of-run checks, all inside madsim on a fresh thread.

use std::sync::Arc;
use std::time::Duration;

use ccr_core::cluster::NodeId;
use ccr_core::storage::MessageId;
use serde::{Deserialize, Serialize};

use crate::observer::{Invariant, Obs, Violation};
use crate::scenario::Scenario;
use crate::world::World;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failover {
    pub duration_s: f64,
}

/// A node mounted the database (its virtual time, and how many log generations it gave up).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mount {
    pub at_s: f64,
    pub node: NodeId,
    pub lost: u32,
}

/// The record of one run; with `--json`, one line of it per run (a stable contract).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub scenario: String,
    pub seed: u64,
    /// `"pass"` or the violated invariant's name.
    pub outcome: String,
    pub trace_hash: String,
    pub sim_seconds: f64,
    pub wall_ms: u64,
    pub failovers: Vec<Failover>,
    pub acked: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub violation: Option<Violation>,
    /// Every mount, in order.
    pub mounts: Vec<Mount>,
    /// How the cluster ended: who serves, and the passive copy's status.
    pub final_state: String,
    #[serde(skip)]
    pub trace: Option<Vec<String>>,
}

impl RunRecord {
    /// A stable, readable summary of what happened (for snapshots and people).
    pub fn summary(&self) -> String {
        let mut out = format!(
            "scenario {} seed {}: {}
",
            self.scenario, self.seed, self.outcome
        );
        for m in &self.mounts {
            out.push_str(&format!(
                "  mounted on {} at {:.1}s, {} log(s) lost
",
                m.node, m.at_s, m.lost
            ));
        }
        let failovers: Vec<String> = self
            .failovers
            .iter()
            .map(|f| format!("{:.1}s", f.duration_s))
            .collect();
        out.push_str(&format!(
            "  failovers: [{}]
",
            failovers.join(", ")
        ));
        out.push_str(&format!(
            "  acknowledged {}, lost {}, duplicated {}
",
            self.acked, self.lost, self.duplicated
        ));
        out.push_str(&format!("  end: {}\n", self.final_state));
        out
    }
}

impl RunRecord {
    pub fn passed(&self) -> bool {
        self.violation.is_none()
    }
}

/// Runs `scenario` with `seed` on a fresh thread under madsim. `full_trace` keeps every trace
/// line (for `--trace`); the hash covers them either way.
pub fn run(scenario: &Scenario, seed: u64, full_trace: bool) -> RunRecord {
    let started = std::time::Instant::now();
    let s = scenario.clone();
    let mut record = crate::run_seeded(seed, move || simulate(s, seed, full_trace));
    record.wall_ms = started.elapsed().as_millis() as u64;
    record
}

async fn simulate(scenario: Scenario, seed: u64, full_trace: bool) -> RunRecord {
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
    while t < end.as_millis() as u64 && obs.violation().is_none() {
        t += 1000;
        tokio::time::sleep_until(start_plus(&obs, t)).await;
        while let Some(step) = steps.next_if(|s| s.at_ms <= obs.elapsed_ms()) {
            world.apply(&step.fault);
        }
        obs.check_overdue();
    }
    let submitted = world.submitted();

    if obs.violation().is_none() {
        obs.stop_failover_clock();
        world.heal_everything();
        let settle = obs.elapsed_ms() + scenario.settle_s * 1000;
        while obs.elapsed_ms() < settle && obs.violation().is_none() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    let (acked, lost) = if obs.violation().is_none() {
        final_checks(&world, &obs)
    } else {
        (obs.acked_ids().len(), 0)
    };
    if obs.violation().is_none() {
        check_expectations(&scenario.expect, &obs);
    }
    obs.trace(
        "world",
        &format!("end: {submitted} submitted, {acked} acknowledged, {lost} lost"),
    );
    let final_state = describe_end(&world);
    let violation = obs.violation();
    RunRecord {
        scenario: scenario.name.clone(),
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
        duplicated: obs.duplicated(),
        violation,
        mounts: obs
            .mounts()
            .into_iter()
            .map(|(at, node, lost)| Mount {
                at_s: at as f64 / 1000.0,
                node,
                lost,
            })
            .collect(),
        final_state,
        trace: obs.full_trace(),
    }
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
fn check_expectations(expect: &crate::scenario::Expect, obs: &Obs) {
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
            "after healing, no node serves the database".into(),
        );
        return (acked.len(), 0);
    };
    let active_node = world.node(active).expect("serving node runs");
    let a = active_node.lock().expect("node");
    let lost: Vec<MessageId> = acked
        .iter()
        .filter(|id| !a.database().contains(**id))
        .copied()
        .collect();
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
            format!("{passive_id} is not running after healing"),
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
