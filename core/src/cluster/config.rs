//! The numbers a cluster runs by. Defaults are Exchange 2007's on Windows Server 2003 (the
//! seed's): the OS profile's heartbeats and resource restart policy, Exchange's mount dial,
//! dumpster limits, 1 MB logs, LLR depth 10; the lease numbers are ours and are derived so that
//! the safety argument in ARCHITECTURE.md holds. See docs/ccr-model.md.

use serde::{Deserialize, Serialize};

use crate::storage::{Signature, StorageConfig};

use super::NodeId;

/// `AutoDatabaseMountDial`: how many missing logs an automatic mount may accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountDial {
    Lossless,
    GoodAvailability,
    BestAvailability,
}

/// The Windows Server release the cluster runs on: it sets the heartbeats and the resource
/// restart policy (each can still be set on its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Os {
    /// A heartbeat every 1.2 s, down after 6 missed; 3 restarts of a failed resource in
    /// 15 minutes before its group fails over.
    #[default]
    #[serde(rename = "windows-2003")]
    Windows2003,
    /// A heartbeat every 1 s, down after 5 missed; 1 restart.
    #[serde(rename = "windows-2008")]
    Windows2008,
}

impl Os {
    /// (heartbeat interval ms, missed heartbeats before down, restarts allowed, in period ms).
    fn profile(self) -> (u64, u32, u32, u64) {
        match self {
            Os::Windows2003 => (1_200, 6, 3, 15 * 60_000),
            Os::Windows2008 => (1_000, 5, 1, 15 * 60_000),
        }
    }
}

/// Which cluster networks carry log copies: Exchange's setting, not Windows'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ReplicationNetworks {
    /// RTM: the public network only; with it down between the nodes, copying stops.
    #[serde(rename = "public")]
    Public,
    /// SP1 with replication host names on the private network: the public network, or the
    /// private one while the public one is down between the nodes.
    #[default]
    #[serde(rename = "public-and-private")]
    PublicAndPrivate,
}

/// The logs each dial setting accepts missing. Exchange 2007: 0, 3, 6 (2010 raised them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DialLimits {
    pub lossless: u32,
    pub good_availability: u32,
    pub best_availability: u32,
}

impl Default for DialLimits {
    fn default() -> Self {
        DialLimits {
            lossless: 0,
            good_availability: 3,
            best_availability: 6,
        }
    }
}

impl DialLimits {
    pub fn allowed(&self, dial: MountDial) -> u32 {
        match dial {
            MountDial::Lossless => self.lossless,
            MountDial::GoodAvailability => self.good_availability,
            MountDial::BestAvailability => self.best_availability,
        }
    }
}

/// Exchange 2007 Enterprise's limit of storage groups per server.
pub const MAX_STORAGE_GROUPS: u8 = 50;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// The clustered mailbox server's name.
    pub cms_name: String,
    /// The first storage group's log signature, shared by both copies (each further group's
    /// is derived from it: see [`ClusterConfig::group_signature`]).
    pub signature: Signature,
    /// Storage groups on the clustered mailbox server (`First Storage Group` = `E00`, …),
    /// each with its own log stream, copy, database and dumpster queue on every hub. The
    /// server moves between nodes as a whole; each group mounts on its own.
    pub storage_groups: u8,
    /// Who owns the clustered mailbox server when the cluster is first formed.
    pub initial_owner: NodeId,
    /// Hub transport servers in the site (`hub1`, `hub2`, …), each with its own dumpster:
    /// a mount asks every one of them to resubmit what it may have lost, and a hub that
    /// cannot be reached is asked again until it answers.
    pub hubs: u8,
    /// The Windows Server profile: heartbeats and restart policy unless set below.
    pub os: Os,
    /// Windows' SameSubnetDelay (the profile's when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval_ms: Option<u64>,
    /// Windows' SameSubnetThreshold: missed heartbeats (on every network) before a peer is
    /// down (the profile's when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_threshold: Option<u32>,
    /// The resource restart policy: a failed store is restarted in place up to this many
    /// times within `restart_period_ms`; one more failure fails the group over to the other
    /// node (the profile's when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_threshold: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_period_ms: Option<u64>,
    /// How long a peer's echo of our heartbeat lets us serve (the peer lease).
    pub peer_lease_ms: u64,
    /// How long a witness grant lets its holder count the witness's vote.
    pub witness_lease_ms: u64,
    /// The owner asks the witness for its vote this long before its peer lease runs out.
    pub witness_prefetch_ms: u64,
    /// A passive that finds the active down waits this long before arbitrating, so that in a
    /// split both nodes' race for the witness favours the current owner.
    pub passive_arbitration_delay_ms: u64,
    /// Largest clock rate error between any two machines, in parts per million.
    pub max_drift_ppm: u64,
    /// Extra wait added to every lease-based wait.
    pub lease_margin_ms: u64,
    /// How long a new owner tries to copy the lost node's remaining logs.
    pub lost_log_copy_timeout_ms: u64,
    /// Bringing the clustered mailbox server's resources online before the store mounts.
    pub online_delay_ms: u64,
    /// Which networks carry log copies (`public`, as RTM; `public-and-private`, as SP1 with
    /// `Enable-ContinuousReplicationHostName`).
    pub replication_networks: ReplicationNetworks,
    /// Move the server to the peer when the serving node's public network fails and the
    /// peer's works (the IP Address resource's failover). Off: it stays, and clients wait.
    pub public_network_failover: bool,
    /// After a log disk failure the store is restarted from what is on disk this long later
    /// (the cluster restarting the failed Information Store resource), and again while it
    /// keeps failing.
    pub store_restart_ms: u64,
    pub mount_dial: MountDial,
    pub dial_limits: DialLimits,
    /// `ForcedDatabaseMountAfter` (Set-MailboxServer): a database the mount dial keeps
    /// dismounted after a failover is mounted anyway, accepting the loss, once it has waited
    /// this long. Absent (Exchange's default): it waits for the logs or an administrator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forced_database_mount_after_ms: Option<u64>,
    /// A log copy request not answered in this time is retried.
    pub copy_timeout_ms: u64,
    /// Wait before retrying a failed copy (inspection rejected, disk full, source unreachable).
    pub copy_retry_ms: u64,
    /// Closed logs a passive asks its source for at once: the next one it needs and those
    /// after it that the source has closed. One is a request per round trip, which over a
    /// long round trip leaves most of a link's bandwidth unused.
    pub copy_window: u32,
    /// How long a scheduled move waits for the target to catch up before giving up.
    pub move_timeout_ms: u64,
    /// The database file is rewritten after this many newly completed generations.
    pub db_flush_every: u32,
    /// Idle log roll (SP1): an open log holding records is closed this long after its first
    /// record even though it is not full, so a quiet storage group still ships recent mail.
    /// Absent: 15 minutes ÷ `storage.llr_depth` (1.5 min at depth 10); 0: never (RTM).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_log_roll_ms: Option<u64>,
    pub storage: StorageConfig,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            cms_name: "E2K7CCR".into(),
            signature: Signature(0xE2C7_CC12_0000_0001),
            storage_groups: 1,
            initial_owner: NodeId::Node1,
            hubs: 2,
            os: Os::default(),
            heartbeat_interval_ms: None,
            heartbeat_threshold: None,
            restart_threshold: None,
            restart_period_ms: None,
            peer_lease_ms: 8_000,
            witness_lease_ms: 5_000,
            witness_prefetch_ms: 2_000,
            passive_arbitration_delay_ms: 2_000,
            max_drift_ppm: 10_000,
            lease_margin_ms: 200,
            lost_log_copy_timeout_ms: 5_000,
            online_delay_ms: 4_000,
            replication_networks: ReplicationNetworks::default(),
            public_network_failover: true,
            store_restart_ms: 10_000,
            mount_dial: MountDial::BestAvailability,
            dial_limits: DialLimits::default(),
            forced_database_mount_after_ms: None,
            copy_timeout_ms: 5_000,
            copy_retry_ms: 2_000,
            copy_window: 4,
            move_timeout_ms: 30_000,
            db_flush_every: 4,
            idle_log_roll_ms: None,
            storage: StorageConfig::default(),
        }
    }
}

impl ClusterConfig {
    pub fn heartbeat_interval_ms(&self) -> u64 {
        self.heartbeat_interval_ms.unwrap_or(self.os.profile().0)
    }

    pub fn heartbeat_threshold(&self) -> u32 {
        self.heartbeat_threshold.unwrap_or(self.os.profile().1)
    }

    /// (restarts allowed, within this many ms) before a failing store's group fails over.
    pub fn restart_policy(&self) -> (u32, u64) {
        let (_, _, threshold, period) = self.os.profile();
        (
            self.restart_threshold.unwrap_or(threshold),
            self.restart_period_ms.unwrap_or(period),
        )
    }

    /// Storage group `group`'s log signature: a log of one group is refused by another's
    /// inspector and recovery, as Exchange's are.
    pub fn group_signature(&self, group: u8) -> Signature {
        Signature(self.signature.0 ^ (u64::from(group) << 32))
    }

    /// How long an open log with records may stay open; `None`: until it is full.
    pub fn idle_log_roll(&self) -> Option<u64> {
        match self.idle_log_roll_ms {
            Some(0) => None,
            Some(ms) => Some(ms),
            None => Some(15 * 60_000 / u64::from(self.storage.llr_depth.max(1))),
        }
    }

    /// A peer is down after this long without a heartbeat on any network.
    pub fn peer_down_after_ms(&self) -> u64 {
        self.heartbeat_interval_ms() * u64::from(self.heartbeat_threshold())
    }

    /// A local duration `d` that is certain to cover at least `lease` on any other machine's
    /// clock: `lease · (1+ρ)/(1−ρ) + margin`, rounded up.
    pub fn outlast(&self, lease: u64) -> u64 {
        let ppm = self.max_drift_ppm.min(500_000);
        let num = u128::from(lease) * u128::from(1_000_000 + ppm);
        let den = u128::from(1_000_000 - ppm);
        (num.div_ceil(den)) as u64 + self.lease_margin_ms
    }

    /// After last hearing the old owner, a node waits this long before it may mount: by then
    /// every peer lease the old owner could hold from us has run out.
    pub fn takeover_guard_ms(&self) -> u64 {
        self.outlast(self.peer_lease_ms)
    }

    /// After winning the witness, a node waits this long before it may mount: by then any
    /// witness lease the other node held has run out, even if the witness forgot it.
    pub fn witness_guard_ms(&self) -> u64 {
        self.outlast(self.witness_lease_ms)
    }

    /// The shortest and the longest automatic failover this config allows, in ms, counted from
    /// the fault (which may come up to one heartbeat interval after the last heartbeat).
    ///
    /// Shortest: the old node's heartbeats stop, the survivor waits out detection and its
    /// arbitration delay, finds nothing to wait for (no lease of the old owner's outstanding,
    /// nothing to copy) and brings the resources online. Longest: it also waits out the
    /// witness guard, the takeover guard or the lost-log copy, whichever ends last, and its
    /// store replays a healthy passive's largest backlog (a copy window of logs) as it mounts.
    pub fn failover_bounds_ms(&self) -> (u64, u64) {
        let detect = self.peer_down_after_ms();
        let arbitrate = detect + self.passive_arbitration_delay_ms;
        let may_mount = (arbitrate + self.witness_guard_ms())
            .max(self.takeover_guard_ms())
            .max(arbitrate + self.lost_log_copy_timeout_ms);
        let shortest =
            (arbitrate + self.online_delay_ms).saturating_sub(self.heartbeat_interval_ms());
        // A healthy passive has at most a copy window of logs it has not replayed.
        let replay = u64::from(self.copy_window) * self.storage.replay_ms_per_log;
        (shortest, may_mount + self.online_delay_ms + replay)
    }

    /// Checks the relations the safety and liveness arguments need; a config that breaks them
    /// is refused with the field at fault.
    pub fn validate(&self) -> Result<(), String> {
        let fail = |field: &str, why: &str| Err(format!("{field}: {why}"));
        if !(1..=8).contains(&self.hubs) {
            return fail("hubs", "must be between 1 and 8");
        }
        if !(1..=MAX_STORAGE_GROUPS).contains(&self.storage_groups) {
            return fail("storage_groups", "must be between 1 and 50");
        }
        if self.heartbeat_interval_ms() == 0 {
            return fail("heartbeat_interval_ms", "must be positive");
        }
        if self.heartbeat_threshold() == 0 {
            return fail("heartbeat_threshold", "must be at least 1");
        }
        if self.restart_policy().1 == 0 {
            return fail("restart_period_ms", "must be positive");
        }
        if self.max_drift_ppm >= 100_000 {
            return fail("max_drift_ppm", "must be below 100000 (10%)");
        }
        if self.peer_lease_ms <= self.witness_prefetch_ms + self.heartbeat_interval_ms() {
            return fail(
                "peer_lease_ms",
                "must exceed witness_prefetch_ms + heartbeat_interval_ms, or the owner \
                 loses its lease between two heartbeats",
            );
        }
        if self.witness_lease_ms <= self.heartbeat_interval_ms() {
            return fail(
                "witness_lease_ms",
                "must exceed heartbeat_interval_ms (renewals come once per interval)",
            );
        }
        if self.storage.log_size == 0 {
            return fail("storage.log_size", "must be positive");
        }
        if self.db_flush_every == 0 {
            return fail("db_flush_every", "must be at least 1");
        }
        if !(1..=64).contains(&self.copy_window) {
            return fail("copy_window", "must be from 1 to 64 logs");
        }
        if self.storage.llr_depth == 0 {
            return fail("storage.llr_depth", "must be at least 1");
        }
        let l = self.dial_limits;
        if l.lossless > l.good_availability || l.good_availability > l.best_availability {
            return fail(
                "dial_limits",
                "must grow from lossless to good_availability to best_availability",
            );
        }
        let (shortest, _) = self.failover_bounds_ms();
        if shortest < 10_000 {
            return Err(format!(
                "online_delay_ms: the shortest possible failover (detection {} ms + \
                 passive_arbitration_delay_ms {} + online_delay_ms {} − one heartbeat interval) \
                 is {shortest} ms, under the 10 s a CCR failover takes at least",
                self.peer_down_after_ms(),
                self.passive_arbitration_delay_ms,
                self.online_delay_ms
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_put_a_crash_failover_inside_10_to_60_seconds() {
        let c = ClusterConfig::default();
        c.validate().unwrap();
        // The arithmetic of ARCHITECTURE.md, "Failover timing": the last heartbeat from the
        // crashed active arrives at 0; it crashed within one interval after that.
        let detect = c.peer_down_after_ms();
        let arbitrate = detect + c.passive_arbitration_delay_ms;
        let may_mount = (arbitrate + c.witness_guard_ms())
            .max(c.takeover_guard_ms())
            .max(arbitrate + c.lost_log_copy_timeout_ms);
        let replay = u64::from(c.copy_window) * c.storage.replay_ms_per_log;
        let mounted = may_mount + c.online_delay_ms + replay;
        assert!(mounted <= 60_000, "failover too slow: {mounted} ms");
        // Windows Server 2003's heartbeats: 1.2 s × 6.
        assert_eq!((detect, arbitrate, mounted), (7_200, 9_200, 18_902));
        // The shortest path: the old node returns at once and agrees (no lease waits, nothing
        // to copy). It must still not beat the article's 10 s, counted from a fault that may
        // come up to one heartbeat interval after the last heartbeat.
        assert_eq!(c.failover_bounds_ms(), (12_000, 18_902));
        // Windows Server 2008's: 1 s × 5.
        let c = ClusterConfig {
            os: Os::Windows2008,
            ..ClusterConfig::default()
        };
        c.validate().unwrap();
        assert_eq!(c.peer_down_after_ms(), 5_000);
        assert_eq!(c.failover_bounds_ms(), (10_000, 16_702));
    }

    #[test]
    fn the_os_profile_sets_heartbeats_and_restart_policy_unless_set_on_their_own() {
        let c: ClusterConfig = serde_json::from_str(r#"{"os": "windows-2008"}"#).unwrap();
        assert_eq!(
            (
                c.heartbeat_interval_ms(),
                c.heartbeat_threshold(),
                c.restart_policy()
            ),
            (1_000, 5, (1, 900_000))
        );
        let c: ClusterConfig =
            serde_json::from_str(r#"{"heartbeat_threshold": 8, "restart_threshold": 0}"#).unwrap();
        assert_eq!(c.os, Os::Windows2003);
        assert_eq!(
            (
                c.heartbeat_interval_ms(),
                c.heartbeat_threshold(),
                c.restart_policy()
            ),
            (1_200, 8, (0, 900_000))
        );
        let e = serde_json::from_str::<ClusterConfig>(r#"{"os": "windows-2012"}"#).unwrap_err();
        assert!(e.to_string().contains("windows-2003"), "{e}");
    }

    #[test]
    fn a_config_that_could_fail_over_in_under_10_seconds_is_refused() {
        let c = ClusterConfig {
            online_delay_ms: 1_999,
            ..ClusterConfig::default()
        };
        let e = c.validate().unwrap_err();
        assert!(
            e.starts_with("online_delay_ms") && e.contains("9999 ms"),
            "{e}"
        );
        let c = ClusterConfig {
            heartbeat_threshold: Some(3),
            ..ClusterConfig::default()
        };
        assert!(c.validate().is_err());
    }

    #[test]
    fn dial_limits_must_grow_with_the_dial() {
        let mut c = ClusterConfig::default();
        c.dial_limits.good_availability = 7;
        assert!(c.validate().unwrap_err().starts_with("dial_limits"));
    }

    #[test]
    fn outlast_covers_drift() {
        let c = ClusterConfig::default();
        // 8 s at +1% on one clock and -1% on the other: 8 * 1.01 / 0.99 = 8.1616 s, plus margin.
        assert_eq!(c.outlast(8_000), 8_162 + 200);
    }

    #[test]
    fn broken_relations_are_refused_by_field() {
        let c = ClusterConfig {
            peer_lease_ms: 2_500,
            ..ClusterConfig::default()
        };
        assert!(c.validate().unwrap_err().starts_with("peer_lease_ms"));
    }
}
