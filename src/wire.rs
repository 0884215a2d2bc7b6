//! What travels between the processes of a real cluster, inside authenticated frames.

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
    SuspendCopy,
    ResumeCopy,
    /// `Update-StorageGroupCopy`
    UpdateCopy,
    /// `Restore-StorageGroupCopy`
    RestoreCopy,
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
    Accepted,
    Missing {
        ids: Vec<u64>,
    },
    Refused(String),
}
