//! The async host: the one shell that drives a node's state machine from a network, a disk
//! and a clock. It is written against the tokio API; `tokio` is `madsim-tokio`, so a normal
//! build runs it on real tokio (the `ccr` binary) and a `--cfg madsim` build on madsim's
//! deterministic runtime (the simulator). Only the [`Clock`], the [`Network`] and the disk
//! behind it differ.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::cluster::boot::boot;
use crate::cluster::node::{Action, Admin, Input, Node, NodeEvent};
use crate::cluster::wire::Msg;
use crate::cluster::{Endpoint, Net, NodeId, Now};
use crate::disk::{execute_all, Disk, DiskOp};

/// A machine's clock.
pub trait Clock: Send + Sync {
    fn now(&self) -> Now;
    /// How long, on the runtime's timer, until the machine's monotonic clock reads `mono`.
    fn until(&self, mono: u64) -> Duration;
}

/// Where a host's outgoing messages go.
pub trait Network: Send + Sync {
    fn send(&self, from: Endpoint, to: Endpoint, net: Net, msg: Msg);
}

/// What the host reports as it goes (traces, checkers).
pub trait Observer: Send + Sync {
    fn node_event(&self, node: NodeId, now: Now, event: &NodeEvent);
    /// Called after every step, with the node as it now is.
    fn stepped(&self, node: &Node, now: Now);
    /// The host restarted the node's services in place (`booted`), or tried to and the boot
    /// failed: the world's own record of the restart policy at work.
    fn restart_attempted(&self, _node: NodeId, _now: Now, _booted: bool) {}
}

/// A message for the host's node.
#[derive(Debug)]
pub struct Incoming {
    pub from: Endpoint,
    pub net: Net,
    pub msg: Msg,
}

/// A disk shared between a machine and the processes on it: it outlives them.
pub type SharedDisk = Arc<Mutex<dyn Disk + Send>>;

enum Wake {
    Message(Incoming),
    Admin(Admin),
    Timeout,
    Closed,
}

/// What reaches a node's process: messages, admin commands, and the pause switch (while it
/// reads true the process runs nothing: a stopped process, as a gray failure looks inside).
pub struct Inputs {
    pub inbox: mpsc::UnboundedReceiver<Incoming>,
    pub admin: mpsc::UnboundedReceiver<Admin>,
    pub paused: tokio::sync::watch::Receiver<bool>,
}

/// The machine a node's process runs on, and who watches it.
pub struct HostEnv {
    pub disk: SharedDisk,
    pub clock: Arc<dyn Clock>,
    pub network: Arc<dyn Network>,
    pub observer: Arc<dyn Observer>,
}

/// Disk batches in flight. A batch reaches the disk when it is issued; the node learns of its
/// completion after its latency, in issue order (one disk queue), as if a worker ran them.
#[derive(Default)]
struct DiskQueue {
    busy_until: Option<tokio::time::Instant>,
    done: std::collections::VecDeque<(
        tokio::time::Instant,
        u64,
        Result<(), crate::disk::DiskError>,
    )>,
}

impl DiskQueue {
    fn issue(&mut self, disk: &SharedDisk, token: u64, ops: &[DiskOp]) {
        let (result, idle_in) = {
            let mut d = disk.lock().expect("disk lock");
            let result = execute_all(&mut *d, ops);
            (result, d.idle_in())
        };
        let (latency, result) = match result {
            Ok(done) => (done.latency, Ok(())),
            Err(e) => (Duration::ZERO, Err(e)),
        };
        let now = tokio::time::Instant::now();
        let mut at = self.busy_until.map_or(now, |b| b.max(now)) + latency;
        // A disk that keeps its own queue says when this batch is really done: it may still
        // be busy with what others issued (the services before a restart, a boot's repairs),
        // and a completion reported earlier would call a write durable that a power loss can
        // still take back (swarm@11:5045).
        if let (Ok(()), Some(idle)) = (&result, idle_in) {
            at = at.max(now + idle);
        }
        self.busy_until = Some(at);
        self.done.push_back((at, token, result));
    }

    fn next(&self) -> Option<tokio::time::Instant> {
        self.done.front().map(|(at, _, _)| *at)
    }

    fn pop_due(&mut self) -> Option<(u64, Result<(), crate::disk::DiskError>)> {
        let (at, _, _) = self.done.front()?;
        if *at > tokio::time::Instant::now() {
            return None;
        }
        self.done
            .pop_front()
            .map(|(_, token, result)| (token, result))
    }
}

/// Runs a node until its inbox closes. A crash is the future being dropped: the process's
/// pending disk completions go with it, and it writes nothing more.
pub async fn run_node(node: Arc<Mutex<Node>>, inputs: Inputs, env: HostEnv) {
    let Inputs {
        mut inbox,
        mut admin,
        mut paused,
    } = inputs;
    let HostEnv {
        disk,
        clock,
        network,
        observer,
    } = env;
    let id = node.lock().expect("node lock").id();
    let mut io = DiskQueue::default();
    let flush = |node: &mut Node, now: Now, io: &mut DiskQueue| {
        loop {
            let mut restart = false;
            while let Some(action) = node.poll_action() {
                match action {
                    Action::Send { to, net, msg } => network.send(Endpoint::Node(id), to, net, msg),
                    Action::Disk { token, ops } => io.issue(&disk, token, &ops),
                    Action::Event(e) => observer.node_event(id, now, &e),
                    Action::Restart => restart = true,
                }
            }
            if !restart {
                break;
            }
            // The services restart in place: a new node from what the disk holds; the old
            // one's pending completions die with it.
            let booted = {
                let mut d = disk.lock().expect("disk lock");
                boot(&mut *d, node.config(), now.wall)
            };
            match booted {
                Ok(state) => {
                    let bugs = node.planted();
                    // The cluster service outlives the store it restarts: its restart count
                    // goes on.
                    let failures = node.store_failures().to_vec();
                    *node = Node::new(id, node.config().clone(), state, now);
                    node.plant_bugs(bugs);
                    node.remember_store_failures(&failures);
                    *io = DiskQueue::default();
                    observer.restart_attempted(id, now, true);
                    observer.node_event(id, now, &NodeEvent::ServicesRestarted);
                }
                Err(e) => {
                    observer.restart_attempted(id, now, false);
                    node.restart_failed(now, e.to_string())
                }
            }
        }
        observer.stepped(node, now);
    };
    {
        let mut n = node.lock().expect("node lock");
        flush(&mut n, clock.now(), &mut io);
    }
    loop {
        let deadline = node.lock().expect("node lock").poll_timeout();
        let mut sleep = match deadline {
            Some(d) => clock.until(d),
            None => Duration::from_secs(3600),
        };
        if let Some(at) = io.next() {
            sleep = sleep.min(at.saturating_duration_since(tokio::time::Instant::now()));
        }
        // `biased`: tokio's fair choice draws from its own RNG, which madsim does not seed.
        let wake = tokio::select! {
            biased;
            m = inbox.recv() => m.map_or(Wake::Closed, Wake::Message),
            Some(cmd) = admin.recv() => Wake::Admin(cmd),
            _ = tokio::time::sleep(sleep) => Wake::Timeout,
        };
        while *paused.borrow() {
            if paused.changed().await.is_err() {
                break;
            }
        }
        let now = clock.now();
        let mut n = node.lock().expect("node lock");
        // Completions that are due come first: they happened before this wake.
        while let Some((token, result)) = io.pop_due() {
            n.handle(now, Input::DiskDone { token, result });
            flush(&mut n, now, &mut io);
        }
        match wake {
            Wake::Message(m) => n.handle(
                now,
                Input::Message {
                    from: m.from,
                    net: m.net,
                    msg: m.msg,
                },
            ),
            Wake::Admin(cmd) => n.handle(now, Input::Admin(cmd)),
            Wake::Timeout => n.handle_timeout(now),
            Wake::Closed => break,
        }
        flush(&mut n, now, &mut io);
    }
}
