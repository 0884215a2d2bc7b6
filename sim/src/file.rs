//! Scenario files: TOML, one scenario per file. Every error names the file, line and column.
//!
//! ```toml
//! # What happens in the real world, in a sentence or two.
//! name = "active-node-crash"
//! description = "…"
//! seeds = [1, 2, 3]
//! duration = "6m"            # faults and workload; then the liveness phase
//! settle = "2m"
//!
//! [workload]
//! messages_per_s = 50.0
//! bodies = true              # messages carry their bytes (default: id and size only)
//!
//! [cluster]                  # any ClusterConfig field
//! mount_dial = "GoodAvailability"
//!
//! [[step]]
//! at = "2m"
//! do = "power-loss-active"
//!
//! [expect]
//! failover = true
//! ```

use std::path::Path;

use ccr_core::cluster::config::ClusterConfig;
use ccr_core::cluster::hub::HubConfig;
use serde::Deserialize;

use crate::scenario::{Expect, Fault, Planted, Scenario, Step, Workload};

/// A scenario file that is not valid, with where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub path: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path, self.line, self.column, self.message
        )
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    name: String,
    #[serde(default)]
    description: String,
    seeds: Option<Vec<u64>>,
    duration: toml::Spanned<String>,
    settle: Option<toml::Spanned<String>>,
    /// How much later than scheduled a step may run (drawn from the seed); "0s" for an
    /// exact schedule.
    jitter: Option<toml::Spanned<String>>,
    workload: Option<toml::Spanned<Workload>>,
    cluster: Option<toml::Spanned<ClusterConfig>>,
    hub: Option<toml::Spanned<HubConfig>>,
    wan: Option<toml::Spanned<crate::topology::Wan>>,
    /// The witness share's machine: "hub1" (the default) or "own".
    #[serde(default)]
    witness: crate::topology::WitnessHost,
    /// Each node machine's disk, in MB (every log taking its nominal size): the log disk
    /// that fills when nobody takes backups. Kept through the liveness phase.
    disk_capacity_mb: Option<toml::Spanned<u64>>,
    #[serde(default)]
    step: Vec<toml::Spanned<toml::Table>>,
    expect: Option<toml::Spanned<Expect>>,
    /// Test-only: a deliberately broken build, so a shrunk failure of a planted bug replays
    /// from its file. Never in the library.
    #[serde(default)]
    planted: Planted,
}

/// The longest a scenario may simulate (its duration, and separately its settle phase):
/// long enough to fill a log disk, short of a typo's billion hours.
const MAX_SIMULATED_MS: u64 = 30 * 86_400_000;

/// The busiest workload a scenario may ask for, and the biggest message.
const MAX_MESSAGES_PER_S: f64 = 10_000.0;
const MAX_MESSAGE_SIZE: u32 = 64 * 1024 * 1024;
/// Mail with bodies, per second: every byte stays in the simulated disks' memory, twice.
const MAX_BODY_BYTES_PER_S: f64 = 4_000_000.0;

fn check_workload(w: &Workload) -> Result<(), String> {
    if !w.messages_per_s.is_finite() || !(0.0..=MAX_MESSAGES_PER_S).contains(&w.messages_per_s) {
        return Err(format!(
            "messages_per_s {} is not between 0 and {MAX_MESSAGES_PER_S}",
            w.messages_per_s
        ));
    }
    if !(1..=MAX_MESSAGE_SIZE).contains(&w.message_size) {
        return Err(format!(
            "message_size {} is not between 1 and {MAX_MESSAGE_SIZE} bytes",
            w.message_size
        ));
    }
    let body_rate = w.messages_per_s * f64::from(w.message_size);
    if w.bodies && body_rate > MAX_BODY_BYTES_PER_S {
        return Err(format!(
            "bodies = true at {:.1} MB/s of mail: the simulated disks keep every body in memory, so at most {:.0} MB/s (fewer or smaller messages, or bodies = false)",
            body_rate / 1e6,
            MAX_BODY_BYTES_PER_S / 1e6
        ));
    }
    Ok(())
}

/// Parses a duration such as `90s`, `2m`, `1m30s`, `500ms` or `1h` into milliseconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let mut total = 0u64;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "`{text}` is not a duration like 90s, 2m, 1m30s or 500ms"
            ));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|e| format!("`{text}`: {e}"))?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let ms = match &rest[..unit] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            other => {
                return Err(format!(
                    "`{text}`: unknown unit `{other}` (use ms, s, m, h or d)"
                ))
            }
        };
        total = total.saturating_add(n.saturating_mul(ms));
        rest = &rest[unit..];
    }
    Ok(total)
}

/// Loads and validates a scenario file.
pub fn load(path: &Path) -> Result<Scenario, FileError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| FileError {
        path: shown.clone(),
        line: 0,
        column: 0,
        message: format!("cannot read: {e}"),
    })?;
    parse(&shown, &text)
}

/// Parses scenario text; `path` only names it in errors.
pub fn parse(path: &str, text: &str) -> Result<Scenario, FileError> {
    let at = |offset: usize, message: String| {
        let before = &text[..offset.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        FileError {
            path: path.to_string(),
            line,
            column,
            message,
        }
    };
    let file: ScenarioFile = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        at(offset, e.message().trim().to_string())
    })?;
    let duration_ms = parse_duration(file.duration.get_ref())
        .map_err(|m| at(file.duration.span().start, format!("duration: {m}")))?;
    let settle_ms = match &file.settle {
        Some(s) => {
            parse_duration(s.get_ref()).map_err(|m| at(s.span().start, format!("settle: {m}")))?
        }
        None => 120_000,
    };
    let jitter_ms = match &file.jitter {
        Some(j) => {
            parse_duration(j.get_ref()).map_err(|m| at(j.span().start, format!("jitter: {m}")))?
        }
        None => crate::scenario::DEFAULT_JITTER_MS,
    };
    let too_long = |what: &str, ms: u64, spanned: &toml::Spanned<String>| {
        (ms > MAX_SIMULATED_MS).then(|| {
            at(
                spanned.span().start,
                format!(
                    "{what}: {} is longer than the {} days a scenario may simulate",
                    spanned.get_ref(),
                    MAX_SIMULATED_MS / 86_400_000
                ),
            )
        })
    };
    if let Some(e) = too_long("duration", duration_ms, &file.duration) {
        return Err(e);
    }
    if let Some(e) = file
        .settle
        .as_ref()
        .and_then(|s| too_long("settle", settle_ms, s))
    {
        return Err(e);
    }
    if duration_ms == 0 {
        return Err(at(
            file.duration.span().start,
            "duration: must be above 0".into(),
        ));
    }
    if jitter_ms > duration_ms {
        let offset = file.jitter.as_ref().map_or(0, |j| j.span().start);
        return Err(at(
            offset,
            "jitter: longer than the scenario's duration".into(),
        ));
    }
    let workload_at = file.workload.as_ref().map_or(0, |w| w.span().start);
    let workload = file.workload.map(|w| w.into_inner()).unwrap_or_default();
    check_workload(&workload).map_err(|m| at(workload_at, format!("[workload] {m}")))?;
    let hub_at = file.hub.as_ref().map_or(0, |h| h.span().start);
    let hub = file.hub.map(|h| h.into_inner()).unwrap_or_default();
    hub.validate()
        .map_err(|m| at(hub_at, format!("[hub] {m}")))?;
    let cluster_at = file.cluster.as_ref().map_or(0, |c| c.span().start);
    let cluster = file.cluster.map(|c| c.into_inner()).unwrap_or_default();
    cluster
        .validate()
        .map_err(|m| at(cluster_at, format!("[cluster] {m}")))?;

    let disk_capacity_mb = match file.disk_capacity_mb {
        Some(mb) if *mb.get_ref() == 0 || *mb.get_ref() > 64 * 1024 => {
            return Err(at(
                mb.span().start,
                format!(
                "disk_capacity_mb = {} is not between 1 and {} (64 GB, the simulated disk's size)",
                mb.get_ref(),
                64 * 1024
            ),
            ))
        }
        other => other.map(|mb| mb.into_inner()),
    };

    // The machines there are, to check the steps and the second site against.
    let topology = Scenario {
        cluster: cluster.clone(),
        witness: file.witness,
        ..Scenario::default()
    };
    let wan = match file.wan {
        Some(w) => {
            let wan_at = w.span().start;
            let wan = w.into_inner();
            wan.check(&cluster)
                .map_err(|m| at(wan_at, format!("[wan] {m}")))?;
            for m in &wan.remote {
                topology
                    .has_machine(*m)
                    .map_err(|why| at(wan_at, format!("[wan] remote: {why}")))?;
            }
            Some(wan)
        }
        None => None,
    };

    let mut steps = Vec::new();
    for (i, spanned) in file.step.iter().enumerate() {
        let offset = spanned.span().start;
        let mut table = spanned.get_ref().clone();
        let when = match table.remove("at") {
            Some(toml::Value::String(s)) => s,
            Some(_) => {
                return Err(at(
                    offset,
                    format!("step {}: `at` must be a string like \"30s\"", i + 1),
                ))
            }
            None => return Err(at(offset, format!("step {}: missing `at`", i + 1))),
        };
        let at_ms =
            parse_duration(&when).map_err(|m| at(offset, format!("step {}: at: {m}", i + 1)))?;
        if at_ms > duration_ms {
            return Err(at(
                offset,
                format!(
                    "step {}: at {when} is past the end of the scenario ({})",
                    i + 1,
                    file.duration.get_ref()
                ),
            ));
        }
        let fault = Fault::deserialize(toml::Value::Table(table))
            .map_err(|e| at(offset, format!("step {}: {}", i + 1, e.message().trim())))?;
        for m in fault.machines() {
            topology
                .has_machine(m)
                .map_err(|why| at(offset, format!("step {}: {why}", i + 1)))?;
        }
        if let Fault::Link { link, .. } = &fault {
            link.check()
                .map_err(|m| at(offset, format!("step {}: link: {m}", i + 1)))?;
        }
        steps.push(Step { at_ms, fault });
    }

    let expect_at = file.expect.as_ref().map_or(0, |e| e.span().start);
    let expect = file.expect.map(|e| e.into_inner()).unwrap_or_default();
    if ![expect.failover_min_s, expect.failover_max_s]
        .iter()
        .all(|v| v.is_finite() && *v >= 0.0)
    {
        return Err(at(
            expect_at,
            "[expect] failover_min_s and failover_max_s must be seconds, 0 or more".into(),
        ));
    }
    if expect.failover_min_s > expect.failover_max_s {
        return Err(at(
            expect_at,
            format!(
                "[expect] failover_min_s {} is above failover_max_s {}",
                expect.failover_min_s, expect.failover_max_s
            ),
        ));
    }
    let c = &cluster;
    let shortest_s = c.failover_bounds_ms().0 as f64 / 1000.0;
    if expect.failover == Some(true) && expect.failover_max_s < shortest_s {
        return Err(at(
            expect_at,
            format!(
                "[expect] a failover within {} s is impossible with this [cluster]: detection, \
             arbitration and bringing resources online take at least {shortest_s} s",
                expect.failover_max_s
            ),
        ));
    }
    Ok(Scenario {
        name: file.name,
        description: file.description,
        seeds: file.seeds.unwrap_or_else(|| vec![1]),
        duration_s: duration_ms.div_ceil(1000),
        settle_s: settle_ms.div_ceil(1000),
        jitter_ms,
        workload,
        cluster,
        hub,
        wan,
        witness: file.witness,
        disk_capacity_mb,
        steps,
        expect,
        planted: file.planted,
        source: path.to_string(),
    })
}

/// Writes a scenario as a file `load` reads back to the same scenario: every setting spelled
/// out (so it still means the same after defaults change), `header` as its opening comment.
pub fn to_toml(scenario: &Scenario, header: &str) -> String {
    use toml::{Table, Value};
    fn table<T: serde::Serialize>(what: &T) -> Value {
        Value::Table(Table::try_from(what).expect("scenario parts serialise as tables"))
    }
    let mut t = Table::new();
    t.insert("name".into(), scenario.name.clone().into());
    t.insert("description".into(), scenario.description.clone().into());
    t.insert(
        "seeds".into(),
        Value::Array(
            scenario
                .seeds
                .iter()
                .map(|s| Value::Integer(*s as i64))
                .collect(),
        ),
    );
    t.insert(
        "duration".into(),
        format!("{}s", scenario.duration_s).into(),
    );
    t.insert("settle".into(), format!("{}s", scenario.settle_s).into());
    t.insert("jitter".into(), format!("{}ms", scenario.jitter_ms).into());
    t.insert("workload".into(), table(&scenario.workload));
    t.insert("cluster".into(), table(&scenario.cluster));
    t.insert("hub".into(), table(&scenario.hub));
    if let Some(wan) = &scenario.wan {
        t.insert("wan".into(), table(wan));
    }
    if let Some(mb) = scenario.disk_capacity_mb {
        t.insert("disk_capacity_mb".into(), Value::Integer(mb as i64));
    }
    if scenario.witness != crate::topology::WitnessHost::default() {
        t.insert(
            "witness".into(),
            serde_json::to_value(scenario.witness)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
                .into(),
        );
    }
    let steps = scenario
        .steps
        .iter()
        .map(|step| {
            let mut row = Table::new();
            row.insert("at".into(), format!("{}ms", step.at_ms).into());
            if let Value::Table(fault) = table(&step.fault) {
                row.extend(fault);
            }
            Value::Table(row)
        })
        .collect();
    t.insert("step".into(), Value::Array(steps));
    t.insert("expect".into(), table(&scenario.expect));
    if scenario.planted != Planted::default() {
        t.insert("planted".into(), table(&scenario.planted));
    }
    let mut out: String = header
        .lines()
        .map(|l| format!("# {l}\n").replace("# \n", "#\n"))
        .collect();
    out.push_str(&toml::to_string(&t).expect("a table serialises"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(90_000));
        assert_eq!(parse_duration("1m30s"), Ok(90_000));
        assert_eq!(parse_duration("500ms"), Ok(500));
        assert_eq!(parse_duration("1h"), Ok(3_600_000));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("3 days").is_err());
    }

    const GOOD: &str = r#"
name = "x"
duration = "5m"

[[step]]
at = "2m"
do = "power-loss-active"

[[step]]
at = "3m"
do = "restart"
node = "node1"

[expect]
failover = true
"#;

    #[test]
    fn a_good_file_parses() {
        let s = parse("good.toml", GOOD).unwrap();
        assert_eq!(s.duration_s, 300);
        assert_eq!(s.steps.len(), 2);
        assert_eq!(s.steps[0].at_ms, 120_000);
        assert_eq!(s.steps[0].fault, Fault::PowerLossActive);
    }

    fn error(text: &str) -> FileError {
        parse("bad.toml", text).unwrap_err()
    }

    #[test]
    fn absurd_numbers_are_refused_with_their_place() {
        let cases = [
            (
                "[workload]\nmessages_per_s = -5.0\n",
                4,
                "messages_per_s -5",
            ),
            (
                "[workload]\nmessages_per_s = nan\n",
                4,
                "messages_per_s NaN",
            ),
            ("[workload]\nmessage_size = 0\n", 4, "message_size 0"),
            (
                "[workload]\nmessages_per_s = 1000.0\nbodies = true\n",
                4,
                "bodies = true at 20.0 MB/s",
            ),
            (
                "[hub]\nredelivery_timeout_ms = 0\n",
                4,
                "redelivery_timeout_ms 0",
            ),
            (
                "[hub]\nmax_concurrent_deliveries = 0\n",
                4,
                "max_concurrent_deliveries must be at least 1",
            ),
            ("[expect]\nfailover_max_s = -1.0\n", 4, "failover_min_s and"),
        ];
        for (tail, line, says) in cases {
            let e = error(&format!("name = \"x\"\nduration = \"5m\"\n\n{tail}"));
            assert_eq!(e.line, line, "{e}");
            assert!(e.message.contains(says), "{e}");
        }
        let e = error("name = \"x\"\nduration = \"1000000000h\"\n");
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("longer than the 30 days"), "{e}");
        let e = error("name = \"x\"\nduration = \"99999999999999999999h\"\n");
        assert_eq!(e.line, 2, "{e}");
        let e = error("name = \"x\"\nduration = \"0s\"\n");
        assert!(e.message.contains("above 0"), "{e}");
        let e = error("name = \"x\"\nduration = \"5m\"\nsettle = \"999h\"\n");
        assert_eq!(e.line, 3, "{e}");
        let e = error("name = \"x\"\nduration = \"5m\"\njitter = \"6m\"\n");
        assert_eq!(e.line, 3, "{e}");
        let e = error("name = \"x\"\nduration = \"5m\"\ndisk_capacity_mb = 0\n");
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("disk_capacity_mb = 0"), "{e}");
        let ok = parse(
            "x.toml",
            "name = \"x\"\nduration = \"2d\"\ndisk_capacity_mb = 400\n[[step]]\nat = \"1d\"\ndo = \"backup\"\nnode = \"node2\"\nkind = \"incremental\"\n",
        )
        .expect("valid");
        assert_eq!(
            (ok.duration_s, ok.disk_capacity_mb),
            (2 * 86_400, Some(400))
        );
        let again = parse("x.toml", &to_toml(&ok, "")).expect("round trip");
        assert_eq!(
            (again.disk_capacity_mb, &again.steps),
            (Some(400), &ok.steps)
        );
    }

    #[test]
    fn errors_name_the_line_and_column() {
        let e = error("name = \"x\"\nduration = \"5m\"\nfoo = 1\n");
        assert_eq!((e.line, e.column), (3, 1), "{e}");
        assert!(e.to_string().starts_with("bad.toml:3:1:"), "{e}");
        assert!(e.message.contains("foo"), "{e}");

        let e = error("name = \"x\"\nduration = 5\n");
        assert_eq!(e.line, 2, "{e}");

        let e = error("name = \"x\"\nduration = \"5m\"\n\n[[step]]\nat = \"9m\"\ndo = \"heal\"\n");
        assert_eq!(e.line, 4, "{e}");
        assert!(e.message.contains("past the end"), "{e}");

        let e = error("name = \"x\"\nduration = \"5m\"\n[[step]]\nat = \"1m\"\ndo = \"crash\"\nnode = \"node3\"\n");
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("node3"), "{e}");

        let e = error("name = \"x\"\nduration = \"5m\"\n[[step]]\nat = \"1m\"\ndo = \"explode\"\n");
        assert!(e.message.contains("explode"), "{e}");

        let e = error("name = \"x\"\nduration = \"5m\"\n[cluster]\npeer_lease_ms = 100\n");
        assert!(e.message.contains("peer_lease_ms"), "{e}");
        assert!(e.line >= 3, "{e}");

        let e = error("name = \"x\"\nduration = \"5m\"\n[expect]\nfailover = true\nfailover_min_s = 1.0\nfailover_max_s = 3.0\n");
        assert!(e.message.contains("impossible"), "{e}");
        assert!(e.line >= 3, "{e}");

        let e = error("name = \"x\"\nduration = \"5m\"\n[expect]\nfailover_min_s = 30.0\nfailover_max_s = 20.0\n");
        assert!(e.message.contains("above"), "{e}");
    }

    #[test]
    fn a_second_site_is_checked_where_it_is_written() {
        let wan = |body: &str| format!("name = \"x\"\nduration = \"5m\"\n\n[wan]\n{body}");
        let s = parse(
            "ok.toml",
            &wan("remote = [\"node2\"]\n[wan.link]\nmin_delay_ms = 30\nmax_delay_ms = 31\nbandwidth_mbit = 10.0\n"),
        )
        .unwrap();
        let w = s.wan.expect("a wan");
        assert_eq!(w.remote, vec![crate::topology::Machine::Node2]);
        assert_eq!(w.link.bandwidth_mbit, 10.0);
        // Line 4 is `[wan]`; an unknown machine is named where it is written.
        let cases = [
            ("remote = []\n", 4, "name the machines"),
            ("remote = [\"client\"]\n", 4, "clients sit with hub1"),
            ("remote = [\"node3\"]\n", 5, "node3"),
            (
                "remote = [\"node2\"]\n[wan.link]\nbandwidth_mbit = 1.0\n",
                4,
                "could never copy a log",
            ),
            (
                "remote = [\"node2\"]\n[wan.link]\nbandwidth_mbit = -1.0\n",
                4,
                "bandwidth_mbit -1",
            ),
            (
                "remote = [\"node2\"]\n[wan.link]\nmin_delay_ms = 50\nmax_delay_ms = 5\n",
                4,
                "min_delay_ms must not exceed",
            ),
        ];
        for (body, line, says) in cases {
            let e = error(&wan(body));
            assert_eq!(e.line, line, "{e}");
            assert!(e.message.contains(says), "{body}: {e}");
        }
        let e = error("name = \"x\"\nduration = \"5m\"\n[[step]]\nat = \"1m\"\ndo = \"link\"\nnet = \"public\"\n[step.link]\nloss = 2.0\n");
        assert!(e.message.contains("step 1: link: loss 2"), "{e}");
        // Machines the topology does not have, named where they are written.
        let e = error(
            "name = \"x\"\nduration = \"5m\"\n[[step]]\nat = \"1m\"\ndo = \"hub-down\"\nhub = 3\n",
        );
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("hub3: this cluster has 2 hub(s)"), "{e}");
        let e = error("name = \"x\"\nduration = \"5m\"\n[[step]]\nat = \"1m\"\ndo = \"isolate\"\nmachine = \"witness\"\n");
        assert!(e.message.contains("witness = \"own\""), "{e}");
        let e = error("name = \"x\"\nduration = \"5m\"\n[[step]]\nat = \"1m\"\ndo = \"isolate\"\nmachine = \"hub9\"\n");
        assert!(e.message.contains("unknown machine \"hub9\""), "{e}");
        let ok = parse("x.toml", "name = \"x\"\nduration = \"5m\"\nwitness = \"own\"\n[cluster]\nhubs = 3\n[[step]]\nat = \"1m\"\ndo = \"isolate\"\nmachine = \"witness\"\n[[step]]\nat = \"2m\"\ndo = \"hub-down\"\nhub = 3\n").expect("valid");
        assert_eq!(ok.cluster.hubs, 3);
        let again = parse("x.toml", &to_toml(&ok, "")).expect("written back");
        assert_eq!(again.witness, ok.witness);
        assert_eq!(again.steps, ok.steps);
    }
}

#[cfg(test)]
mod round_trip {
    use super::*;

    #[test]
    fn swarm_scenarios_survive_a_trip_through_a_file() {
        let swarm = crate::swarm::Swarm::default();
        for seed in 0..200 {
            let mut s = swarm.generate(seed);
            s.planted.nodes.skip_redelivery = seed % 2 == 0;
            let text = to_toml(&s, "a header\n\nsecond paragraph");
            let back = parse("x.toml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert!(text.starts_with("# a header\n#\n# second paragraph\n"));
            let mut expected = s.clone();
            expected.source = "x.toml".into();
            assert_eq!(back, expected, "seed {seed}");
        }
    }
}
