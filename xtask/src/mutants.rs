//! `cargo xtask mutants [--shard K/N]`: the mutation score of `ccr-core`, the logic every
//! other crate trusts. cargo-mutants (installed on first use) mutates `ccr-core` and runs its
//! own tests (normal build, seconds per mutant). Prints the score and every survivor, and
//! writes them to `target/mutants/summary.md`.
//!
//! Not yet: trying the survivors against the simulator's tests (`--cfg madsim`). With
//! cargo-mutants 27, `--test-package ccr-sim` and `--test-workspace=true` together with
//! `--package ccr-core` still ran only ccr-core's tests, so that pass is left out rather than
//! reported as done.

use std::process::Command;

use serde_json::Value;

use crate::step;

const OUT: &str = "target/mutants";

pub fn mutants(args: &[String]) -> Result<(), String> {
    let mut shard = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--shard" => {
                shard = Some(
                    it.next()
                        .ok_or("mutants: --shard needs K/N (for example 0/25)")?
                        .clone(),
                )
            }
            other => {
                return Err(format!(
                    "mutants: unknown argument `{other}` (only --shard K/N)"
                ))
            }
        }
    }
    ensure_installed()?;
    let normal_out = format!("{OUT}/normal");
    let mut first = mutants_cmd(&normal_out, shard.as_deref());
    first.args(["--test-package", "ccr-core"]);
    // cargo-mutants exits non-zero when mutants survive: the outcomes say what happened.
    let _ = first.status();
    let outcomes = read_outcomes(&normal_out)?;
    let count = |what: &str| outcomes.iter().filter(|(_, o)| o == what).count();
    let viable = count("CaughtMutant") + count("MissedMutant") + count("Timeout");
    let missed: Vec<&String> = outcomes
        .iter()
        .filter(|(_, o)| o == "MissedMutant")
        .map(|(name, _)| name)
        .collect();
    let caught = viable - missed.len();
    let score = if viable == 0 {
        100.0
    } else {
        100.0 * caught as f64 / viable as f64
    };
    let mut summary = format!(
        "ccr-core mutation score{} against its own tests: {caught} of {viable} viable mutants \
         caught ({score:.1} %); {} unviable.\n\n",
        shard.map(|s| format!(" (shard {s})")).unwrap_or_default(),
        count("Unviable"),
    );
    if !missed.is_empty() {
        summary.push_str("Survivors (each either a test to write or an equivalent mutant):\n\n");
        for m in &missed {
            summary.push_str(&format!("- `{m}`\n"));
        }
    }
    std::fs::create_dir_all(OUT).map_err(|e| format!("cannot create {OUT}: {e}"))?;
    std::fs::write(format!("{OUT}/summary.md"), &summary)
        .map_err(|e| format!("cannot write {OUT}/summary.md: {e}"))?;
    println!("{summary}");
    Ok(())
}

fn ensure_installed() -> Result<(), String> {
    let present = Command::new("cargo")
        .args(["mutants", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return Ok(());
    }
    let mut install = Command::new("cargo");
    install.args(["install", "cargo-mutants", "--locked"]);
    step("cargo install cargo-mutants", install)
}

fn mutants_cmd(out: &str, shard: Option<&str>) -> Command {
    // cargo-mutants creates `out/mutants.out` but not `out` itself.
    let _ = std::fs::create_dir_all(out);
    let mut c = Command::new("cargo");
    c.args([
        "mutants",
        "--package",
        "ccr-core",
        "--output",
        out,
        "--timeout-multiplier",
        "3",
    ]);
    if let Some(s) = shard {
        c.args(["--shard", s]);
    }
    c
}

/// (mutant name, outcome summary) for every mutant of a cargo-mutants run.
fn read_outcomes(out: &str) -> Result<Vec<(String, String)>, String> {
    let path = format!("{out}/mutants.out/outcomes.json");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let json: Value =
        serde_json::from_str(&text).map_err(|e| format!("{path}: not cargo-mutants' JSON: {e}"))?;
    Ok(json["outcomes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| {
            let name = o["scenario"]["Mutant"]["name"].as_str()?;
            Some((name.to_string(), o["summary"].as_str()?.to_string()))
        })
        .collect())
}
