//! The simulated networks: public and private, with faults per network, per link and per
//! direction. Heartbeats are datagrams (loss, duplication, reordering); everything else —
//! log copying, client and hub traffic, the witness share — is a stream: delivered in order,
//! only delayed or cut. Every message has a size on the wire; a link with a bandwidth sends
//! through one queue per direction, so a log copy on a slow WAN delays the heartbeats behind
//! it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ccr_core::cluster::wire::Msg;
use ccr_core::cluster::{Endpoint, Net};
use ccr_core::host::{Incoming, Network};
use madsim::rand::Rng;
use tokio::sync::mpsc::UnboundedSender;

pub use crate::topology::{LinkConfig, Machine, Wan, WitnessHost};

/// A message on its way: delivered at `at` (virtual ms), ties broken by send order.
struct InFlight {
    at: u64,
    seq: u64,
    sent_at: u64,
    from: Endpoint,
    to: Endpoint,
    net: Net,
    msg: Msg,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Reversed: BinaryHeap is a max-heap and the earliest delivery comes first.
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

#[derive(Default)]
struct State {
    in_flight: std::collections::BinaryHeap<InFlight>,
    seq: u64,
    inboxes: BTreeMap<Endpoint, UnboundedSender<Incoming>>,
    cuts: BTreeSet<(Machine, Machine, Net)>,
    down: BTreeSet<Machine>,
    links: [LinkConfig; 2],
    /// A second site, whose messages to and from the first cross this link instead.
    wan: Option<Wan>,
    /// Which machine the witness share runs on.
    witness: WitnessHost,
    /// When each direction's queue is next free (virtual µs), per (from, to, net).
    busy_until_us: BTreeMap<(Machine, Machine, Net), u64>,
    /// Stream ordering: the last scheduled delivery time per (from, to, net).
    last_delivery: BTreeMap<(Endpoint, Endpoint, Net), u64>,
    /// How many of the next log files each endpoint receives arrive damaged.
    corrupt_next: BTreeMap<Endpoint, u32>,
    /// Work done, for the benchmarks: messages put into inboxes, and postman wakes.
    delivered: u64,
    postman_wakes: u64,
}

/// Sees every message as it leaves its sender and as it arrives: the ground truth's view of
/// the wire.
pub trait Tap: Send + Sync {
    fn sent(&self, from: Endpoint, to: Endpoint, msg: &Msg);
    /// The postman woke (a simulated event, for the run's budget).
    fn woke(&self);
    /// `sent_at`: when it left its sender (virtual ms).
    fn delivered(&self, sent_at: u64, from: Endpoint, to: Endpoint, msg: &Msg);
    /// A situation the network itself produced, for the coverage table.
    fn cover(&self, _situation: &'static str) {}
}

/// The networks. Messages in flight wait in one heap that a single postman task delivers
/// from, in time order — no task per message.
#[derive(Clone, Default)]
pub struct SimNet {
    state: Arc<Mutex<State>>,
    tap: Arc<std::sync::OnceLock<Arc<dyn Tap>>>,
    start: Arc<std::sync::OnceLock<crate::clock::Elapsed>>,
    /// Wakes the postman when a message is due earlier than everything in flight.
    earlier: Arc<tokio::sync::Notify>,
    postman: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl SimNet {
    pub fn new() -> SimNet {
        let net = SimNet::default();
        let _ = net.start.set(crate::clock::Elapsed::start());
        let postman = tokio::spawn(net.clone().postman());
        *net.postman.lock().expect("net") = Some(postman);
        net
    }

    /// Shows every message to `tap` from now on.
    pub fn set_tap(&self, tap: Arc<dyn Tap>) {
        let _ = self.tap.set(tap);
    }

    async fn postman(self) {
        loop {
            if let Some(tap) = self.tap.get() {
                tap.woke();
            }
            let now = self.now_ms();
            let mut due = Vec::new();
            let next = {
                let mut s = self.state.lock().expect("net");
                s.postman_wakes += 1;
                while s.in_flight.peek().is_some_and(|m| m.at <= now) {
                    due.push(s.in_flight.pop().expect("peeked"));
                }
                s.in_flight.peek().map(|m| m.at)
            };
            for m in due {
                let mut s = self.state.lock().expect("net");
                // A machine that went down meanwhile receives nothing.
                if s.down.contains(&Machine::of(m.to, s.witness.machine())) {
                    continue;
                }
                if let Some(tx) = s.inboxes.get(&m.to) {
                    if let Some(tap) = self.tap.get() {
                        tap.delivered(m.sent_at, m.from, m.to, &m.msg);
                    }
                    let _ = tx.send(Incoming {
                        from: m.from,
                        net: m.net,
                        msg: m.msg,
                    });
                    s.delivered += 1;
                }
            }
            match next {
                Some(at) => {
                    let wait = Duration::from_millis(at.saturating_sub(self.now_ms()));
                    tokio::select! {
                        biased;
                        _ = self.earlier.notified() => {}
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
                None => self.earlier.notified().await,
            }
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.get().expect("started").ms()
    }

    /// Messages delivered into inboxes, and times the postman woke, so far.
    pub fn work(&self) -> (u64, u64) {
        let s = self.state.lock().expect("net");
        (s.delivered, s.postman_wakes)
    }

    pub fn register(&self, e: Endpoint, tx: UnboundedSender<Incoming>) {
        self.state.lock().expect("net").inboxes.insert(e, tx);
    }

    pub fn unregister(&self, e: Endpoint) {
        self.state.lock().expect("net").inboxes.remove(&e);
    }

    pub fn set_link(&self, net: Net, link: LinkConfig) {
        self.state.lock().expect("net").links[net.index()] = link;
    }

    /// Puts the machines of `wan.remote` at a second site (topology, not a fault: `heal`
    /// keeps it).
    pub fn set_wan(&self, wan: Option<Wan>) {
        self.state.lock().expect("net").wan = wan;
    }

    /// Puts the witness share on its machine (topology, fixed for the run).
    pub fn set_witness_host(&self, host: WitnessHost) {
        self.state.lock().expect("net").witness = host;
    }

    pub fn cut(&self, from: Machine, to: Machine, net: Net) {
        self.state.lock().expect("net").cuts.insert((from, to, net));
    }

    pub fn heal(&self) {
        let mut s = self.state.lock().expect("net");
        s.cuts.clear();
        s.links = [LinkConfig::default(); 2];
    }

    pub fn set_down(&self, m: Machine, down: bool) {
        let mut s = self.state.lock().expect("net");
        if down {
            s.down.insert(m);
        } else {
            s.down.remove(&m);
        }
    }

    /// Whether a message from `from` to `to` on `net` would get through right now.
    pub fn reachable(&self, from: Machine, to: Machine, net: Net) -> bool {
        let s = self.state.lock().expect("net");
        !s.down.contains(&from) && !s.down.contains(&to) && !s.cuts.contains(&(from, to, net))
    }

    /// Whether any network loses datagrams right now.
    pub fn loses_datagrams(&self) -> bool {
        self.state
            .lock()
            .expect("net")
            .links
            .iter()
            .any(|l| l.loss > 0.0)
    }

    /// Drops every message in flight and every inbox, and stops the postman (the run is over).
    pub fn clear(&self) {
        let mut s = self.state.lock().expect("net");
        s.in_flight.clear();
        s.inboxes.clear();
        if let Some(p) = self.postman.lock().expect("net").take() {
            p.abort();
        }
    }

    /// Which of `m`'s links are cut right now, in words (for reports).
    pub fn impairments(&self, m: Machine) -> Vec<String> {
        let s = self.state.lock().expect("net");
        let mut out = Vec::new();
        for net in [Net::Public, Net::Private] {
            let cut_to: Vec<String> = s
                .cuts
                .iter()
                .filter(|(a, _, n)| *a == m && *n == net)
                .map(|(_, b, _)| b.name())
                .collect();
            let cut_from: Vec<String> = s
                .cuts
                .iter()
                .filter(|(_, b, n)| *b == m && *n == net)
                .map(|(a, _, _)| a.name())
                .filter(|a| !cut_to.contains(a))
                .collect();
            if !cut_to.is_empty() {
                out.push(format!("{net:?} cut to {}", cut_to.join(",")).to_lowercase());
            }
            if !cut_from.is_empty() {
                out.push(format!("{net:?} cut from {}", cut_from.join(",")).to_lowercase());
            }
        }
        out
    }

    /// The link faults (loss, duplication, delay) each network carries right now, in words.
    pub fn link_faults(&self) -> Vec<String> {
        let s = self.state.lock().expect("net");
        let mut out = Vec::new();
        for net in Net::ALL {
            let link = s.links[net.index()];
            if link != LinkConfig::default() {
                let mut words = format!(
                    "{net:?} link loss {:.0}% dup {:.0}% delay {}-{} ms",
                    link.loss * 100.0,
                    link.duplicate * 100.0,
                    link.min_delay_ms,
                    link.max_delay_ms
                )
                .to_lowercase();
                if link.bandwidth_mbit > 0.0 {
                    words.push_str(&format!(" at {} Mbit/s", link.bandwidth_mbit));
                }
                out.push(words);
            }
        }
        out
    }

    /// One more of the next log files delivered to `e` arrives with a flipped bit.
    pub fn corrupt_next_copy(&self, e: Endpoint) {
        *self
            .state
            .lock()
            .expect("net")
            .corrupt_next
            .entry(e)
            .or_default() += 1;
    }
}

fn is_datagram(msg: &Msg) -> bool {
    matches!(msg, Msg::Heartbeat(_))
}

/// What a message weighs on the wire, in bytes: a log or a delivered message at its nominal
/// size (the bodies the simulator leaves out counted), anything else at its encoded size, and
/// each with a frame's addressing and authentication.
pub fn wire_bytes(msg: &Msg) -> u64 {
    const FRAME: u64 = 64;
    const ENTRY: u64 = 32;
    FRAME
        + match msg {
            Msg::LogFile { bytes, .. } | Msg::OpenLogFile { bytes } => {
                ccr_core::storage::logfile::nominal_len(bytes)
            }
            Msg::DatabaseFile { bytes } | Msg::StateFile { bytes } => bytes.len() as u64,
            Msg::Deliver { size, .. } => u64::from(*size),
            Msg::Heartbeat(h) => 128 + ENTRY * h.lineage.len() as u64,
            Msg::Redeliver { lineage, .. } => ENTRY * (1 + lineage.len() as u64),
            Msg::NoLog { reason, .. } | Msg::MoveAbandoned { reason, .. } => {
                ENTRY + reason.len() as u64
            }
            Msg::HandOver { comment, .. } => ENTRY + comment.len() as u64,
            _ => ENTRY,
        }
}

impl Network for SimNet {
    fn send(&self, from: Endpoint, to: Endpoint, net: Net, msg: Msg) {
        if let Some(tap) = self.tap.get() {
            tap.sent(from, to, &msg);
        }
        let now = self.now_ms();
        let mut deliveries = Vec::new();
        let mut covered = Vec::new();
        let mut msg = msg;
        {
            let mut s = self.state.lock().expect("net");
            let witness = s.witness.machine();
            let (a, b) = (Machine::of(from, witness), Machine::of(to, witness));
            if s.down.contains(&a) || s.down.contains(&b) || s.cuts.contains(&(a, b, net)) {
                return;
            }
            let link = match &s.wan {
                Some(wan) if wan.crosses(a, b) => wan.link,
                _ => s.links[net.index()],
            };
            // Leaves the sender once the messages queued before it on this direction have.
            let leaves = if link.bandwidth_mbit > 0.0 {
                let now_us = self.start.get().expect("started").ns() / 1000;
                let queue = s.busy_until_us.entry((a, b, net)).or_default();
                let waited_us = queue.saturating_sub(now_us);
                *queue = (*queue).max(now_us) + link.transmit_us(wire_bytes(&msg));
                if is_datagram(&msg) && waited_us >= 100_000 {
                    covered.push("heartbeat queued 100 ms or more behind other traffic");
                }
                queue.div_ceil(1000)
            } else {
                now
            };
            if matches!(msg, Msg::LogFile { .. }) && s.wan.as_ref().is_some_and(|w| w.crosses(a, b))
            {
                covered.push("log copied across the WAN");
            }

            if let Msg::LogFile { bytes, .. } = &mut msg {
                let pending = s.corrupt_next.get_mut(&to).filter(|n| **n > 0);
                if let Some(n) = pending.filter(|_| !bytes.is_empty()) {
                    *n -= 1;
                    let at = bytes.len() / 2;
                    bytes[at] ^= 0x08;
                }
            }
            let mut rng = madsim::rand::thread_rng();
            let mut delay = || {
                let (even, roll, tail) = (rng.gen::<f64>(), rng.gen::<f64>(), rng.gen::<f64>());
                link.delay_ms(even, roll, tail)
            };
            if is_datagram(&msg) {
                let mut rng = madsim::rand::thread_rng();
                if rng.gen_bool(link.loss.clamp(0.0, 1.0)) {
                    return;
                }
                deliveries.push(leaves + delay());
                if rng.gen_bool(link.duplicate.clamp(0.0, 1.0)) {
                    deliveries.push(leaves + delay());
                }
            } else {
                let key = (from, to, net);
                let at = (leaves + delay()).max(s.last_delivery.get(&key).copied().unwrap_or(0));
                s.last_delivery.insert(key, at);
                deliveries.push(at);
            }
        }
        if let Some(tap) = self.tap.get() {
            for situation in covered {
                tap.cover(situation);
            }
        }
        let mut s = self.state.lock().expect("net");
        let earliest = s.in_flight.peek().map(|m| m.at);
        for at in deliveries {
            s.seq += 1;
            let seq = s.seq;
            s.in_flight.push(InFlight {
                at,
                seq,
                sent_at: now,
                from,
                to,
                net,
                msg: msg.clone(),
            });
        }
        if s.in_flight.peek().map(|m| m.at) != earliest {
            self.earlier.notify_one();
        }
    }
}
