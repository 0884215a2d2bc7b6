//! The simulator end to end (madsim build): the active-node crash over 200 seeds, determinism
//! over 100 seeds, and every checker firing on a deliberately broken run.
#![cfg(madsim)]

use ccr_core::cluster::node::PlantedBugs;
use ccr_core::cluster::{Net, NodeId};
use ccr_sim::observer::Invariant;
use ccr_sim::run::{run, RunRecord};
use ccr_sim::scenario::{builtin, Expect, Fault, Planted, Scenario, Step};
use ccr_sim::topology::Machine;

fn step(at_s: u64, fault: Fault) -> Step {
    Step {
        at_ms: at_s * 1000,
        fault,
    }
}

fn crash() -> Scenario {
    builtin("active-node-crash").unwrap()
}

/// `s` cut to `duration_s`, with `steps` at their exact instants.
fn short(mut s: Scenario, duration_s: u64, steps: Vec<Step>) -> Scenario {
    s.duration_s = duration_s;
    s.steps = steps;
    s.jitter_ms = 0;
    s
}

fn violated(record: &RunRecord) -> Option<Invariant> {
    record.violation.as_ref().map(|v| v.invariant)
}

/// ARCHITECTURE.md's failover timing (Windows Server 2003's heartbeats, 1.2 s × 6): the
/// survivor mounts 18.2–18.502 s after the last heartbeat it heard, and the power goes up to
/// one heartbeat interval after that one.
const PREDICTED_S: (f64, f64) = (17.0, 18.502);
/// The network's latency bound (1–5 ms a message, a tail to 200 ms in one message of fifty),
/// two messages' worth either way (the last heartbeat heard, the witness's answer).
fn latency_s() -> f64 {
    2.0 * ccr_sim::topology::LinkConfig::default().worst_ms() as f64 / 1000.0
}

/// The failover times of `seeds`, each checked against the prediction.
fn crash_failovers(scenario: &Scenario, seeds: std::ops::Range<u64>) -> Vec<f64> {
    seeds
        .map(|seed| {
            let r = run(scenario, seed, false);
            assert!(r.passed(), "seed {seed}: {:?}", r.violation);
            assert_eq!(r.failovers.len(), 1, "seed {seed}");
            let took = r.failovers[0].duration_s;
            assert!(
                took >= PREDICTED_S.0 - latency_s() && took <= PREDICTED_S.1 + latency_s(),
                "seed {seed}: failover {took} s, outside the predicted {PREDICTED_S:?} s"
            );
            took
        })
        .collect()
}

/// Seeds must spread failovers over (nearly) a whole heartbeat interval.
fn assert_spread(times: &[f64], what: &str) {
    let min = times.iter().copied().fold(f64::MAX, f64::min);
    let max = times.iter().copied().fold(f64::MIN, f64::max);
    assert!(
        max - min >= 0.9,
        "{what}: failovers only spread over {min:.3}..{max:.3} s"
    );
}

#[test]
fn seeds_spread_failover_times_even_with_an_exact_schedule() {
    let mut scenario = crash();
    scenario.jitter_ms = 0;
    assert_spread(&crash_failovers(&scenario, 0..100), "jitter 0");
}

#[test]
fn an_active_node_crash_fails_over_inside_the_window_for_200_seeds_and_replays_identically() {
    let scenario = crash();
    let mut times = Vec::new();
    for seed in 0..200 {
        let r = run(&scenario, seed, false);
        assert!(r.passed(), "seed {seed}: {:?}", r.violation);
        assert_eq!(r.failovers.len(), 1, "seed {seed}");
        let took = r.failovers[0].duration_s;
        assert!(
            (10.0..=60.0).contains(&took),
            "seed {seed}: failover {took} s"
        );
        assert!(
            took >= PREDICTED_S.0 - latency_s() && took <= PREDICTED_S.1 + latency_s(),
            "seed {seed}: failover {took} s, outside the predicted {PREDICTED_S:?} s"
        );
        times.push(took);
        assert_eq!(r.lost, 0);
        assert!(r.acked > 15_000, "seed {seed}: acked {}", r.acked);
        if seed < 100 {
            let again = run(&scenario, seed, false);
            assert_eq!(
                again.trace_hash, r.trace_hash,
                "seed {seed} is not deterministic"
            );
        }
    }
    assert_spread(&times, "default jitter");
}

#[test]
fn different_seeds_give_different_runs() {
    let scenario = crash();
    assert_ne!(
        run(&scenario, 1, false).trace_hash,
        run(&scenario, 2, false).trace_hash
    );
}

#[test]
fn steady_state_has_no_failover() {
    let s = short(builtin("steady-state").unwrap(), 200, vec![]);
    let r = run(&s, 7, false);
    assert!(r.passed(), "{:?}", r.violation);
    assert!(r.failovers.is_empty());
}

#[test]
fn single_active_fires_when_the_witness_grants_two_locks() {
    let mut s = short(
        crash(),
        200,
        vec![step(
            60,
            Fault::Partition {
                from: Machine::Node1,
                to: Machine::Node2,
                net: None,
                one_way: false,
            },
        )],
    );
    s.expect = Expect::default();
    // Let node2's lossy mount through the dial: only the witness stands between the two.
    s.cluster.dial_limits.best_availability = 1_000;
    s.planted = Planted {
        witness_grants_everyone: true,
        ..Planted::default()
    };
    assert_eq!(violated(&run(&s, 1, false)), Some(Invariant::SingleActive));
    // The same partition with an honest witness: exactly one serves.
    s.planted = Planted::default();
    let r = run(&s, 1, false);
    assert!(r.passed(), "{:?}", r.violation);
}

#[test]
fn loss_fires_when_the_hub_skips_redelivery() {
    let mut s = short(crash(), 200, vec![step(60, Fault::PowerLossActive)]);
    s.planted = Planted {
        hub_skips_redelivery: true,
        ..Planted::default()
    };
    let r = run(&s, 1, false);
    assert_eq!(
        violated(&r),
        Some(Invariant::NoAcknowledgedLoss),
        "{:?}",
        r.violation
    );
}

#[test]
fn mount_dial_fires_when_a_mount_ignores_it() {
    let mut s = short(
        crash(),
        200,
        vec![
            step(
                50,
                Fault::SuspendCopy {
                    node: NodeId::Node2,
                },
            ),
            step(100, Fault::PowerLossActive),
        ],
    );
    s.planted = Planted {
        nodes: PlantedBugs {
            ignore_mount_dial: true,
            ..PlantedBugs::default()
        },
        ..Planted::default()
    };
    assert_eq!(violated(&run(&s, 1, false)), Some(Invariant::MountDial));
    // ForcedDatabaseMountAfter excuses a mount beyond the dial only once its wait has run out
    // since the old owner last wrote: a store that mounts at once is still caught.
    s.cluster.forced_database_mount_after_ms = Some(60_000);
    assert_eq!(violated(&run(&s, 1, false)), Some(Invariant::MountDial));
    // The same setting honoured: dismounted for the minute, then mounted accepting the loss
    // (later than a failover's minute, by design).
    s.planted = Planted::default();
    s.expect.failover_max_s = 150.0;
    let r = run(&s, 1, true);
    assert!(r.passed(), "{:?}", r.violation);
    let trace = r.trace.unwrap();
    assert!(trace.iter().any(|l| l.contains("StayDismounted")));
    assert!(trace.iter().any(|l| l.contains("forced: true")));
}

#[test]
fn failover_window_fires_when_failover_is_too_slow_or_unexpected() {
    // The first mount also takes the online delay: lose the active well after it.
    let mut slow = short(crash(), 250, vec![step(100, Fault::PowerLossActive)]);
    slow.cluster.online_delay_ms = 70_000;
    assert_eq!(
        violated(&run(&slow, 1, false)),
        Some(Invariant::FailoverWindow)
    );

    let mut unexpected = short(crash(), 200, vec![step(60, Fault::PowerLossActive)]);
    unexpected.expect.failover = Some(false);
    assert_eq!(
        violated(&run(&unexpected, 1, false)),
        Some(Invariant::FailoverWindow)
    );
}

#[test]
fn replication_soundness_fires_when_replay_drops_records() {
    let mut s = short(crash(), 150, vec![]);
    s.expect = Expect::default();
    s.planted = Planted {
        nodes: PlantedBugs {
            lossy_replay: true,
            ..PlantedBugs::default()
        },
        ..Planted::default()
    };
    assert_eq!(
        violated(&run(&s, 1, false)),
        Some(Invariant::ReplicationSound)
    );
}

#[test]
fn liveness_fires_when_the_cluster_is_not_back_after_healing() {
    // The active loses power five seconds before the faults stop, and the run gives the
    // healed cluster one second: no takeover can finish in that, so liveness must report it.
    let mut s = short(crash(), 150, vec![step(145, Fault::PowerLossActive)]);
    s.settle_s = 1;
    s.expect = Expect::default();
    let r = run(&s, 1, false);
    assert_eq!(violated(&r), Some(Invariant::Liveness), "{}", r.summary());
}

#[test]
fn private_network_down_alone_is_no_failover() {
    let mut s = short(
        crash(),
        200,
        vec![step(
            60,
            Fault::Partition {
                from: Machine::Node1,
                to: Machine::Node2,
                net: Some(Net::Private),
                one_way: false,
            },
        )],
    );
    s.expect.failover = Some(false);
    let r = run(&s, 3, false);
    assert!(r.passed(), "{:?}", r.violation);
}

#[test]
fn a_paused_active_is_replaced_and_stands_down_when_it_wakes() {
    let s = short(
        crash(),
        250,
        vec![
            step(60, Fault::PauseActive),
            step(
                120,
                Fault::Resume {
                    node: NodeId::Node1,
                },
            ),
        ],
    );
    let r = run(&s, 5, false);
    assert!(r.passed(), "{:?}", r.violation);
    assert_eq!(r.failovers.len(), 1);
}

#[test]
fn a_corrupted_copy_is_rejected_and_copied_again_without_failover() {
    let mut s = short(
        crash(),
        150,
        vec![step(
            60,
            Fault::CorruptNextCopy {
                node: NodeId::Node2,
            },
        )],
    );
    s.expect.failover = Some(false);
    let r = run(&s, 2, true);
    assert!(r.passed(), "{:?}", r.violation);
    let trace = r.trace.unwrap();
    assert_eq!(
        trace.iter().filter(|l| l.contains("LogRejected")).count(),
        1
    );
}

#[test]
fn a_log_that_fails_inspection_three_times_makes_the_copy_ask_for_a_reseed() {
    // Three corrupted copies of the same generation, one after another: the third rejection
    // makes the log irrecoverable; the copy reports Failed, the operator reseeds it, and it
    // ends Healthy with nothing lost. Two rejections only retry.
    let corrupt = |at_s: u64| {
        step(
            at_s,
            Fault::CorruptNextCopy {
                node: NodeId::Node2,
            },
        )
    };
    // (Each step damages one more of the next copies the node receives.)
    let mut s = short(crash(), 150, vec![corrupt(60), corrupt(60), corrupt(60)]);
    // One log asked for at a time, so the three damaged copies are the same generation's
    // (with a window the copies after it would take the damage, and be asked for again).
    s.cluster.copy_window = 1;
    s.expect.failover = Some(false);
    s.expect.reseed_required = true;
    let r = run(&s, 2, true);
    assert!(r.passed(), "{:?}", r.violation);
    let trace = r.trace.unwrap();
    assert!(
        trace.iter().any(|l| l.contains("failed inspection 3 times")
            || l.contains("Update-StorageGroupCopy on node2")),
        "no reseed after three rejections"
    );
    assert!(trace.iter().any(|l| l.contains("Reseeded")));
    assert_eq!(r.lost, 0);

    let mut twice = s.clone();
    twice.steps.truncate(2);
    twice.expect.reseed_required = false;
    let r = run(&twice, 2, true);
    assert!(r.passed(), "{:?}", r.violation);
    assert!(!r.trace.unwrap().iter().any(|l| l.contains("Reseeded")));
}

#[test]
fn a_node_whose_own_log_is_damaged_at_rest_rejoins_is_reseeded_and_nothing_is_lost() {
    // The active loses power; while it is down a closed log the passive also holds is
    // damaged on its disk. It boots, reports its copy Failed naming the file, the passive has
    // meanwhile taken over, the operator reseeds the damaged copy, and every acknowledged
    // message is there at the end.
    for (seed, damage) in [
        (
            3,
            Fault::CorruptLog {
                node: NodeId::Node1,
                generation: None,
            },
        ),
        (
            4,
            Fault::CorruptDatabase {
                node: NodeId::Node1,
            },
        ),
    ] {
        let s = short(
            crash(),
            200,
            vec![
                step(
                    60,
                    Fault::PowerLoss {
                        node: NodeId::Node1,
                    },
                ),
                Step {
                    at_ms: 60_001,
                    fault: damage.clone(),
                },
                step(
                    90,
                    Fault::Restart {
                        node: NodeId::Node1,
                    },
                ),
            ],
        );
        let r = run(&s, seed, true);
        assert!(r.passed(), "{damage:?}: {:?}", r.violation);
        assert_eq!(r.lost, 0);
        assert_eq!(
            r.coverage.get("damaged copy found at boot"),
            Some(&1),
            "{damage:?}"
        );
        let trace = r.trace.unwrap();
        let failed = trace
            .iter()
            .find(|l| l.contains("node1") && l.contains("damaged at rest, reseed required"))
            .unwrap_or_else(|| panic!("{damage:?}: no Failed copy reported"));
        assert!(
            failed.contains("logs/E") || failed.contains("db/mailbox.edb"),
            "the report names the file: {failed}"
        );
        assert!(
            trace
                .iter()
                .any(|l| l.contains("node1") && l.contains("Reseeded")),
            "{damage:?}: never reseeded"
        );
        assert!(r.final_state.contains("node2 serves"), "{}", r.final_state);
        assert!(
            r.final_state.contains("node1 copy Healthy"),
            "{}",
            r.final_state
        );
    }
}

#[test]
fn a_damaged_copy_on_the_owner_hands_the_server_to_the_peer() {
    // The active crashes and restarts at once, before the passive notices: it still owns the
    // server but its database file is damaged. It must not mount; the peer takes over.
    let s = short(
        crash(),
        200,
        vec![
            step(
                60,
                Fault::Crash {
                    node: NodeId::Node1,
                },
            ),
            Step {
                at_ms: 60_001,
                fault: Fault::CorruptDatabase {
                    node: NodeId::Node1,
                },
            },
            Step {
                at_ms: 61_000,
                fault: Fault::Restart {
                    node: NodeId::Node1,
                },
            },
        ],
    );
    let r = run(&s, 5, true);
    assert!(r.passed(), "{:?}", r.violation);
    assert_eq!(r.lost, 0);
    assert!(r.final_state.contains("node2 serves"), "{}", r.final_state);
    assert!(
        r.final_state.contains("node1 copy Healthy"),
        "{}",
        r.final_state
    );
}

#[test]
fn clock_jumps_and_a_slow_passive_disk_cause_no_failover() {
    let mut s = short(
        crash(),
        200,
        vec![
            step(
                30,
                Fault::ClockJump {
                    machine: Machine::Node1,
                    ms: 3_600_000,
                },
            ),
            step(
                40,
                Fault::ClockJump {
                    machine: Machine::Node2,
                    ms: -600_000,
                },
            ),
            step(
                50,
                Fault::ClockDrift {
                    machine: Machine::Node2,
                    ppm: 5_000,
                },
            ),
            step(
                60,
                Fault::SlowDisk {
                    node: NodeId::Node2,
                    factor: 200,
                },
            ),
        ],
    );
    s.expect.failover = Some(false);
    let r = run(&s, 4, false);
    assert!(r.passed(), "{:?}", r.violation);
}

#[test]
fn clients_cut_off_from_the_hubs_submit_nothing_and_nothing_fails_over() {
    let cut = |fault| {
        let mut s = short(crash(), 200, vec![step(60, fault), step(120, Fault::Heal)]);
        s.expect.failover = Some(false);
        s
    };
    let r = run(
        &cut(Fault::Isolate {
            machine: Machine::Client,
            net: Some(Net::Public),
            one_way: false,
        }),
        6,
        false,
    );
    assert!(r.passed(), "{:?}", r.violation);
    // 50 messages a second for 200 s, less the minute the clients could reach no hub.
    assert!(r.acked < 7_000 && r.acked > 6_500, "acked {}", r.acked);
    // Cut off from hub1 alone, they hand everything to hub2.
    let r = run(
        &cut(Fault::Partition {
            from: Machine::Client,
            to: Machine::Hub(ccr_core::cluster::HubId::FIRST),
            net: Some(Net::Public),
            one_way: false,
        }),
        6,
        false,
    );
    assert!(r.passed(), "{:?}", r.violation);
    assert!(r.acked > 9_500, "acked {}", r.acked);
}

#[test]
fn unmet_expectations_fail_the_run() {
    for broken in [
        Expect {
            move_refused: true,
            ..Expect::default()
        },
        Expect {
            redelivered_min: 1,
            ..Expect::default()
        },
        Expect {
            reseed_required: true,
            ..Expect::default()
        },
        Expect {
            failover: Some(true),
            failover_max_s: 600.0,
            ..Expect::default()
        },
    ] {
        let mut s = short(builtin("steady-state").unwrap(), 120, vec![]);
        s.expect = broken.clone();
        let r = run(&s, 1, false);
        assert_eq!(violated(&r), Some(Invariant::Expectation), "{broken:?}");
        assert_eq!(r.outcome, "expectation");
    }
}

#[test]
fn the_end_and_outage_expectations_fire() {
    // Nothing moves node1 away, so expecting node2 at the end fails.
    let mut s = short(builtin("steady-state").unwrap(), 60, vec![]);
    s.expect.ends_on = Some(NodeId::Node2);
    let r = run(&s, 1, false);
    assert_eq!(
        violated(&r),
        Some(Invariant::Expectation),
        "{:?}",
        r.violation
    );
    assert!(r.violation.unwrap().message.contains("node2 to serve"));

    // Clients cut off from the hub for a minute: an outage longer than 30 s.
    let mut s = short(
        builtin("steady-state").unwrap(),
        120,
        vec![
            step(
                20,
                Fault::Isolate {
                    machine: Machine::Client,
                    net: None,
                    one_way: false,
                },
            ),
            step(80, Fault::Heal),
        ],
    );
    s.expect.outage_max_s = Some(30.0);
    let r = run(&s, 1, false);
    assert_eq!(
        violated(&r),
        Some(Invariant::Expectation),
        "{:?}",
        r.violation
    );
    assert!(r.violation.unwrap().message.contains("without service"));
}

#[test]
fn a_public_network_failure_on_the_active_moves_the_server_losslessly() {
    let mut s = short(
        builtin("steady-state").unwrap(),
        240,
        vec![step(
            60,
            Fault::Isolate {
                machine: Machine::Node1,
                net: Some(Net::Public),
                one_way: false,
            },
        )],
    );
    s.expect.ends_on = Some(NodeId::Node2);
    s.expect.outage_max_s = Some(20.0);
    for seed in 0..20 {
        let r = run(&s, seed, false);
        assert!(r.passed(), "seed {seed}: {:?}", r.violation);
        assert_eq!(r.mounts.len(), 2, "seed {seed}: {:?}", r.mounts);
        assert_eq!(r.mounts[1].lost, 0);
    }
    // With the resource failover off, the server stays and clients wait.
    s.cluster.public_network_failover = false;
    s.expect.ends_on = Some(NodeId::Node1);
    s.expect.outage_max_s = None;
    let r = run(&s, 1, false);
    assert!(r.passed(), "{:?}", r.violation);
    assert_eq!(r.mounts.len(), 1);
}

#[test]
fn a_run_records_a_timeline_the_reports_can_draw() {
    let r = run(&crash(), 1, false);
    let tl = &r.timeline;
    assert_eq!(
        tl.machines,
        ["node1", "node2", "hub1", "hub2", "witness", "clients"]
    );
    // One sample a simulated second, through the liveness phase.
    assert!(tl.samples.len() as f64 >= r.sim_seconds - 1.0);
    assert_eq!(tl.steps.len(), 2, "{:?}", tl.steps);
    assert!(tl.steps[0].label.starts_with("power-loss-active"));
    // The failover window is the failover the checker measured.
    assert_eq!(tl.failover_windows.len(), 1);
    let w = &tl.failover_windows[0];
    assert!((w.to_s - w.from_s - r.failovers[0].duration_s).abs() < 1e-9);
    // During it, the crashed node is down with a fault shown, and clients see an outage.
    let during = tl
        .samples
        .iter()
        .find(|s| s.t_s > w.from_s + 1.0)
        .expect("a sample inside the window");
    let lost = r.mounts[0].node.as_str();
    let lost_index = if lost == "node1" { 0 } else { 1 };
    assert_eq!(during.machines[lost_index].state, "down");
    assert!(during.machines[lost_index]
        .faults
        .contains(&"down".to_string()));
    assert_eq!(during.machines[5].state, "outage");
    assert!(tl.samples.last().unwrap().acked as usize == r.acked);

    let dir = tempfile::tempdir().unwrap();
    ccr_reports::write_all(dir.path(), &[r], &Default::default()).unwrap();
    let html = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
    assert!(html.contains("failover 1"));
}

#[test]
fn a_new_drift_changes_the_rate_but_never_jumps_the_monotonic_clock() {
    use ccr_core::host::Clock;
    let (before, after, later) = ccr_sim::run_seeded(1, || async {
        let clock = ccr_sim::clock::SimClock::new();
        tokio::time::sleep(std::time::Duration::from_secs(600)).await;
        let before = clock.now().mono;
        clock.set_drift_ppm(5_000);
        let after = clock.now().mono;
        tokio::time::sleep(std::time::Duration::from_secs(100)).await;
        (before, after, clock.now().mono)
    });
    assert_eq!(before, after, "setting a drift must not move the clock");
    assert_eq!(later - after, 100_500, "100 s at +5000 ppm");
}
