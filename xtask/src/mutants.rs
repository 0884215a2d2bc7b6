//! `cargo xtask mutants [--shard K/N]`: the mutation score of `ccr-core`, the logic every
//! other crate trusts. cargo-mutants (installed on first use) mutates `ccr-core` and runs its
//! own tests (normal build, seconds per mutant); the mutants they miss are tried again against
//! the simulator's tests (`--cfg madsim`: the scenario library, the swarm, the checkers), so a
//! mutant counts as caught when either catches it. Prints the score and every survivor, and
//! writes them to `target/mutants/summary.md`.

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
    let missed: Vec<String> = outcomes
        .iter()
        .filter(|(_, o)| o == "MissedMutant")
        .map(|(name, _)| name.clone())
        .collect();
    let mut still_missed = Vec::new();
    if !missed.is_empty() {
        let madsim_out = format!("{OUT}/madsim");
        let mut second = mutants_cmd(&madsim_out, None);
        let flags = std::env::var("RUSTFLAGS").unwrap_or_default();
        second
            .env("RUSTFLAGS", format!("{flags} --cfg madsim").trim())
            .args(["--test-package", "ccr-sim"]);
        for name in &missed {
            second.args(["--re", &format!("^{}$", escape(name))]);
        }
        let _ = second.status();
        still_missed = read_outcomes(&madsim_out)?
            .into_iter()
            .filter(|(_, o)| o == "MissedMutant")
            .map(|(name, _)| name)
            .collect();
    }
    let count = |what: &str| outcomes.iter().filter(|(_, o)| o == what).count();
    let viable = count("CaughtMutant") + count("MissedMutant") + count("Timeout");
    let caught = viable - still_missed.len();
    let score = if viable == 0 {
        100.0
    } else {
        100.0 * caught as f64 / viable as f64
    };
    let mut summary = format!(
        "ccr-core mutation score{}: {caught} of {viable} viable mutants caught ({score:.1} %); \
         {} unviable; caught by ccr-core's own tests {}, by the simulator's {} more.\n\n",
        shard.map(|s| format!(" (shard {s})")).unwrap_or_default(),
        count("Unviable"),
        viable - missed.len(),
        missed.len() - still_missed.len(),
    );
    if !still_missed.is_empty() {
        summary.push_str("Survivors (each either a test to write or an equivalent mutant):\n\n");
        for m in &still_missed {
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

/// `text` as a regular expression matching exactly itself.
fn escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$#&-~".contains(c);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}
