//! Scenarios: a workload, a config, a timed fault schedule (plain serde data, so a generator
//! or a file can produce it) and expectations checked beside the always-on invariants.

use ccr_core::cluster::config::ClusterConfig;
use ccr_core::cluster::hub::HubConfig;
use ccr_core::cluster::node::PlantedBugs;
use ccr_core::cluster::wire::BackupKind;
use ccr_core::cluster::{HubId, Net, NodeId};
use serde::{Deserialize, Serialize};

use crate::topology::{LinkConfig, Machine, Wan, WitnessHost};

/// One fault or admin action. Node-relative variants (`…Active`) act on whichever node serves
/// when the step runs, which is what a scenario about "the active" means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Fault {
    /// The node's services die; its machine, disk and log share stay up.
    Crash {
        node: NodeId,
    },
    CrashActive,
    /// The machine loses power: services and share gone, unsynced writes lost or torn.
    PowerLoss {
        node: NodeId,
    },
    PowerLossActive,
    Restart {
        node: NodeId,
    },
    /// The node's services stop running (a long pause, a hung process) until `resume`.
    Pause {
        node: NodeId,
    },
    PauseActive,
    Resume {
        node: NodeId,
    },
    /// Cut messages between two machines, on one network or both, one way or both ways.
    Partition {
        from: Machine,
        to: Machine,
        net: Option<Net>,
        #[serde(default)]
        one_way: bool,
    },
    /// Cut a machine off from every other machine on the given networks. `one_way`: only
    /// what it sends is lost, it still hears everyone — a NIC or a firewall that lets packets
    /// in and not out, the gray failure where a node is told it is fine while nobody hears it.
    Isolate {
        machine: Machine,
        net: Option<Net>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        one_way: bool,
    },
    IsolateActive,
    /// Ends every partition and link degradation.
    Heal,
    /// Datagram loss, duplication and delay on one network.
    Link {
        net: Net,
        link: LinkConfig,
    },
    /// Disk capacity in bytes (below what is stored: the disk is full).
    DiskCapacity {
        node: NodeId,
        bytes: u64,
    },
    /// Multiply the node disk's latency.
    SlowDisk {
        node: NodeId,
        factor: u32,
    },
    /// Flip a bit at rest in a closed log on the node's disk: the given generation, or else
    /// one drawn from those the other node's disk holds identically while the other copy is
    /// whole (so another copy still holds what is damaged); with none such, nothing.
    CorruptLog {
        node: NodeId,
        generation: Option<u32>,
    },
    /// Flip a bit at rest in the first half of the node's database file, unless the other
    /// copy is not whole.
    CorruptDatabase {
        node: NodeId,
    },
    /// Flip a bit in the next log file the node receives over the network.
    CorruptNextCopy {
        node: NodeId,
    },
    /// Move a machine's wall clock (a skew or a jump); leases use the monotonic clock.
    ClockJump {
        machine: Machine,
        ms: i64,
    },
    ClockDrift {
        machine: Machine,
        ppm: i64,
    },
    WitnessDown,
    WitnessUp,
    WitnessFileLost,
    /// A hub transport service stops (its queue and dumpster are kept, as Exchange keeps
    /// them in its queue database; a witness share on the same machine stays up): nothing
    /// reaches it, clients hand their mail to another hub, it delivers nothing — until
    /// `hub-up`. `hub`: which (1 when absent).
    HubDown {
        #[serde(default)]
        hub: HubId,
    },
    HubUp {
        #[serde(default)]
        hub: HubId,
    },
    Move {
        target: NodeId,
        comment: String,
    },
    SuspendCopy {
        node: NodeId,
    },
    ResumeCopy {
        node: NodeId,
    },
    UpdateCopy {
        node: NodeId,
    },
    /// `Restore-StorageGroupCopy`: readies the copy, accepting what it lacks.
    RestoreCopy {
        node: NodeId,
    },
    /// `Mount-Database`: mounts a copy a restore readied.
    MountDatabase {
        node: NodeId,
    },
    /// `Stop-ClusteredMailboxServer -StopReason …`, run on `node`.
    StopCms {
        node: NodeId,
        reason: String,
    },
    /// `Start-ClusteredMailboxServer`, run on `node`.
    StartCms {
        node: NodeId,
    },
    /// A backup of `node`'s copy (`kind` full, the default, or incremental); logs are
    /// truncated after it.
    Backup {
        node: NodeId,
        #[serde(default = "full_backup")]
        kind: BackupKind,
    },
}

fn full_backup() -> BackupKind {
    BackupKind::Full
}

impl Fault {
    /// A short label in scenario-file words: `crash node=node1`, `move target=node1 …`.
    /// The fault's kind, as a scenario file names it (`power-loss-active`, `partition`, …).
    pub fn kind(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("do").and_then(|d| d.as_str()).map(String::from))
            .unwrap_or_else(|| "?".into())
    }

    /// The machines this fault names (a hub by number counts as its machine), to check that
    /// the topology has them.
    pub fn machines(&self) -> Vec<Machine> {
        match self {
            Fault::Partition { from, to, .. } => vec![*from, *to],
            Fault::Isolate { machine, .. }
            | Fault::ClockJump { machine, .. }
            | Fault::ClockDrift { machine, .. } => vec![*machine],
            Fault::HubDown { hub } | Fault::HubUp { hub } => vec![Machine::Hub(*hub)],
            _ => Vec::new(),
        }
    }

    /// The node this fault acts on, when it names one.
    pub fn target_node(&self) -> Option<NodeId> {
        match self {
            Fault::Crash { node }
            | Fault::PowerLoss { node }
            | Fault::Restart { node }
            | Fault::Pause { node }
            | Fault::Resume { node }
            | Fault::DiskCapacity { node, .. }
            | Fault::SlowDisk { node, .. }
            | Fault::CorruptLog { node, .. }
            | Fault::CorruptDatabase { node }
            | Fault::CorruptNextCopy { node }
            | Fault::SuspendCopy { node }
            | Fault::ResumeCopy { node }
            | Fault::UpdateCopy { node }
            | Fault::RestoreCopy { node }
            | Fault::MountDatabase { node }
            | Fault::StopCms { node, .. }
            | Fault::StartCms { node }
            | Fault::Backup { node, .. } => Some(*node),
            Fault::Isolate {
                machine: Machine::Node1,
                ..
            } => Some(NodeId::Node1),
            Fault::Isolate {
                machine: Machine::Node2,
                ..
            } => Some(NodeId::Node2),
            _ => None,
        }
    }

    pub fn label(&self) -> String {
        let value = serde_json::to_value(self).expect("a fault serialises");
        let Some(map) = value.as_object() else {
            return format!("{self:?}");
        };
        let mut out = map
            .get("do")
            .and_then(|d| d.as_str())
            .unwrap_or("?")
            .to_string();
        for (k, v) in map.iter().filter(|(k, _)| *k != "do") {
            let v = match v {
                serde_json::Value::Null => continue,
                serde_json::Value::String(s) => format!("{s:?}"),
                other => other.to_string(),
            };
            out.push_str(&format!(" {k}={v}"));
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub at_ms: u64,
    #[serde(flatten)]
    pub fault: Fault,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Workload {
    pub messages_per_s: f64,
    pub message_size: u32,
    /// Messages carry their bodies (derived from each id) through the hub, the logs and the
    /// copies, and the checkers compare what is stored with what the client sent. Off, a
    /// message is its id and size and the logs count the bodies they leave out.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub bodies: bool,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            messages_per_s: 50.0,
            message_size: 20_000,
            bodies: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Expect {
    /// `Some(true)`: a failover must happen; `Some(false)`: none may.
    pub failover: Option<bool>,
    pub failover_min_s: f64,
    pub failover_max_s: f64,
    /// At least this many messages redelivered from the transport dumpster.
    pub redelivered_min: u64,
    /// The mount dial must have kept a database dismounted at some point.
    pub dismounted_by_dial: bool,
    /// A scheduled move must have been refused.
    pub move_refused: bool,
    /// A returning copy must have been found diverged beyond lost-log resilience.
    pub reseed_required: bool,
    /// A returning copy must have been rolled back (diverged within lost-log resilience).
    pub rolled_back: bool,
    /// The node that must serve when the run ends.
    pub ends_on: Option<NodeId>,
    /// Clients may be without service at most this long at a stretch once the cluster first
    /// served (seconds, measured to the simulator's one-second sampling).
    pub outage_max_s: Option<f64>,
    /// Acknowledged mail the mailbox may hold twice (invariant `duplicates`).
    pub duplicates_max: u64,
    /// Time-window redelivery must lose acknowledged mail to a skewed hub clock — the
    /// Exchange weakness the scenario shows (otherwise such a loss is the run's outcome).
    pub lost_to_clock_skew: bool,
    /// An administrator's Stop-ClusteredMailboxServer must have returned (the stop took
    /// effect: the database dismounted and the stop was recorded beyond one node).
    pub stopped: bool,
    /// Logs must have been truncated after a backup (judged from the disks).
    pub truncated: bool,
    /// A node's disk must have refused a write for want of space.
    pub disk_full: bool,
}

impl Default for Expect {
    fn default() -> Self {
        Expect {
            failover: None,
            failover_min_s: 10.0,
            failover_max_s: 60.0,
            redelivered_min: 0,
            dismounted_by_dial: false,
            move_refused: false,
            reseed_required: false,
            rolled_back: false,
            ends_on: None,
            outage_max_s: None,
            duplicates_max: 0,
            lost_to_clock_skew: false,
            stopped: false,
            truncated: false,
            disk_full: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    pub seeds: Vec<u64>,
    /// Workload and faults run this long; then the liveness phase heals everything.
    pub duration_s: u64,
    /// How long the healed cluster gets to return to Online with a healthy passive.
    pub settle_s: u64,
    /// Each step runs up to this much later than scheduled, drawn from the seed (the order of
    /// the steps never changes): a scripted fault then lands at a different point of the
    /// cluster's work with every seed. 0 keeps the schedule exact.
    pub jitter_ms: u64,
    pub workload: Workload,
    pub cluster: ClusterConfig,
    pub hub: HubConfig,
    /// A second site and the link to it (none: every machine on one site).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wan: Option<Wan>,
    /// The witness share's machine: `hub1` (the article's) or `own`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub witness: WitnessHost,
    /// Each node machine's disk in MB (none: the simulated disk's 64 GB), kept through the
    /// liveness phase: a log disk that fills unless backups truncate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_capacity_mb: Option<u64>,
    pub steps: Vec<Step>,
    pub expect: Expect,
    /// Test-only broken logic, to show each checker firing (and to replay a shrunk failure of
    /// a planted bug from its file).
    pub planted: Planted,
    /// What `ccr-sim run` needs to find this scenario again: a built-in name or a file path.
    #[serde(skip)]
    pub source: String,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

impl Scenario {
    /// Whether the topology has `m`: its hubs are `hub1` … `hub{cluster.hubs}`, and the
    /// witness has a machine only when given one of its own.
    pub fn has_machine(&self, m: Machine) -> Result<(), String> {
        match m {
            Machine::Hub(h) if h.0 == 0 || h.0 > self.cluster.hubs => Err(format!(
                "{m}: this cluster has {} hub(s) (hubs = {} in [cluster])",
                self.cluster.hubs, self.cluster.hubs
            )),
            Machine::Witness if self.witness != WitnessHost::Own => Err(
                "witness: the witness share sits on hub1 unless `witness = \"own\"` gives it a machine"
                    .into(),
            ),
            _ => Ok(()),
        }
    }
}

/// How far a scripted step may move by default (a scenario sets `jitter`).
pub const DEFAULT_JITTER_MS: u64 = 1_000;

/// The instants (ms) the steps run at with `jitter_ms` applied, from `draw` (a number in
/// `0..=jitter_ms` per step): never earlier than scheduled, never before the step before.
pub fn jittered(steps: &[Step], jitter_ms: u64, mut draw: impl FnMut(u64) -> u64) -> Vec<u64> {
    let mut last = 0;
    steps
        .iter()
        .map(|s| {
            let extra = if jitter_ms == 0 { 0 } else { draw(jitter_ms) };
            last = (s.at_ms + extra).max(last);
            last
        })
        .collect()
}

/// Bugs a test can plant in the logic under simulation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Planted {
    /// In a file: `[planted.nodes]`, e.g. `skip_takeover_guard = true`.
    pub nodes: PlantedBugs,
    pub witness_grants_everyone: bool,
    pub hub_skips_redelivery: bool,
    /// The dumpster evicts at a sixty-fourth of its configured size.
    pub hub_evicts_early: bool,
}

impl Planted {
    /// Redelivery never asked for nor carried out: a lossy failover then loses acknowledged
    /// mail. The bug the swarm's must-show plants, and the benchmarks replay and shrink.
    pub fn no_redelivery() -> Planted {
        Planted {
            nodes: PlantedBugs {
                skip_redelivery: true,
                ..PlantedBugs::default()
            },
            hub_skips_redelivery: true,
            ..Planted::default()
        }
    }
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            name: String::new(),
            description: String::new(),
            seeds: vec![1],
            duration_s: 600,
            settle_s: 120,
            jitter_ms: DEFAULT_JITTER_MS,
            workload: Workload::default(),
            cluster: ClusterConfig::default(),
            hub: HubConfig::default(),
            wan: None,
            witness: WitnessHost::default(),
            disk_capacity_mb: None,
            steps: Vec::new(),
            expect: Expect::default(),
            planted: Planted::default(),
            source: String::new(),
        }
    }
}

/// The scenarios every build carries.
pub fn builtin(name: &str) -> Option<Scenario> {
    let at = |s: u64, fault| Step {
        at_ms: s * 1000,
        fault,
    };
    let mut scenario = match name {
        "steady-state" => Scenario {
            name: name.into(),
            description: "Ten minutes of steady mail flow; nothing fails.".into(),
            expect: Expect {
                failover: Some(false),
                ..Expect::default()
            },
            ..Scenario::default()
        },
        "active-node-crash" => Scenario {
            name: name.into(),
            description: "The active node's machine loses power two minutes in; the passive \
                          must take over inside 10-60 s, and the old node rejoins as passive."
                .into(),
            duration_s: 400,
            steps: vec![
                at(120, Fault::PowerLossActive),
                at(
                    240,
                    Fault::Restart {
                        node: NodeId::Node1,
                    },
                ),
            ],
            expect: Expect {
                failover: Some(true),
                ..Expect::default()
            },
            ..Scenario::default()
        },
        _ => return None,
    };
    scenario.source = name.to_string();
    Some(scenario)
}

pub const BUILTINS: &[&str] = &["steady-state", "active-node-crash"];
