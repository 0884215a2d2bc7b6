//! The simulated topology's names: machines and per-network link settings. Plain data, used
//! by scenarios and by the simulated network.

use ccr_core::cluster::{Endpoint, NodeId};
use serde::{Deserialize, Serialize};

/// A machine, as the network sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Machine {
    Node1,
    Node2,
    /// The hub transport server, which also hosts the witness share.
    Hub,
    /// The clients (Outlook users), on the public network, talking to the hub.
    Client,
}

impl Machine {
    pub fn of(e: Endpoint) -> Machine {
        match e {
            Endpoint::Node(n) | Endpoint::Share(n) => Machine::node(n),
            Endpoint::Witness | Endpoint::Hub => Machine::Hub,
        }
    }

    pub fn node(n: NodeId) -> Machine {
        match n {
            NodeId::Node1 => Machine::Node1,
            NodeId::Node2 => Machine::Node2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Machine::Node1 => "node1",
            Machine::Node2 => "node2",
            Machine::Hub => "hub",
            Machine::Client => "client",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinkConfig {
    pub min_delay_ms: u64,
    pub max_delay_ms: u64,
    /// Datagram loss and duplication rates (0..1).
    pub loss: f64,
    pub duplicate: f64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            min_delay_ms: 1,
            max_delay_ms: 5,
            loss: 0.0,
            duplicate: 0.0,
        }
    }
}
