//! `cargo xtask test`: every check CI runs, in order, stopping at the first failure.
//! `cargo xtask sim [ARGS…]`: builds the simulator (`--cfg madsim`) and runs `ccr-sim`.
//! `cargo xtask bench [--quick]`: the benchmarks, into `BENCHMARKS.md` (see `bench.rs`).
//! `cargo xtask mutants [--shard K/N]`: `ccr-core`'s mutation score (see `mutants.rs`).
//! `cargo xtask fuzz [TARGET…] [--secs N]`: AFL++ on the input targets (see `fuzz.rs`).
//!
//! The simulator build uses `RUSTFLAGS="--cfg madsim"`, which changes every crate's flags, so
//! it gets its own target folder (`target/madsim`): the two builds never evict each other.

use std::io::{BufRead, BufReader};
use std::process::{Command, ExitCode, Stdio};

mod bench;
mod fuzz;
mod mutants;

const MADSIM_TARGET: &str = "target/madsim";
/// Where `cargo xtask sim` with no arguments writes its reports.
const DEFAULT_REPORT: &str = "target/ccr-sim-report";

/// Packages whose tests depend on which runtime is compiled in; the pure core's tests would
/// only repeat themselves under madsim.
const MADSIM_TEST_PACKAGES: &[&str] = &["ccr-sim", "ccr"];

#[derive(Clone, Copy)]
enum Build {
    Normal,
    Madsim,
}

impl Build {
    fn name(self) -> &'static str {
        match self {
            Build::Normal => "normal",
            Build::Madsim => "madsim (--cfg madsim)",
        }
    }

    fn cargo(self, subcommand: &str) -> Command {
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.arg(subcommand);
        if let Build::Madsim = self {
            let flags = std::env::var("RUSTFLAGS").unwrap_or_default();
            // Doc-tests are compiled by rustdoc, which reads RUSTDOCFLAGS only: without the cfg
            // it would compile the real-socket modules against dependencies cargo left out.
            let doc_flags = std::env::var("RUSTDOCFLAGS").unwrap_or_default();
            cmd.env("RUSTFLAGS", format!("{flags} --cfg madsim").trim())
                .env("RUSTDOCFLAGS", format!("{doc_flags} --cfg madsim").trim())
                .args(["--target-dir", MADSIM_TARGET]);
        }
        cmd
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("sim") => sim(&args[1..]),
        Some("bench") => bench::bench(&args[1..]),
        Some("mutants") => mutants::mutants(&args[1..]),
        Some("fuzz") => fuzz::fuzz(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <test | sim [ARGS…] | bench [--quick] | mutants [--shard K/N] | fuzz [TARGET…] [--secs N] [--jobs J]>"
            );
            eprintln!("  test  fmt, clippy and tests in the normal and the --cfg madsim build");
            eprintln!(
                "  sim   build the simulator and run ccr-sim (default: the whole library, reports into target/ccr-sim-report)"
            );
            eprintln!(
                "  bench time compression, overhead, seeds/hour, replay, shrink, real failover and log shipping; writes BENCHMARKS.md"
            );
            eprintln!(
                "  mutants  ccr-core's mutation score against the tests of both builds (installs cargo-mutants)"
            );
            eprintln!(
                "  fuzz  AFL++ on the input targets of fuzz/ (installs cargo-afl); crashes become regression tests"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn test() -> Result<(), String> {
    step("cargo fmt --check", {
        let mut c = Build::Normal.cargo("fmt");
        c.args(["--all", "--check"]);
        c
    })?;
    for build in [Build::Normal, Build::Madsim] {
        let mut c = build.cargo("clippy");
        c.args(["--workspace", "--all-targets", "--", "-D", "warnings"]);
        step(&format!("clippy, {} build", build.name()), c)?;
    }
    let normal = {
        let mut c = Build::Normal.cargo("test");
        c.arg("--workspace");
        run_tests(Build::Normal, c)?
    };
    let madsim = {
        let mut c = Build::Madsim.cargo("test");
        for p in MADSIM_TEST_PACKAGES {
            c.args(["--package", p]);
        }
        run_tests(Build::Madsim, c)?
    };
    println!();
    println!("== summary");
    for (build, counts) in [(Build::Normal, normal), (Build::Madsim, madsim)] {
        println!(
            "{} build: {} passed, {} ignored",
            build.name(),
            counts.passed,
            counts.ignored
        );
    }
    println!("{} passed, 0 failed", normal.passed + madsim.passed);
    Ok(())
}

/// Builds the simulator with `--cfg madsim` (release, its own target folder) and runs
/// `ccr-sim` with `args` (default: `run`, every built-in scenario with its default seeds).
fn sim(args: &[String]) -> Result<(), String> {
    let mut build = Build::Madsim.cargo("build");
    build.args(["--release", "--package", "ccr-sim", "--quiet"]);
    step("build ccr-sim (--cfg madsim, release)", build)?;
    let bin = format!("{MADSIM_TARGET}/release/ccr-sim");
    let mut run = Command::new(&bin);
    if args.is_empty() {
        // The whole library, with the reports in a folder that survives `cargo clean -p`.
        println!("== reports will be written to {DEFAULT_REPORT}/");
        run.args(["run", "--report", DEFAULT_REPORT]);
    } else {
        run.args(args);
    }
    let status = run
        .status()
        .map_err(|e| format!("cannot start {bin}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("ccr-sim: {status}"))
    }
}

fn step(what: &str, mut cmd: Command) -> Result<(), String> {
    println!("== {what}");
    let status = cmd
        .status()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

#[derive(Clone, Copy, Default)]
struct Counts {
    passed: u64,
    ignored: u64,
}

/// Runs `cargo test`, echoing its output, and adds up the `test result:` lines.
fn run_tests(build: Build, mut cmd: Command) -> Result<Counts, String> {
    let what = format!("tests, {} build", build.name());
    println!("== {what}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    let mut counts = Counts::default();
    let stdout = child.stdout.take().expect("piped");
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| format!("{what}: reading output: {e}"))?;
        println!("{line}");
        if let Some(rest) = line.strip_prefix("test result: ") {
            counts.passed += count_of(rest, "passed");
            counts.ignored += count_of(rest, "ignored");
        }
    }
    let status = child.wait().map_err(|e| format!("{what}: {e}"))?;
    if !status.success() {
        return Err(format!("{what} failed ({status})"));
    }
    println!("{what}: {} passed", counts.passed);
    Ok(counts)
}

/// In `ok. 12 passed; 0 failed; 1 ignored; …`, the number before `word`.
fn count_of(summary: &str, word: &str) -> u64 {
    summary
        .split(';')
        .filter_map(|part| {
            let mut it = part.split_whitespace().rev();
            (it.next() == Some(word)).then(|| it.next()?.parse::<u64>().ok())?
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::count_of;

    #[test]
    fn counts_are_read_from_cargo_test_summaries() {
        let line =
            "ok. 12 passed; 0 failed; 3 ignored; 0 measured; 0 filtered out; finished in 0.01s";
        assert_eq!(count_of(line, "passed"), 12);
        assert_eq!(count_of(line, "ignored"), 3);
        assert_eq!(count_of("FAILED. 1 passed; 2 failed;", "failed"), 2);
    }
}
