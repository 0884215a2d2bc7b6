//! `cargo xtask fuzz [TARGET…] [--secs N] [--jobs J]`: coverage-guided fuzzing of the inputs
//! `ccr` and `ccr-sim` read (targets in `fuzz/src/lib.rs`) with AFL++ through cargo-afl,
//! which instruments with stable rustc (cargo-fuzz's libFuzzer needs a nightly compiler).
//!
//! Each target starts from its seeds and its committed corpus (`fuzz/corpus/TARGET/`) and
//! runs for `--secs` (default 60). Afterwards every crash is copied to
//! `fuzz/crashes/TARGET/` — where the corpus replay in `cargo xtask test` runs it as a
//! regression test from then on — and the corpus becomes afl-cmin's smallest subset of the old
//! corpus and this run's queue that keeps all their coverage. A table of executions per second, corpus size and crashes is printed and written
//! to `target/fuzz/summary.md`. Exits non-zero when any target crashed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use crate::step;

const OUT: &str = "target/fuzz";
const AFL_TARGET: &str = "target/afl";

pub fn fuzz(args: &[String]) -> Result<(), String> {
    let mut secs = 60u64;
    let mut jobs = 1usize;
    let mut targets = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--secs" => {
                secs = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("fuzz: --secs needs a number of seconds")?
            }
            "--jobs" => {
                jobs = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|&j| j > 0)
                    .ok_or("fuzz: --jobs needs a positive number")?
            }
            t if !t.starts_with('-') => targets.push(t.to_string()),
            other => {
                return Err(format!(
                    "fuzz: unknown argument `{other}` (TARGET…, --secs N, --jobs J)"
                ))
            }
        }
    }
    ensure_installed()?;
    let mut build = Command::new("cargo");
    build.args([
        "afl",
        "build",
        "--release",
        "--package",
        "ccr-fuzz",
        "--features",
        "afl",
        "--target-dir",
        AFL_TARGET,
    ]);
    step("build ccr-fuzz (AFL++ instrumentation)", build)?;
    let bin = PathBuf::from(format!("{AFL_TARGET}/release/ccr-fuzz"));
    let known = list_targets(&bin)?;
    if targets.is_empty() {
        targets = known.clone();
    }
    if let Some(t) = targets.iter().find(|t| !known.contains(t)) {
        return Err(format!(
            "fuzz: unknown target `{t}` (one of: {})",
            known.join(", ")
        ));
    }

    let mut results = Vec::new();
    for batch in targets.chunks(jobs) {
        let mut running: Vec<(String, Child)> = Vec::new();
        for t in batch {
            println!("== fuzz {t} for {secs} s");
            running.push((t.clone(), start(&bin, t, secs)?));
        }
        for (t, mut child) in running {
            let status = child
                .wait()
                .map_err(|e| format!("fuzz {t}: afl-fuzz: {e}"))?;
            if !status.success() {
                return Err(format!(
                    "fuzz {t}: afl-fuzz failed ({status}); its output is in {OUT}/{t}/afl.log"
                ));
            }
            results.push(collect(&t)?);
        }
    }

    let mut table = String::from(
        "| target | seconds | executions | executions/s | queue | corpus (minimized) | crashes |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in &results {
        table.push_str(&format!(
            "| {} | {} | {} | {:.0} | {} | {} | {} |\n",
            r.target, r.secs, r.execs, r.execs_per_sec, r.corpus, r.kept, r.crashes
        ));
    }
    std::fs::create_dir_all(OUT).map_err(|e| format!("{OUT}: {e}"))?;
    std::fs::write(format!("{OUT}/summary.md"), &table)
        .map_err(|e| format!("{OUT}/summary.md: {e}"))?;
    println!("\n{table}");
    let crashed: Vec<&str> = results
        .iter()
        .filter(|r| r.crashes > 0)
        .map(|r| r.target.as_str())
        .collect();
    if crashed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "fuzz: crashes in {} — copied to fuzz/crashes/; `cargo test -p ccr-fuzz` replays them",
            crashed.join(", ")
        ))
    }
}

fn ensure_installed() -> Result<(), String> {
    let present = Command::new("cargo")
        .args(["afl", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !present {
        let mut install = Command::new("cargo");
        install.args(["install", "--locked", "cargo-afl", "--version", "^0.17"]);
        step("install cargo-afl", install)?;
    }
    // cargo-afl builds AFL++ itself, once per machine.
    let built = Command::new("cargo")
        .args(["afl", "fuzz", "-h"])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout).contains("afl-fuzz")
                || String::from_utf8_lossy(&o.stderr).contains("afl-fuzz")
        });
    if !built {
        let mut config = Command::new("cargo");
        config.args(["afl", "config", "--build", "--force"]);
        step("build AFL++ (cargo afl config --build)", config)?;
    }
    Ok(())
}

fn list_targets(bin: &Path) -> Result<Vec<String>, String> {
    let out = Command::new(bin)
        .arg("--list")
        .output()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect())
}

/// Starts afl-fuzz on `target` from its seeds and committed corpus; output in target/fuzz.
fn start(bin: &Path, target: &str, secs: u64) -> Result<Child, String> {
    let dir = PathBuf::from(OUT).join(target);
    let input = dir.join("in");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&input).map_err(|e| format!("{}: {e}", input.display()))?;
    let seeds = Command::new(bin)
        .args(["--write-seeds", target])
        .arg(&input)
        .status()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    if !seeds.success() {
        return Err(format!("fuzz {target}: writing the seeds failed"));
    }
    for (i, f) in committed(&corpus_dir(target)).into_iter().enumerate() {
        std::fs::copy(&f, input.join(format!("corpus-{i}")))
            .map_err(|e| format!("{}: {e}", f.display()))?;
    }
    let log = std::fs::File::create(dir.join("afl.log")).map_err(|e| format!("{e}"))?;
    Command::new("cargo")
        .args(["afl", "fuzz", "-i"])
        .arg(&input)
        .arg("-o")
        .arg(dir.join("out"))
        .args(["-V", &secs.to_string(), "--"])
        .arg(bin)
        .arg(target)
        // No screen to draw on; a machine whose core_pattern pipes elsewhere still fuzzes;
        // two targets side by side must not fight over one core.
        .env("AFL_NO_UI", "1")
        .env("AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES", "1")
        .env("AFL_SKIP_CPUFREQ", "1")
        .env("AFL_NO_AFFINITY", "1")
        .stdout(log.try_clone().map_err(|e| format!("{e}"))?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("fuzz {target}: cannot start afl-fuzz: {e}"))
}

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from("fuzz/corpus").join(target)
}

fn committed(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.is_file());
    files.sort();
    files
}

struct Figures {
    target: String,
    secs: u64,
    execs: u64,
    execs_per_sec: f64,
    corpus: u64,
    kept: usize,
    crashes: usize,
}

/// Reads afl-fuzz's statistics, keeps its crashes as regressions and its new finds as corpus.
fn collect(target: &str) -> Result<Figures, String> {
    let out = PathBuf::from(OUT).join(target).join("out/default");
    let stats = std::fs::read_to_string(out.join("fuzzer_stats"))
        .map_err(|e| format!("fuzz {target}: no fuzzer_stats: {e}"))?;
    let stat = |key: &str| -> f64 {
        stats
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == key).then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0.0)
    };
    let crashes_to = PathBuf::from("fuzz/crashes").join(target);
    let mut crashes = 0;
    for f in committed(&out.join("crashes")) {
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        if name.starts_with("id:") {
            std::fs::create_dir_all(&crashes_to).map_err(|e| format!("{e}"))?;
            let dest = crashes_to.join(sanitize(&name));
            std::fs::copy(&f, &dest).map_err(|e| format!("{}: {e}", dest.display()))?;
            crashes += 1;
        }
    }
    // The corpus becomes the smallest set of inputs (old corpus and this run's queue) that
    // keeps every edge either reached: afl-cmin picks it. Files are named by their content.
    let corpus_to = corpus_dir(target);
    let before = committed(&corpus_to).len();
    let dir = PathBuf::from(OUT).join(target);
    let (merged, minimized) = (dir.join("merged"), dir.join("min"));
    std::fs::create_dir_all(&merged).map_err(|e| format!("{e}"))?;
    for f in committed(&corpus_to)
        .into_iter()
        .chain(committed(&out.join("queue")))
    {
        let bytes = std::fs::read(&f).map_err(|e| format!("{}: {e}", f.display()))?;
        std::fs::write(merged.join(content_name(&bytes)), &bytes).map_err(|e| format!("{e}"))?;
    }
    let cmin = Command::new("cargo")
        .args(["afl", "cmin", "-i"])
        .arg(&merged)
        .arg("-o")
        .arg(&minimized)
        .arg("--")
        .arg(format!("{AFL_TARGET}/release/ccr-fuzz"))
        .arg(target)
        .env("AFL_NO_UI", "1")
        .env("AFL_SKIP_CPUFREQ", "1")
        .output()
        .map_err(|e| format!("fuzz {target}: cannot run afl-cmin: {e}"))?;
    if !cmin.status.success() {
        return Err(format!(
            "fuzz {target}: afl-cmin failed: {}",
            String::from_utf8_lossy(&cmin.stderr)
        ));
    }
    let _ = std::fs::remove_dir_all(&corpus_to);
    std::fs::create_dir_all(&corpus_to).map_err(|e| format!("{e}"))?;
    for f in committed(&minimized) {
        let name = f.file_name().unwrap_or_default();
        std::fs::copy(&f, corpus_to.join(name)).map_err(|e| format!("{e}"))?;
    }
    let after = committed(&corpus_to).len();
    eprintln!("fuzz {target}: corpus {before} → {after} inputs (afl-cmin)");
    Ok(Figures {
        target: target.to_string(),
        secs: stat("run_time") as u64,
        execs: stat("execs_done") as u64,
        execs_per_sec: stat("execs_done") / stat("run_time").max(1.0),
        corpus: stat("corpus_count") as u64,
        kept: after,
        crashes,
    })
}

/// A file name for an input that changes only when its bytes do (FNV-1a, 64 bits).
fn content_name(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// afl-fuzz names files `id:000001,src:…,op:…`; keep them portable (no `:` or `,`).
fn sanitize(name: &str) -> String {
    let short: String = name.chars().take(60).collect();
    short.replace([':', ','], "_")
}
