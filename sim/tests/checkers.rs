//! Each ground-truth checker firing on a planted bug that lies: the logic makes one wrong
//! decision while what the nodes and the hub report stays what correct code would report.
//! The checkers judge from the disks and the wire, so they fire anyway; a checker that
//! believed the reports would not.
#![cfg(madsim)]

use ccr_core::cluster::node::PlantedBugs;
use ccr_core::cluster::NodeId;
use ccr_sim::observer::Invariant;
use ccr_sim::run::{run, RunRecord};
use ccr_sim::scenario::{builtin, Expect, Fault, Planted, Scenario, Step};

fn step(at_s: u64, fault: Fault) -> Step {
    Step {
        at_ms: at_s * 1000,
        fault,
    }
}

/// The crash scenario cut to `duration_s`, with `steps` exactly when they say.
fn scenario(duration_s: u64, steps: Vec<Step>) -> Scenario {
    let mut s = builtin("active-node-crash").unwrap();
    s.duration_s = duration_s;
    s.steps = steps;
    s.jitter_ms = 0;
    s.expect = Expect::default();
    s
}

fn nodes(bugs: PlantedBugs) -> Planted {
    Planted {
        nodes: bugs,
        ..Planted::default()
    }
}

fn violated(r: &RunRecord) -> Option<Invariant> {
    r.violation.as_ref().map(|v| v.invariant)
}

/// The `lost` each `Mounted` event reported (what a checker that believed nodes would read).
fn reported_losses(r: &RunRecord) -> Vec<u32> {
    r.trace
        .as_ref()
        .expect("full trace")
        .iter()
        .filter(|l| l.contains("Mounted {"))
        .filter_map(|l| {
            let at = l.find("lost: ")? + 6;
            l[at..].split(',').next()?.trim().parse().ok()
        })
        .collect()
}

#[test]
fn mount_dial_fires_when_a_mount_ignores_the_dial_and_reports_a_loss_within_it() {
    // The passive's copy is suspended for fifty seconds before the active loses power: the
    // survivor lacks about fifty logs, far beyond BestAvailability's six.
    let mut s = scenario(
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
    s.planted = nodes(PlantedBugs {
        ignore_mount_dial_quietly: true,
        ..PlantedBugs::default()
    });
    let r = run(&s, 1, true);
    assert_eq!(violated(&r), Some(Invariant::MountDial), "{}", r.summary());
    let allowed = s.cluster.dial_limits.allowed(s.cluster.mount_dial);
    let reported = reported_losses(&r);
    assert!(
        reported.iter().all(|lost| *lost <= allowed),
        "the node's own report stays within the dial: {reported:?}"
    );
}

#[test]
fn reports_truthful_fires_when_a_mount_reports_no_loss() {
    let mut s = scenario(200, vec![step(60, Fault::PowerLossActive)]);
    s.planted = nodes(PlantedBugs {
        report_no_loss: true,
        ..PlantedBugs::default()
    });
    let r = run(&s, 1, true);
    assert_eq!(
        violated(&r),
        Some(Invariant::ReportsTruthful),
        "{}",
        r.summary()
    );
    assert!(reported_losses(&r).iter().all(|lost| *lost == 0));
    // The same failover, honest: the loss it reports is the one the disks show.
    s.planted = Planted::default();
    let honest = run(&s, 1, false);
    assert!(honest.passed(), "{:?}", honest.violation);
    assert!(
        honest.mounts.iter().any(|m| m.lost > 0),
        "{}",
        honest.summary()
    );
}

#[test]
fn move_lossless_fires_when_a_move_hands_over_one_log_short() {
    let mut s = scenario(
        180,
        vec![step(
            60,
            Fault::Move {
                target: NodeId::Node2,
                comment: "patching node1".into(),
            },
        )],
    );
    s.expect.failover = Some(false);
    s.planted = nodes(PlantedBugs {
        move_one_log_short: true,
        ..PlantedBugs::default()
    });
    let r = run(&s, 1, true);
    assert_eq!(
        violated(&r),
        Some(Invariant::MoveLossless),
        "{}",
        r.summary()
    );
    let trace = r.trace.unwrap();
    assert!(
        trace.iter().any(|l| l.contains("MoveCompleted")),
        "the move reports success"
    );
    s.planted = Planted::default();
    let honest = run(&s, 1, false);
    assert!(honest.passed(), "{:?}", honest.violation);
    assert_eq!(honest.mounts.len(), 2);
    assert_eq!(honest.mounts[1].lost, 0);
}

#[test]
fn loss_fires_when_the_dumpster_evicts_before_its_limits_say() {
    // The passive stops copying four seconds before the active loses power: the failover
    // loses a few megabytes of mail, which an honest dumpster holds and a too-small one not.
    let mut s = scenario(
        200,
        vec![
            step(
                56,
                Fault::SuspendCopy {
                    node: NodeId::Node2,
                },
            ),
            step(60, Fault::PowerLossActive),
        ],
    );
    s.planted = Planted {
        hub_evicts_early: true,
        ..Planted::default()
    };
    let r = run(&s, 1, false);
    assert_eq!(
        violated(&r),
        Some(Invariant::NoAcknowledgedLoss),
        "{}",
        r.summary()
    );
    assert_eq!(r.lost_beyond_dumpster, 0, "no excuse from the hub's word");
    s.planted = Planted::default();
    let honest = run(&s, 1, false);
    assert!(honest.passed(), "{:?}", honest.violation);
    assert!(honest.mounts[1].lost > 1, "{}", honest.summary());
    // A dumpster that really is that small: the same loss is what its limits allow, and the
    // run says so instead of failing.
    s.hub.dumpster_max_bytes /= 64;
    let small = run(&s, 1, false);
    assert!(small.passed(), "{:?}", small.violation);
    assert!(small.lost_beyond_dumpster > 0, "{}", small.summary());
}

/// The restart policy is judged from the restarts the world carried out and the heartbeats
/// on the wire, never from the node's count. Each plant changes one decision of the policy
/// while every event still reads as correct code's would (a restart in place, a hand-over);
/// the honest node passes the same library scenario.
#[test]
fn restart_policy_fires_when_a_store_restarts_forever_or_the_count_never_expires() {
    let cases = [
        (
            "store-keeps-failing.toml",
            PlantedBugs {
                restart_forever: true,
                ..PlantedBugs::default()
            },
            "restarted in place again",
        ),
        (
            "store-fails-now-and-then.toml",
            PlantedBugs {
                restart_count_never_expires: true,
                ..PlantedBugs::default()
            },
            "failed the group over",
        ),
    ];
    for (file, bugs, says) in cases {
        let mut s = library(file);
        let honest = run(&s, 1, false);
        assert!(honest.passed(), "{file}: {}", honest.summary());
        s.planted = nodes(bugs);
        let broken = run(&s, 1, false);
        assert_eq!(
            violated(&broken),
            Some(Invariant::RestartPolicy),
            "{file}: {}",
            broken.summary()
        );
        let message = &broken.violation.as_ref().expect("a violation").message;
        assert!(message.contains(says), "{file}: {message}");
    }
}

/// A trickle of mail whose idle roll restarts its timer at every record: the open log stays
/// open until it fills, four minutes instead of ninety seconds. Nothing is lost (the dumpster
/// redelivers what the power loss takes), so only the idle roll's own checker sees it.
#[test]
fn idle_log_roll_fires_when_a_trickle_of_mail_keeps_restarting_the_timer() {
    let mut s = library("quiet-storage-group-loses-its-active.toml");
    let honest = run(&s, 1, false);
    assert!(honest.passed(), "{}", honest.summary());
    s.planted = nodes(PlantedBugs {
        idle_roll_timer_restarts: true,
        ..PlantedBugs::default()
    });
    let broken = run(&s, 1, false);
    assert_eq!(
        violated(&broken),
        Some(Invariant::IdleLogRoll),
        "{}",
        broken.summary()
    );
    let message = &broken.violation.as_ref().expect("a violation").message;
    assert!(message.contains("the idle roll (90 s)"), "{message}");
}

/// A passive that calls its peer down one heartbeat early: the failover still lands well
/// inside 10–60 s and loses nothing, so only the takeover's timing, judged from the
/// heartbeats on the wire, shows it.
#[test]
fn takeover_timing_fires_when_the_peer_is_called_down_a_heartbeat_early() {
    let mut s = library("active-node-crash.toml");
    let honest = run(&s, 1, false);
    assert!(honest.passed(), "{}", honest.summary());
    s.planted = nodes(PlantedBugs {
        detect_one_heartbeat_early: true,
        ..PlantedBugs::default()
    });
    let broken = run(&s, 1, false);
    assert_eq!(
        violated(&broken),
        Some(Invariant::TakeoverTiming),
        "{}",
        broken.summary()
    );
    let message = &broken.violation.as_ref().expect("a violation").message;
    assert!(
        message.contains("after the last heartbeat it heard"),
        "{message}"
    );
}

fn library(file: &str) -> Scenario {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    ccr_sim::file::load(&dir.join(file)).expect("a library scenario")
}

#[test]
fn duplicates_fire_when_the_store_writes_a_resubmitted_message_again() {
    // Time-window redelivery resubmits mail the survivor already holds; the store must drop
    // it. With the bug it writes it again and still confirms it once, as correct code would.
    let mut s = library("time-window-redelivery.toml");
    let honest = run(&s, 1, false);
    assert!(honest.passed(), "{}", honest.summary());
    assert!(honest.resubmitted > 0, "{}", honest.summary());
    assert_eq!(honest.duplicated, 0);
    s.planted = nodes(PlantedBugs {
        store_keeps_resubmissions: true,
        ..PlantedBugs::default()
    });
    let broken = run(&s, 1, false);
    assert_eq!(
        violated(&broken),
        Some(Invariant::Duplicates),
        "{}",
        broken.summary()
    );
    assert_eq!(
        broken.acked, honest.acked,
        "every message acknowledged once"
    );
}

#[test]
fn a_skewed_hub_clock_loses_mail_in_time_window_mode_only_and_says_how_far_it_was_off() {
    let mut s = library("time-window-hub-clock-behind.toml");
    s.expect.lost_to_clock_skew = false;
    let skewed = run(&s, 1, false);
    assert_eq!(
        violated(&skewed),
        Some(Invariant::LostToClockSkew),
        "{}",
        skewed.summary()
    );
    let message = &skewed.violation.as_ref().expect("violation").message;
    assert!(message.contains("behind the writer's"), "{message}");
    // The same run with lineage redelivery (the default) loses nothing.
    s.hub.redelivery = ccr_core::cluster::hub::RedeliveryMode::Lineage;
    let lineage = run(&s, 1, false);
    assert!(lineage.passed(), "{}", lineage.summary());
    assert_eq!(lineage.lost, 0);
    // A correct hub clock: time-window mode loses nothing either.
    let mut s = library("time-window-hub-clock-behind.toml");
    s.steps
        .retain(|st| !matches!(st.fault, Fault::ClockJump { .. }));
    s.expect.lost_to_clock_skew = false;
    let agreeing = run(&s, 1, false);
    assert!(agreeing.passed(), "{}", agreeing.summary());
}

#[test]
fn a_damaged_body_is_caught_from_the_stored_bytes_by_loss_and_replication_checkers() {
    // Every message carries its body. A store that writes each body a byte short loses
    // nothing a message count would notice: the checkers compare the stored bytes with what
    // the client sent.
    let mut s = library("message-bodies.toml");
    let honest = run(&s, 1, false);
    assert!(honest.passed(), "{}", honest.summary());
    assert!(honest.resubmitted > 0, "{}", honest.summary());
    s.planted = nodes(PlantedBugs {
        store_truncates_body: true,
        ..PlantedBugs::default()
    });
    let store = run(&s, 1, false);
    assert_eq!(
        violated(&store),
        Some(Invariant::NoAcknowledgedLoss),
        "{}",
        store.summary()
    );
    let message = &store.violation.as_ref().expect("violation").message;
    assert!(message.contains("not what the client sent"), "{message}");
    // Replay that damages bodies: the passive's database no longer matches its logs.
    s.planted = nodes(PlantedBugs {
        replay_truncates_body: true,
        ..PlantedBugs::default()
    });
    s.steps.clear();
    s.expect.failover = Some(false);
    let replay = run(&s, 1, false);
    assert_eq!(
        violated(&replay),
        Some(Invariant::ReplicationSound),
        "{}",
        replay.summary()
    );
    let message = &replay.violation.as_ref().expect("violation").message;
    assert!(message.contains("another size or body"), "{message}");
    // Without bodies the same bugs have nothing to damage: the checkers stay quiet.
    s.workload.bodies = false;
    assert!(run(&s, 1, false).passed());
}

#[test]
fn loss_fires_when_a_mount_stops_asking_once_one_hub_has_answered() {
    // hub1 is down when the survivor of a lossy failover asks both hubs to resubmit; hub2
    // answers. The planted node takes hub2's answer for both and never asks hub1 again, so
    // hub1's share of the lost mail stays lost when it returns. Correct code asks hub1 again
    // with every announcement and passes.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scenarios/hub-down-during-redelivery.toml"
    );
    let mut s = ccr_sim::file::load(std::path::Path::new(path)).expect("library scenario");
    s.jitter_ms = 0;
    let honest = run(&s, 1, false);
    assert!(honest.passed(), "{}", honest.summary());
    assert!(honest.resubmitted > 0, "{}", honest.summary());
    assert!(
        honest
            .coverage
            .contains_key("redelivery carried out by a hub back from down"),
        "{:?}",
        honest.coverage
    );
    s.planted = nodes(PlantedBugs {
        redelivery_first_hub_only: true,
        ..PlantedBugs::default()
    });
    let broken = run(&s, 1, false);
    assert_eq!(
        violated(&broken),
        Some(Invariant::NoAcknowledgedLoss),
        "{}",
        broken.summary()
    );
}

#[test]
fn stopped_stays_stopped_fires_when_a_stop_does_not_last() {
    // The library's maintenance window: Stop-ClusteredMailboxServer on the passive, then the
    // active loses power and comes back. The planted bug carries the stop out as a one-off
    // dismount instead of a state that lasts; the stop still returns to the administrator.
    let mut s = ccr_sim::file::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../scenarios/stopped-server-stays-offline.toml"
    )))
    .expect("library scenario");
    s.planted = nodes(PlantedBugs {
        takeover_ignores_stop: true,
        ..PlantedBugs::default()
    });
    let r = run(&s, 1, true);
    assert_eq!(
        violated(&r),
        Some(Invariant::StoppedStaysStopped),
        "{}",
        r.summary()
    );
    let trace = r.trace.unwrap();
    assert!(
        trace.iter().any(|l| l.contains("CmsStopped")),
        "the stop reports success"
    );
    s.planted = Planted::default();
    let honest = run(&s, 1, false);
    assert!(honest.passed(), "{:?}", honest.violation);
}

#[test]
fn truncation_safe_fires_when_the_active_truncates_what_a_suspended_copy_lacks() {
    // The passive's copy is suspended for maintenance while the active takes a full backup.
    // Correct code holds truncation back until the passive has caught up and replayed; the
    // planted bug truncates as soon as the active's own database holds the logs, and still
    // reports the truncation as correct code would.
    let mut s = scenario(
        180,
        vec![
            step(
                20,
                Fault::SuspendCopy {
                    node: NodeId::Node2,
                },
            ),
            step(
                100,
                Fault::Backup {
                    node: NodeId::Node1,
                    kind: ccr_core::cluster::wire::BackupKind::Full,
                },
            ),
            step(
                120,
                Fault::ResumeCopy {
                    node: NodeId::Node2,
                },
            ),
        ],
    );
    s.expect.failover = Some(false);
    s.expect.truncated = true;
    let honest = run(&s, 1, false);
    assert!(honest.passed(), "{:?}", honest.violation);
    assert!(honest.coverage.contains_key("full backup taken"));
    s.planted = nodes(PlantedBugs {
        truncation_ignores_passive: true,
        ..PlantedBugs::default()
    });
    let broken = run(&s, 1, true);
    assert_eq!(
        violated(&broken),
        Some(Invariant::TruncationSafe),
        "{}",
        broken.summary()
    );
    assert!(
        broken
            .trace
            .unwrap()
            .iter()
            .any(|l| l.contains("LogsTruncated")),
        "the truncation is reported as correct code would"
    );
}

#[test]
fn truncation_safe_fires_when_logs_are_truncated_without_a_backup() {
    // The steady state, no backup ever taken: correct code keeps every log. The planted bug
    // truncates what both database files hold as if a backup had been taken.
    let mut s = scenario(120, vec![]);
    s.expect.failover = Some(false);
    let honest = run(&s, 1, false);
    assert!(honest.passed(), "{:?}", honest.violation);
    assert!(!honest
        .coverage
        .contains_key("logs truncated after a backup"));
    s.planted = nodes(PlantedBugs {
        truncation_ignores_backup: true,
        ..PlantedBugs::default()
    });
    let broken = run(&s, 1, false);
    assert_eq!(
        violated(&broken),
        Some(Invariant::TruncationSafe),
        "{}",
        broken.summary()
    );
    assert!(
        broken
            .violation
            .as_ref()
            .is_some_and(|v| v.message.contains("no backup holds")),
        "{:?}",
        broken.violation
    );
}
