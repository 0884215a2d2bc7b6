//! Shrinking a failing run: drop faults, move them earlier, shorten the run and lighten the
//! workload, keeping each change only while the same seed still violates the same invariant.
//! What is left is a small scenario that still fails — written out as a file, it keeps
//! reproducing the bug after the code around it changes.

use crate::observer::Invariant;
use crate::run::run;
use crate::scenario::Scenario;

#[derive(Debug, Clone)]
pub struct Shrunk {
    pub scenario: Scenario,
    pub seed: u64,
    pub invariant: Invariant,
    /// Faults before and after.
    pub steps_before: usize,
    /// Simulations it took.
    pub runs: usize,
    /// The violation message of the shrunk run.
    pub message: String,
}

impl Shrunk {
    pub fn explain(&self) -> String {
        format!(
            "Shrunk from {} ({} steps) to {} step(s) in {} runs; with seed {} it violates\n{}: {}",
            self.scenario.source,
            self.steps_before,
            self.scenario.steps.len(),
            self.runs,
            self.seed,
            self.invariant.name(),
            self.message
        )
    }
}

/// What makes two violations "the same failure": the invariant and the start of the message
/// without its numbers (counts, generations and times change as faults are removed; the
/// kind of failure must not, or shrinking wanders off to an easier bug).
fn signature(invariant: Invariant, message: &str) -> (Invariant, String) {
    let words: String = message
        .chars()
        .filter(|c| !c.is_ascii_digit())
        .take(90)
        .collect();
    (invariant, words)
}

/// Shrinks `scenario` (failing with `invariant` at `seed`) using at most `budget` runs.
pub fn shrink(scenario: &Scenario, seed: u64, invariant: Invariant, budget: usize) -> Shrunk {
    let mut best = scenario.clone();
    let mut runs = 0;
    let mut message = String::new();
    let mut wanted: Option<(Invariant, String)> = None;
    let mut fails = |candidate: &Scenario, runs: &mut usize, message: &mut String| -> bool {
        if *runs >= budget {
            return false;
        }
        *runs += 1;
        let r = run(candidate, seed, false);
        match r.violation {
            Some(v) if v.invariant == invariant => {
                let sig = signature(v.invariant, &v.message);
                if *wanted.get_or_insert_with(|| sig.clone()) != sig {
                    return false;
                }
                *message = v.message;
                true
            }
            _ => false,
        }
    };
    if !fails(&best, &mut runs, &mut message) {
        // Not reproducible as given (it should be: runs are deterministic); nothing to shrink.
        return Shrunk {
            steps_before: scenario.steps.len(),
            scenario: best,
            seed,
            invariant,
            runs,
            message: "did not fail again".into(),
        };
    }
    loop {
        let before = (best.steps.clone(), best.duration_s, best.workload.clone());
        // Drop chunks of steps, halving the chunk size (delta debugging).
        let mut chunk = best.steps.len().div_ceil(2).max(1);
        while chunk >= 1 && !best.steps.is_empty() {
            let mut i = 0;
            while i < best.steps.len() {
                let mut candidate = best.clone();
                let end = (i + chunk).min(candidate.steps.len());
                candidate.steps.drain(i..end);
                if fails(&candidate, &mut runs, &mut message) {
                    best = candidate;
                } else {
                    i += chunk;
                }
            }
            if chunk == 1 {
                break;
            }
            chunk /= 2;
        }
        // Move each step earlier (halfway to the previous one, or to 10 s).
        for i in 0..best.steps.len() {
            let floor = if i == 0 {
                10_000
            } else {
                best.steps[i - 1].at_ms
            };
            let at = best.steps[i].at_ms;
            if at > floor + 1_000 {
                let mut candidate = best.clone();
                candidate.steps[i].at_ms = floor + (at - floor) / 2;
                if fails(&candidate, &mut runs, &mut message) {
                    best = candidate;
                }
            }
        }
        // End the run soon after the last step.
        let last_s = best.steps.last().map_or(0, |s| s.at_ms.div_ceil(1000));
        let short = (last_s + 60).max(60);
        if short < best.duration_s {
            let mut candidate = best.clone();
            candidate.duration_s = short;
            if fails(&candidate, &mut runs, &mut message) {
                best = candidate;
            }
        }
        // Lighten the workload.
        if best.workload.messages_per_s > 2.0 {
            let mut candidate = best.clone();
            candidate.workload.messages_per_s = (best.workload.messages_per_s / 2.0).floor();
            if fails(&candidate, &mut runs, &mut message) {
                best = candidate;
            }
        }
        let after = (best.steps.clone(), best.duration_s, best.workload.clone());
        if after == before || runs >= budget {
            break;
        }
    }
    best.name = format!("shrunk-{}", scenario.name);
    best.description = format!(
        "Shrunk reproduction of {}: violates {}.",
        scenario.source,
        invariant.name()
    );
    best.seeds = vec![seed];
    Shrunk {
        steps_before: scenario.steps.len(),
        scenario: best,
        seed,
        invariant,
        runs,
        message,
    }
}
