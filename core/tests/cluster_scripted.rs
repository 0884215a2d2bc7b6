//! Scripted runs of the cluster's state machines in the in-test network: the behaviours
//! ISSUES #3 names, each checked end to end (single active, nothing acknowledged lost, the
//! copies converge).

mod common;

use ccr_core::cluster::config::ClusterConfig;
use ccr_core::cluster::node::{Admin, NodeEvent};
use ccr_core::cluster::{Net, NodeId::*};
use common::world::{calm, small_logs, Fault, NetConfig, Place, World};

fn world() -> World {
    World::new(1, ClusterConfig::default(), calm())
}

#[test]
fn the_cluster_forms_and_replicates() {
    let mut w = world();
    w.workload(20, 60_000);
    w.run_until(90_000);
    assert_eq!(w.serving(), vec![Node1]);
    assert!(w.acked.len() > 2_900, "acked {}", w.acked.len());
    assert!(
        w.node(Node2).unwrap().last_closed() > 10,
        "logs rolled and copied"
    );
    w.check_settled();
}

#[test]
fn active_power_loss_fails_over_inside_the_window_and_loses_nothing() {
    let mut w = world();
    w.workload(20, 60_000);
    w.schedule(30_000, Fault::PowerLoss(Node1));
    w.run_until(90_000);
    let mounts = w.mounts();
    let failover = mounts
        .iter()
        .find(|(_, id, _)| *id == Node2)
        .expect("node2 mounted");
    let took = failover.0 - 30_000;
    assert!((10_000..=60_000).contains(&took), "failover took {took} ms");
    w.heal_everything();
    w.run_until(200_000);
    assert_eq!(w.serving(), vec![Node2]);
    w.check_settled();
}

#[test]
fn a_store_crash_lets_the_survivor_copy_every_last_log() {
    let mut w = world();
    w.workload(20, 60_000);
    w.schedule(30_000, Fault::Crash(Node1));
    w.run_until(60_000);
    let (_, id, lost) = *w.mounts().last().unwrap();
    assert_eq!((id, lost), (Node2, 0), "the share was up: lossless");
    w.heal_everything();
    w.run_until(200_000);
    w.check_settled();
}

#[test]
fn witness_lost_alone_changes_nothing() {
    let mut w = world();
    w.workload(50, 60_000);
    w.schedule(10_000, Fault::WitnessDown);
    w.run_until(80_000);
    assert_eq!(w.mounts().len(), 1);
    w.check_settled();
}

#[test]
fn witness_lost_then_active_crash_loses_quorum_and_nothing_acknowledged() {
    let mut w = world();
    w.workload(50, 60_000);
    w.schedule(10_000, Fault::WitnessDown);
    w.schedule(20_000, Fault::PowerLoss(Node1));
    w.run_until(80_000);
    assert!(w.serving().is_empty(), "no quorum, nothing may be mounted");
    assert_eq!(w.mounts().len(), 1);
    w.heal_everything();
    w.run_until(200_000);
    w.check_settled();
}

#[test]
fn split_subnets_with_the_witness_visible_exactly_one_serves() {
    let mut w = world();
    w.workload(50, 60_000);
    for net in Net::ALL {
        for (a, b) in [(Node1, Node2), (Node2, Node1)] {
            w.schedule(
                10_000,
                Fault::Cut {
                    from: Place::Node(a),
                    to: Place::Node(b),
                    net,
                },
            );
        }
    }
    w.run_until(60_000);
    assert_eq!(w.serving().len(), 1);
    w.heal_everything();
    w.run_until(200_000);
    w.check_settled();
}

#[test]
fn active_isolated_from_peer_and_witness_fails_over() {
    let mut w = world();
    w.workload(50, 60_000);
    for net in Net::ALL {
        for other in [Place::Node(Node2), Place::Hub] {
            w.schedule(
                10_000,
                Fault::Cut {
                    from: Place::Node(Node1),
                    to: other,
                    net,
                },
            );
            w.schedule(
                10_000,
                Fault::Cut {
                    from: other,
                    to: Place::Node(Node1),
                    net,
                },
            );
        }
    }
    w.run_until(60_000);
    assert_eq!(w.serving(), vec![Node2]);
    w.heal_everything();
    w.run_until(200_000);
    w.check_settled();
}

#[test]
fn private_network_down_alone_is_no_failover() {
    let mut w = world();
    w.workload(50, 60_000);
    w.cut_between_nodes(10_000, Net::Private);
    w.run_until(80_000);
    assert_eq!(w.mounts().len(), 1);
    w.check_settled();
}

#[test]
fn the_articles_scheduled_moves_are_lossless_and_record_the_comment() {
    let mut w = world();
    w.workload(20, 80_000);
    w.schedule(
        20_000,
        Fault::Admin(
            Node1,
            Admin::Move {
                target: Node2,
                comment: "This is a test!".into(),
            },
        ),
    );
    w.schedule(
        50_000,
        Fault::Admin(
            Node2,
            Admin::Move {
                target: Node1,
                comment: "back".into(),
            },
        ),
    );
    w.run_until(120_000);
    let moves: Vec<_> = w
        .events
        .iter()
        .filter(|(_, _, e)| matches!(e, NodeEvent::MoveCompleted { .. }))
        .collect();
    assert_eq!(moves.len(), 2, "{moves:?}");
    let mounts = w.mounts();
    assert_eq!(
        mounts.iter().map(|m| (m.1, m.2)).collect::<Vec<_>>(),
        vec![(Node1, 0), (Node2, 0), (Node1, 0)]
    );
    assert_eq!(
        w.node(Node1)
            .unwrap()
            .cms_status(ccr_core::cluster::Now::at(w.now))
            .last_move_comment
            .as_deref(),
        Some("back")
    );
    w.check_settled();
    assert_eq!(w.redelivered, 0, "a move needs no redelivery");
}

/// The states Get-ClusteredMailboxServerStatus shows on the way: the source of a move is
/// Offline Pending while it hands over, the target Online Pending until its store mounts; a
/// survivor taking over after a power loss is Online Pending before it mounts.
#[test]
fn cms_status_shows_online_and_offline_pending_on_the_way() {
    use ccr_core::cluster::status::CmsState;
    let states = |w: &mut World, node: ccr_core::cluster::NodeId, from: u64, to: u64| {
        let mut seen = Vec::new();
        let mut t = from;
        while t < to {
            t += 50;
            w.run_until(t);
            if let Some(n) = w.node(node) {
                let s = n.cms_status(ccr_core::cluster::Now::at(w.now)).state;
                if seen.last() != Some(&s) {
                    seen.push(s);
                }
            }
        }
        seen
    };
    let mut w = world();
    w.workload(50, 40_000);
    w.schedule(
        20_000,
        Fault::Admin(
            Node1,
            Admin::Move {
                target: Node2,
                comment: "patching".into(),
            },
        ),
    );
    w.run_until(19_900);
    let mut source = Vec::new();
    let mut target = Vec::new();
    for t in (19_950..50_000).step_by(50) {
        w.run_until(t);
        for (id, seen) in [(Node1, &mut source), (Node2, &mut target)] {
            let s = w
                .node(id)
                .unwrap()
                .cms_status(ccr_core::cluster::Now::at(w.now))
                .state;
            if seen.last() != Some(&s) {
                seen.push(s);
            }
        }
    }
    assert!(
        source.contains(&CmsState::OfflinePending),
        "source: {source:?}"
    );
    assert!(w
        .node(Node2)
        .unwrap()
        .cms_status(ccr_core::cluster::Now::at(w.now))
        .to_string()
        .contains("State                : Online\n"),);
    assert_eq!(w.serving(), vec![Node2], "target states: {target:?}");
    // The target's own view: the owner-side pending state before its store mounts.
    assert!(
        target.contains(&CmsState::OnlinePending),
        "target: {target:?}"
    );

    let mut w = world();
    w.workload(50, 60_000);
    w.schedule(20_000, Fault::PowerLoss(Node1));
    let seen = states(&mut w, Node2, 0, 70_000);
    let pending = seen.iter().position(|s| *s == CmsState::OnlinePending);
    let online_after = seen.iter().rposition(|s| *s == CmsState::Online);
    assert!(
        pending.is_some() && online_after > pending,
        "survivor: {seen:?}"
    );
    let shown = CmsState::OnlinePending.to_string();
    assert_eq!(shown, "Online Pending");
}

#[test]
fn a_move_without_a_comment_is_refused_with_the_reason() {
    let mut w = world();
    w.workload(50, 40_000);
    w.schedule(
        20_000,
        Fault::Admin(
            Node1,
            Admin::Move {
                target: Node2,
                comment: "  ".into(),
            },
        ),
    );
    w.run_until(60_000);
    assert!(w.events.iter().any(|(_, _, e)| matches!(
        e,
        NodeEvent::MoveRefused { reason } if reason.contains("MoveComment")
    )));
    assert_eq!(w.mounts().len(), 1);
    assert_eq!(w.serving(), vec![Node1]);
    w.check_settled();
}

#[test]
fn a_move_to_an_unhealthy_target_is_refused_and_the_source_stays_active() {
    let mut w = world();
    w.workload(50, 40_000);
    w.schedule(
        10_000,
        Fault::Admin(Node2, Admin::SuspendCopy { comment: None }),
    );
    w.schedule(
        20_000,
        Fault::Admin(
            Node1,
            Admin::Move {
                target: Node2,
                comment: "x".into(),
            },
        ),
    );
    w.schedule(30_000, Fault::Admin(Node2, Admin::ResumeCopy));
    w.run_until(80_000);
    assert!(w
        .events
        .iter()
        .any(|(_, _, e)| matches!(e, NodeEvent::MoveRefused { .. })));
    assert_eq!(w.mounts().len(), 1);
    assert_eq!(w.serving(), vec![Node1]);
    w.check_settled();
}

#[test]
fn lossy_failover_beyond_the_dial_waits_for_the_old_node() {
    let mut w = World::new(2, small_logs(), calm());
    w.workload(50, 100_000);
    w.schedule(
        20_000,
        Fault::Admin(Node2, Admin::SuspendCopy { comment: None }),
    );
    w.schedule(30_000, Fault::PowerLoss(Node1));
    w.schedule(90_000, Fault::Restart(Node1));
    w.run_until(89_000);
    assert!(
        w.count(|e| matches!(e, NodeEvent::StayDismounted { missing, allowed: 6 } if *missing > 6))
            > 0
    );
    assert!(
        w.serving().is_empty(),
        "the dial keeps the database dismounted"
    );
    w.run_until(200_000);
    let (t, id, lost) = *w.mounts().last().unwrap();
    assert!(
        t > 90_000 && id == Node2 && lost == 0,
        "mounted once the old node's logs came back: {:?}",
        w.mounts()
    );
    w.check_settled();
}

#[test]
fn the_old_active_returns_diverged_within_llr_and_is_rolled_back() {
    let mut w = World::new(3, small_logs(), calm());
    w.workload(50, 100_000);
    w.schedule(30_000, Fault::PowerLoss(Node1));
    w.schedule(60_000, Fault::Restart(Node1));
    w.run_until(200_000);
    assert!(
        w.mounts()
            .iter()
            .any(|&(_, id, lost)| id == Node2 && lost > 0),
        "a lossy failover: {:?}",
        w.mounts()
    );
    assert!(
        w.count(
            |e| matches!(e, NodeEvent::Diverged { outcome } if outcome.starts_with("rolled back"))
        ) > 0
    );
    assert!(w.redelivered > 0, "the dumpster repaired the loss");
    w.check_settled();
}

#[test]
fn diverged_beyond_llr_needs_a_reseed_and_gets_one() {
    let mut c = small_logs();
    c.storage.llr_depth = 2;
    let mut w = World::new(4, c, calm());
    w.workload(100, 100_000);
    w.schedule(
        28_500,
        Fault::Admin(Node2, Admin::SuspendCopy { comment: None }),
    );
    w.schedule(30_000, Fault::PowerLoss(Node1));
    w.schedule(60_000, Fault::Restart(Node1));
    w.run_until(110_000);
    let (_, id, lost) = w.mounts()[1];
    assert!(
        id == Node2 && lost > 2,
        "lost {lost}: more than the LLR depth"
    );
    let status = w.node(Node1).unwrap().copy_status();
    assert_eq!(format!("{:?}", status.summary), "Failed");
    assert!(status.failed_message.unwrap().contains("reseed required"));
    w.schedule(120_000, Fault::Admin(Node1, Admin::UpdateCopy));
    w.run_until(200_000);
    assert_eq!(w.count(|e| matches!(e, NodeEvent::Reseeded { .. })), 1);
    w.check_settled();
}

#[test]
fn a_corrupted_copy_is_rejected_and_copied_again() {
    let mut w = world();
    w.workload(20, 60_000);
    w.schedule(20_000, Fault::CorruptNextCopy(Node2));
    w.run_until(100_000);
    assert_eq!(w.count(|e| matches!(e, NodeEvent::LogRejected { .. })), 1);
    assert_eq!(w.mounts().len(), 1, "no failover");
    w.check_settled();
}

#[test]
fn a_full_disk_on_the_passive_fails_copying_but_not_the_active() {
    let mut w = world();
    w.workload(20, 80_000);
    w.schedule(20_000, Fault::DiskCapacity(Node2, 1_000));
    w.schedule(50_000, Fault::DiskCapacity(Node2, u64::MAX));
    w.run_until(49_000);
    assert!(
        w.count(|e| matches!(e, NodeEvent::CopyFailed { reason } if reason.contains("disk full")))
            > 0
    );
    let status = w.node(Node2).unwrap().copy_status();
    assert_eq!(format!("{:?}", status.summary), "Failed");
    assert!(
        status.copy_queue_length > 0,
        "the copy queue grows while the disk is full"
    );
    let acked_while_full = w.acked.len();
    assert!(
        acked_while_full > 2_000,
        "the active kept accepting mail: {acked_while_full}"
    );
    w.run_until(120_000);
    assert_eq!(w.mounts().len(), 1);
    w.check_settled();
}

/// Found by the randomized network: node2 starts a takeover and copies node1's open log from
/// its share, then crashes; node1 comes back first. Node1 must learn node2's epoch (from the
/// witness) and must not append to the generation node2 already holds a sealed copy of.
#[test]
fn a_takeover_cut_short_by_a_crash_and_the_old_owner_back_first() {
    let mut w = world();
    w.workload(100, 150_000);
    w.schedule(27_506, Fault::Crash(Node1));
    w.schedule(35_054, Fault::Crash(Node2));
    w.schedule(78_078, Fault::Restart(Node1));
    w.run_until(160_000);
    w.heal_everything();
    w.run_until(300_000);
    assert_eq!(w.count(|e| matches!(e, NodeEvent::LogRejected { .. })), 0);
    w.check_settled();
}

#[test]
fn a_paused_active_acknowledges_nothing_once_it_resumes_without_quorum() {
    // Swarm seed 8317: the active is paused with a batch's sync in flight; the survivor takes
    // over and is redelivered what the dumpster holds; the paused node resumes, has lost
    // quorum — and must not then acknowledge the batch its disk finished meanwhile.
    let mut w = world();
    // A slow log disk (2 ms syncs become 200 ms) keeps a commit in flight nearly all the time.
    w.machines[Node1.index()].disk.set_slowdown(100);
    w.workload(20, 60_000);
    w.schedule(30_001, Fault::Pause(Node1));
    w.schedule(45_000, Fault::Resume(Node1));
    w.run_until(90_000);
    let dismounted_at = w
        .events
        .iter()
        .find(|(t, id, e)| {
            *t >= 45_000 && *id == Node1 && matches!(e, NodeEvent::Dismounted { .. })
        })
        .map(|(t, ..)| *t);
    assert_eq!(
        dismounted_at,
        Some(45_000),
        "node1 stops at once on resuming"
    );
    assert!(
        w.mounts()
            .iter()
            .any(|(t, id, _)| *id == Node2 && *t < 45_000),
        "node2 took over during the pause"
    );
    let late: Vec<_> = w
        .confirms
        .iter()
        .filter(|(t, id, epoch)| *t >= 45_000 && *id == Node1 && *epoch == 0)
        .collect();
    assert!(
        late.is_empty(),
        "node1 confirmed after losing quorum: {late:?}"
    );
    w.heal_everything();
    w.run_until(200_000);
    w.check_settled();
}

/// Idle log roll (SP1): a quiet store — one small message every 20 s, nowhere near filling a
/// log — still closes its log 15 min ÷ LLR depth (90 s) after the first record in it, so the
/// passive holds all but the last interval's mail; without it (RTM, 0) nothing is shipped.
#[test]
fn a_quiet_store_rolls_its_log_so_the_passive_keeps_up() {
    let quiet = |idle_log_roll_ms| {
        let config = ClusterConfig {
            idle_log_roll_ms,
            ..ClusterConfig::default()
        };
        let mut w = World::new(1, config, calm());
        w.workload(20_000, 600_000);
        w.run_until(620_000);
        assert_eq!(w.serving(), vec![Node1]);
        w
    };
    let sp1 = quiet(None);
    let copied = sp1.node(Node2).unwrap().last_closed();
    // ~600 s of mail in 90 s rolls: six or seven closed logs (the first log opens at boot).
    assert!((5..=8).contains(&copied), "node2 copied {copied} logs");
    sp1.check_settled();
    let rtm = quiet(Some(0));
    assert_eq!(
        rtm.node(Node2).unwrap().last_closed(),
        0,
        "no roll without a full log"
    );
}

/// Which networks carry log copies: with the public network cut between the nodes (the
/// private one still carries heartbeats, so nothing fails over), SP1's replication over the
/// private network keeps the passive copying; RTM's public-only replication stalls until the
/// public network is back, then catches up.
#[test]
fn log_copies_use_the_private_network_only_when_configured_to() {
    use ccr_core::cluster::config::ReplicationNetworks;
    let run = |replication_networks| {
        let config = ClusterConfig {
            replication_networks,
            // The serving node keeps its clients: the hub still hears it on the public side.
            public_network_failover: false,
            ..ClusterConfig::default()
        };
        let mut w = World::new(1, config, calm());
        w.workload(20, 100_000);
        w.cut_between_nodes(20_000, Net::Public);
        w.run_until(20_000);
        let before = w.node(Node2).unwrap().last_closed();
        w.run_until(70_000);
        let during = w.node(Node2).unwrap().last_closed();
        let active = w.node(Node1).unwrap().last_closed();
        w.schedule(70_000, Fault::HealAll);
        w.run_until(140_000);
        assert_eq!(w.mounts().len(), 1, "nothing fails over");
        w.check_settled();
        (before, during, active)
    };
    let (before, during, active) = run(ReplicationNetworks::PublicAndPrivate);
    assert!(
        during > before + 20 && during + 5 >= active,
        "{before} {during} {active}"
    );
    let (before, during, active) = run(ReplicationNetworks::Public);
    assert!(
        during <= before + 2 && active > during + 20,
        "{before} {during} {active}"
    );
}

/// How long node2, down while node1 wrote `logs`-worth of mail, takes to copy all of it once
/// it is back, over a network of up to `delay_ms` each way, asking for `window` logs at once.
fn catch_up_ms(window: u32, delay_ms: u64) -> u64 {
    let mut config = small_logs();
    config.copy_window = window;
    let net = NetConfig {
        max_delay_ms: delay_ms,
        ..calm()
    };
    let mut w = World::new(3, config, net);
    w.schedule(1, Fault::Crash(Node2));
    w.workload(10, 60_000);
    w.run_until(60_000);
    let behind = w.node(Node1).unwrap().last_closed();
    assert!(behind >= 40, "only {behind} logs to copy");
    w.schedule(60_001, Fault::Restart(Node2));
    let mut now = 60_000;
    while w.node(Node2).is_none_or(|n| n.last_closed() < behind) {
        now += 100;
        assert!(now < 600_000, "node2 never caught up (window {window})");
        w.run_until(now);
    }
    w.run_until(now + 30_000);
    w.check_settled();
    now - 60_000
}

#[test]
fn a_copy_window_catches_up_over_a_long_round_trip_in_a_fraction_of_the_time() {
    let one = catch_up_ms(1, 60);
    let four = catch_up_ms(4, 60);
    assert!(
        four * 2 < one,
        "one log at a time took {one} ms, four at a time {four} ms"
    );
}

#[test]
fn a_stopped_server_stays_offline_across_restarts_and_failures_until_started() {
    let mut w = world();
    w.workload(50, 140_000);
    w.schedule(
        10_000,
        Fault::Admin(Node1, Admin::StopCms { reason: " ".into() }),
    );
    w.schedule(
        20_000,
        Fault::Admin(
            Node1,
            Admin::StopCms {
                reason: "SAN firmware".into(),
            },
        ),
    );
    // Both machines lose power during the window, one after the other, and come back.
    w.schedule(30_000, Fault::PowerLoss(Node1));
    w.schedule(40_000, Fault::Restart(Node1));
    w.schedule(50_000, Fault::PowerLoss(Node2));
    w.schedule(60_000, Fault::PowerLoss(Node1));
    w.schedule(65_000, Fault::Restart(Node2));
    w.schedule(70_000, Fault::Restart(Node1));
    w.run_until(25_000);
    assert!(w.events.iter().any(|(_, _, e)| matches!(
        e,
        NodeEvent::AdminRefused { reason } if reason.contains("StopReason")
    )));
    let stopped_at = w
        .events
        .iter()
        .find(|(_, _, e)| matches!(e, NodeEvent::CmsStopped { .. }))
        .map(|(t, _, _)| *t)
        .expect("the stop returned");
    assert!(stopped_at < 25_000);
    assert!(w.serving().is_empty());
    w.run_until(120_000);
    assert!(w.serving().is_empty(), "a stopped server came online");
    assert_eq!(w.mounts().len(), 1, "only the first formation mounted");
    for id in [Node1, Node2] {
        let status = w
            .node(id)
            .unwrap()
            .cms_status(ccr_core::cluster::Now::at(w.now));
        assert!(
            status
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("SAN firmware")),
            "{id}: {status:?}"
        );
    }
    // Started from the passive: the owner mounts, and the hub delivers what it held.
    w.schedule(120_000, Fault::Admin(Node2, Admin::StartCms));
    w.run_until(200_000);
    assert!(w
        .events
        .iter()
        .any(|(_, _, e)| matches!(e, NodeEvent::CmsStarted)));
    assert_eq!(w.serving().len(), 1);
    assert_eq!(w.mounts().len(), 2);
    w.check_settled();
}

/// Backups and truncation: an incremental backup needs a full one first; after a full backup
/// each node deletes the logs both copies' database files hold, up to the backup's
/// checkpoint — a suspended passive holds truncation back on the active until it has caught
/// up — and a node booting from a truncated log folder, or taking over from one, loses
/// nothing.
#[test]
fn a_backup_truncates_what_both_copies_hold_and_a_suspended_copy_holds_it_back() {
    use ccr_core::cluster::wire::BackupKind;
    let oldest = |w: &World, id| {
        w.node(id)
            .unwrap()
            .closed_logs()
            .keys()
            .next()
            .copied()
            .unwrap_or(0)
    };
    let mut w = World::new(1, small_logs(), calm());
    w.workload(20, 110_000);
    w.schedule(
        20_000,
        Fault::Admin(
            Node2,
            Admin::Backup {
                kind: BackupKind::Incremental,
            },
        ),
    );
    w.schedule(
        30_000,
        Fault::Admin(
            Node2,
            Admin::SuspendCopy {
                comment: Some("maintenance".into()),
            },
        ),
    );
    w.schedule(
        60_000,
        Fault::Admin(
            Node1,
            Admin::Backup {
                kind: BackupKind::Full,
            },
        ),
    );
    w.run_until(80_000);
    assert_eq!(
        w.count(
            |e| matches!(e, NodeEvent::AdminRefused { reason } if reason.contains("needs a full backup"))
        ),
        1
    );
    let held = w.node(Node2).unwrap().db_file_checkpoint();
    let backed_up = w.node(Node1).unwrap().backup_mark().checkpoint;
    assert!(
        backed_up > held + 5,
        "the backup ({backed_up}) is past the suspended copy's checkpoint ({held})"
    );
    assert_eq!(w.node(Node2).unwrap().backup_mark().checkpoint, backed_up);
    assert!(
        oldest(&w, Node1) <= held + 1,
        "node1 deleted logs node2 has not replayed: oldest {:#x}, node2's checkpoint {held:#x}",
        oldest(&w, Node1)
    );
    assert_eq!(
        oldest(&w, Node1),
        held.min(backed_up) + 1,
        "up to the passive's checkpoint"
    );

    w.schedule(80_000, Fault::Admin(Node2, Admin::ResumeCopy));
    w.run_until(120_000);
    for id in [Node1, Node2] {
        assert_eq!(
            oldest(&w, id),
            backed_up + 1,
            "{id} truncated up to the backup"
        );
        let on_disk = w.machines[id.index()]
            .disk
            .paths()
            .into_iter()
            .filter(|p| p.starts_with("logs/E00") && p.len() > "logs/E00.log".len())
            .count();
        assert_eq!(
            on_disk,
            w.node(id).unwrap().closed_logs().len(),
            "{id}'s log folder"
        );
    }
    assert!(w.count(|e| matches!(e, NodeEvent::LogsTruncated { .. })) >= 2);

    // Booting from a truncated folder, and (with everything copied) a failover onto one.
    w.schedule(121_000, Fault::PowerLoss(Node2));
    w.schedule(125_000, Fault::Restart(Node2));
    w.schedule(150_000, Fault::PowerLoss(Node1));
    w.schedule(200_000, Fault::Restart(Node1));
    w.run_until(200_000);
    w.heal_everything();
    w.run_until(260_000);
    assert_eq!(w.serving(), vec![Node2]);
    w.check_settled();
}

/// Restore-StorageGroupCopy readies a database the dial keeps dismounted; only Mount-Database
/// mounts it — refused before the restore — accepting the loss, which the dumpster repairs.
#[test]
fn a_restore_readies_the_copy_and_mount_database_mounts_it() {
    let mut w = World::new(2, small_logs(), calm());
    w.workload(50, 100_000);
    w.schedule(
        20_000,
        Fault::Admin(Node2, Admin::SuspendCopy { comment: None }),
    );
    w.schedule(30_000, Fault::PowerLoss(Node1));
    w.schedule(60_000, Fault::Admin(Node2, Admin::MountDatabase));
    w.schedule(61_000, Fault::Admin(Node2, Admin::RestoreCopy));
    w.run_until(75_000);
    let refused = |w: &World| {
        w.count(|e| {
            matches!(e, NodeEvent::AdminRefused { reason } if reason.starts_with("Mount-Database") && reason.contains("Restore-StorageGroupCopy first"))
        })
    };
    assert_eq!(
        refused(&w),
        1,
        "Mount-Database before the restore is refused: {:?}",
        w.events
            .iter()
            .filter(|(t, _, e)| *t > 29_000
                && !matches!(
                    e,
                    NodeEvent::LogReplayed { .. } | NodeEvent::LogCopied { .. }
                ))
            .collect::<Vec<_>>()
    );
    assert_eq!(w.count(|e| matches!(e, NodeEvent::CopyRestored)), 1);
    assert!(
        w.serving().is_empty(),
        "the restore alone mounts nothing: {:?}",
        w.mounts()
    );
    w.schedule(76_000, Fault::Admin(Node2, Admin::MountDatabase));
    w.run_until(90_000);
    assert_eq!(w.serving(), vec![Node2]);
    assert!(
        w.events.iter().any(|(_, id, e)| *id == Node2
            && matches!(e, NodeEvent::Mounted { forced: true, lost, .. } if *lost > 6)),
        "{:?}",
        w.mounts()
    );
    // node1 returns diverged past lost-log resilience (the mount gave up its last 39 logs)
    // and is reseeded; the dumpster has redelivered what the forced mount lost.
    w.schedule(100_000, Fault::Restart(Node1));
    w.schedule(120_000, Fault::Admin(Node1, Admin::UpdateCopy));
    w.run_until(200_000);
    w.heal_everything();
    w.run_until(260_000);
    assert!(w.redelivered > 0);
    w.check_settled();
}

/// A takeover's mount first replays what its copy had not replayed when the takeover began —
/// here the logs a suspended copy lacked, drained from the crashed node's share — at
/// `replay_ms_per_log` each: the further behind the copy, the longer the failover.
#[test]
fn a_takeover_mount_replays_its_backlog_so_a_copy_far_behind_fails_over_later() {
    let failover = |replay_ms_per_log: u64| {
        let mut config = small_logs();
        config.storage.replay_ms_per_log = replay_ms_per_log;
        let mut w = World::new(4, config, calm());
        w.workload(50, 60_000);
        w.schedule(
            20_000,
            Fault::Admin(Node2, Admin::SuspendCopy { comment: None }),
        );
        w.schedule(30_000, Fault::Crash(Node1));
        w.run_until(120_000);
        let (mounted_at, _, lost) = *w
            .mounts()
            .iter()
            .find(|(_, id, _)| *id == Node2)
            .expect("node2 mounted");
        assert_eq!(lost, 0, "the crashed node's share had every log");
        let began = w
            .events
            .iter()
            .find(|(_, id, e)| *id == Node2 && matches!(e, NodeEvent::TakeoverStarted))
            .map(|(t, _, _)| *t)
            .unwrap();
        let replayed = w
            .events
            .iter()
            .filter(|(t, id, e)| {
                *id == Node2
                    && *t >= began
                    && *t <= mounted_at
                    && matches!(e, NodeEvent::LogReplayed { .. })
            })
            .count() as u64;
        (mounted_at, replayed)
    };
    let (quick, backlog) = failover(0);
    let (slow, _) = failover(1_000);
    assert!(backlog > 20, "the suspended copy was {backlog} logs behind");
    // The replay runs while the mount still waits out the witness guard, which it can
    // overlap by at most that guard.
    let overlap = small_logs().witness_guard_ms();
    assert!(
        (backlog * 1_000 - overlap..=backlog * 1_000).contains(&(slow - quick)),
        "backlog {backlog}: mounted {} ms later",
        slow - quick
    );
}
