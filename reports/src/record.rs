//! The record of one simulation run: what `ccr-sim run --json` prints one line of, what
//! `runs.json` holds, and what every report is drawn from. The simulator fills it in; this crate
//! only reads it, so reports can be rebuilt from a saved `runs.json`.

use serde::{Deserialize, Serialize};

/// The situations a coverage table always lists, even when no run reached them (a row at 0
/// is the news). Runs may report others too (a fault kind while a role held it).
pub const SITUATIONS: &[&str] = &[
    "power loss inside disk work",
    "power loss undid a sync in flight",
    "power loss tore an unsynced write",
    "power loss dropped unsynced bytes",
    "torn open-log tail cut at boot",
    "damaged copy found at boot",
    "lossy mount",
    "mount short of what the wire had told (dial blind spot)",
    "mount reported more logs lost than the disks show",
    "scheduled move",
    "move refused",
    "dial kept a database dismounted",
    "redelivery requested after a mount",
    "loss excused by the dumpster's limits",
    "diverged logs rolled back",
    "copy asked for a reseed",
    "witness denied a node",
    "one-way isolation of the active",
    "failed store restarted in place",
    "group failed over past the restart policy",
    "store restarted in place past the policy's threshold",
    "idle roll deadline judged on a serving node",
    "passive asked the witness for a takeover",
    "clustered mailbox server stopped by an administrator",
    "stopped server's node lost while stopped",
    "full backup taken",
    "incremental backup taken",
    "logs truncated after a backup",
    "disk full: a write refused",
    "log copied across the WAN",
    "heartbeat queued 100 ms or more behind other traffic",
    "stored message bodies compared with the client's",
    "run ended stuck",
];

/// The invariants of DESIGN.md, by the names `--json` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Invariant {
    NoAcknowledgedLoss,
    SingleActive,
    FailoverWindow,
    ReplicationSound,
    MountDial,
    Liveness,
    /// A scheduled move needed no redelivery and no rollback: it lost nothing by itself.
    MoveLossless,
    /// Acknowledged mail the mailbox holds more than once (read from the serving node's
    /// logs) beyond what the scenario allows (`duplicates_max`, 0 by default).
    Duplicates,
    /// What a node reported (logs lost at a mount, copy state and queues, who serves) agrees
    /// with what the simulated world recorded.
    ReportsTruthful,
    /// Once an administrator's Stop-ClusteredMailboxServer returned, no node acknowledges
    /// mail or announces a mount until the server is started again (restarts and failovers
    /// included).
    StoppedStaysStopped,
    /// A node truncating its logs after a backup deletes only what the other copy still
    /// holds, as a log or in its database file (read from both disks).
    TruncationSafe,
    /// Windows' resource restart policy: a store failing while its node owns the server is
    /// restarted in place up to the threshold within the period, and one failure more fails
    /// the group over when the other node could take it — no more restarts, no earlier
    /// failover (judged from the restarts the world carried out and the heartbeats on the wire).
    RestartPolicy,
    /// Acknowledged mail waits in the serving node's open log no longer than the idle log
    /// roll (and a slack): its generation is closed by then (judged from the disks).
    IdleLogRoll,
    /// A passive asks the witness to take the server over only once its peer has been
    /// silent for the detection time and the arbitration delay (judged from the heartbeats
    /// on the wire), unless an administrator's restore or a damaged owner says otherwise.
    TakeoverTiming,
    /// Not an invariant: the run went past its budget of simulated events or wall time.
    Stuck,
    /// Not an invariant: something the scenario said would happen did not.
    Expectation,
    /// Not an invariant of the model, a weakness of Exchange's: time-window redelivery missed
    /// acknowledged mail because a hub's wall clock disagreed with the writer's. Its own
    /// outcome, with the skew, unless the scenario expects it.
    LostToClockSkew,
}

impl Invariant {
    pub fn name(self) -> &'static str {
        match self {
            Invariant::NoAcknowledgedLoss => "no-acknowledged-loss",
            Invariant::SingleActive => "single-active",
            Invariant::FailoverWindow => "failover-window",
            Invariant::ReplicationSound => "replication-sound",
            Invariant::MountDial => "mount-dial",
            Invariant::Liveness => "liveness",
            Invariant::MoveLossless => "move-lossless",
            Invariant::Duplicates => "duplicates",
            Invariant::ReportsTruthful => "reports-truthful",
            Invariant::StoppedStaysStopped => "stopped-stays-stopped",
            Invariant::TruncationSafe => "truncation-safe",
            Invariant::RestartPolicy => "restart-policy",
            Invariant::IdleLogRoll => "idle-log-roll",
            Invariant::TakeoverTiming => "takeover-timing",
            Invariant::Stuck => "stuck",
            Invariant::Expectation => "expectation",
            Invariant::LostToClockSkew => "lost-to-clock-skew",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    pub invariant: Invariant,
    pub at_s: f64,
    pub message: String,
    /// The trace lines that led up to it, oldest first.
    pub last_events: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failover {
    pub duration_s: f64,
}

/// A node mounted the database (its virtual time, and how many log generations it gave up).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mount {
    pub at_s: f64,
    pub node: String,
    pub lost: u32,
}

/// One machine at one sampling instant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineSample {
    /// For a node: `active`, `onlining`, `draining`, `moving`, `blocked`, `offline`,
    /// `passive`, `paused` or `down`; for a hub: `hub up` or `hub down`; for the witness:
    /// `witness up` or `witness down`; for the clients: `served` or `outage`.
    pub state: String,
    /// The faults acting on the machine right now (empty when it is healthy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<String>,
    /// The node's copy and replay queue lengths (log generations) when it is the passive.
    #[serde(default)]
    pub copy_queue: u32,
    #[serde(default)]
    pub replay_queue: u32,
}

/// The cluster at one instant of virtual time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub t_s: f64,
    /// node1, node2, each hub, the witness, the clients — in the order of
    /// `Timeline::machines`.
    pub machines: Vec<MachineSample>,
    /// Which node the witness lock names, if any.
    pub witness_owner: Option<String>,
    /// Which node serves clients, if any (none: clients see an outage).
    pub serving: Option<String>,
    /// Messages acknowledged to clients so far.
    pub acked: u64,
    /// Link faults (loss, duplication, delay) on the networks right now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_faults: Vec<String>,
}

/// A step of the scenario as it was carried out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    pub t_s: f64,
    pub label: String,
}

/// From the moment the active was taken away to the moment another node mounted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub from_s: f64,
    pub to_s: f64,
}

/// The run over time, sampled once per simulated second.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    pub machines: Vec<String>,
    pub samples: Vec<Sample>,
    pub steps: Vec<Mark>,
    pub failover_windows: Vec<Window>,
    /// When the faults stopped and the liveness phase began.
    pub liveness_from_s: Option<f64>,
}

impl Timeline {
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty() && self.steps.is_empty()
    }
}

/// The record of one run; with `--json`, one line of it per run (a stable contract; the
/// timeline is left out of those lines and kept in `runs.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub scenario: String,
    /// The scenario's own description, as its file says it (shown under its heading).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Where the scenario came from: a built-in's name or a file path (for repro commands).
    #[serde(default)]
    pub source: String,
    pub seed: u64,
    /// `"pass"` or the violated invariant's name.
    pub outcome: String,
    pub trace_hash: String,
    pub sim_seconds: f64,
    pub wall_ms: u64,
    pub failovers: Vec<Failover>,
    pub acked: usize,
    pub lost: usize,
    /// Acknowledged messages lost only because the transport dumpster had let go of them
    /// (too many or too old) before the failover that lost them: what CCR does not promise.
    /// Not counted in `lost`, not a violation.
    #[serde(default)]
    pub lost_beyond_dumpster: usize,
    /// Acknowledged messages the mailbox holds more than once (from the serving node's logs):
    /// what users would see twice.
    pub duplicated: usize,
    /// Messages the hub sent again after a store had confirmed them (seen on the wire); the
    /// store drops those it holds already.
    #[serde(default)]
    pub resubmitted: u64,
    /// Acknowledged messages lost because time-window redelivery judged by a skewed clock
    /// (the scenario expected it; otherwise the run's outcome is `lost-to-clock-skew`).
    #[serde(default)]
    pub lost_to_clock_skew: usize,
    pub violation: Option<Violation>,
    /// Every mount, in order.
    pub mounts: Vec<Mount>,
    /// How the cluster ended: who serves, and the passive copy's status.
    pub final_state: String,
    /// What the seed expanded to (as VOPR prints it): the generator and its version for a
    /// swarm seed, when each node's services started, where the jitter put each step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settings: Vec<String>,
    /// Which situations the run reached, and how often, counted from what the simulated
    /// world recorded (see [`SITUATIONS`]).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub coverage: std::collections::BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Timeline::is_empty")]
    pub timeline: Timeline,
    #[serde(skip)]
    pub trace: Option<Vec<String>>,
}

impl RunRecord {
    pub fn passed(&self) -> bool {
        self.violation.is_none()
    }

    /// The command that replays this run with its full trace.
    pub fn repro(&self) -> String {
        let source = if self.source.is_empty() {
            &self.scenario
        } else {
            &self.source
        };
        format!(
            "cargo xtask sim run {source} --seed {} --trace trace.txt",
            self.seed
        )
    }

    /// A stable, readable summary of what happened (for snapshots and people).
    pub fn summary(&self) -> String {
        let mut out = format!(
            "scenario {} seed {}: {}\n",
            self.scenario, self.seed, self.outcome
        );
        for m in &self.mounts {
            out.push_str(&format!(
                "  mounted on {} at {:.1}s, {} log(s) lost\n",
                m.node, m.at_s, m.lost
            ));
        }
        let failovers: Vec<String> = self
            .failovers
            .iter()
            .map(|f| format!("{:.1}s", f.duration_s))
            .collect();
        out.push_str(&format!("  failovers: [{}]\n", failovers.join(", ")));
        out.push_str(&format!(
            "  acknowledged {}, lost {}, duplicated {}, resubmitted {}\n",
            self.acked, self.lost, self.duplicated, self.resubmitted
        ));
        if self.lost_to_clock_skew > 0 {
            out.push_str(&format!(
                "  lost to clock skew (time-window redelivery): {}\n",
                self.lost_to_clock_skew
            ));
        }
        if self.lost_beyond_dumpster > 0 {
            out.push_str(&format!(
                "  lost beyond the dumpster's limits: {}\n",
                self.lost_beyond_dumpster
            ));
        }
        out.push_str(&format!("  end: {}\n", self.final_state));
        out
    }

    /// The same record without its timeline: one `--json` line.
    pub fn json_line(&self) -> String {
        let mut short = self.clone();
        short.timeline = Timeline::default();
        serde_json::to_string(&short).expect("a run record serialises")
    }
}
