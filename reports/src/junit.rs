//! `junit.xml`: one test suite per scenario, one test case per seed; a violation is a failure
//! whose message names the invariant and whose text holds the repro command and the events
//! that led to it.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::record::RunRecord;
use crate::stats::by_scenario;

pub fn render(runs: &[RunRecord]) -> Result<String, String> {
    let mut report = Report::new("ccr-sim");
    for s in by_scenario(runs) {
        let mut suite = TestSuite::new(s.scenario.clone());
        for r in runs.iter().filter(|r| r.scenario == s.scenario) {
            let status = match &r.violation {
                None => TestCaseStatus::success(),
                Some(v) => {
                    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    status
                        .set_type(v.invariant.name())
                        .set_message(format!(
                            "{} at {:.3} s: {}",
                            v.invariant.name(),
                            v.at_s,
                            v.message
                        ))
                        .set_description(format!(
                            "reproduce: {}\n\nlast events:\n{}\n",
                            r.repro(),
                            v.last_events.join("\n")
                        ));
                    status
                }
            };
            let mut case = TestCase::new(format!("seed {}", r.seed), status);
            case.set_classname(format!("ccr-sim.{}", r.scenario))
                .set_time(Duration::from_millis(r.wall_ms))
                .set_system_out(r.summary());
            suite.add_test_case(case);
        }
        report.add_test_suite(suite);
    }
    report.to_string().map_err(|e| format!("junit.xml: {e}"))
}
