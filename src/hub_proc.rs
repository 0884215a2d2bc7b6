//! `ccr hub`: the hub transport server (with its transport dumpster) and the file share
//! witness, as on the article's hub machine. Clients submit mail here and are told when it is
//! durable in the active store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ccr_core::cluster::hub::{Hub, HubAction};
use ccr_core::cluster::witness::Witness;
use ccr_core::cluster::{Endpoint, Net};
use ccr_core::host::{Clock, Network};
use ccr_core::storage::MessageId;
use tokio::sync::mpsc;

use crate::config::HubFile;
use crate::frame::Key;
use crate::node_proc::RealClock;
use crate::transport::{listen, TcpNetwork};
use crate::wire::Wire;

enum In {
    Cluster(Endpoint, Endpoint, ccr_core::cluster::wire::Msg),
    Submit(u64, u32, mpsc::UnboundedSender<Wire>),
}

pub async fn run(file: HubFile) -> Result<(), String> {
    let key = Key::new(&file.key)?;
    file.cluster
        .validate()
        .map_err(|e| format!("[cluster]: {e}"))?;
    let clock = Arc::new(RealClock::new());
    let network = TcpNetwork::new(key.clone(), file.addresses.clone());
    let (tx, mut rx) = mpsc::unbounded_channel::<In>();
    for addr in file.addresses.listen_on(Endpoint::Hub) {
        let tx = tx.clone();
        listen(addr, key.clone(), move |wire, reply| match wire {
            Wire::Cluster { from, to, msg, .. } => {
                let _ = tx.send(In::Cluster(from, to, msg));
            }
            Wire::Submit { id, size } => {
                let _ = tx.send(In::Submit(id, size, reply));
            }
            _ => {}
        })
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    }
    tracing::info!(hub = "hub", address = %file.addresses.hub.public, "hub up");

    let mut hub = Hub::new(file.hub.clone());
    let mut witness = Witness::new(&file.cluster);
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
                match m {
                    In::Cluster(from, Endpoint::Witness, msg) => {
                        if let Endpoint::Node(n) = from {
                            witness.handle(now, n, msg);
                        }
                    }
                    In::Cluster(Endpoint::Node(n), Endpoint::Hub, msg) => hub.handle(now, n, msg),
                    In::Cluster(..) => {}
                    In::Submit(id, size, reply) => {
                        clients.insert(id, reply);
                        hub.submit(now, MessageId(id), size);
                    }
                }
            }
            _ = tokio::time::sleep(sleep) => hub.handle_timeout(clock.now()),
        }
        while let Some((to, msg)) = witness.poll_send() {
            network.send(Endpoint::Witness, to, Net::Public, msg);
        }
        while let Some(action) = hub.poll_action() {
            match action {
                HubAction::Send { to, net, msg } => network.send(Endpoint::Hub, to, net, msg),
                HubAction::Acknowledged { id } => {
                    if let Some(client) = clients.remove(&id.0) {
                        let _ = client.send(Wire::Acked { id: id.0 });
                    }
                }
                HubAction::Redelivering { epoch, count } => {
                    tracing::info!(hub = "hub", count, epoch, "redelivering from the dumpster")
                }
                HubAction::Evicted { .. } => {}
            }
        }
    }
    Ok(())
}
