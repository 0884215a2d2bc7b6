//! `ccr hub`: the hub transport server (with its transport dumpster) and the file share
//! witness, as on the article's hub machine. Clients submit mail here and are told when it is
//! durable in the active store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ccr_core::cluster::hub::{Hub, HubAction};
use ccr_core::cluster::wire::Msg;
use ccr_core::cluster::witness::Witness;
use ccr_core::cluster::{Endpoint, HubId, Net};
use ccr_core::host::{Clock, Network};
use ccr_core::storage::MessageId;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::config::HubFile;
use crate::frame::Key;
use crate::node_proc::RealClock;
use crate::tls::Links;
use crate::transport::{listen, TcpNetwork};
use crate::wire::Wire;

enum In {
    Cluster(Endpoint, Endpoint, ccr_core::cluster::wire::Msg),
    Submit(u64, u32, Vec<u8>, mpsc::UnboundedSender<Wire>),
}

pub async fn run(file: HubFile) -> Result<(), String> {
    let key = Key::new(&file.key)?;
    let tls = Links::load(file.tls.as_ref())?;
    file.cluster
        .validate()
        .map_err(|e| format!("[cluster]: {e}"))?;
    file.hub.validate().map_err(|e| format!("[hub]: {e}"))?;
    file.addresses.check()?;
    let me = file.id;
    if me.0 == 0 || me.0 > file.addresses.hub_count() {
        return Err(format!(
            "id: hub {} is not among the {} hub(s) the addresses list",
            me.0,
            file.addresses.hub_count()
        ));
    }
    let name = me.to_string();
    // A damaged state file stops the hub before it listens: nothing answers in its name.
    let mut store = file.data.as_deref().map(StateFile::open).transpose()?;
    let (mut hub, mut witness) = match store.as_mut().map(StateFile::load).transpose()? {
        Some(Some(saved)) => {
            tracing::info!(
                hub = %name,
                dumpster = saved.hub.dumpster_len(),
                "hub state restored"
            );
            (saved.hub, saved.witness)
        }
        _ => (Hub::new(file.hub.clone()), Witness::new(&file.cluster)),
    };
    hub.reconfigure(file.hub.clone());
    let mut bodies = Bodies::open(file.data.as_deref())?;
    let clock = Arc::new(RealClock::new());
    let network = TcpNetwork::new(key.clone(), tls.clone(), file.addresses.clone());
    let (tx, mut rx) = mpsc::unbounded_channel::<In>();
    for addr in file.addresses.listen_on(Endpoint::Hub(me)) {
        let tx = tx.clone();
        listen(
            addr,
            key.clone(),
            tls.clone(),
            move |wire, reply| match wire {
                Wire::Cluster { from, to, msg, .. } => {
                    let _ = tx.send(In::Cluster(from, to, msg));
                }
                Wire::Submit { id, size, body } => {
                    let _ = tx.send(In::Submit(id, size, body, reply));
                }
                _ => {}
            },
        )
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    }
    tracing::info!(hub = %name, address = %file.addresses.of(Endpoint::Hub(me), Net::Public), tls = tls.is_tls(), "hub up");

    let mut clients: BTreeMap<u64, mpsc::UnboundedSender<Wire>> = BTreeMap::new();
    loop {
        let sleep = hub
            .poll_timeout()
            .map_or(Duration::from_secs(1), |d| clock.until(d));
        tokio::select! {
            biased;
            m = rx.recv() => {
                let Some(m) = m else { break };
                let now = clock.now();
                // Whatever else has arrived is taken in the same batch: one state write each.
                let batch = std::iter::once(m).chain(std::iter::from_fn(|| rx.try_recv().ok()).take(255));
                for m in batch {
                    match m {
                        // The witness share lives on hub1.
                        In::Cluster(from, Endpoint::Witness, msg) if me == HubId::FIRST => {
                            if let Endpoint::Node(n) = from {
                                witness.handle(now, n, msg);
                            }
                        }
                        In::Cluster(Endpoint::Node(n), Endpoint::Hub(to), msg) if to == me => hub.handle(now, n, msg),
                        In::Cluster(..) => {}
                        In::Submit(id, size, body, reply) => {
                            clients.insert(id, reply);
                            bodies.keep(id, body);
                            hub.submit(now, MessageId(id), size);
                        }
                    }
                }
            }
            _ = tokio::time::sleep(sleep) => hub.handle_timeout(clock.now()),
        }
        // Written before anything is acted on: no client hears "acknowledged", and no node is
        // granted the witness, unless the file already says so.
        bodies.sync()?;
        if let Some(store) = &mut store {
            store.save(&hub, &witness)?;
        }
        while let Some((to, msg)) = witness.poll_send() {
            network.send(Endpoint::Witness, to, Net::Public, msg);
        }
        while let Some(action) = hub.poll_action() {
            match action {
                HubAction::Send {
                    to,
                    net,
                    msg: Msg::Deliver { id, size, .. },
                } => {
                    let body = bodies.get(id.0);
                    network.send(Endpoint::Hub(me), to, net, Msg::Deliver { id, size, body });
                }
                HubAction::Send { to, net, msg } => network.send(Endpoint::Hub(me), to, net, msg),
                HubAction::Acknowledged { id } => {
                    if let Some(client) = clients.remove(&id.0) {
                        let _ = client.send(Wire::Acked { id: id.0 });
                    }
                }
                HubAction::Redelivering { epoch, count } => {
                    tracing::info!(hub = %name, count, epoch, "redelivering from the dumpster")
                }
                // Gone from the dumpster: nothing will deliver it again.
                HubAction::Evicted { id } => bodies.forget(id.0),
            }
        }
    }
    Ok(())
}

/// The bodies of the mail the hub holds (queued, in flight or in the dumpster), beside its
/// state file rather than in it: the state is rewritten whole on every change, bodies are
/// written once. One file per message in `DATA/bodies/`, synced before the state that
/// names the message is saved; without a data directory they live in memory only.
struct Bodies {
    dir: Option<PathBuf>,
    held: BTreeMap<u64, Vec<u8>>,
    /// Written since the last sync.
    unsynced: Vec<u64>,
}

impl Bodies {
    fn open(data: Option<&Path>) -> Result<Bodies, String> {
        let mut held = BTreeMap::new();
        let Some(data) = data else {
            return Ok(Bodies {
                dir: None,
                held,
                unsynced: Vec::new(),
            });
        };
        let dir = data.join("bodies");
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
        for entry in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // A staging file a crash left: its message was never acknowledged.
            let Ok(id) = name.parse::<u64>() else {
                continue;
            };
            let bytes = std::fs::read(entry.path())
                .map_err(|e| format!("{}: cannot read: {e}", entry.path().display()))?;
            held.insert(id, bytes);
        }
        Ok(Bodies {
            dir: Some(dir),
            held,
            unsynced: Vec::new(),
        })
    }

    fn keep(&mut self, id: u64, body: Vec<u8>) {
        if body.is_empty() || self.held.contains_key(&id) {
            return;
        }
        self.held.insert(id, body);
        self.unsynced.push(id);
    }

    fn get(&self, id: u64) -> Vec<u8> {
        self.held.get(&id).cloned().unwrap_or_default()
    }

    fn forget(&mut self, id: u64) {
        if self.held.remove(&id).is_some() {
            if let Some(dir) = &self.dir {
                // A file left behind by a failed removal costs space, never mail.
                let _ = std::fs::remove_file(dir.join(id.to_string()));
            }
        }
    }

    /// Writes the bodies that arrived since the last call, each synced, then the folder.
    fn sync(&mut self) -> Result<(), String> {
        let Some(dir) = &self.dir else {
            self.unsynced.clear();
            return Ok(());
        };
        if self.unsynced.is_empty() {
            return Ok(());
        }
        for id in std::mem::take(&mut self.unsynced) {
            let Some(body) = self.held.get(&id) else {
                continue;
            };
            let path = dir.join(id.to_string());
            replace_synced(&path, &dir.join(format!("{id}.tmp")), body)
                .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
        }
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("{}: cannot sync: {e}", dir.display()))
    }
}

/// The hub's state file: queue, dumpster and witness, as one JSON document replaced
/// atomically (written beside, synced, renamed) whenever it changed.
struct StateFile {
    path: PathBuf,
    /// The bytes last written (or read): an unchanged state is not written again.
    last: Vec<u8>,
}

#[derive(Serialize)]
struct SavedRef<'a> {
    hub: &'a Hub,
    witness: &'a Witness,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Saved {
    hub: Hub,
    witness: Witness,
}

impl StateFile {
    fn open(dir: &Path) -> Result<StateFile, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("{}: cannot create: {e}", dir.display()))?;
        Ok(StateFile {
            path: dir.join("hub-state.json"),
            last: Default::default(),
        })
    }

    /// The saved state, or `None` for a hub that never ran. A damaged file stops the hub with
    /// its name and place, and is left as it is: it may be all that holds acknowledged mail.
    fn load(&mut self) -> Result<Option<Saved>, String> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: cannot read: {e}", self.path.display())),
        };
        let saved = serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "{}:{}:{}: not a hub state file: {e}",
                self.path.display(),
                e.line(),
                e.column()
            )
        })?;
        self.last = bytes;
        Ok(Some(saved))
    }

    fn save(&mut self, hub: &Hub, witness: &Witness) -> Result<(), String> {
        let bytes = serde_json::to_vec(&SavedRef { hub, witness }).expect("hub state serialises");
        if self.last == bytes {
            return Ok(());
        }
        let write = || -> std::io::Result<()> {
            replace_synced(&self.path, &self.path.with_extension("json.tmp"), &bytes)?;
            if let Some(dir) = self.path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| format!("{}: cannot write: {e}", self.path.display()))?;
        self.last = bytes;
        Ok(())
    }
}

/// Replaces `path` with `bytes` as one step: written to `staging`, synced, renamed over it. The
/// rename is durable once the caller syncs the folder.
fn replace_synced(path: &Path, staging: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::create(staging)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(staging, path)
}
