//! proptest strategies for writing your own properties against the simulated cluster:
//! fault schedules, workloads, cluster configurations and whole scenarios. They stay inside
//! the envelope the swarm documents (`crate::swarm`), so a failing case is a bug, not a fault
//! CCR never claimed to survive; proptest shrinks a failure towards fewer, earlier faults.
//!
//! ```ignore
//! use ccr_sim::swarm::Family;
//! proptest!(|(scenario in ccr_sim::strategy::scenario(300, &Family::ALL))| {
//!     let record = ccr_sim::run::run(&scenario, 1, false);   // needs --cfg madsim
//!     prop_assert!(record.passed(), "{:?}", record.violation);
//! });
//! ```

use ccr_core::cluster::config::{ClusterConfig, MountDial};
use ccr_core::cluster::{Net, NodeId};
use proptest::prelude::*;

use crate::scenario::{Expect, Fault, Scenario, Step, Workload};
use crate::swarm::Family;
use crate::topology::{LinkConfig, Machine};

pub fn node() -> impl Strategy<Value = NodeId> {
    prop_oneof![Just(NodeId::Node1), Just(NodeId::Node2)]
}

pub fn machine() -> impl Strategy<Value = Machine> {
    prop_oneof![
        Just(Machine::Node1),
        Just(Machine::Node2),
        Just(Machine::Hub(ccr_core::cluster::HubId::FIRST)),
        Just(Machine::Client)
    ]
}

pub fn net() -> impl Strategy<Value = Option<Net>> {
    prop_oneof![
        Just(None),
        Just(Some(Net::Public)),
        Just(Some(Net::Private))
    ]
}

/// One fault or repair of `family`, inside the envelope (no corruption at rest, no forced
/// restore, drift within ±5000 ppm).
pub fn fault_of(family: Family) -> BoxedStrategy<Fault> {
    match family {
        Family::Network => prop_oneof![
            (machine(), machine(), net(), any::<bool>()).prop_map(|(from, to, net, one_way)| {
                if from == to {
                    Fault::Heal
                } else {
                    Fault::Partition {
                        from,
                        to,
                        net,
                        one_way,
                    }
                }
            }),
            (machine(), net(), any::<bool>()).prop_map(|(machine, net, one_way)| Fault::Isolate {
                machine,
                net,
                one_way
            }),
            Just(Fault::IsolateActive),
            Just(Fault::Heal),
        ]
        .boxed(),
        Family::Process => prop_oneof![
            node().prop_map(|node| Fault::Crash { node }),
            Just(Fault::CrashActive),
            node().prop_map(|node| Fault::Restart { node }),
            node().prop_map(|node| Fault::Pause { node }),
            node().prop_map(|node| Fault::Resume { node }),
        ]
        .boxed(),
        Family::Power => prop_oneof![
            node().prop_map(|node| Fault::PowerLoss { node }),
            Just(Fault::PowerLossActive),
            node().prop_map(|node| Fault::Restart { node }),
        ]
        .boxed(),
        Family::Disk => prop_oneof![
            (node(), prop_oneof![Just(1u64 << 20), Just(64u64 << 30)])
                .prop_map(|(node, bytes)| Fault::DiskCapacity { node, bytes }),
            node().prop_map(|node| Fault::CorruptNextCopy { node }),
        ]
        .boxed(),
        Family::Clock => prop_oneof![
            (machine(), -5_000i64..=5_000)
                .prop_map(|(machine, ppm)| Fault::ClockDrift { machine, ppm }),
            (machine(), -3_600_000i64..3_600_000)
                .prop_map(|(machine, ms)| Fault::ClockJump { machine, ms }),
        ]
        .boxed(),
        Family::Witness => prop_oneof![
            Just(Fault::WitnessDown),
            Just(Fault::WitnessUp),
            Just(Fault::WitnessFileLost),
        ]
        .boxed(),
        Family::Gray => prop_oneof![
            (
                prop_oneof![Just(Net::Public), Just(Net::Private)],
                1u64..400,
                0.0..0.6f64,
                0.0..0.3f64
            )
                .prop_map(|(net, max_delay_ms, loss, duplicate)| Fault::Link {
                    net,
                    link: LinkConfig {
                        min_delay_ms: 1,
                        max_delay_ms,
                        loss,
                        duplicate,
                        ..LinkConfig::default()
                    },
                }),
            (node(), 1u32..200).prop_map(|(node, factor)| Fault::SlowDisk { node, factor }),
        ]
        .boxed(),
        Family::Admin => prop_oneof![
            node().prop_map(|target| Fault::Move {
                target,
                comment: "proptest".into()
            }),
            node().prop_map(|node| Fault::SuspendCopy { node }),
            node().prop_map(|node| Fault::ResumeCopy { node }),
            node().prop_map(|node| Fault::UpdateCopy { node }),
        ]
        .boxed(),
    }
}

/// One fault of any of `families`.
pub fn fault_in(families: &[Family]) -> BoxedStrategy<Fault> {
    let choices: Vec<BoxedStrategy<Fault>> = families.iter().map(|f| fault_of(*f)).collect();
    proptest::strategy::Union::new(choices).boxed()
}

/// One fault of any family.
pub fn fault() -> BoxedStrategy<Fault> {
    fault_in(&Family::ALL)
}

/// Up to `max_steps` faults of `families` between 10 s and `duration_s`, in time order.
pub fn schedule(
    duration_s: u64,
    max_steps: usize,
    families: &[Family],
) -> impl Strategy<Value = Vec<Step>> {
    let end_ms = duration_s.max(11) * 1000;
    proptest::collection::vec((10_000..end_ms, fault_in(families)), 0..=max_steps).prop_map(
        |mut v| {
            v.sort_by_key(|(at, _)| *at);
            v.into_iter()
                .map(|(at_ms, fault)| Step { at_ms, fault })
                .collect()
        },
    )
}

pub fn workload() -> impl Strategy<Value = Workload> {
    (5u32..50, 2_000u32..20_000, proptest::bool::weighted(0.1)).prop_map(
        |(rate, message_size, bodies)| Workload {
            messages_per_s: f64::from(rate),
            message_size,
            bodies,
        },
    )
}

/// The default configuration with any mount dial setting.
pub fn config() -> impl Strategy<Value = ClusterConfig> {
    prop_oneof![
        Just(MountDial::Lossless),
        Just(MountDial::GoodAvailability),
        Just(MountDial::BestAvailability)
    ]
    .prop_map(|mount_dial| ClusterConfig {
        mount_dial,
        ..ClusterConfig::default()
    })
}

/// A whole scenario: `duration_s` of workload and faults of `families`, then the liveness
/// phase. The failover window's upper bound is relaxed for the reason `crate::swarm` gives.
pub fn scenario(duration_s: u64, families: &[Family]) -> impl Strategy<Value = Scenario> {
    (schedule(duration_s, 12, families), workload(), config()).prop_map(
        move |(steps, workload, cluster)| Scenario {
            name: "proptest".into(),
            description: "A scenario drawn by ccr_sim::strategy::scenario.".into(),
            duration_s,
            settle_s: 180,
            jitter_ms: 0,
            workload,
            cluster,
            steps,
            expect: Expect {
                failover_max_s: duration_s as f64 + 180.0,
                ..Expect::default()
            },
            ..Scenario::default()
        },
    )
}
