//! The cluster's state machines in the in-test network under random faults: delivery order,
//! drops, duplicates, cuts of any link, node crashes, power losses and restarts, witness loss,
//! moves. After every step: never two nodes serving, no mount without quorum, every accepted
//! log contiguous. After the faults stop: nothing acknowledged lost, one active, a healthy
//! passive with the same digest.

mod common;

use ccr_core::cluster::config::ClusterConfig;
use ccr_core::cluster::node::{Admin, NodeEvent, PlantedBugs};
use ccr_core::cluster::{Net, NodeId};
use common::world::{Fault, NetConfig, Place, World};
use proptest::prelude::*;

fn node() -> impl Strategy<Value = NodeId> {
    prop_oneof![Just(NodeId::Node1), Just(NodeId::Node2)]
}

fn any_place() -> impl Strategy<Value = Place> {
    prop_oneof![node().prop_map(Place::Node), Just(Place::Hub)]
}

fn net() -> impl Strategy<Value = Net> {
    prop_oneof![Just(Net::Public), Just(Net::Private)]
}

/// Faults CCR claims to survive (no disk is ever lost; the dumpster outlives the run).
fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        2 => node().prop_map(Fault::Crash),
        2 => node().prop_map(Fault::PowerLoss),
        3 => node().prop_map(Fault::Restart),
        3 => (any_place(), any_place(), net())
            .prop_filter("a cut between two machines", |(a, b, _)| a != b)
            .prop_map(|(from, to, net)| Fault::Cut { from, to, net }),
        2 => Just(Fault::HealAll),
        1 => Just(Fault::WitnessDown),
        1 => Just(Fault::WitnessUp),
        1 => Just(Fault::WitnessLosesFile),
        1 => (node(), node()).prop_map(|(at, target)| Fault::Admin(at, Admin::Move {
            target,
            comment: "proptest".into(),
        })),
        1 => (node(), 0u8..2).prop_map(|(n, g)| Fault::Admin(n, Admin::for_group(g, Admin::RestoreCopy))),
        1 => (node(), 0u8..2).prop_map(|(n, g)| Fault::Admin(n, Admin::for_group(g, Admin::MountDatabase))),
    ]
}

/// The default cluster with two storage groups.
fn two_groups() -> ClusterConfig {
    ClusterConfig {
        storage_groups: 2,
        ..ClusterConfig::default()
    }
}

fn schedule() -> impl Strategy<Value = Vec<(u64, Fault)>> {
    proptest::collection::vec((5_000u64..150_000, fault()), 0..10)
}

fn run(
    seed: u64,
    faults: Vec<(u64, Fault)>,
    drop: f64,
    dup: f64,
    delay: u64,
    bugs: PlantedBugs,
) -> World {
    run_with(
        ClusterConfig::default(),
        seed,
        faults,
        drop,
        dup,
        delay,
        bugs,
    )
}

fn run_with(
    config: ClusterConfig,
    seed: u64,
    faults: Vec<(u64, Fault)>,
    drop: f64,
    dup: f64,
    delay: u64,
    bugs: PlantedBugs,
) -> World {
    let mut w = World::new(
        seed,
        config,
        NetConfig {
            max_delay_ms: delay,
            drop_rate: drop,
            dup_rate: dup,
        },
    );
    for id in NodeId::ALL {
        w.plant(id, bugs);
    }
    w.workload(100, 150_000);
    for (at, f) in faults {
        w.schedule(at, f);
    }
    w.run_until(160_000);
    w.heal_everything();
    w.run_until(300_000);
    // An admin who forced a mount (Restore-StorageGroupCopy) accepted a loss that can leave
    // the old copy beyond lost-log resilience: then, and only then, they reseed it.
    let forced = w.count(|e| matches!(e.group().1, NodeEvent::Mounted { forced: true, .. })) > 0;
    for id in NodeId::ALL {
        for group in 0..w.config.storage_groups {
            let status = w.node(id).map(|n| n.copy_status_of(group));
            let needs_reseed = status
                .and_then(|s| s.failed_message)
                .is_some_and(|m| m.contains("reseed required"));
            if needs_reseed && forced {
                w.schedule(
                    300_001,
                    Fault::Admin(id, Admin::for_group(group, Admin::UpdateCopy)),
                );
            }
        }
    }
    w.run_until(450_000);
    w
}

/// The property tests draw their cases from a fixed seed, like everything else here: a run is
/// reproducible, and CI does not pass or fail by the luck of the draw. (Drawn at random, they
/// found the two cases below, kept as plain tests.)
const CASES_SEED: u64 = 0xCC12_2007;

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        rng_seed: proptest::test_runner::RngSeed::Fixed(CASES_SEED),
        ..ProptestConfig::default()
    })]

    #[test]
    fn tolerated_faults_never_split_brain_or_lose_acknowledged_mail(
        seed in any::<u64>(),
        faults in schedule(),
        drop in 0.0f64..0.2,
        dup in 0.0f64..0.1,
        delay in 1u64..200,
    ) {
        let w = run(seed, faults, drop, dup, delay, PlantedBugs::default());
        w.check_settled();
    }

    /// The same with two storage groups: the server moves as a whole, each group's copy,
    /// mount and redelivery go on their own, and after every step no group is served by both
    /// nodes.
    #[test]
    fn two_storage_groups_never_split_brain_or_lose_acknowledged_mail(
        seed in any::<u64>(),
        faults in schedule(),
        drop in 0.0f64..0.2,
        dup in 0.0f64..0.1,
        delay in 1u64..200,
    ) {
        let w = run_with(two_groups(), seed, faults, drop, dup, delay, PlantedBugs::default());
        w.check_settled();
    }
}

/// Found by the random draw. Node1 loses power, node2 takes over, takes message 142 into the
/// log it has open and crashes; node1 comes back 83 s later and mounts without that log. The
/// hub, told of the mount before the redelivery request, delivered 100 s of backlog first: past
/// the dumpster's 18 MB it evicted 142 before the request naming it arrived. Fixed: an owner
/// tells the hub it serves only once the hub has taken its redelivery request.
#[test]
fn no_loss_after_power_loss_then_crash_of_the_survivor() {
    let w = run(
        4610043280141519744,
        vec![
            (13012, Fault::PowerLoss(NodeId::Node1)),
            (31446, Fault::Crash(NodeId::Node2)),
            (114272, Fault::Restart(NodeId::Node1)),
        ],
        0.17478564123669837,
        0.05114919636491954,
        180,
        PlantedBugs::default(),
    );
    w.check_settled();
}

/// Found by the random draw. The hub cannot reach node1 (the active) on the public network,
/// node2 loses power, everything heals, then the witness loses its file: node1's lossy mount
/// met the same backlog-before-redelivery eviction as the test above.
#[test]
fn no_loss_after_a_one_way_cut_and_a_power_loss() {
    let w = run(
        13427311814800397344,
        vec![
            (130009, Fault::HealAll),
            (138021, Fault::WitnessLosesFile),
            (33617, Fault::PowerLoss(NodeId::Node2)),
            (
                6017,
                Fault::Cut {
                    from: Place::Hub,
                    to: Place::Node(NodeId::Node1),
                    net: Net::Public,
                },
            ),
        ],
        0.061793186856230725,
        0.022949091816568398,
        22,
        PlantedBugs::default(),
    );
    w.check_settled();
}

/// node1 (active) stops reaching node2 and the witness, while node2 still reaches node1: node1
/// keeps serving on the lease node2 granted until its echoes stop. With a takeover path faster
/// than that lease, only the guard keeps node2 from mounting beside it.
fn old_owner_still_holds_a_lease(bugs: PlantedBugs) -> World {
    let config = ClusterConfig {
        // Windows Server 2008's quicker detection (5 s) leaves the old owner's 8 s peer lease
        // well outstanding when the survivor could mount.
        os: ccr_core::cluster::config::Os::Windows2008,
        passive_arbitration_delay_ms: 0,
        lost_log_copy_timeout_ms: 100,
        online_delay_ms: 0,
        // The cut also silences node1's pings to the hub; without this it would move away on
        // its own before the takeover this test is about.
        public_network_failover: false,
        ..ClusterConfig::default()
    };
    let mut faults = Vec::new();
    for net in Net::ALL {
        faults.push((
            20_000,
            Fault::Cut {
                from: Place::Node(NodeId::Node1),
                to: Place::Node(NodeId::Node2),
                net,
            },
        ));
        faults.push((
            20_000,
            Fault::Cut {
                from: Place::Node(NodeId::Node1),
                to: Place::Hub,
                net,
            },
        ));
    }
    run_with(config, 7, faults, 0.0, 0.0, 5, bugs)
}

#[test]
fn the_guard_keeps_a_fast_takeover_from_mounting_beside_a_leased_owner() {
    let w = old_owner_still_holds_a_lease(PlantedBugs::default());
    w.check_settled();
}

#[test]
#[should_panic(expected = "split brain")]
fn the_split_brain_check_fires_when_the_takeover_guard_is_skipped() {
    let bugs = PlantedBugs {
        skip_takeover_guard: true,
        ..PlantedBugs::default()
    };
    old_owner_still_holds_a_lease(bugs);
}

#[test]
#[should_panic(expected = "acknowledged messages lost")]
fn the_loss_check_fires_when_redelivery_is_skipped() {
    let bugs = PlantedBugs {
        skip_redelivery: true,
        ..PlantedBugs::default()
    };
    let w = run(
        3,
        vec![(30_000, Fault::PowerLoss(NodeId::Node1))],
        0.0,
        0.0,
        5,
        bugs,
    );
    w.check_settled();
}

fn move_fault() -> impl Strategy<Value = (u64, Fault)> {
    (10_000u64..140_000, node(), node()).prop_map(|(at, from, target)| {
        (
            at,
            Fault::Admin(
                from,
                Admin::Move {
                    target,
                    comment: "proptest move".into(),
                },
            ),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        rng_seed: proptest::test_runner::RngSeed::Fixed(CASES_SEED),
        ..ProptestConfig::default()
    })]

    /// Moves in any order, at any time, over a network that reorders, drops and duplicates:
    /// every mount is lossless, nothing needs redelivery, and after each refused or failed
    /// move the source is still (or again) the one serving.
    #[test]
    fn scheduled_moves_are_lossless_in_every_interleaving(
        seed in any::<u64>(),
        moves in proptest::collection::vec(move_fault(), 1..6),
        drop in 0.0f64..0.15,
        dup in 0.0f64..0.1,
        delay in 1u64..150,
    ) {
        let w = run(seed, moves, drop, dup, delay, PlantedBugs::default());
        for (t, id, lost) in w.mounts() {
            prop_assert_eq!(lost, 0, "{} mounted with {} lost at {}", id, lost, t);
        }
        prop_assert_eq!(w.redelivered, 0);
        let refused_or_failed = w.count(|e| matches!(e, NodeEvent::MoveRefused { .. } | NodeEvent::MoveFailed { .. }));
        let completed = w.count(|e| matches!(e, NodeEvent::MoveCompleted { .. }));
        prop_assert_eq!(w.mounts().len(), 1 + completed + w.count(|e| matches!(e, NodeEvent::MoveFailed { .. })),
            "each completed move mounts the target once, each failed one remounts the source; refused {}", refused_or_failed);
        w.check_settled();
    }

    /// Moves of a server of two storage groups: each group's target copy catches up on its
    /// own and the server goes over once both are ready, so no mount of either group loses
    /// anything and nothing needs redelivery.
    #[test]
    fn moves_of_two_storage_groups_are_lossless(
        seed in any::<u64>(),
        moves in proptest::collection::vec(move_fault(), 1..6),
        drop in 0.0f64..0.15,
        dup in 0.0f64..0.1,
        delay in 1u64..150,
    ) {
        let w = run_with(two_groups(), seed, moves, drop, dup, delay, PlantedBugs::default());
        for (t, id, lost) in w.mounts() {
            prop_assert_eq!(lost, 0, "{} mounted with {} lost at {}", id, lost, t);
        }
        prop_assert_eq!(w.redelivered, 0);
        let completed = w.count(|e| matches!(e, NodeEvent::MoveCompleted { .. }));
        // Each group mounts once at the start and once per completed move.
        prop_assert!(w.mounts().len() >= 2 * (1 + completed), "{} mounts, {} moves", w.mounts().len(), completed);
        w.check_settled();
    }
}

/// Found by the random draw (CI, stop 27). A scheduled move to node2, whose mount asks the
/// hubs for a window and records it in its lineage entry (`asked_since`), cleared once every
/// hub answers. node1, passive, persisted the entry while the request was open, crashed, and
/// on restart compared the entries whole: the cleared request read as another stream,
/// "diverged by 11 generations", and a healthy copy asked for a reseed. Entries now compare
/// by their stream fields only.
#[test]
fn a_passive_restarting_after_a_move_follows_the_new_owner() {
    let w = run(
        11398346269852490312,
        vec![
            (
                34467,
                Fault::Admin(
                    NodeId::Node1,
                    Admin::Move {
                        target: NodeId::Node2,
                        comment: "proptest".into(),
                    },
                ),
            ),
            (93790, Fault::Crash(NodeId::Node1)),
        ],
        0.04911857882421514,
        0.062043900816973314,
        147,
        PlantedBugs::default(),
    );
    w.check_settled();
}
