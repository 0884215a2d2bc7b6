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
    /// Each message takes a delay drawn evenly from this range...
    pub min_delay_ms: u64,
    pub max_delay_ms: u64,
    /// ...and, with this probability (0..1), a heavy-tailed extra on top (a retransmission,
    /// a switch's buffer, a stalled interrupt): Pareto-distributed with its scale at ten
    /// times `max_delay_ms`, cut at `tail_max_ms`.
    pub tail: f64,
    pub tail_max_ms: u64,
    /// Datagram loss and duplication rates (0..1).
    pub loss: f64,
    pub duplicate: f64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            min_delay_ms: 1,
            max_delay_ms: 5,
            tail: 0.02,
            tail_max_ms: 200,
            loss: 0.0,
            duplicate: 0.0,
        }
    }
}

impl LinkConfig {
    /// One message's delay, in ms, from three uniform draws in [0, 1): where in the even
    /// range it falls, whether it takes the tail, and where in the tail.
    pub fn delay_ms(&self, even: f64, roll: f64, tail_u: f64) -> u64 {
        let (lo, hi) = (self.min_delay_ms, self.max_delay_ms.max(self.min_delay_ms));
        let base = lo + ((hi - lo + 1) as f64 * even) as u64;
        let base = base.min(hi);
        if roll < self.tail.clamp(0.0, 1.0) {
            base + pareto_ms(1.0 - tail_u, 10 * hi.max(1), self.tail_max_ms)
        } else {
            base
        }
    }

    /// The longest delay a message can take.
    pub fn worst_ms(&self) -> u64 {
        self.max_delay_ms.max(self.min_delay_ms)
            + if self.tail > 0.0 { self.tail_max_ms } else { 0 }
    }
}

/// A heavy-tailed extra: Pareto with shape 1.5 and `scale_ms`, less the scale (so it starts
/// at 0), cut at `cap_ms`. `u` is uniform in (0, 1].
pub fn pareto_ms(u: f64, scale_ms: u64, cap_ms: u64) -> u64 {
    let u = u.clamp(1e-12, 1.0);
    let extra = scale_ms as f64 * (u.powf(-1.0 / 1.5) - 1.0);
    (extra.min(cap_ms as f64)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn link_delays_have_a_heavy_tail_within_their_bound() {
        let link = LinkConfig::default();
        let mut r = rand::rngs::StdRng::seed_from_u64(1);
        let delays: Vec<u64> = (0..100_000)
            .map(|_| link.delay_ms(r.random(), r.random(), r.random()))
            .collect();
        let over = |ms: u64| delays.iter().filter(|&&d| d > ms).count();
        assert!(delays.iter().all(|&d| d >= 1 && d <= link.worst_ms()));
        // Most messages stay in the even range; about one in fifty takes the tail, and some of
        // those go far out.
        assert!((1_000..3_000).contains(&over(5)), "{}", over(5));
        assert!(over(100) > 100 && over(100) < 1_000, "{}", over(100));
        assert!(over(199) > 0);
        let no_tail = LinkConfig { tail: 0.0, ..link };
        assert_eq!(no_tail.worst_ms(), 5);
        assert_eq!(no_tail.delay_ms(0.999, 0.0, 0.999), 5);
    }
}
