//! Per-scenario figures every report format shows the same way.

use crate::record::RunRecord;

#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioStats {
    pub scenario: String,
    pub runs: usize,
    pub failed: usize,
    /// Failover durations: minimum, median, maximum (seconds), over every run.
    pub failover: Option<(f64, f64, f64)>,
    pub failovers: usize,
    pub acked: usize,
    pub lost: usize,
    pub resubmitted: u64,
    pub duplicated: usize,
    pub wall_ms: u64,
}

/// One row per scenario, in the order the scenarios first appear.
pub fn by_scenario(runs: &[RunRecord]) -> Vec<ScenarioStats> {
    let mut names: Vec<&str> = Vec::new();
    for r in runs {
        if !names.contains(&r.scenario.as_str()) {
            names.push(&r.scenario);
        }
    }
    names
        .into_iter()
        .map(|name| {
            let these: Vec<&RunRecord> = runs.iter().filter(|r| r.scenario == name).collect();
            let mut durations: Vec<f64> = these
                .iter()
                .flat_map(|r| r.failovers.iter().map(|f| f.duration_s))
                .collect();
            durations.sort_by(f64::total_cmp);
            ScenarioStats {
                scenario: name.to_string(),
                runs: these.len(),
                failed: these.iter().filter(|r| !r.passed()).count(),
                failover: (!durations.is_empty()).then(|| {
                    (
                        durations[0],
                        durations[durations.len() / 2],
                        durations[durations.len() - 1],
                    )
                }),
                failovers: durations.len(),
                acked: these.iter().map(|r| r.acked).sum(),
                lost: these.iter().map(|r| r.lost).sum(),
                resubmitted: these.iter().map(|r| r.resubmitted).sum(),
                duplicated: these.iter().map(|r| r.duplicated).sum(),
                wall_ms: these.iter().map(|r| r.wall_ms).sum(),
            }
        })
        .collect()
}

impl ScenarioStats {
    pub fn failover_text(&self) -> String {
        match self.failover {
            None => "-".into(),
            Some((_, m, _)) if self.failovers == 1 => format!("{m:.1} s"),
            Some((a, m, b)) => format!("{a:.1} / {m:.1} / {b:.1} s"),
        }
    }
}

/// A plain-text table for the terminal: one row per scenario and a total.
pub fn text_table(runs: &[RunRecord]) -> String {
    let rows = by_scenario(runs);
    let width = rows
        .iter()
        .map(|r| r.scenario.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let mut out = format!(
        "{:<width$}  {:>5}  {:>6}  {:>24}  {:>9}  {:>5}  {:>8}\n",
        "scenario", "runs", "failed", "failover min/med/max", "acked", "lost", "wall"
    );
    for r in &rows {
        out.push_str(&format!(
            "{:<width$}  {:>5}  {:>6}  {:>24}  {:>9}  {:>5}  {:>7.1}s\n",
            r.scenario,
            r.runs,
            r.failed,
            r.failover_text(),
            r.acked,
            r.lost,
            r.wall_ms as f64 / 1000.0
        ));
    }
    let failed: usize = rows.iter().map(|r| r.failed).sum();
    out.push_str(&format!(
        "{} runs: {} passed, {failed} failed\n",
        runs.len(),
        runs.len() - failed
    ));
    out
}

/// One situation of the coverage table: how many runs reached it, and how often in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoverageRow {
    pub situation: String,
    pub runs: usize,
    pub count: u64,
}

/// Every situation of [`crate::record::SITUATIONS`] and every other one a run reported,
/// rarest first (fewest runs, then fewest occurrences, then by name).
pub fn coverage(runs: &[RunRecord]) -> Vec<CoverageRow> {
    let mut rows: std::collections::BTreeMap<&str, (usize, u64)> = crate::record::SITUATIONS
        .iter()
        .map(|s| (*s, (0, 0)))
        .collect();
    for r in runs {
        for (situation, n) in &r.coverage {
            let row = rows.entry(situation.as_str()).or_default();
            row.0 += 1;
            row.1 += n;
        }
    }
    let mut rows: Vec<CoverageRow> = rows
        .into_iter()
        .map(|(situation, (runs, count))| CoverageRow {
            situation: situation.to_string(),
            runs,
            count,
        })
        .collect();
    rows.sort_by(|a, b| (a.runs, a.count, &a.situation).cmp(&(b.runs, b.count, &b.situation)));
    rows
}
