//! The CCR cluster: two mailbox nodes, the file share witness and the hub transport, as sans-IO
//! state machines.
//!
//! Every machine is driven the same way, in the style of quinn-proto: the host feeds inputs
//! (`handle`, with the machine's clock reading), wakes it at `poll_timeout`, and carries out what
//! `poll_action` returns (send a message, run disk writes, report an event). Nothing here reads a
//! clock, draws a random number or touches a socket.
//!
//! The safety argument (why two nodes are never both mounted) is in ARCHITECTURE.md; the
//! numbers behind it are in [`config::ClusterConfig`].

pub mod boot;
pub mod config;
pub mod dial;
pub mod divergence;
pub mod health;
pub mod hub;
pub mod node;
pub mod share;
pub mod status;
pub mod wire;
pub mod witness;

use serde::{Deserialize, Serialize};

/// One of the two mailbox nodes (`E2K7Node1`, `E2K7Node2` in the article).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeId {
    Node1,
    Node2,
}

impl NodeId {
    pub const ALL: [NodeId; 2] = [NodeId::Node1, NodeId::Node2];

    pub fn peer(self) -> NodeId {
        match self {
            NodeId::Node1 => NodeId::Node2,
            NodeId::Node2 => NodeId::Node1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            NodeId::Node1 => "node1",
            NodeId::Node2 => "node2",
        }
    }

    pub fn index(self) -> usize {
        match self {
            NodeId::Node1 => 0,
            NodeId::Node2 => 1,
        }
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The two cluster networks. Heartbeats go over both; clients, the hub and log copying use the
/// public one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Net {
    Public,
    Private,
}

impl Net {
    pub const ALL: [Net; 2] = [Net::Public, Net::Private];

    pub fn index(self) -> usize {
        match self {
            Net::Public => 0,
            Net::Private => 1,
        }
    }
}

/// Who a message is for, or from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Endpoint {
    /// A node's cluster, replication and store services.
    Node(NodeId),
    /// A node machine's log share: a file server that outlives the node's services.
    Share(NodeId),
    /// The file share witness (on the first hub's machine, as in the article, unless the
    /// topology gives it a machine of its own).
    Witness,
    /// A hub transport server: each keeps its own queue and transport dumpster.
    Hub(HubId),
}

/// One of the site's hub transport servers, numbered from 1 (`hub1` hosts the witness share
/// unless it has a machine of its own). Exchange keeps a transport dumpster on every hub, and
/// after a lossy mount the store asks each of them to resubmit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HubId(pub u8);

impl HubId {
    pub const FIRST: HubId = HubId(1);

    /// The hubs of a site with `count` of them, in order.
    pub fn all(count: u8) -> impl Iterator<Item = HubId> {
        (1..=count.max(1)).map(HubId)
    }
}

impl Default for HubId {
    fn default() -> HubId {
        HubId::FIRST
    }
}

impl std::fmt::Display for HubId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "hub{}", self.0)
    }
}

/// A machine's clock reading, in milliseconds. `mono` never jumps and drives every timeout and
/// lease; `wall` is what logs and status show and may be skewed or jump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Now {
    pub mono: u64,
    pub wall: u64,
}

impl Now {
    pub fn at(ms: u64) -> Now {
        Now { mono: ms, wall: ms }
    }
}
