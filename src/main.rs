//! `ccr`: a real CCR cluster — mailbox nodes, the hub with its dumpster and the witness, a
//! client, and the admin commands — over TCP, real files and the real clock.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ccr",
    about = "Exchange 2007 Cluster Continuous Replication, for real"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines are written to stderr: `text` for people, `json` (one object per line,
    /// with the node, hub and event as fields) for log collectors. Filter with `RUST_LOG`
    /// (default `info`; `RUST_LOG=debug` adds every log copied and replayed).
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Structured logs on stderr (stdout stays for command output).
#[cfg(not(madsim))]
fn init_logs(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Where an admin command goes: a node's config file (its admin address and the key), or both
/// given directly.
#[derive(clap::Args, Clone)]
struct Target {
    /// A node's config file.
    #[arg(long, conflicts_with_all = ["admin", "key"])]
    config: Option<PathBuf>,
    /// A node's admin address.
    #[arg(long, requires = "key")]
    admin: Option<std::net::SocketAddr>,
    /// The cluster key (or set CCR_KEY).
    #[arg(long, env = "CCR_KEY", hide_env_values = true)]
    key: Option<String>,
    /// With --admin, when the cluster runs TLS: its CA certificate (PEM)…
    #[arg(long, requires_all = ["admin", "tls_cert", "tls_key"])]
    tls_ca: Option<PathBuf>,
    /// …a certificate that CA signed…
    #[arg(long, requires = "tls_ca")]
    tls_cert: Option<PathBuf>,
    /// …and its private key.
    #[arg(long, requires = "tls_ca")]
    tls_key: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a mailbox node.
    Node {
        #[arg(long)]
        config: PathBuf,
    },
    /// Run the hub transport server, its dumpster and the file share witness.
    Hub {
        #[arg(long)]
        config: PathBuf,
    },
    /// Submit mail, spread over every hub the config lists in turn.
    Client {
        /// A hub's config file (every hub's address and the key).
        #[arg(long)]
        config: PathBuf,
        #[command(subcommand)]
        what: ClientCmd,
    },
    /// Start node1, node2 and the hubs on loopback, data in DIR (default: a new temporary one).
    Up {
        #[arg(long)]
        dir: Option<PathBuf>,
        /// First of the ports used (hub1 = PORT, nodes PORT+1, PORT+2, hub2… PORT+3…; admin
        /// PORT+11, PORT+12).
        #[arg(long, default_value_t = 7400)]
        port: u16,
        /// How many hub transport servers (1 to 8), each with its own dumpster; hub1 also
        /// hosts the file share witness.
        #[arg(long, default_value_t = 2)]
        hubs: u8,
        /// Plain TCP between the processes instead of TLS under a throwaway CA (DIR/tls).
        #[arg(long)]
        no_tls: bool,
    },
    /// Get-ClusteredMailboxServerStatus
    Status(Target),
    /// Get-StorageGroupCopyStatus (the passive copy, on whichever node it is asked)
    CopyStatus(Target),
    /// Test-ReplicationHealth: each check of the replication pipeline as this node sees it;
    /// exits non-zero when any fails.
    TestReplicationHealth(Target),
    /// Move-ClusteredMailboxServer
    Move {
        #[command(flatten)]
        target: Target,
        #[arg(long = "target", value_parser = parse_node)]
        to: ccr_core::cluster::NodeId,
        /// Why (Exchange's -MoveComment): required, and kept by the cluster.
        #[arg(long)]
        comment: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Suspend-StorageGroupCopy (halts copying and replay until resumed)
    SuspendCopy {
        #[command(flatten)]
        target: Target,
        /// Why (Exchange's -SuspendComment), shown by copy-status while suspended.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Resume-StorageGroupCopy
    ResumeCopy(Target),
    /// Update-StorageGroupCopy (reseed this passive copy)
    UpdateCopy(Target),
    /// Restore-StorageGroupCopy (ready this copy to mount, accepting what it lacks)
    RestoreCopy(Target),
    /// Mount-Database (mount a copy restore-copy readied)
    MountDatabase(Target),
    /// Stop-ClusteredMailboxServer: dismount and keep the server offline on both nodes,
    /// across restarts and failures, until start-cms. `status` shows it done.
    StopCms {
        #[command(flatten)]
        target: Target,
        /// Why (Exchange's -StopReason): required, shown by status while stopped.
        #[arg(long)]
        reason: String,
    },
    /// Start-ClusteredMailboxServer: bring a stopped server online again.
    StartCms(Target),
    /// Back up this node's copy into its data folder's `backups/` (the database file and
    /// the closed logs); afterwards both nodes delete the logs both copies' database files
    /// hold, up to the backup's checkpoint.
    Backup {
        #[command(flatten)]
        target: Target,
        /// Copy only the logs (needs a full backup before it).
        #[arg(long)]
        incremental: bool,
    },
    /// Benchmarks of a loopback cluster of this binary: one JSON line each (`cargo xtask
    /// bench` runs them and writes BENCHMARKS.md).
    Bench {
        #[command(subcommand)]
        what: BenchCmd,
    },
    /// Check acknowledged mail (FILE as `client load --acked-file` writes it: `ID SIZE CRC32C
    /// SHA256` a line, or bare ids) against a node. With --data, reads the node's data
    /// directory itself and recomputes each body's digest from the stored bytes; otherwise
    /// asks the running node which ids its database lacks (presence only). Fails on any
    /// message missing or not as the client sent it.
    Verify {
        #[command(flatten)]
        target: Target,
        /// The node's data directory (its `data` setting), read directly.
        #[arg(long, conflicts_with_all = ["config", "admin"])]
        data: Option<PathBuf>,
        #[arg(long, alias = "acked")]
        ids: PathBuf,
    },
}

#[derive(Subcommand)]
enum BenchCmd {
    /// RUNS `kill -9` failovers of the active, alternating nodes: kill to survivor serving.
    Failover {
        #[arg(long, default_value_t = 10)]
        runs: usize,
    },
    /// node2 starts LOGS logs behind and catches up: log shipping throughput.
    Shipping {
        #[arg(long, default_value_t = 500)]
        logs: u64,
        /// Make the cluster's folder inside DIR (a memory file system such as /dev/shm
        /// measures the copier without the disk).
        #[arg(long, conflicts_with = "wan_mbit")]
        dir: Option<PathBuf>,
        /// Run each machine in a network namespace (root) and put node2 behind a link of
        /// this many Mbit/s (tc netem).
        #[arg(long, requires = "wan_delay_ms", value_parser = clap::value_parser!(u32).range(1..))]
        wan_mbit: Option<u32>,
        /// The WAN link's delay each way, in milliseconds.
        #[arg(long, requires = "wan_mbit")]
        wan_delay_ms: Option<u32>,
    },
    /// RUNS faults in turn (kill -9 of the active, of the passive, of the hub) under a client
    /// stream; every acknowledged message must be there at the end.
    Soak {
        #[arg(long, default_value_t = 30)]
        runs: usize,
        /// Partitions of the active as a fourth fault, the machines in network namespaces:
        /// `auto` when root and `ip netns` allow it.
        #[arg(long, value_enum, default_value = "auto")]
        partitions: Partitions,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Partitions {
    Auto,
    On,
    Off,
}

#[derive(Subcommand)]
enum ClientCmd {
    /// Send one message and wait for its acknowledgement.
    Send {
        #[arg(long, default_value_t = 20_000)]
        size: u32,
    },
    /// A steady stream: RATE messages per second for DURATION seconds.
    Load {
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        #[arg(long, default_value_t = 20_000)]
        size: u32,
        /// Write the acknowledged message ids here, one per line.
        #[arg(long)]
        acked_file: Option<PathBuf>,
    },
}

fn parse_node(s: &str) -> Result<ccr_core::cluster::NodeId, String> {
    match s {
        "node1" => Ok(ccr_core::cluster::NodeId::Node1),
        "node2" => Ok(ccr_core::cluster::NodeId::Node2),
        _ => Err(format!("`{s}`: a node is node1 or node2")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    #[cfg(madsim)]
    {
        let _ = cli;
        eprintln!("ccr: built for the simulator (--cfg madsim); build it normally");
        ExitCode::from(2)
    }
    #[cfg(not(madsim))]
    {
        init_logs(cli.log_format);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        match runtime.block_on(real::run(cli)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ccr: {e}");
                ExitCode::FAILURE
            }
        }
    }
}

#[cfg(not(madsim))]
mod real {
    use std::time::Duration;

    use ccr::client;
    use ccr::config::{self, HubFile, NodeFile};
    use ccr::frame::Key;
    use ccr::tls::{Links, TlsFiles};
    use ccr::wire::{AdminReply, AdminRequest};

    use super::{BenchCmd, Cli, ClientCmd, Command, Partitions, Target};

    /// A node's admin address, the key, and how to connect (the node's own certificate when
    /// its config names one).
    fn target_of(t: &Target) -> Result<(std::net::SocketAddr, Key, Links), String> {
        if let Some(path) = &t.config {
            let f: NodeFile = config::load(path)?;
            return Ok((f.admin, Key::new(&f.key)?, Links::load(f.tls.as_ref())?));
        }
        let tls = match (&t.tls_ca, &t.tls_cert, &t.tls_key) {
            (Some(ca), Some(cert), Some(key)) => Some(TlsFiles {
                ca: ca.clone(),
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        };
        match (t.admin, &t.key) {
            (Some(a), Some(k)) => Ok((a, Key::new(k)?, Links::load(tls.as_ref())?)),
            _ => Err("say which node: --config NODE.toml, or --admin ADDR --key KEY".into()),
        }
    }

    async fn command(t: &Target, req: AdminRequest) -> Result<(), String> {
        let (addr, key, tls) = target_of(t)?;
        match client::admin(addr, &key, &tls, req).await? {
            AdminReply::Status { status, .. } => print!("{status}"),
            AdminReply::CopyStatus(s) => print!("{s}"),
            AdminReply::ReplicationHealth(h) => {
                print!("{h}");
                if !h.passed() {
                    return Err(format!("failed: {}", h.failed().join(", ")));
                }
            }
            AdminReply::Accepted => println!("accepted"),
            AdminReply::Missing { ids } => println!("{} missing", ids.len()),
            AdminReply::Refused(r) => return Err(r),
        }
        Ok(())
    }

    fn first_id() -> u64 {
        // Unique across runs: milliseconds since the epoch, times a thousand.
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_millis() as u64)
            * 1000
    }

    pub async fn run(cli: Cli) -> Result<(), String> {
        match cli.command {
            Command::Node { config } => ccr::node_proc::run(config::load(&config)?).await,
            Command::Hub { config } => ccr::hub_proc::run(config::load(&config)?).await,
            Command::Client { config, what } => {
                let f: HubFile = config::load(&config)?;
                let key = Key::new(&f.key)?;
                let tls = Links::load(f.tls.as_ref())?;
                let (rate, duration, size, file) = match what {
                    ClientCmd::Send { size } => (1.0, 0.5, size, None),
                    ClientCmd::Load {
                        rate,
                        duration,
                        size,
                        acked_file,
                    } => (rate, duration, size, acked_file),
                };
                let report = client::load(
                    &ccr::local::client_addresses(&f.addresses),
                    &key,
                    &tls,
                    first_id(),
                    client::Stream {
                        rate,
                        duration: Duration::from_secs_f64(duration),
                        size,
                        grace: Duration::from_secs(90),
                    },
                )
                .await?;
                println!("sent {}, acknowledged {}", report.sent, report.acked.len());
                if let Some(path) = file {
                    let text: String = report
                        .receipts
                        .iter()
                        .map(|r| format!("{}\n", r.line()))
                        .collect();
                    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
                }
                Ok(())
            }
            Command::Up {
                dir,
                port,
                no_tls,
                hubs,
            } => up(dir, port, !no_tls, hubs).await,
            Command::Bench { what } => {
                let bin = std::env::current_exe()
                    .map_err(|e| format!("cannot find this binary to start the roles: {e}"))?;
                let figure = match what {
                    BenchCmd::Failover { runs } => ccr::bench::failover(&bin, runs).await?,
                    BenchCmd::Shipping {
                        logs,
                        dir,
                        wan_mbit,
                        wan_delay_ms,
                    } => {
                        let site = match (wan_mbit, wan_delay_ms) {
                            (Some(mbit), Some(delay_ms)) => {
                                if let Some(why) = ccr::netns::unavailable() {
                                    return Err(format!("--wan-mbit: {why}"));
                                }
                                ccr::bench::Site::Wan { mbit, delay_ms }
                            }
                            _ => ccr::bench::Site::Loopback { dir },
                        };
                        ccr::bench::shipping(&bin, logs, site).await?
                    }
                    BenchCmd::Soak { runs, partitions } => {
                        let why_not = ccr::netns::unavailable();
                        let partitions = match (partitions, why_not) {
                            (Partitions::Off, _) => false,
                            (Partitions::On, Some(why)) => {
                                return Err(format!("--partitions on: {why}"))
                            }
                            (Partitions::On, None) | (Partitions::Auto, None) => true,
                            (Partitions::Auto, Some(why)) => {
                                eprintln!("soak without partitions: {why}");
                                false
                            }
                        };
                        let figure = ccr::bench::soak(&bin, runs, partitions).await?;
                        if figure["lost"].as_u64() != Some(0) {
                            println!("{figure}");
                            return Err("acknowledged mail was lost".into());
                        }
                        figure
                    }
                };
                println!("{figure}");
                Ok(())
            }
            Command::Status(t) => command(&t, AdminRequest::Status).await,
            Command::CopyStatus(t) => command(&t, AdminRequest::CopyStatus).await,
            Command::Move {
                target,
                to,
                comment,
                yes,
            } => {
                if !yes {
                    use std::io::Write;
                    print!("Move the clustered mailbox server to {to}? [y/N] ");
                    let _ = std::io::stdout().flush();
                    let mut answer = String::new();
                    let _ = std::io::stdin().read_line(&mut answer);
                    if !answer.trim().eq_ignore_ascii_case("y") {
                        return Err("not moved".into());
                    }
                }
                command(
                    &target,
                    AdminRequest::Move {
                        target: to,
                        comment,
                    },
                )
                .await
            }
            Command::SuspendCopy { target, comment } => {
                command(&target, AdminRequest::SuspendCopy { comment }).await
            }
            Command::TestReplicationHealth(t) => {
                command(&t, AdminRequest::TestReplicationHealth).await
            }
            Command::ResumeCopy(t) => command(&t, AdminRequest::ResumeCopy).await,
            Command::UpdateCopy(t) => command(&t, AdminRequest::UpdateCopy).await,
            Command::RestoreCopy(t) => command(&t, AdminRequest::RestoreCopy).await,
            Command::MountDatabase(t) => command(&t, AdminRequest::MountDatabase).await,
            Command::StopCms { target, reason } => {
                command(&target, AdminRequest::StopCms { reason }).await
            }
            Command::StartCms(t) => command(&t, AdminRequest::StartCms).await,
            Command::Backup {
                target,
                incremental,
            } => command(&target, AdminRequest::Backup { incremental }).await,
            Command::Verify { target, data, ids } => {
                let receipts = ccr::mail::read_receipts(&ids)?;
                if let Some(dir) = data {
                    let v = ccr::mail::verify_data_dir(&dir, &receipts)?;
                    if v.ok() {
                        println!(
                            "all {} acknowledged message(s) present: {} matched by the SHA-256 of the bytes in a log, {} by size and crc32c in the database file, {} by id only",
                            receipts.len(),
                            v.by_bytes,
                            v.by_checksum,
                            v.present_only
                        );
                        return Ok(());
                    }
                    let mut why = Vec::new();
                    if !v.missing.is_empty() {
                        why.push(format!(
                            "{} missing, e.g. {:?}",
                            v.missing.len(),
                            &v.missing[..v.missing.len().min(5)]
                        ));
                    }
                    if let Some((id, what)) = v.damaged.first() {
                        why.push(format!(
                            "{} not as the client sent them, e.g. {id}: {what}",
                            v.damaged.len()
                        ));
                    }
                    return Err(format!(
                        "{} of {} acknowledged message(s) in {}: {}",
                        v.missing.len() + v.damaged.len(),
                        receipts.len(),
                        dir.display(),
                        why.join("; ")
                    ));
                }
                let list: Vec<u64> = receipts
                    .iter()
                    .map(|r| r.map_or_else(|id| id, |r| r.id))
                    .collect();
                let (addr, key, tls) = target_of(&target)?;
                match client::admin(
                    addr,
                    &key,
                    &tls,
                    AdminRequest::Missing { ids: list.clone() },
                )
                .await?
                {
                    AdminReply::Missing { ids: missing } if missing.is_empty() => {
                        println!(
                            "all {} acknowledged message(s) present (by id; --data checks the bytes)",
                            list.len()
                        );
                        Ok(())
                    }
                    AdminReply::Missing { ids: missing } => Err(format!(
                        "{} of {} acknowledged message(s) missing, e.g. {:?}",
                        missing.len(),
                        list.len(),
                        &missing[..missing.len().min(5)]
                    )),
                    other => Err(format!("unexpected answer: {other:?}")),
                }
            }
        }
    }

    async fn up(
        dir: Option<std::path::PathBuf>,
        port: u16,
        tls: bool,
        hubs: u8,
    ) -> Result<(), String> {
        let dir = match dir {
            Some(d) => d,
            None => tempfile::Builder::new()
                .prefix("ccr-up-")
                .tempdir()
                .map_err(|e| e.to_string())?
                .keep(),
        };
        let key = format!("{:032x}", rand::random::<u128>());
        let configs = ccr::up::write_configs(&dir, port, &key, tls, hubs)?;
        let (n1, n2, hub) = (&configs.node1, &configs.node2, configs.hub());
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut children: Vec<std::process::Child> = Vec::new();
        let roles = configs
            .hubs
            .iter()
            .map(|h| ("hub", h))
            .chain([("node", n1), ("node", n2)]);
        for (role, cfg) in roles {
            let child = std::process::Command::new(&exe)
                .args([role, "--config"])
                .arg(cfg)
                .spawn()
                .map_err(|e| format!("cannot start {role}: {e}"))?;
            children.push(child);
        }
        println!(
            "A CCR cluster runs on loopback ({} hub(s), the witness on hub1); data and configs in {}",
            configs.hubs.len(),
            dir.display()
        );
        println!("  ccr status --config {}", n1.display());
        println!("  ccr copy-status --config {}", n2.display());
        println!(
            "  ccr client --config {} load --rate 20 --duration 30",
            hub.display()
        );
        println!(
            "  ccr move --config {} --target node2 --comment \"This is a test!\"",
            n1.display()
        );
        println!("Stop with Ctrl-C.");
        // Ctrl-C reaches the children through the terminal; a SIGTERM (a supervisor, `timeout`,
        // `kill`) reaches only this process, which then stops them itself.
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| format!("cannot wait for SIGTERM: {e}"))?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        for c in &mut children {
            let _ = c.kill();
            let _ = c.wait();
        }
        Ok(())
    }
}
