//! What the benchmarks measure is sound: the standard workload passes with its failover, the
//! work counts follow the traffic, and the bare-madsim baseline runs the work it is given.
#![cfg(madsim)]

use ccr_sim::bench::{bare_madsim, standard_workload};
use ccr_sim::run::run_measured;

#[test]
fn the_standard_workload_passes_with_one_failover() {
    let (record, work) = run_measured(&standard_workload(), 1, false);
    assert!(record.passed(), "{:?}", record.violation);
    assert_eq!(record.failovers.len(), 1, "{:?}", record.failovers);
    // ~50 messages/s for an hour, each at least delivered and confirmed.
    assert!(work.messages > 2 * 50 * 3600, "{work:?}");
    assert!(work.wakes() > work.messages, "{work:?}");
}

#[test]
fn work_counts_follow_the_traffic() {
    let mut s = standard_workload();
    s.duration_s = 120;
    s.steps.clear();
    s.expect = Default::default();
    let (_, light) = run_measured(&s, 1, false);
    s.workload.messages_per_s *= 2.0;
    let (_, heavy) = run_measured(&s, 1, false);
    assert!(
        heavy.messages > light.messages + 2 * 50 * 120,
        "{light:?} {heavy:?}"
    );
    assert!(heavy.wakes() > light.wakes(), "{light:?} {heavy:?}");
    let _ = bare_madsim(light, 120_000);
}
