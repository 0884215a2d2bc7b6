//! The real binary's benchmarks, behind `ccr bench` (`cargo xtask bench` runs them beside the
//! simulator's and writes `BENCHMARKS.md`): `kill -9` failovers of a loopback cluster, and
//! log shipping to a passive that starts behind. Each prints one JSON line.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use ccr_core::cluster::NodeId;
use ccr_core::storage::names;
use serde_json::{json, Value};

use crate::client;
use crate::local::{Condition, LocalCluster};
use crate::wire::{AdminReply, AdminRequest};

const KEY: &str = "a-benchmark-key-of-ccr-0123456789";
/// How often the clock is read against the cluster: the figures' resolution.
const POLL: Duration = Duration::from_millis(50);

/// `runs` failovers, alternating the active: a client stream of 25 messages/s, three seconds
/// of it, then `kill -9` of the active; the time is from the kill to the survivor having the
/// database mounted and serving (the hub delivers to it from then on). The killed node is
/// restarted and must catch up before the next run. Every acknowledged message is checked on
/// the survivor.
pub async fn failover(bin: &Path, runs: usize) -> Result<Value, String> {
    let mut c = both_nodes_up(bin).await?;
    let mut active = NodeId::Node1;
    let (mut times, mut acked, mut lost) = (Vec::new(), 0, Vec::new());
    for run in 0..runs {
        let survivor = active.peer();
        c.wait_for(Condition::CaughtUp(survivor), Duration::from_secs(90), POLL)
            .await?;
        let stream = background_stream(&c, 1 + run as u64 * 1_000_000, 24, 60)?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        c.kill9(active)?;
        let took = c
            .wait_for(Condition::Serves(survivor), Duration::from_secs(120), POLL)
            .await?;
        times.push(took.as_secs_f64());
        eprintln!("failover {}: {:.2} s", run + 1, took.as_secs_f64());
        c.start_node(active)?;
        let report = stream.await.map_err(|e| format!("client stream: {e}"))??;
        acked += report.acked.len();
        // Judged from the survivor's files: each body as the client sent it.
        let missing = c
            .not_stored(survivor, &report.receipts, Duration::from_secs(10))
            .await?;
        if !missing.is_empty() {
            eprintln!(
                "failover {}: {} acknowledged message(s) not stored on {survivor} as sent, e.g. {:?}",
                run + 1,
                missing.len(),
                &missing[..missing.len().min(5)]
            );
        }
        lost.push(missing.len());
        active = survivor;
    }
    let lost_total: usize = lost.iter().sum();
    // A loss is a bug to look into: keep everything the processes wrote.
    let kept = (lost_total > 0).then(|| c.keep().display().to_string());
    if let Some(dir) = &kept {
        eprintln!("acknowledged mail was lost: the cluster's folder is kept in {dir}");
    }
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(json!({
        "bench": "real-failover",
        "runs": runs,
        "seconds": times,
        "median_s": sorted.get(sorted.len() / 2),
        "worst_s": sorted.last(),
        "best_s": sorted.first(),
        "acked": acked,
        "lost": lost_total,
        "lost_per_run": lost,
        "kept": kept,
    }))
}

/// Where the shipping benchmark's cluster runs.
#[derive(Debug, Clone)]
pub enum Site {
    /// Every process on loopback, the cluster's folder inside `dir` (the system's temporary
    /// folder when `None`): a folder on a memory file system measures the copier, one on a
    /// disk measures the disk too.
    Loopback { dir: Option<std::path::PathBuf> },
    /// Each machine in a network namespace (root), node2 at a second site behind a link of
    /// `mbit` Mbit/s and `delay_ms` each way (`tc netem`).
    Wan { mbit: u32, delay_ms: u32 },
}

/// Log shipping: node1 serves alone (with the witness's vote) while a client fills `logs`
/// logs — each message is one log's nominal size, so each closes a log — then node2 starts
/// and copies, inspects and replays them all. Throughput is counted from node2's first
/// copied log to its last, in logs and in the bytes the log files hold (a megabyte of mail
/// each, bodies included).
pub async fn shipping(bin: &Path, logs: u64, site: Site) -> Result<Value, String> {
    let mut c = match &site {
        Site::Loopback { dir } => {
            LocalCluster::start_in(bin, KEY, &[NodeId::Node1], true, dir.as_deref())?
        }
        Site::Wan { .. } => LocalCluster::start_in_namespaces(bin, KEY, &[NodeId::Node1])?,
    };
    c.wait_for(
        Condition::Serves(NodeId::Node1),
        Duration::from_secs(30),
        POLL,
    )
    .await?;
    let log_size = ccr_core::storage::StorageConfig::default().log_size;
    let rate = 100.0;
    let report = client::load(
        &c.hub_addresses()?,
        &c.key(),
        &c.links(),
        1,
        client::Stream {
            rate,
            duration: Duration::from_secs_f64(logs as f64 / rate),
            size: u32::try_from(log_size).map_err(|_| "log size above 4 GB".to_string())?,
            grace: Duration::from_secs(60),
        },
    )
    .await?;
    let (closed, bytes) = closed_logs(&c.dir().join("node1").join("logs"))?;
    if let Site::Wan { mbit, delay_ms } = site {
        c.shape(NodeId::Node2, mbit, delay_ms)?;
    }
    let started = Instant::now();
    c.start_node(NodeId::Node2)?;
    let mut first: Option<(Instant, u64)> = None;
    let last = loop {
        if started.elapsed() > Duration::from_secs(600) {
            return Err(format!(
                "node2 did not copy {closed} logs in 10 minutes\n{}",
                c.log_tails(15)
            ));
        }
        if let Some(AdminReply::CopyStatus(s)) =
            c.ask(NodeId::Node2, AdminRequest::CopyStatus).await
        {
            let g = u64::from(s.last_inspected_generation);
            if g > 0 && first.is_none() {
                first = Some((Instant::now(), g));
            }
            if g >= closed && s.replay_queue_length == 0 {
                break Instant::now();
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let (t0, g0) = first.expect("a copied log was seen before the last");
    let span = last.duration_since(t0).as_secs_f64().max(1e-3);
    let shipped = closed - g0;
    let nominal_mb = (shipped * log_size) as f64 / 1e6;
    let file_mb_per_s = (bytes as f64 * shipped as f64 / closed.max(1) as f64) / 1e6 / span;
    let (site, link) = match &site {
        Site::Loopback { dir } => (
            json!({ "loopback": dir.as_ref().map_or("the system's temporary folder".into(), |d| d.display().to_string()) }),
            json!(null),
        ),
        Site::Wan { mbit, delay_ms } => {
            let link_mb_per_s = f64::from(*mbit) / 8.0;
            (
                json!({ "wan_mbit": mbit, "wan_delay_ms": delay_ms }),
                json!(file_mb_per_s / link_mb_per_s),
            )
        }
    };
    Ok(json!({
        "bench": "real-shipping",
        "site": site,
        "of_link": link,
        "acked": report.acked.len(),
        "logs": closed,
        "file_bytes": bytes,
        "start_to_caught_up_s": last.duration_since(started).as_secs_f64(),
        "steady_logs": shipped,
        "steady_s": span,
        "logs_per_s": shipped as f64 / span,
        "nominal_mb_per_s": nominal_mb / span,
        "file_mb_per_s": file_mb_per_s,
    }))
}

/// The newest closed generation in a log folder, and the bytes its closed logs hold.
fn closed_logs(dir: &Path) -> Result<(u64, u64), String> {
    let (mut newest, mut bytes) = (0u64, 0);
    for e in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let e = e.map_err(|e| format!("{}: {e}", dir.display()))?;
        let name = e.file_name();
        if let Some(g) = name.to_str().and_then(names::parse_closed_log_name) {
            newest = newest.max(u64::from(g));
            bytes += e.metadata().map_or(0, |m| m.len());
        }
    }
    Ok((newest, bytes))
}

/// Both nodes and the hub, node1 serving.
async fn both_nodes_up(bin: &Path) -> Result<LocalCluster, String> {
    up(LocalCluster::start(bin, KEY, &NodeId::ALL)?).await
}

async fn up(c: LocalCluster) -> Result<LocalCluster, String> {
    c.wait_for(
        Condition::Serves(NodeId::Node1),
        Duration::from_secs(30),
        POLL,
    )
    .await?;
    Ok(c)
}

/// A client stream in the background: 25 messages/s of 4 KB for `secs`, ids from
/// `first_id`, acknowledgements awaited up to `grace_secs` after it ends.
fn background_stream(
    c: &LocalCluster,
    first_id: u64,
    secs: u64,
    grace_secs: u64,
) -> Result<tokio::task::JoinHandle<Result<client::LoadReport, String>>, String> {
    let (hubs, key, tls) = (c.hub_addresses()?, c.key(), c.links());
    Ok(tokio::spawn(async move {
        client::load(
            &hubs,
            &key,
            &tls,
            first_id,
            client::Stream {
                rate: 25.0,
                duration: Duration::from_secs(secs),
                size: 4_000,
                grace: Duration::from_secs(grace_secs),
            },
        )
        .await
    }))
}

/// What one soak run does to the cluster.
#[derive(Debug, Clone, Copy)]
enum Blow {
    KillActive,
    KillPassive,
    RestartHub,
    PartitionActive,
}

/// `runs` faults in turn — `kill -9` of the active, of the passive, of the hub (restarted from
/// its state file) — each during a client stream, each followed by recovery: the killed node
/// restarted and caught up. After each run the run's acknowledged messages must be in the
/// serving node's database (within a minute: redelivery from the dumpster takes its time); at
/// the end, every message acknowledged during the whole soak.
///
/// With `partitions`, the machines run in network namespaces (root only) and a fourth fault
/// joins the turn: the active's network link goes down — it runs on, heard by nobody — until
/// the passive has taken over and the old active, asked on its own machine, no longer serves
/// (no split brain); then the link comes back and the old active must rejoin as the passive.
pub async fn soak(bin: &Path, runs: usize, partitions: bool) -> Result<Value, String> {
    let (mut c, blows) = if partitions {
        let c = LocalCluster::start_in_namespaces(bin, KEY, &NodeId::ALL)?;
        let blows = vec![
            Blow::KillActive,
            Blow::KillPassive,
            Blow::RestartHub,
            Blow::PartitionActive,
        ];
        (up(c).await?, blows)
    } else {
        let blows = vec![Blow::KillActive, Blow::KillPassive, Blow::RestartHub];
        (both_nodes_up(bin).await?, blows)
    };
    let mut active = NodeId::Node1;
    let (mut failovers, mut all_acked, mut lost_per_run) = (Vec::new(), Vec::new(), Vec::new());
    let mut all_receipts = Vec::new();
    let mut counts = BTreeMap::new();
    for run in 0..runs {
        let blow = blows[run % blows.len()];
        *counts.entry(format!("{blow:?}")).or_insert(0usize) += 1;
        let passive = active.peer();
        c.wait_for(Condition::CaughtUp(passive), Duration::from_secs(120), POLL)
            .await?;
        let stream = background_stream(&c, 1 + run as u64 * 1_000_000, 12, 90)?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        match blow {
            Blow::KillActive => {
                c.kill9(active)?;
                let took = c
                    .wait_for(Condition::Serves(passive), Duration::from_secs(120), POLL)
                    .await?;
                failovers.push(took.as_secs_f64());
                eprintln!(
                    "soak run {}: failover in {:.2} s",
                    run + 1,
                    took.as_secs_f64()
                );
                c.start_node(active)?;
                active = passive;
            }
            Blow::KillPassive => {
                c.kill9(passive)?;
                tokio::time::sleep(Duration::from_secs(5)).await;
                c.start_node(passive)?;
            }
            Blow::RestartHub => c.restart_hub(Duration::from_secs(2)).await?,
            Blow::PartitionActive => {
                c.partition(active)?;
                let took = c
                    .wait_for(Condition::Serves(passive), Duration::from_secs(120), POLL)
                    .await?;
                failovers.push(took.as_secs_f64());
                if c.serving_asked_on_its_machine(active)? {
                    c.heal(active)?;
                    return Err(format!(
                        "soak run {}: split brain: {active}, cut off, still serves while \
                         {passive} serves\n{}",
                        run + 1,
                        c.log_tails(20)
                    ));
                }
                eprintln!(
                    "soak run {}: partition: failover in {:.2} s, {active} stopped serving",
                    run + 1,
                    took.as_secs_f64()
                );
                c.heal(active)?;
                active = passive;
            }
        }
        let report = stream.await.map_err(|e| format!("client stream: {e}"))??;
        c.wait_for(Condition::Serves(active), Duration::from_secs(120), POLL)
            .await?;
        // A lossy failover's mail comes back by redelivery from the dumpster, which may still
        // be under way: give it a minute before calling anything lost.
        let since = Instant::now();
        let missing = loop {
            let missing = c.missing(active, &report.acked).await?;
            if missing.is_empty() || since.elapsed() > Duration::from_secs(60) {
                break missing;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        eprintln!(
            "soak run {}: {blow:?}: {} acknowledged, {} missing on {active}{}",
            run + 1,
            report.acked.len(),
            missing.len(),
            if since.elapsed() > Duration::from_millis(100) {
                format!(
                    " (waited {:.1} s for redelivery)",
                    since.elapsed().as_secs_f64()
                )
            } else {
                String::new()
            }
        );
        lost_per_run.push(missing.len());
        all_acked.extend(report.acked);
        all_receipts.extend(report.receipts);
    }
    c.wait_for(
        Condition::CaughtUp(active.peer()),
        Duration::from_secs(120),
        POLL,
    )
    .await?;
    // The verdict from the serving node's files, not its word: every acknowledged body as
    // its client sent it.
    let lost = c
        .not_stored(active, &all_receipts, Duration::from_secs(10))
        .await?;
    let kept = (!lost.is_empty()).then(|| c.keep().display().to_string());
    if let Some(dir) = &kept {
        eprintln!("acknowledged mail was lost: the cluster's folder is kept in {dir}");
    }
    let mut sorted = failovers.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(json!({
        "bench": "real-soak",
        "runs": runs,
        "partitions": partitions,
        "faults": counts,
        "failovers": failovers.len(),
        "failover_median_s": sorted.get(sorted.len() / 2),
        "failover_worst_s": sorted.last(),
        "acked": all_acked.len(),
        "lost": lost.len(),
        "lost_examples": &lost[..lost.len().min(10)],
        "missing_after_each_run": lost_per_run.iter().sum::<usize>(),
        "kept": kept,
    }))
}
