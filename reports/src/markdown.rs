//! `summary.md`: short enough for a CI job summary.

use crate::record::RunRecord;
use crate::stats::by_scenario;
use crate::Meta;

/// At most this many failures are listed; the rest are counted.
const LIST_FAILURES: usize = 50;

pub fn render(runs: &[RunRecord], meta: &Meta) -> String {
    let failed: Vec<&RunRecord> = runs.iter().filter(|r| !r.passed()).collect();
    let mut out = String::from("# ccr-sim run\n\n");
    out.push_str(&format!(
        "{} **{} runs: {} passed, {} failed**",
        if failed.is_empty() { "✅" } else { "❌" },
        runs.len(),
        runs.len() - failed.len(),
        failed.len()
    ));
    if !meta.command.is_empty() {
        out.push_str(&format!(" — `{}`", meta.command));
    }
    out.push_str(
        "\n\n| scenario | runs | failed | failover (min / median / max) | acknowledged | lost | resubmitted | duplicates |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for s in by_scenario(runs) {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            s.scenario,
            s.runs,
            s.failed,
            s.failover_text(),
            s.acked,
            s.lost,
            s.resubmitted,
            s.duplicated
        ));
    }
    out.push_str("\n## Coverage (rarest first)\n\n| situation | runs | times |\n|---|---:|---:|\n");
    for row in crate::stats::coverage(runs) {
        out.push_str(&format!(
            "| {} | {} | {} |\n",
            row.situation.replace('|', "\\|"),
            row.runs,
            row.count
        ));
    }
    if !failed.is_empty() {
        out.push_str("\n## Failures\n\n");
        for r in failed.iter().take(LIST_FAILURES) {
            let v = r.violation.as_ref().expect("a failed run has a violation");
            out.push_str(&format!(
                "- **{}** seed {}: `{}` at {:.3} s: {}\n  `{}`\n",
                r.scenario,
                r.seed,
                v.invariant.name(),
                v.at_s,
                v.message.replace('|', "\\|"),
                r.repro()
            ));
        }
        if failed.len() > LIST_FAILURES {
            out.push_str(&format!(
                "- … and {} more (see junit.xml or runs.json)\n",
                failed.len() - LIST_FAILURES
            ));
        }
    }
    out
}
