//! `cargo xtask bench`: builds the simulator (`--cfg madsim`) and the real binary in release,
//! runs `ccr-sim bench` and `ccr bench …`, prints a table against the targets and rewrites
//! the figures section of `BENCHMARKS.md` (between its markers; the text around them is
//! written by hand and kept).

use std::process::{Command, Stdio};

use serde_json::Value;

use crate::{step, Build, MADSIM_TARGET};

const FILE: &str = "BENCHMARKS.md";
const BEGIN: &str = "<!-- figures:begin (cargo xtask bench rewrites this part) -->";
const END: &str = "<!-- figures:end -->";
/// A memory file system, where the shipping benchmark measures the copier without the disk.
const MEMORY_DIR: &str = "/dev/shm";

struct Plan {
    seeds: u64,
    failovers: usize,
    logs: u64,
    /// Swarm seeds at most per planted bug (time to catch).
    catch_max: u64,
    /// Swarm seeds per range and mode (guided versus unguided).
    guided_seeds: u64,
}

pub fn bench(args: &[String]) -> Result<(), String> {
    let quick = args.iter().any(|a| a == "--quick");
    if let Some(bad) = args.iter().find(|a| *a != "--quick") {
        return Err(format!("bench: unknown argument `{bad}` (only --quick)"));
    }
    let plan = if quick {
        Plan {
            seeds: 40,
            failovers: 3,
            logs: 200,
            catch_max: 40,
            guided_seeds: 20,
        }
    } else {
        Plan {
            seeds: 400,
            failovers: 10,
            logs: 1000,
            catch_max: 400,
            guided_seeds: 200,
        }
    };
    let mut sim = Build::Madsim.cargo("build");
    sim.args(["--release", "--package", "ccr-sim", "--quiet"]);
    step("build ccr-sim (--cfg madsim, release)", sim)?;
    let mut real = Build::Normal.cargo("build");
    real.args(["--release", "--package", "ccr", "--quiet"]);
    step("build ccr (release)", real)?;

    let sim_bin = format!("{MADSIM_TARGET}/release/ccr-sim");
    let real_bin = "target/release/ccr";
    let seeds = plan.seeds.to_string();
    let runs = plan.failovers.to_string();
    let logs = plan.logs.to_string();
    let catch_max = plan.catch_max.to_string();
    let guided_seeds = plan.guided_seeds.to_string();
    let wan_logs = (plan.logs / 5).to_string();
    let mut commands: Vec<Vec<&str>> = vec![
        vec![
            &sim_bin,
            "bench",
            "--seeds",
            &seeds,
            "--catch-max",
            &catch_max,
            "--guided-seeds",
            &guided_seeds,
        ],
        vec![real_bin, "bench", "failover", "--runs", &runs],
        vec![real_bin, "bench", "shipping", "--logs", &logs],
    ];
    // The copier without the disk: logs in memory. Then over a WAN, where root can make one.
    if std::path::Path::new(MEMORY_DIR).is_dir() {
        commands.push(vec![
            real_bin, "bench", "shipping", "--logs", &logs, "--dir", MEMORY_DIR,
        ]);
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if root {
        commands.push(vec![
            real_bin,
            "bench",
            "shipping",
            "--logs",
            &wan_logs,
            "--wan-mbit",
            "100",
            "--wan-delay-ms",
            "30",
        ]);
    }
    let mut figures = Vec::new();
    for cmd in &commands {
        figures.extend(figures_of(cmd)?);
    }
    let table = Table::of(&figures)?;
    println!();
    print!("{}", table.text());
    let reproduce = if quick {
        "cargo xtask bench --quick"
    } else {
        "cargo xtask bench"
    };
    let section = table.markdown(&figures, reproduce, &commands);
    write_section(&section)?;
    println!("\nwrote {FILE}");
    Ok(())
}

/// Runs one benchmark command (its progress on stderr shows as it goes) and parses the JSON
/// line of each figure it prints.
fn figures_of(cmd: &[&str]) -> Result<Vec<Value>, String> {
    let shown = cmd.join(" ");
    println!("== {shown}");
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot start {}: {e}", cmd[0]))?;
    if !out.status.success() {
        return Err(format!("{shown}: {}", out.status));
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).map_err(|e| format!("{shown}: bad figure `{l}`: {e}")))
        .collect()
}

struct Row {
    figure: &'static str,
    measured: String,
    target: &'static str,
    /// `None` for a figure reported beside a target, not against one.
    met: Option<bool>,
}

struct Table {
    rows: Vec<Row>,
    /// Time to catch each planted bug: (bug, seeds, wall, invariant or "not caught").
    catches: Vec<(String, String, String, String)>,
    /// Guided versus unguided: (row, runs reaching it per range "u/g", total u, total g).
    guided: Vec<(String, Vec<String>, u64, u64)>,
    guided_seeds: u64,
}

fn find<'a>(figures: &'a [Value], bench: &str) -> Result<&'a Value, String> {
    figures
        .iter()
        .find(|f| f["bench"] == bench)
        .ok_or_else(|| format!("no `{bench}` figure was reported"))
}

fn num(v: &Value, field: &str) -> Result<f64, String> {
    v[field]
        .as_f64()
        .ok_or_else(|| format!("figure {}: no number `{field}`", v["bench"]))
}

impl Table {
    fn of(figures: &[Value]) -> Result<Table, String> {
        let compression = num(find(figures, "compression")?, "compression")?;
        let overhead = find(figures, "overhead")?;
        let seeds = num(find(figures, "seeds")?, "seeds_per_hour")?;
        let replay = num(find(figures, "replay")?, "wall_s")?;
        let shrink = find(figures, "shrink")?;
        let failover = find(figures, "real-failover")?;
        let (median, worst) = (num(failover, "median_s")?, num(failover, "worst_s")?);
        // Log files hold their mail's bodies: the bytes a log file holds are what was shipped.
        let shipping_at = |site: &dyn Fn(&Value) -> bool| {
            figures
                .iter()
                .find(|f| f["bench"] == "real-shipping" && site(&f["site"]))
        };
        let on_disk = shipping_at(&|s| s["loopback"].is_string() && s["loopback"] != MEMORY_DIR)
            .ok_or("no shipping figure on disk was reported")?;
        let on_disk = num(on_disk, "file_mb_per_s")?;
        let in_memory = shipping_at(&|s| s["loopback"] == MEMORY_DIR);
        let wan = shipping_at(&|s| s["wan_mbit"].is_number());
        let rows = vec![
            Row {
                figure: "time compression (standard workload, 1 core)",
                measured: format!("{compression:.0}×"),
                target: "≥ 10,000×",
                met: Some(compression >= 10_000.0),
            },
            Row {
                figure: "overhead over bare madsim (same wakes and messages)",
                measured: format!("{:.1}× the bare run", num(overhead, "ratio")?),
                target: "≤ 1.5×",
                met: Some(num(overhead, "ratio")? <= 1.5),
            },
            Row {
                figure: "ten-minute swarm seeds per hour (all cores)",
                measured: format!("{seeds:.0}"),
                target: "≥ 100,000",
                met: Some(seeds >= 100_000.0),
            },
            Row {
                figure: "replay one failing seed with full trace",
                measured: format!("{:.0} ms", replay * 1000.0),
                target: "< 1 s",
                met: Some(replay < 1.0),
            },
            Row {
                figure: "shrink a planted failure",
                measured: format!(
                    "{:.1} s ({} → {} steps, {} runs)",
                    num(shrink, "wall_s")?,
                    shrink["steps_before"],
                    shrink["steps_after"],
                    shrink["runs"]
                ),
                target: "< 60 s",
                met: Some(num(shrink, "wall_s")? < 60.0),
            },
            Row {
                figure: "real kill -9 failover, median / worst",
                measured: format!(
                    "{median:.1} s / {worst:.1} s, {} of {} acked lost",
                    failover["lost"], failover["acked"]
                ),
                target: "median in 10–60 s, nothing lost",
                met: Some((10.0..=60.0).contains(&median) && failover["lost"] == 0),
            },
            match in_memory {
                Some(f) => {
                    let rate = num(f, "file_mb_per_s")?;
                    Row {
                        figure:
                            "real log shipping on loopback, logs in memory (1 MB logs with bodies)",
                        measured: format!("{rate:.0} MB/s"),
                        target: "≥ 200 MB/s",
                        met: Some(rate >= 200.0),
                    }
                }
                None => Row {
                    figure: "real log shipping on loopback, logs in memory (1 MB logs with bodies)",
                    measured: format!("not run: no {MEMORY_DIR}"),
                    target: "≥ 200 MB/s",
                    met: Some(false),
                },
            },
            Row {
                figure: "the same, logs on this machine's disk (a synced write per log)",
                measured: format!("{on_disk:.0} MB/s"),
                target: "(bound by the disk)",
                met: None,
            },
            match wan {
                Some(f) => Row {
                    figure: "real log shipping over a WAN of 100 Mbit/s, 30 ms each way",
                    measured: format!(
                        "{:.1} MB/s, {:.0} % of the link",
                        num(f, "file_mb_per_s")?,
                        100.0 * num(f, "of_link")?
                    ),
                    target: "≥ 80 % of the link",
                    met: Some(num(f, "of_link")? >= 0.8),
                },
                None => Row {
                    figure: "real log shipping over a WAN of 100 Mbit/s, 30 ms each way",
                    measured: "not run: network namespaces need root".into(),
                    target: "≥ 80 % of the link",
                    met: Some(false),
                },
            },
        ];
        let catches = figures
            .iter()
            .filter(|f| f["bench"] == "catch")
            .map(|f| {
                let bug = f["bug"].as_str().unwrap_or("?").to_string();
                let wall = format!("{:.1} s", f["wall_s"].as_f64().unwrap_or(0.0));
                if f["caught"] == true {
                    (
                        bug,
                        format!("{} (seed {})", f["seeds_run"], f["seed"]),
                        wall,
                        f["invariant"].as_str().unwrap_or("?").to_string(),
                    )
                } else {
                    (
                        bug,
                        format!("{}", f["seeds_run"]),
                        wall,
                        "**not caught**".to_string(),
                    )
                }
            })
            .collect();
        let mut guided: Vec<(String, Vec<String>, u64, u64)> = Vec::new();
        let mut guided_seeds = 0;
        for f in figures.iter().filter(|f| f["bench"] == "guided-total") {
            guided_seeds = f["seeds_per_mode"].as_u64().unwrap_or(0);
            let row = f["row"].as_str().unwrap_or("?").to_string();
            let ranges = figures
                .iter()
                .filter(|g| g["bench"] == "guided" && g["row"] == f["row"])
                .map(|g| format!("{}/{}", g["unguided"], g["guided"]))
                .collect();
            guided.push((
                row,
                ranges,
                f["unguided"].as_u64().unwrap_or(0),
                f["guided"].as_u64().unwrap_or(0),
            ));
        }
        Ok(Table {
            rows,
            catches,
            guided,
            guided_seeds,
        })
    }

    fn text(&self) -> String {
        let mut out = format!(
            "{:<54} {:>40}  {:<32} met\n",
            "figure", "measured", "target"
        );
        for r in &self.rows {
            out.push_str(&format!(
                "{:<54} {:>40}  {:<32} {}\n",
                r.figure,
                r.measured,
                r.target,
                match r.met {
                    Some(true) => "yes",
                    Some(false) => "NO",
                    None => "—",
                }
            ));
        }
        out.push_str("\ntime to catch each planted bug (swarm seeds, all cores):\n");
        for (bug, seeds, wall, invariant) in &self.catches {
            out.push_str(&format!(
                "  {bug:<32} {seeds:>16}  {wall:>9}  {}\n",
                invariant.replace("**", "")
            ));
        }
        out.push_str(&format!(
            "\nruns reaching each fixed row, unguided / guided ({} seeds per mode, five ranges):\n",
            self.guided_seeds
        ));
        for (row, ranges, u, g) in &self.guided {
            out.push_str(&format!(
                "  {row:<58} {u:>5} / {g:<5} ({})\n",
                ranges.join(", ")
            ));
        }
        out
    }

    fn markdown(&self, figures: &[Value], reproduce: &str, commands: &[Vec<&str>]) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "Measured {} on {}, commit {}. Reproduce: `{reproduce}` (it runs {}).\n\n",
            shell("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            machine(),
            shell("git", &["describe", "--always", "--dirty"]),
            commands
                .iter()
                .map(|c| format!("`{}`", c.join(" ")))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        out.push_str("| figure | measured | target | met |\n|---|---:|---|---|\n");
        for r in &self.rows {
            out.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                r.figure,
                r.measured,
                r.target,
                match r.met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "—",
                }
            ));
        }
        out.push_str(
            "\nTime to catch each planted bug: the default swarm swept from seed 0 on every core, \
             in batches, until a run fails (seeds run, and the first failing seed).\n\n\
             | planted bug | seeds to the first failure | wall time | caught by |\n|---|---:|---:|---|\n",
        );
        for (bug, seeds, wall, invariant) in &self.catches {
            out.push_str(&format!("| `{bug}` | {seeds} | {wall} | {invariant} |\n"));
        }
        out.push_str(&format!(
            "\nGuided versus unguided sweeps (`ccr-sim sweep --guided`): five seed ranges of {} \
             ten-minute seeds each, swept both ways; runs that reached each row fixed in advance \
             (`bench::GUIDED_ROWS`), per range as unguided/guided, then in total.\n\n\
             | situation | per range | unguided | guided |\n|---|---|---:|---:|\n",
            self.guided_seeds / 5
        ));
        for (row, ranges, u, g) in &self.guided {
            out.push_str(&format!("| {row} | {} | {u} | {g} |\n", ranges.join(", ")));
        }
        out.push_str("\nEvery figure as its benchmark reported it:\n\n```json\n");
        for f in figures {
            out.push_str(&format!("{f}\n"));
        }
        out.push_str("```\n");
        out
    }
}

/// Replaces the figures section of BENCHMARKS.md, keeping what stands around it.
fn write_section(section: &str) -> Result<(), String> {
    let old = std::fs::read_to_string(FILE).unwrap_or_default();
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{BEGIN}\n{section}{}", &old[..b], &old[e..])
        }
        _ => format!("{old}\n{BEGIN}\n{section}{END}\n"),
    };
    std::fs::write(FILE, new).map_err(|e| format!("cannot write {FILE}: {e}"))
}

fn shell(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Cores, processor model and memory, as /proc tells them.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown processor".to_string(), |m| m.trim().to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .map_or("unknown memory".to_string(), |kb| {
            format!("{:.0} GiB", kb as f64 / 1048576.0)
        });
    format!("{cores} cores ({model}), {mem}")
}
