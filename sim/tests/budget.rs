//! The run budget: a run past it ends with outcome `stuck`, its trace and its repro command,
//! instead of never ending. (Its own test binary: the limits are set for the whole process.)
#![cfg(madsim)]

use ccr_sim::budget::{set_limits, Limits};
use ccr_sim::observer::Invariant;
use ccr_sim::run::run;
use ccr_sim::scenario::builtin;

#[test]
fn a_run_past_its_budget_ends_stuck_with_its_trace_and_repro() {
    // Ten events per simulated second is far below what any run needs: every run is "stuck".
    set_limits(Limits {
        events_per_sim_second: 10,
        ..Limits::default()
    });
    let r = run(&builtin("steady-state").unwrap(), 3, true);
    assert_eq!(r.outcome, "stuck");
    let v = r.violation.as_ref().expect("a violation");
    assert_eq!(v.invariant, Invariant::Stuck);
    assert!(v.message.contains("past the budget"), "{}", v.message);
    assert!(!v.last_events.is_empty());
    assert!(r.trace.as_ref().is_some_and(|t| !t.is_empty()));
    assert!(r.repro().contains("--seed 3"));
    // The same run again ends the same way: the budget counts simulated events, not time.
    let again = run(&builtin("steady-state").unwrap(), 3, false);
    assert_eq!(again.trace_hash, r.trace_hash);

    set_limits(Limits::default());
    let r = run(&builtin("steady-state").unwrap(), 3, false);
    assert!(r.passed(), "{:?}", r.violation);
}
