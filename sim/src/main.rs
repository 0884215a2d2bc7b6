//! `ccr-sim`: runs CCR scenarios under simulation. Build it with `--cfg madsim`; `cargo xtask
//! sim` does that for you.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ccr-sim",
    about = "Deterministic simulation of Exchange 2007 CCR"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenarios (default: every built-in) with their default seeds or the given ones.
    Run(RunArgs),
    /// List the built-in scenarios.
    List,
    /// Validate scenario files without running them.
    Check {
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Built-in scenario names (`ccr-sim list` shows them) or scenario files. Default: every
    /// built-in and every `scenarios/*.toml`.
    scenarios: Vec<String>,
    /// One seed.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// A half-open seed range, like Rust's: `--seeds 0..200` runs 0 to 199.
    #[arg(long, value_parser = parse_range)]
    seeds: Option<(u64, u64)>,
    /// One JSON object per run per line (scenario, seed, outcome, trace_hash, sim_seconds,
    /// wall_ms, failovers, acked, lost, duplicated).
    #[arg(long)]
    json: bool,
    /// Write the full trace of the (last) run to this file.
    #[arg(long)]
    trace: Option<std::path::PathBuf>,
    /// Run every seed twice and fail if the trace hashes differ.
    #[arg(long)]
    check_determinism: bool,
    /// Override the scenarios' duration (simulated seconds before the liveness phase).
    #[arg(long)]
    duration: Option<u64>,
}

fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("`{s}`: expected a range like 0..100"))?;
    let a: u64 = a.parse().map_err(|e| format!("`{a}`: {e}"))?;
    let b: u64 = b.parse().map_err(|e| format!("`{b}`: {e}"))?;
    if a >= b {
        return Err(format!(
            "`{s}`: the range is empty (it is half-open: A..B runs A to B-1)"
        ));
    }
    Ok((a, b))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::List => {
            for name in ccr_sim::scenario::BUILTINS {
                let s = ccr_sim::scenario::builtin(name).expect("listed");
                println!("{name:<20} {}", s.description);
            }
            ExitCode::SUCCESS
        }
        Command::Run(args) => run(args),
        Command::Check { files } => {
            let mut bad = 0;
            for f in &files {
                match ccr_sim::file::load(f) {
                    Ok(s) => println!(
                        "ok   {} ({}: {} step(s))",
                        f.display(),
                        s.name,
                        s.steps.len()
                    ),
                    Err(e) => {
                        bad += 1;
                        eprintln!("{e}");
                    }
                }
            }
            if bad > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}

#[cfg(not(madsim))]
fn run(_: RunArgs) -> ExitCode {
    eprintln!(
        "ccr-sim: this binary was built without the simulator runtime; run it through \
         `cargo xtask sim`, which builds it with RUSTFLAGS=\"--cfg madsim\""
    );
    ExitCode::from(2)
}

#[cfg(madsim)]
fn run(args: RunArgs) -> ExitCode {
    let RunArgs {
        scenarios: names,
        seed,
        seeds,
        json,
        trace,
        check_determinism,
        duration,
    } = args;
    use ccr_sim::scenario::{builtin, BUILTINS};

    let names: Vec<String> = if names.is_empty() {
        let mut all: Vec<String> = BUILTINS.iter().map(|s| s.to_string()).collect();
        let mut files: Vec<String> = std::fs::read_dir("scenarios")
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                    .map(|p| p.display().to_string())
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        all.extend(files);
        all
    } else {
        names
    };
    let mut scenarios = Vec::new();
    for name in &names {
        let loaded = match builtin(name) {
            Some(s) => Ok(s),
            None if name.ends_with(".toml") || std::path::Path::new(name).exists() => {
                ccr_sim::file::load(std::path::Path::new(name)).map_err(|e| e.to_string())
            }
            None => Err(format!(
                "ccr-sim: unknown scenario `{name}`: not a built-in ({}) nor a scenario file",
                BUILTINS.join(", ")
            )),
        };
        match loaded {
            Ok(mut s) => {
                if let Some(d) = duration {
                    s.duration_s = d;
                }
                scenarios.push(s)
            }
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(2);
            }
        }
    }
    let mut failed = 0;
    let mut runs = 0;
    for scenario in &scenarios {
        let list: Vec<u64> = match (seed, seeds) {
            (Some(s), _) => vec![s],
            (None, Some((a, b))) => (a..b).collect(),
            (None, None) => scenario.seeds.clone(),
        };
        for s in list {
            let record = ccr_sim::run::run(scenario, s, trace.is_some());
            runs += 1;
            if check_determinism {
                let again = ccr_sim::run::run(scenario, s, false);
                if again.trace_hash != record.trace_hash {
                    eprintln!(
                        "NONDETERMINISTIC {} seed {s}: trace hash {} then {}",
                        scenario.name, record.trace_hash, again.trace_hash
                    );
                    failed += 1;
                }
            }
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&record).expect("record serialises")
                );
            } else {
                let failovers: Vec<String> = record
                    .failovers
                    .iter()
                    .map(|f| format!("{:.1}s", f.duration_s))
                    .collect();
                println!(
                    "{} {:<20} seed {:<6} sim {:>7.1}s wall {:>6}ms acked {:>6} lost {} failovers [{}] trace {}",
                    if record.passed() { "PASS" } else { "FAIL" },
                    record.scenario,
                    record.seed,
                    record.sim_seconds,
                    record.wall_ms,
                    record.acked,
                    record.lost,
                    failovers.join(", "),
                    record.trace_hash
                );
            }
            if let Some(v) = &record.violation {
                failed += 1;
                eprintln!(
                    "  violated {} at {:.3}s: {}",
                    v.invariant.name(),
                    v.at_s,
                    v.message
                );
                eprintln!("  last events:");
                for line in &v.last_events {
                    eprintln!("    {line}");
                }
                eprintln!(
                    "  reproduce: cargo xtask sim run {} --seed {s} --trace trace.txt",
                    scenario.source
                );
            }
            if let (Some(path), Some(lines)) = (&trace, &record.trace) {
                if let Err(e) = std::fs::write(path, lines.join("\n") + "\n") {
                    eprintln!("ccr-sim: cannot write {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            }
        }
    }
    if !json {
        println!(
            "{runs} runs: {} passed, {failed} failed",
            runs - failed.min(runs)
        );
    }
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
