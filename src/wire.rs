//! What travels between the processes of a real cluster, inside authenticated frames.

use ccr_core::cluster::health::ReplicationHealth;
use ccr_core::cluster::status::{CmsStatus, CopyStatus};
use ccr_core::cluster::wire::Msg;
use ccr_core::cluster::{Endpoint, Net, NodeId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Wire {
    /// A cluster message between two endpoints (node, log share, witness, hub).
    Cluster {
        from: Endpoint,
        to: Endpoint,
        net: Net,
        msg: Msg,
    },
    /// Client → hub: a message to deliver, with its body (at most `size` bytes).
    Submit {
        id: u64,
        size: u32,
        #[serde(default, with = "ccr_core::cluster::wire::base64_bytes")]
        body: Vec<u8>,
    },
    /// Hub → client: the message is durable in the active store.
    Acked {
        id: u64,
    },
    Admin(AdminRequest),
    AdminReply(AdminReply),
}

impl crate::frame::Framed for Wire {
    fn without_bulk(&self) -> Option<(Wire, &[u8])> {
        match self {
            Wire::Cluster { from, to, net, msg } => {
                let (msg, bytes) = msg.without_bulk()?;
                Some((
                    Wire::Cluster {
                        from: *from,
                        to: *to,
                        net: *net,
                        msg,
                    },
                    bytes,
                ))
            }
            Wire::Submit { id, size, body } => Some((
                Wire::Submit {
                    id: *id,
                    size: *size,
                    body: Vec::new(),
                },
                body,
            )),
            _ => None,
        }
    }

    fn bulk_mut(&mut self) -> Option<&mut Vec<u8>> {
        match self {
            Wire::Cluster { msg, .. } => msg.bulk_mut(),
            Wire::Submit { body, .. } => Some(body),
            _ => None,
        }
    }
}

impl crate::frame::Framed for AdminRequest {}
impl crate::frame::Framed for AdminReply {}

/// Admin commands, named after the cmdlets they mirror.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AdminRequest {
    /// `Get-ClusteredMailboxServerStatus`
    Status,
    /// `Get-StorageGroupCopyStatus`
    CopyStatus,
    /// `Move-ClusteredMailboxServer`
    Move {
        target: NodeId,
        comment: String,
    },
    /// `Suspend-StorageGroupCopy -SuspendComment …`
    SuspendCopy {
        #[serde(default)]
        comment: Option<String>,
    },
    ResumeCopy,
    /// `Update-StorageGroupCopy`
    UpdateCopy,
    /// `Restore-StorageGroupCopy`
    RestoreCopy,
    /// `Mount-Database`
    MountDatabase,
    /// `Stop-ClusteredMailboxServer -StopReason …`
    StopCms {
        reason: String,
    },
    /// `Start-ClusteredMailboxServer`
    StartCms,
    /// A backup of this node's copy (full unless `incremental`); logs are truncated after it.
    Backup {
        #[serde(default)]
        incremental: bool,
    },
    /// `Test-ReplicationHealth`
    TestReplicationHealth,
    /// Which of these message ids this node's database does not hold (for verification).
    Missing {
        ids: Vec<u64>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum AdminReply {
    Status {
        node: NodeId,
        serving: bool,
        status: CmsStatus,
    },
    CopyStatus(CopyStatus),
    ReplicationHealth(ReplicationHealth),
    Accepted,
    Missing {
        ids: Vec<u64>,
    },
    Refused(String),
}
