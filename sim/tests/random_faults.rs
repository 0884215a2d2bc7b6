//! A bounded randomized sweep through the whole simulator: random fault schedules (crashes,
//! power loss, restarts, pauses, partitions of any cut including the clients, lossy and
//! slow links, slow disks, witness loss, moves) over the real logic, every invariant checked.
//! Faults stop after 300 s; the liveness phase must then bring the cluster back.
//! (The swarm proper, with shrinking and sharding, is issue #6.)
#![cfg(madsim)]
use ccr_core::cluster::{Net, NodeId};
use ccr_sim::run::run;
use ccr_sim::scenario::{builtin, Fault, Step};
use ccr_sim::topology::{LinkConfig, Machine};
use rand::{Rng, SeedableRng};

/// A random schedule of up to 8 steps within the first 250 s.
fn random_steps(seed: u64) -> Vec<Step> {
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    let nodes = [NodeId::Node1, NodeId::Node2];
    let machines = [
        Machine::Node1,
        Machine::Node2,
        Machine::Hub,
        Machine::Client,
    ];
    let n = r.random_range(0..8);
    (0..n)
        .map(|_| {
            let at_ms = r.random_range(10_000..250_000);
            let node = nodes[r.random_range(0..2)];
            let fault = match r.random_range(0..14) {
                0 => Fault::Crash { node },
                1 => Fault::PowerLoss { node },
                2 | 3 => Fault::Restart { node },
                4 => Fault::PowerLossActive,
                5 => {
                    let a = machines[r.random_range(0..4)];
                    let b = machines[r.random_range(0..4)];
                    if a == b {
                        Fault::Heal
                    } else {
                        Fault::Partition {
                            from: a,
                            to: b,
                            net: [None, Some(Net::Public), Some(Net::Private)]
                                [r.random_range(0..3)],
                            one_way: r.random_bool(0.3),
                        }
                    }
                }
                6 => Fault::Heal,
                7 => Fault::Link {
                    net: Net::Private,
                    link: LinkConfig {
                        min_delay_ms: 1,
                        max_delay_ms: r.random_range(1..300),
                        loss: r.random_range(0.0..0.5),
                        duplicate: r.random_range(0.0..0.2),
                    },
                },
                8 => Fault::Pause { node },
                9 => Fault::Resume { node },
                10 => Fault::WitnessDown,
                11 => Fault::WitnessUp,
                12 => Fault::SlowDisk {
                    node,
                    factor: r.random_range(1..100),
                },
                _ => Fault::Move {
                    target: node,
                    comment: "sweep".into(),
                },
            };
            Step { at_ms, fault }
        })
        .collect()
}

#[test]
fn random_fault_schedules_violate_no_invariant() {
    let mut failures = Vec::new();
    for seed in 0..120u64 {
        let mut s = builtin("active-node-crash").unwrap();
        s.name = "random-faults".into();
        s.duration_s = 300;
        // A failover must still take at least 10 s; an outage may last as long as the faults.
        s.expect = Default::default();
        s.expect.failover_max_s = 600.0;
        s.steps = random_steps(seed);
        let r = run(&s, seed, false);
        if let Some(v) = r.violation {
            failures.push(format!(
                "seed {seed}: {} at {:.1}s: {} (steps {:?})",
                v.invariant.name(),
                v.at_s,
                v.message,
                s.steps
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
