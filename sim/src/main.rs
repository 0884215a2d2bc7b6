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
    /// Run swarm seeds (random fault families, rates, workload and config per seed), shrink
    /// every failure to a scenario file.
    Sweep(SweepArgs),
    /// Merge the results of several sweeps or runs (`--json` lines or runs.json files) into one
    /// summary and, with --report, one set of reports.
    Merge {
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
        #[arg(long)]
        report: Option<std::path::PathBuf>,
    },
    /// Measure the simulator: time compression on the standard workload, overhead over bare
    /// madsim, swarm seeds per hour, replay and shrink times. One JSON line per figure on
    /// stdout (`cargo xtask bench` turns them into BENCHMARKS.md).
    Bench {
        /// Only these benchmarks (of compression, overhead, seeds, replay, shrink, catch,
        /// guided).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Ten-minute swarm seeds to time for the seeds-per-hour figure.
        #[arg(long, default_value_t = 200)]
        seeds: u64,
        /// Parallel runs for that figure and the time-to-catch ones (default: the number of
        /// cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Ten-minute swarm seeds at most per planted bug, for the time-to-catch figures.
        #[arg(long, default_value_t = 400)]
        catch_max: u64,
        /// Ten-minute swarm seeds per range and per mode, for the guided-versus-unguided
        /// comparison (five ranges).
        #[arg(long, default_value_t = 200)]
        guided_seeds: u64,
    },
    /// Shrink a failing run to a small scenario file that still fails the same way.
    Shrink {
        /// A scenario: built-in name, file, or `swarm:SEED`.
        scenario: String,
        #[arg(long)]
        seed: u64,
        /// Where to write the shrunk scenario.
        #[arg(long, default_value = "target/ccr-sim-shrunk")]
        out: std::path::PathBuf,
        /// At most this many simulations.
        #[arg(long, default_value_t = 400)]
        budget: usize,
        #[command(flatten)]
        limits: LimitArgs,
    },
}

#[derive(clap::Args)]
struct SweepArgs {
    /// A half-open seed range, e.g. 0..10000.
    #[arg(long, value_parser = parse_range)]
    seeds: (u64, u64),
    /// Parallel runs (default: the number of cores).
    #[arg(long)]
    jobs: Option<usize>,
    /// Run only shard K of N (0 ≤ K < N): the seeds s with s % N == K. For CI matrices and
    /// indexed jobs; merge the shards' --json output with `ccr-sim merge`.
    #[arg(long, value_parser = parse_shard)]
    shard: Option<(u64, u64)>,
    /// One JSON line per run, as `ccr-sim run --json`.
    #[arg(long)]
    json: bool,
    /// Reports, and the shrunk failures, into this folder.
    #[arg(long, default_value = "target/ccr-sim-sweep")]
    report: std::path::PathBuf,
    /// Do not shrink failures.
    #[arg(long)]
    no_shrink: bool,
    /// Guided: run the seeds in batches of this many (100 if no number is given), favouring
    /// the fault families whose seeds reached the rarest situations so far. Each seed's name
    /// then carries the family weights it was drawn with (`swarm@V:SEED~w,w,…`).
    #[arg(long, num_args = 0..=1, default_missing_value = "100", value_name = "BATCH")]
    guided: Option<usize>,
    /// Rerun every seed divisible by N and compare trace hashes (0: never).
    #[arg(long, default_value_t = 100)]
    determinism_every: u64,
    /// Simulated seconds of faults and workload per seed (the liveness phase follows).
    #[arg(long, default_value_t = 600)]
    duration: u64,
    /// Only these fault families (default: all of network, process, power, disk, clock,
    /// witness, gray, admin).
    #[arg(long)]
    families: Option<String>,
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    limits: LimitArgs,
}

/// A run's budget: past it, the run ends with outcome `stuck` (and is reported and shrunk like
/// any failure) instead of never ending.
#[derive(clap::Args)]
struct LimitArgs {
    /// Simulated events (task wakes) allowed per simulated second of a scenario; a healthy
    /// run needs a few hundred.
    #[arg(long, default_value_t = 10_000)]
    max_events_per_sim_second: u64,
    /// Wall time allowed for one run, in seconds.
    #[arg(long, default_value_t = 600)]
    max_wall_secs: u64,
}

impl LimitArgs {
    #[cfg(madsim)]
    fn apply(&self) {
        ccr_sim::budget::set_limits(ccr_sim::budget::Limits {
            events_per_sim_second: self.max_events_per_sim_second,
            wall_secs: self.max_wall_secs,
            ..ccr_sim::budget::Limits::default()
        });
    }
}

fn parse_shard(s: &str) -> Result<(u64, u64), String> {
    let (k, n) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}`: expected K/N, like 0/4"))?;
    let k: u64 = k.parse().map_err(|e| format!("`{k}`: {e}"))?;
    let n: u64 = n.parse().map_err(|e| format!("`{n}`: {e}"))?;
    if n == 0 || k >= n {
        return Err(format!("`{s}`: need 0 <= K < N"));
    }
    Ok((k, n))
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
    /// Write the reports (index.html, summary.md, junit.xml, runs.json) into this folder.
    #[arg(long)]
    report: Option<std::path::PathBuf>,
    /// No progress bar, no per-run lines: only failures and the summary table.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    limits: LimitArgs,
}

/// The bar `run` and `sweep` show on a terminal while they work.
#[cfg(madsim)]
fn progress_bar(total: u64, unit: &str) -> indicatif::ProgressBar {
    indicatif::ProgressBar::new(total).with_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{bar:40}} {{pos}}/{{len}} {unit}, {{msg}} [{{elapsed}} elapsed, ~{{eta}} left]"
        ))
        .expect("a valid template"),
    )
}

/// One job per core.
#[cfg(madsim)]
fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// How this process was invoked, for the reports' "Command:" line.
fn command_line() -> String {
    std::iter::once("ccr-sim".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ")
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
        Command::Sweep(args) => sweep(args),
        Command::Shrink {
            scenario,
            seed,
            out,
            budget,
            limits,
        } => {
            #[cfg(madsim)]
            limits.apply();
            #[cfg(not(madsim))]
            let _ = limits;
            shrink(scenario, seed, out, budget)
        }
        Command::Merge { files, report } => merge(files, report),
        Command::Bench {
            only,
            seeds,
            jobs,
            catch_max,
            guided_seeds,
        } => bench(only, seeds, jobs, catch_max, guided_seeds),
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
fn no_runtime() -> ExitCode {
    eprintln!(
        "ccr-sim: this binary was built without the simulator runtime; run it through \
         `cargo xtask sim`, which builds it with RUSTFLAGS=\"--cfg madsim\""
    );
    ExitCode::from(2)
}

#[cfg(not(madsim))]
fn run(_: RunArgs) -> ExitCode {
    no_runtime()
}

#[cfg(not(madsim))]
fn sweep(_: SweepArgs) -> ExitCode {
    no_runtime()
}

#[cfg(not(madsim))]
fn bench(_: Vec<String>, _: u64, _: Option<usize>, _: u64, _: u64) -> ExitCode {
    no_runtime()
}

#[cfg(madsim)]
fn bench(
    only: Vec<String>,
    seeds: u64,
    jobs: Option<usize>,
    catch_max: u64,
    guided_seeds: u64,
) -> ExitCode {
    use ccr_sim::bench;
    if let Some(bad) = only.iter().find(|o| !bench::ALL.contains(&o.as_str())) {
        eprintln!(
            "ccr-sim: --only: unknown benchmark `{bad}` (known: {})",
            bench::ALL.join(", ")
        );
        return ExitCode::from(2);
    }
    let opts = bench::Options {
        only,
        seeds,
        jobs: jobs.unwrap_or_else(default_jobs),
        catch_max,
        guided_seeds,
    };
    let result = bench::run_all(&opts, |figure| {
        eprintln!("{}", figure["bench"].as_str().unwrap_or("?"));
        println!("{figure}");
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ccr-sim bench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(not(madsim))]
fn shrink(_: String, _: u64, _: std::path::PathBuf, _: usize) -> ExitCode {
    no_runtime()
}

/// Reads run records from `--json` lines or a runs.json, naming the file and line when not.
fn read_records(path: &std::path::Path) -> Result<Vec<ccr_reports::RunRecord>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if text.trim_start().starts_with('[') {
        return ccr_reports::read_runs(path);
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim_start().starts_with('{'))
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                format!(
                    "{}:{}:{}: not a run record: {e}",
                    path.display(),
                    i + 1,
                    e.column()
                )
            })
        })
        .collect()
}

fn merge(files: Vec<std::path::PathBuf>, report: Option<std::path::PathBuf>) -> ExitCode {
    let mut records = Vec::new();
    for f in &files {
        match read_records(f) {
            Ok(r) => records.extend(r),
            Err(e) => {
                eprintln!("ccr-sim: {e}");
                return ExitCode::from(2);
            }
        }
    }
    records.sort_by(|a, b| (&a.scenario, a.seed).cmp(&(&b.scenario, b.seed)));
    print!("{}", ccr_reports::stats::text_table(&records));
    for r in records.iter().filter(|r| !r.passed()) {
        println!(
            "FAIL {} seed {}: {}  reproduce: {}",
            r.scenario,
            r.seed,
            r.outcome,
            r.repro()
        );
    }
    if let Some(dir) = report {
        let command = command_line();
        if let Err(e) = ccr_reports::write_all(&dir, &records, &ccr_reports::Meta { command }) {
            eprintln!("ccr-sim: {e}");
            return ExitCode::from(2);
        }
        eprintln!("reports: {}/index.html", dir.display());
    }
    if records.iter().all(|r| r.passed()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A scenario by name: built-in, `swarm:SEED[:DURATION]`, or a file.
#[cfg(madsim)]
fn load_scenario(name: &str) -> Result<ccr_sim::scenario::Scenario, String> {
    use ccr_sim::scenario::{builtin, BUILTINS};
    if let Some(s) = builtin(name) {
        return Ok(s);
    }
    if let Some(s) = ccr_sim::swarm::from_name(name) {
        return s.map_err(|e| format!("ccr-sim: {e}"));
    }
    if name.ends_with(".toml") || std::path::Path::new(name).exists() {
        return ccr_sim::file::load(std::path::Path::new(name)).map_err(|e| e.to_string());
    }
    Err(format!(
        "ccr-sim: unknown scenario `{name}`: not a built-in ({}), not swarm:SEED, nor a scenario file",
        BUILTINS.join(", ")
    ))
}

#[cfg(madsim)]
fn shrink(name: String, seed: u64, out: std::path::PathBuf, budget: usize) -> ExitCode {
    let scenario = match load_scenario(&name) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let record = ccr_sim::run::run(&scenario, seed, false);
    let Some(v) = record.violation else {
        eprintln!("ccr-sim: {name} passes with seed {seed}: nothing to shrink");
        return ExitCode::from(2);
    };
    eprintln!(
        "shrinking {name} seed {seed} ({} steps), which violates {}…",
        scenario.steps.len(),
        v.invariant.name()
    );
    let shrunk = ccr_sim::shrink::shrink(&scenario, seed, v.invariant, budget);
    match ccr_sim::sweep::write_shrunk(&out, &shrunk) {
        Ok(path) => {
            println!("{}", shrunk.explain());
            println!("wrote {}", path.display());
            println!(
                "replay: cargo xtask sim run {} --seed {seed} --trace trace.txt",
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ccr-sim: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(madsim)]
fn sweep(args: SweepArgs) -> ExitCode {
    args.limits.apply();
    let jobs = args.jobs.unwrap_or_else(default_jobs);
    let families = match args.families.as_deref().map(ccr_sim::swarm::parse_families) {
        None => ccr_sim::swarm::Family::ALL.to_vec(),
        Some(Ok(f)) => f,
        Some(Err(e)) => {
            eprintln!("ccr-sim: --families: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = ccr_sim::sweep::SweepOptions {
        seeds: args.seeds,
        jobs,
        shard: args.shard.unwrap_or((0, 1)),
        determinism_every: args.determinism_every,
        shrink_into: (!args.no_shrink).then(|| args.report.join("shrunk")),
        swarm: ccr_sim::swarm::Swarm {
            duration_s: args.duration,
            families,
            ..Default::default()
        },
        planted: Default::default(),
        guided_batch: args.guided.unwrap_or(0),
    };
    let total = opts.seeds().len() as u64;
    let bar = if args.json || args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        progress_bar(total, "seeds")
    };
    let started = std::time::Instant::now();
    let mut failed = 0;
    let result = ccr_sim::sweep::sweep(&opts, |r| {
        if args.json {
            println!("{}", r.json_line());
        }
        if let Some(v) = &r.violation {
            failed += 1;
            bar.suspend(|| {
                eprintln!(
                    "FAIL seed {}: {} at {:.3}s: {}\n  reproduce: {}",
                    r.seed,
                    v.invariant.name(),
                    v.at_s,
                    v.message,
                    r.repro()
                )
            });
        }
        bar.set_message(format!("{failed} failed"));
        bar.inc(1);
    });
    bar.finish_and_clear();
    let wall = started.elapsed().as_secs_f64();
    for (seed, shrunk, path) in &result.shrunk {
        eprintln!(
            "seed {seed}: shrunk to {} step(s) in {} runs: {}\n  replay: cargo xtask sim run {} --seed {seed}",
            shrunk.scenario.steps.len(),
            shrunk.runs,
            shrunk.invariant.name(),
            path.display()
        );
    }
    for seed in &result.nondeterministic {
        eprintln!("NONDETERMINISTIC seed {seed}: its rerun gave a different trace hash");
    }
    if !args.json {
        let sim: f64 = result.records.iter().map(|r| r.sim_seconds).sum();
        println!(
            "{} seeds: {} passed, {failed} failed; determinism rechecked on {} seed(s), {} differed; {:.0} s wall on {jobs} job(s), {:.0} seeds/hour, {:.0}x real time",
            result.records.len(),
            result.records.len() - failed,
            result.determinism_checked,
            result.nondeterministic.len(),
            wall,
            result.records.len() as f64 / wall * 3600.0,
            sim / wall
        );
    }
    let command = command_line();
    match ccr_reports::write_all(
        &args.report,
        &result.records,
        &ccr_reports::Meta { command },
    ) {
        Ok(_) => eprintln!("reports: {}/index.html", args.report.display()),
        Err(e) => {
            eprintln!("ccr-sim: {e}");
            return ExitCode::from(2);
        }
    }
    if failed > 0 || !result.nondeterministic.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
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
        report,
        quiet,
        limits,
    } = args;
    limits.apply();
    let command = command_line();
    use ccr_sim::scenario::BUILTINS;

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
        match load_scenario(name) {
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
    let plan: Vec<(&ccr_sim::scenario::Scenario, u64)> = scenarios
        .iter()
        .flat_map(|scenario| {
            let list: Vec<u64> = match (seed, seeds) {
                (Some(s), _) => vec![s],
                (None, Some((a, b))) => (a..b).collect(),
                (None, None) => scenario.seeds.clone(),
            };
            list.into_iter().map(move |s| (scenario, s))
        })
        .collect();
    let bar = if json || quiet || plan.len() < 2 {
        indicatif::ProgressBar::hidden()
    } else {
        progress_bar(plan.len() as u64, "runs")
    };
    let mut failed = 0;
    let mut records = Vec::new();
    for (scenario, s) in plan {
        bar.set_message(format!("{} seed {s}", scenario.name));
        let mut record = ccr_sim::run::run(scenario, s, trace.is_some());
        if check_determinism {
            let again = ccr_sim::run::run(scenario, s, false);
            if again.trace_hash != record.trace_hash {
                bar.suspend(|| {
                    eprintln!(
                        "NONDETERMINISTIC {} seed {s}: trace hash {} then {}",
                        scenario.name, record.trace_hash, again.trace_hash
                    )
                });
                failed += 1;
            }
        }
        if json {
            println!("{}", record.json_line());
        } else if !quiet {
            bar.suspend(|| {
                for setting in &record.settings {
                    println!("  seed {s}: {setting}");
                }
            });
            let failovers: Vec<String> = record
                .failovers
                .iter()
                .map(|f| format!("{:.1}s", f.duration_s))
                .collect();
            bar.println(format!(
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
            ));
        }
        if let Some(v) = &record.violation {
            failed += 1;
            bar.suspend(|| {
                eprintln!(
                    "  {} seed {s} violated {} at {:.3}s: {}",
                    scenario.name,
                    v.invariant.name(),
                    v.at_s,
                    v.message
                );
                eprintln!("  last events:");
                for line in &v.last_events {
                    eprintln!("    {line}");
                }
                eprintln!("  reproduce: {}", record.repro());
            });
        }
        if let (Some(path), Some(lines)) = (&trace, record.trace.take()) {
            if let Err(e) = std::fs::write(path, lines.join("\n") + "\n") {
                eprintln!("ccr-sim: cannot write {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
        records.push(record);
        bar.inc(1);
    }
    bar.finish_and_clear();
    if !json {
        print!("{}", ccr_reports::stats::text_table(&records));
    }
    if let Some(dir) = &report {
        match ccr_reports::write_all(dir, &records, &ccr_reports::Meta { command }) {
            Ok(_) => eprintln!(
                "reports: {}/index.html (and summary.md, junit.xml, runs.json)",
                dir.display()
            ),
            Err(e) => {
                eprintln!("ccr-sim: {e}");
                return ExitCode::from(2);
            }
        }
    }
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
