//! What the admin cmdlets show: `Get-ClusteredMailboxServerStatus` and
//! `Get-StorageGroupCopyStatus`, in their words.

use serde::{Deserialize, Serialize};

use crate::storage::Generation;

use super::NodeId;

/// The clustered mailbox server's state as `Get-ClusteredMailboxServerStatus` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CmsState {
    Online,
    Offline,
    PartiallyOnline,
    /// Its resources are being brought online: a takeover draining the lost node's share or
    /// waiting for the store to mount.
    OnlinePending,
    /// Its resources are being taken offline: the source of a scheduled move, store
    /// dismounted, handing over.
    OfflinePending,
    Failed,
}

impl std::fmt::Display for CmsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CmsState::Online => "Online",
            CmsState::Offline => "Offline",
            CmsState::PartiallyOnline => "Partially Online",
            CmsState::OnlinePending => "Online Pending",
            CmsState::OfflinePending => "Offline Pending",
            CmsState::Failed => "Failed",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationalMachine {
    pub node: NodeId,
    pub active: bool,
    pub quorum_owner: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CmsStatus {
    pub identity: String,
    pub state: CmsState,
    pub operational_machines: Vec<OperationalMachine>,
    /// Why the state is not Online, when there is a reason worth telling.
    pub reason: Option<String>,
    pub last_move_comment: Option<String>,
}

impl std::fmt::Display for CmsStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "Identity             : {}", self.identity)?;
        writeln!(f, "State                : {}", self.state)?;
        let machines: Vec<String> = self
            .operational_machines
            .iter()
            .map(|m| {
                let mut s = m.node.to_string();
                if m.active {
                    s.push_str(" <Active>");
                }
                if m.quorum_owner {
                    s.push_str(" <Quorum Owner>");
                }
                s
            })
            .collect();
        writeln!(f, "OperationalMachines  : {{{}}}", machines.join(", "))?;
        if let Some(reason) = &self.reason {
            writeln!(f, "Reason               : {reason}")?;
        }
        if let Some(comment) = &self.last_move_comment {
            writeln!(f, "LastMoveComment      : {comment}")?;
        }
        Ok(())
    }
}

/// `SummaryCopyStatus` of a storage group copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SummaryCopyStatus {
    Healthy,
    Initializing,
    Failed,
    Suspended,
    Seeding,
    Disabled,
    /// (SP1) The copy's replication service does not answer: its node is not heard from.
    ServiceDown,
    /// (SP1) The passive hears the owner and is comparing its logs with the owner's stream
    /// (divergence) before it copies: after a failover, a move or a restart.
    Resynchronizing,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyStatus {
    pub node: NodeId,
    pub summary: SummaryCopyStatus,
    pub copy_queue_length: u32,
    pub replay_queue_length: u32,
    pub last_inspected_generation: Generation,
    pub last_replayed_generation: Generation,
    /// Creation time (source's wall clock, ms) of the last inspected / replayed log.
    pub last_inspected_log_time: Option<u64>,
    pub last_replayed_log_time: Option<u64>,
    pub failed_message: Option<String>,
    /// `-SuspendComment` of a suspended copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend_comment: Option<String>,
}

impl std::fmt::Display for CopyStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "Identity             : {}", self.node)?;
        writeln!(f, "SummaryCopyStatus    : {:?}", self.summary)?;
        writeln!(f, "CopyQueueLength      : {}", self.copy_queue_length)?;
        writeln!(f, "ReplayQueueLength    : {}", self.replay_queue_length)?;
        writeln!(
            f,
            "LastInspectedLog     : {:#x}",
            self.last_inspected_generation
        )?;
        writeln!(
            f,
            "LastReplayedLog      : {:#x}",
            self.last_replayed_generation
        )?;
        let time = |ms: Option<u64>| {
            ms.map_or("-".to_string(), |ms| {
                humantime::format_rfc3339_millis(
                    std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms),
                )
                .to_string()
            })
        };
        writeln!(
            f,
            "LastInspectedLogTime : {}",
            time(self.last_inspected_log_time)
        )?;
        writeln!(
            f,
            "LastReplayedLogTime  : {}",
            time(self.last_replayed_log_time)
        )?;
        if let Some(m) = &self.failed_message {
            writeln!(f, "FailedMessage        : {m}")?;
        }
        if let Some(c) = &self.suspend_comment {
            writeln!(f, "SuspendComment       : {c}")?;
        }
        Ok(())
    }
}
