//! The simulated topology's names: machines and per-network link settings. Plain data, used
//! by scenarios and by the simulated network.

use ccr_core::cluster::{Endpoint, HubId, NodeId};
use serde::{Deserialize, Serialize};

/// A machine, as the network sees it. In files: `node1`, `node2`, `hub1`, `hub2`, … (`hub`
/// is `hub1`), `witness` (a machine of its own, when the topology gives the witness one) and
/// `client`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Machine {
    Node1,
    Node2,
    /// A hub transport server; `hub1` also hosts the witness share unless the witness has
    /// a machine of its own.
    Hub(HubId),
    /// The witness share's own machine (`witness = "own"`).
    Witness,
    /// The clients (Outlook users), on the public network, handing mail to the hubs.
    Client,
}

/// Where the file share witness lives: on the first hub (the article's layout) or on a
/// machine of its own, so that losing that hub does not cost the witness too.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WitnessHost {
    #[default]
    Hub1,
    Own,
}

impl WitnessHost {
    pub fn machine(self) -> Machine {
        match self {
            WitnessHost::Hub1 => Machine::Hub(HubId::FIRST),
            WitnessHost::Own => Machine::Witness,
        }
    }
}

impl Machine {
    /// The machine an endpoint runs on, the witness being on `witness`.
    pub fn of(e: Endpoint, witness: Machine) -> Machine {
        match e {
            Endpoint::Node(n) | Endpoint::Share(n) => Machine::node(n),
            Endpoint::Witness => witness,
            Endpoint::Hub(h) => Machine::Hub(h),
        }
    }

    pub fn node(n: NodeId) -> Machine {
        match n {
            NodeId::Node1 => Machine::Node1,
            NodeId::Node2 => Machine::Node2,
        }
    }

    pub fn name(self) -> String {
        match self {
            Machine::Node1 => "node1".into(),
            Machine::Node2 => "node2".into(),
            Machine::Hub(h) => h.to_string(),
            Machine::Witness => "witness".into(),
            Machine::Client => "client".into(),
        }
    }
}

impl From<Machine> for String {
    fn from(m: Machine) -> String {
        m.name()
    }
}

impl TryFrom<String> for Machine {
    type Error = String;

    fn try_from(s: String) -> Result<Machine, String> {
        Ok(match s.as_str() {
            "node1" => Machine::Node1,
            "node2" => Machine::Node2,
            "hub" => Machine::Hub(HubId::FIRST),
            "witness" => Machine::Witness,
            "client" => Machine::Client,
            _ => match s.strip_prefix("hub").and_then(|n| n.parse::<u8>().ok()) {
                Some(n @ 1..=8) => Machine::Hub(HubId(n)),
                _ => {
                    return Err(format!(
                        "unknown machine {s:?}: expected node1, node2, hub1 … hub8 (hub is hub1), witness or client"
                    ))
                }
            },
        })
    }
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
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
    /// Each direction of each machine pair sends through one first-in-first-out queue at this
    /// rate (megabits per second; 0: unlimited), heartbeats and log copies alike, as on a real
    /// NIC or WAN circuit: a message leaves when the ones before it have, taking its size over
    /// the bandwidth, and then travels the delay above.
    pub bandwidth_mbit: f64,
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
            bandwidth_mbit: 0.0,
        }
    }
}

/// A second site. The machines in `remote` sit there (the clients sit with the hub), and
/// every message between the two sites crosses `link` instead of the local network's link — a stretched subnet, whose
/// copy queue is what administrators of a two-site CCR cluster watch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wan {
    pub remote: Vec<Machine>,
    #[serde(default)]
    pub link: LinkConfig,
}

impl Wan {
    /// Refuses a second site nobody is at, the clients on their own, or a link so slow that
    /// one log could not cross it within the copy timeouts of `cluster` (the passive would
    /// never copy anything: a configuration error, not a finding).
    pub fn check(&self, cluster: &ccr_core::cluster::config::ClusterConfig) -> Result<(), String> {
        if self.remote.is_empty() {
            return Err("remote: name the machines at the second site".into());
        }
        if self.remote.contains(&Machine::Client) {
            return Err("remote: the clients sit with hub1; name hub1".into());
        }
        self.link.check().map_err(|m| format!("link: {m}"))?;
        let log_ms = self.link.transmit_us(cluster.storage.log_size) / 1000;
        let timeout = cluster
            .copy_timeout_ms
            .min(cluster.lost_log_copy_timeout_ms);
        if 2 * (log_ms + self.link.max_delay_ms) > timeout {
            return Err(format!(
                "link: one {} KB log takes {log_ms} ms at {} Mbit/s, more than half the copy \
                 timeout ({timeout} ms): the passive could never copy a log",
                cluster.storage.log_size / 1024,
                self.link.bandwidth_mbit
            ));
        }
        Ok(())
    }

    /// Whether a message between `a` and `b` crosses the WAN.
    pub fn crosses(&self, a: Machine, b: Machine) -> bool {
        let remote = |m: Machine| {
            let m = if m == Machine::Client {
                Machine::Hub(HubId::FIRST)
            } else {
                m
            };
            self.remote.contains(&m)
        };
        remote(a) != remote(b)
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

    /// Refuses settings no network has: rates outside 0..1, a delay range upside down or over
    /// a minute, a bandwidth that is not a number of megabits.
    pub fn check(&self) -> Result<(), String> {
        for (name, rate) in [
            ("tail", self.tail),
            ("loss", self.loss),
            ("duplicate", self.duplicate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} {rate} is not a rate between 0 and 1"));
            }
        }
        if self.min_delay_ms > self.max_delay_ms || self.max_delay_ms > 60_000 {
            return Err(format!(
                "delays {}..{} ms: min_delay_ms must not exceed max_delay_ms, nor that a minute",
                self.min_delay_ms, self.max_delay_ms
            ));
        }
        if !(self.bandwidth_mbit.is_finite() && (0.0..=1_000_000.0).contains(&self.bandwidth_mbit))
        {
            return Err(format!(
                "bandwidth_mbit {} is not between 0 (unlimited) and 1000000",
                self.bandwidth_mbit
            ));
        }
        Ok(())
    }

    /// How long `bytes` take to leave through this link's queue, in microseconds (0 when the
    /// bandwidth is unlimited): a megabit per second is a bit per microsecond.
    pub fn transmit_us(&self, bytes: u64) -> u64 {
        if self.bandwidth_mbit > 0.0 {
            ((bytes * 8) as f64 / self.bandwidth_mbit).ceil() as u64
        } else {
            0
        }
    }

    /// The longest delay a message can take (less any time queued behind others).
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

    #[test]
    fn bandwidth_turns_size_into_time() {
        let ten = LinkConfig {
            bandwidth_mbit: 10.0,
            ..LinkConfig::default()
        };
        // A 1 MB log over 10 Mbit/s: 0.84 s.
        assert_eq!(ten.transmit_us(1 << 20), 838_861);
        assert_eq!(LinkConfig::default().transmit_us(1 << 20), 0);
    }

    #[test]
    fn machines_are_named_in_files_as_they_print() {
        for m in [
            Machine::Node1,
            Machine::Hub(HubId(1)),
            Machine::Hub(HubId(3)),
            Machine::Witness,
            Machine::Client,
        ] {
            assert_eq!(Machine::try_from(m.name()), Ok(m));
        }
        assert_eq!(
            Machine::try_from("hub".to_string()),
            Ok(Machine::Hub(HubId(1)))
        );
        let err = Machine::try_from("hub9".to_string()).unwrap_err();
        assert!(err.contains("hub9") && err.contains("hub8"), "{err}");
    }

    #[test]
    fn the_wan_is_crossed_between_sites_only() {
        let wan = Wan {
            remote: vec![Machine::Node2],
            link: LinkConfig::default(),
        };
        assert!(wan.crosses(Machine::Node1, Machine::Node2));
        let hub1 = Machine::Hub(HubId::FIRST);
        assert!(wan.crosses(Machine::Node2, hub1));
        assert!(wan.crosses(Machine::Client, Machine::Node2));
        assert!(!wan.crosses(Machine::Node1, hub1));
        assert!(!wan.crosses(Machine::Client, hub1));
    }
}
