//! `ccr node`: one mailbox node — the same `Node` and host the simulator runs, on a real disk,
//! the real clock and TCP. The process also serves its machine's log share and the admin
//! endpoint.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ccr_core::cluster::boot::boot;
use ccr_core::cluster::node::{Admin, Node, NodeEvent, DB_FILE, LOG_DIR};
use ccr_core::cluster::wire::BackupKind;
use ccr_core::cluster::{share, Endpoint, NodeId, Now};
use ccr_core::disk::RealDisk;
use ccr_core::host::{run_node, Clock, HostEnv, Incoming, Inputs, Network, Observer};
use ccr_core::storage::names::parse_closed_log_name;
use ccr_core::storage::MessageId;
use tokio::sync::mpsc;

use crate::config::NodeFile;
use crate::frame::Key;
use crate::tls::Links;
use crate::transport::{listen, TcpNetwork};
use crate::wire::{AdminReply, AdminRequest, Wire};

/// The machine's clock: monotonic since the machine booted, wall from the system clock.
///
/// `mono` must be the *machine's* clock, as `Clock` says and the simulator's machines have it:
/// it goes on across a restart of the process. Stamps outlive a process — the peer echoes the
/// newest heartbeat stamp it heard, the hub remembers redelivery requests — so a clock that
/// started again at zero with each process would hand a restarted node leases and request ids
/// of its predecessor's (a `kill -9` benchmark lost acknowledged mail that way).
#[derive(Debug, Default, Clone, Copy)]
pub struct RealClock;

impl RealClock {
    pub fn new() -> RealClock {
        RealClock
    }
}

impl Clock for RealClock {
    fn now(&self) -> Now {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
        let mono = t.tv_sec as u64 * 1000 + t.tv_nsec as u64 / 1_000_000;
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(mono, |d| d.as_millis() as u64);
        Now { mono, wall }
    }

    fn until(&self, mono: u64) -> Duration {
        Duration::from_millis(mono.saturating_sub(self.now().mono) + 1)
    }
}

/// Node events as log lines on stderr.
/// Logs what the node does, and carries out its backups: the files are copied when the node
/// says the backup is taken, before the host issues the truncation that follows it.
struct LogObserver {
    data: std::path::PathBuf,
}

impl LogObserver {
    /// Copies the durable files of a backup into `backups/NNNN-KIND-CHECKPOINT/` under the
    /// data folder: the database file (full backups) and every closed log.
    fn copy_backup(&self, kind: BackupKind, checkpoint: u32) -> Result<std::path::PathBuf, String> {
        let root = self.data.join("backups");
        let taken = std::fs::read_dir(&root).map_or(0, |d| d.count());
        let dir = root.join(format!("{:04}-{kind}-{checkpoint:08x}", taken + 1));
        let fail = |what: &std::path::Path, e: std::io::Error| format!("{}: {e}", what.display());
        std::fs::create_dir_all(dir.join(LOG_DIR)).map_err(|e| fail(&dir, e))?;
        if kind == BackupKind::Full {
            let from = self.data.join(DB_FILE);
            let to = dir.join(DB_FILE);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(|e| fail(parent, e))?;
            }
            std::fs::copy(&from, &to).map_err(|e| fail(&from, e))?;
        }
        let logs = self.data.join(LOG_DIR);
        for entry in std::fs::read_dir(&logs).map_err(|e| fail(&logs, e))? {
            let entry = entry.map_err(|e| fail(&logs, e))?;
            let name = entry.file_name();
            if parse_closed_log_name(&name.to_string_lossy()).is_some() {
                std::fs::copy(entry.path(), dir.join(LOG_DIR).join(&name))
                    .map_err(|e| fail(&entry.path(), e))?;
            }
        }
        Ok(dir)
    }
}

impl Observer for LogObserver {
    fn node_event(&self, node: NodeId, now: Now, event: &NodeEvent) {
        let node = node.name();
        if let NodeEvent::BackupTaken { kind, checkpoint } = event {
            match self.copy_backup(*kind, *checkpoint) {
                Ok(dir) => tracing::info!(
                    node,
                    kind = %kind,
                    checkpoint,
                    to = %dir.display(),
                    "backup taken"
                ),
                Err(e) => {
                    tracing::error!(node, kind = %kind, error = e.as_str(), "backup could not be copied")
                }
            }
            return;
        }
        let t = now.mono as f64 / 1000.0;
        // What an administrator acts on is info or warn, with its reason; routine copying
        // and replay are debug.
        match event {
            NodeEvent::LogCopied { generation } => {
                tracing::debug!(node, t, generation, "log copied")
            }
            NodeEvent::LogReplayed { generation } => {
                tracing::debug!(node, t, generation, "log replayed")
            }
            NodeEvent::Mounted { view, lost, forced } => tracing::info!(
                node,
                t,
                epoch = view.epoch,
                lost,
                forced,
                "mounted: this node serves the database"
            ),
            NodeEvent::Dismounted { reason } => {
                tracing::warn!(node, t, reason = reason.as_str(), "dismounted")
            }
            NodeEvent::TakeoverStarted => {
                tracing::warn!(node, t, "the active is down: taking over (failover)")
            }
            NodeEvent::StayDismounted { missing, allowed } => tracing::warn!(
                node,
                t,
                missing,
                allowed,
                "mount dial: stays dismounted, too many logs missing"
            ),
            NodeEvent::MoveRefused { reason } => {
                tracing::warn!(node, t, reason = reason.as_str(), "move refused")
            }
            NodeEvent::AdminRefused { reason } => {
                tracing::warn!(node, t, reason = reason.as_str(), "admin command refused")
            }
            NodeEvent::CopyFailed { reason } => {
                tracing::warn!(node, t, reason = reason.as_str(), "copy failed")
            }
            NodeEvent::LogRejected { reason } => {
                tracing::warn!(
                    node,
                    t,
                    reason = reason.as_str(),
                    "copied log failed inspection"
                )
            }
            NodeEvent::StoreFailed { reason } => {
                tracing::warn!(node, t, reason = reason.as_str(), "store failed")
            }
            NodeEvent::Reseeded { checkpoint } => {
                tracing::info!(node, t, checkpoint, "copy reseeded")
            }
            other => tracing::info!(node, t, event = ?other, "node event"),
        }
    }

    fn stepped(&self, _node: &Node, _now: Now) {}
}

pub async fn run(mut file: NodeFile) -> Result<(), String> {
    file.addresses.check()?;
    // The site's hubs are the ones the addresses list: those are the hubs this node can ask.
    file.cluster.hubs = file.addresses.hub_count();
    let key = Key::new(&file.key)?;
    let tls = Links::load(file.tls.as_ref())?;
    let id = file.node;
    std::fs::create_dir_all(&file.data)
        .map_err(|e| format!("{}: cannot create: {e}", file.data.display()))?;
    file.cluster
        .validate()
        .map_err(|e| format!("[cluster]: {e}"))?;
    let disk = Arc::new(Mutex::new(RealDisk::new(&file.data)));
    let clock = Arc::new(RealClock::new());
    let state = {
        let mut d = disk.lock().expect("disk");
        boot(&mut *d, &file.cluster, clock.now().wall)
            .map_err(|e| format!("{}: {e}", file.data.display()))?
    };
    let node = Arc::new(Mutex::new(Node::new(
        id,
        file.cluster.clone(),
        state,
        clock.now(),
    )));
    let network = TcpNetwork::new(key.clone(), tls.clone(), file.addresses.clone());
    let (inbox_tx, inbox) = mpsc::unbounded_channel::<Incoming>();
    let (admin_tx, admin) = mpsc::unbounded_channel::<Admin>();
    let (_pause, paused) = tokio::sync::watch::channel(false);

    // The machine's listeners: the node's services and its log share on both networks.
    for addr in file.addresses.listen_on(Endpoint::Node(id)) {
        let inbox_tx = inbox_tx.clone();
        let disk = disk.clone();
        let node = node.clone();
        let network = network.clone();
        listen(addr, key.clone(), tls.clone(), move |wire, _reply| {
            let Wire::Cluster { from, to, net, msg } = wire else {
                return;
            };
            match to {
                Endpoint::Node(n) if n == id => {
                    let _ = inbox_tx.send(Incoming { from, net, msg });
                }
                Endpoint::Share(n) if n == id => {
                    let running = node.lock().expect("node").stores_running();
                    let answer = {
                        let mut d = disk.lock().expect("disk");
                        share::serve(&mut *d, &msg, &running)
                    };
                    if let Some(answer) = answer {
                        network.send(Endpoint::Share(id), from, net, answer);
                    }
                }
                _ => {}
            }
        })
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    }

    let admin_node = node.clone();
    let admin_clock = clock.clone();
    listen(file.admin, key.clone(), tls.clone(), move |wire, reply| {
        let Wire::Admin(req) = wire else { return };
        let answer = answer_admin(&admin_node, admin_clock.now(), &admin_tx, req);
        let _ = reply.send(Wire::AdminReply(answer));
    })
    .await
    .map_err(|e| format!("cannot listen on {} (admin): {e}", file.admin))?;

    tracing::info!(
        node = id.name(),
        data = %file.data.display(),
        admin = %file.admin,
        tls = tls.is_tls(),
        "node up"
    );
    let network: Arc<dyn Network> = Arc::new(network);
    run_node(
        node,
        Inputs {
            inbox,
            admin,
            paused,
        },
        HostEnv {
            disk,
            clock,
            network,
            observer: Arc::new(LogObserver {
                data: file.data.clone(),
            }),
        },
    )
    .await;
    Ok(())
}

fn answer_admin(
    node: &Arc<Mutex<Node>>,
    now: Now,
    tx: &mpsc::UnboundedSender<Admin>,
    req: AdminRequest,
) -> AdminReply {
    let n = node.lock().expect("node");
    let command = match req {
        AdminRequest::Status => {
            return AdminReply::Status {
                node: n.id(),
                serving: n.is_serving(),
                status: n.cms_status(now),
            };
        }
        // In CCR the copy status is the passive copy's, wherever it is asked.
        AdminRequest::CopyStatus => return AdminReply::CopyStatus(n.passive_copy_status(now)),
        AdminRequest::TestReplicationHealth => {
            return AdminReply::ReplicationHealth(n.replication_health(now))
        }
        AdminRequest::Missing { ids } => {
            let missing = ids
                .into_iter()
                .filter(|id| !n.database().contains(MessageId(*id)))
                .collect();
            return AdminReply::Missing { ids: missing };
        }
        AdminRequest::Move { target, comment } => Admin::Move { target, comment },
        AdminRequest::SuspendCopy { comment } => Admin::SuspendCopy { comment },
        AdminRequest::ResumeCopy => Admin::ResumeCopy,
        AdminRequest::UpdateCopy => Admin::UpdateCopy,
        AdminRequest::RestoreCopy => Admin::RestoreCopy,
        AdminRequest::MountDatabase => Admin::MountDatabase,
        AdminRequest::StopCms { reason } => Admin::StopCms { reason },
        AdminRequest::StartCms => Admin::StartCms,
        AdminRequest::Backup { incremental } => Admin::Backup {
            kind: if incremental {
                BackupKind::Incremental
            } else {
                BackupKind::Full
            },
        },
    };
    match tx.send(command) {
        Ok(()) => AdminReply::Accepted,
        Err(_) => AdminReply::Refused("the node is shutting down".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restarted_process_reads_the_machine_clock_on_from_where_it_was() {
        let before_restart = RealClock::new();
        std::thread::sleep(Duration::from_millis(30));
        let last_stamp = before_restart.now().mono;
        let after_restart = RealClock::new();
        assert!(
            after_restart.now().mono >= last_stamp,
            "a new process's clock went back to {} from {last_stamp}",
            after_restart.now().mono
        );
    }
}
