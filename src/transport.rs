//! The real network: TCP between processes, one outgoing connection per peer address (opened
//! on demand, reopened after a failure), authenticated frames both ways. A message that cannot
//! be sent is dropped — CCR copes with lost messages; it never blocks the sender. With a
//! `[tls]` section every connection is TLS first (`tls`); the frames inside are the same.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ccr_core::cluster::wire::Msg;
use ccr_core::cluster::{Endpoint, Net, NodeId};
use ccr_core::host::Network;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::frame::{self, Key};
use crate::tls::{Conn, ConnectError, Links};
use crate::wire::Wire;

/// Where each machine listens, per network.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Addresses {
    pub node1: MachineAddr,
    pub node2: MachineAddr,
    /// hub1, which also hosts the file share witness.
    pub hub: MachineAddr,
    /// hub2, hub3, … in order: more hub transport servers, each with its own dumpster. The
    /// nodes ask every hub listed here to resubmit after a lossy mount.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_hubs: Vec<MachineAddr>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MachineAddr {
    pub public: SocketAddr,
    /// The private (heartbeat) network; the public address when absent.
    pub private: Option<SocketAddr>,
}

impl Addresses {
    /// Where a machine's process listens for `e`: its public address and, when it has its
    /// own, its private one.
    pub fn listen_on(&self, e: Endpoint) -> Vec<SocketAddr> {
        let mut addrs = vec![self.of(e, Net::Public)];
        let private = self.of(e, Net::Private);
        if private != addrs[0] {
            addrs.push(private);
        }
        addrs
    }

    /// How many hubs the site has: hub1 and those after it.
    pub fn hub_count(&self) -> u8 {
        u8::try_from(1 + self.more_hubs.len()).unwrap_or(u8::MAX)
    }

    /// Refuses more hubs than a cluster may have, naming the field.
    pub fn check(&self) -> Result<(), String> {
        if self.hub_count() > 8 {
            return Err(format!(
                "addresses.more_hubs: {} hubs listed; a site has at most 8",
                self.hub_count()
            ));
        }
        Ok(())
    }

    pub fn of(&self, to: Endpoint, net: Net) -> SocketAddr {
        let m = match to {
            Endpoint::Node(NodeId::Node1) | Endpoint::Share(NodeId::Node1) => &self.node1,
            Endpoint::Node(NodeId::Node2) | Endpoint::Share(NodeId::Node2) => &self.node2,
            Endpoint::Witness => &self.hub,
            Endpoint::Hub(h) => usize::from(h.0)
                .checked_sub(2)
                .and_then(|i| self.more_hubs.get(i))
                .unwrap_or(&self.hub),
        };
        match net {
            Net::Private => m.private.unwrap_or(m.public),
            Net::Public => m.public,
        }
    }
}

/// Outgoing frames waiting per peer; beyond this they are dropped.
const QUEUE: usize = 4096;

#[derive(Clone)]
pub struct TcpNetwork {
    key: Key,
    tls: Links,
    addrs: Arc<Addresses>,
    links: Arc<Mutex<BTreeMap<SocketAddr, mpsc::Sender<Vec<u8>>>>>,
}

impl TcpNetwork {
    pub fn new(key: Key, tls: Links, addrs: Addresses) -> TcpNetwork {
        TcpNetwork {
            key,
            tls,
            addrs: Arc::new(addrs),
            links: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    pub fn send_wire(&self, addr: SocketAddr, wire: &Wire) {
        let frame = frame::encode(&self.key, wire);
        let tx = {
            let mut links = self.links.lock().expect("links");
            links
                .entry(addr)
                .or_insert_with(|| {
                    let (tx, rx) = mpsc::channel(QUEUE);
                    tokio::spawn(connection(addr, self.tls.clone(), rx));
                    tx
                })
                .clone()
        };
        let _ = tx.try_send(frame);
    }
}

impl Network for TcpNetwork {
    fn send(&self, from: Endpoint, to: Endpoint, net: Net, msg: Msg) {
        let addr = self.addrs.of(to, net);
        self.send_wire(addr, &Wire::Cluster { from, to, net, msg });
    }
}

/// Writes queued frames to `addr`, reconnecting as needed; frames queued while the peer is
/// unreachable are dropped rather than delivered late in a burst.
async fn connection(addr: SocketAddr, tls: Links, mut rx: mpsc::Receiver<Vec<u8>>) {
    use tokio::io::AsyncWriteExt;
    let mut stream: Option<Conn> = None;
    // Said once per streak of failed handshakes, not with every heartbeat.
    let mut warned = false;
    while let Some(frame) = rx.recv().await {
        if stream.is_none() {
            match tokio::time::timeout(Duration::from_millis(500), tls.connect(addr)).await {
                Ok(Ok(s)) => {
                    stream = Some(s);
                    warned = false;
                }
                Ok(Err(ConnectError::Handshake(e))) => {
                    // A peer that is up but fails the handshake is misconfigured, not down:
                    // say so instead of dropping mail silently.
                    if !warned {
                        tracing::warn!(%addr, error = %e, "cannot open a link");
                        warned = true;
                    }
                    while rx.try_recv().is_ok() {}
                    continue;
                }
                _ => {
                    // Unreachable: drop what is queued now; try again with the next message.
                    while rx.try_recv().is_ok() {}
                    continue;
                }
            }
        }
        let s = stream.as_mut().expect("connected");
        // TLS buffers what it encrypts: flush so each frame leaves now.
        if s.write_all(&frame).await.is_err() || s.flush().await.is_err() {
            stream = None;
        }
    }
}

/// Accepts connections on `addr` and hands every authenticated frame to `deliver` with a way
/// to answer on the same connection. A failed TLS handshake or a bad frame closes its
/// connection, logged with the reason.
pub async fn listen<F>(addr: SocketAddr, key: Key, tls: Links, deliver: F) -> std::io::Result<()>
where
    F: Fn(Wire, mpsc::UnboundedSender<Wire>) + Send + Sync + 'static,
{
    let listener = TcpListener::bind(addr).await?;
    let deliver = Arc::new(deliver);
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let key = key.clone();
            let deliver = deliver.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let stream = match tls.accept(stream).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(%peer, error = %e, "refused a connection");
                        return;
                    }
                };
                let (mut r, mut w) = tokio::io::split(stream);
                let (tx, mut rx) = mpsc::unbounded_channel::<Wire>();
                let writer_key = key.clone();
                tokio::spawn(async move {
                    while let Some(reply) = rx.recv().await {
                        if frame::write(&mut w, &writer_key, &reply).await.is_err() {
                            break;
                        }
                    }
                });
                loop {
                    match frame::read::<_, Wire>(&mut r, &key).await {
                        Ok(wire) => deliver(wire, tx.clone()),
                        Err(frame::FrameError::Closed) => break,
                        Err(e) => {
                            tracing::warn!(%peer, error = %e, "closing connection");
                            break;
                        }
                    }
                }
            });
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccr_core::cluster::HubId;

    fn at(port: u16) -> MachineAddr {
        MachineAddr {
            public: SocketAddr::from(([127, 0, 0, 1], port)),
            private: None,
        }
    }

    #[test]
    fn each_hub_has_its_address_and_the_witness_sits_on_hub1() {
        let mut a = Addresses {
            node1: at(1),
            node2: at(2),
            hub: at(10),
            more_hubs: vec![at(11), at(12)],
        };
        assert_eq!(a.hub_count(), 3);
        let port = |e| a.of(e, Net::Public).port();
        assert_eq!(port(Endpoint::Hub(HubId(1))), 10);
        assert_eq!(port(Endpoint::Hub(HubId(3))), 12);
        assert_eq!(port(Endpoint::Witness), 10);
        assert!(a.check().is_ok());
        a.more_hubs = (0..8).map(|i| at(20 + i)).collect();
        let e = a.check().unwrap_err();
        assert!(e.contains("more_hubs") && e.contains("9 hubs"), "{e}");
    }
}
