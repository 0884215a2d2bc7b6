//! `ccr client` and the admin commands: talking to a running cluster.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::frame::{self, Key};
use crate::tls::Links;
use crate::wire::{AdminReply, AdminRequest, Wire};

/// Sends `req` to a node's admin endpoint and returns its answer.
pub async fn admin(
    addr: SocketAddr,
    key: &Key,
    tls: &Links,
    req: AdminRequest,
) -> Result<AdminReply, String> {
    let work = async {
        let mut s = tls
            .connect(addr)
            .await
            .map_err(|e| format!("the admin endpoint: {e}"))?;
        frame::write(&mut s, key, &Wire::Admin(req))
            .await
            .map_err(|e| e.to_string())?;
        match frame::read::<_, Wire>(&mut s, key).await {
            Ok(Wire::AdminReply(r)) => Ok(r),
            Ok(_) => Err("unexpected answer".to_string()),
            Err(e) if tls.is_tls() => Err(format!("{addr}: {e} (is the cluster key right?)")),
            Err(e) => Err(format!(
                "{addr}: {e} (is the cluster key right? does the node run TLS — then give its \
                 config, or --tls-ca, --tls-cert and --tls-key?)"
            )),
        }
    };
    tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .map_err(|_| format!("{addr}: no answer within 5 s"))?
}

pub struct LoadReport {
    pub sent: u64,
    pub acked: Vec<u64>,
    /// For each acknowledged message, in id order, the digests of the body sent.
    pub receipts: Vec<crate::mail::Receipt>,
}

/// A client's stream of mail: `rate` messages of `size` bytes (bodies included) a second for `duration`, then up
/// to `grace` for the last acknowledgements.
#[derive(Debug, Clone, Copy)]
pub struct Stream {
    pub rate: f64,
    pub duration: Duration,
    pub size: u32,
    pub grace: Duration,
}

/// Submits `stream` spread over `hubs` in turn (message `i` to hub `i mod n`, as mail from
/// many senders reaches a site's hubs), ids from `first_id` on. A hub that cannot be reached
/// is skipped for the next one, and its connection tried again at its next turn.
pub async fn load(
    hubs: &[SocketAddr],
    key: &Key,
    tls: &Links,
    first_id: u64,
    stream: Stream,
) -> Result<LoadReport, String> {
    let Stream {
        rate,
        duration,
        size,
        grace,
    } = stream;
    if hubs.is_empty() {
        return Err("no hub to submit to".to_string());
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let start = Instant::now();
    let every = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut sent = 0u64;
    let mut acked = Vec::new();
    let mut receipts = std::collections::BTreeMap::new();
    let mut conns: Vec<Option<tokio::io::WriteHalf<crate::tls::Conn>>> =
        hubs.iter().map(|_| None).collect();
    let mut turn = 0usize;
    let mut next = start;
    while start.elapsed() < duration {
        let id = first_id + sent;
        let body = crate::mail::body(id, size);
        for _ in 0..hubs.len() {
            let h = turn % hubs.len();
            turn += 1;
            if conns[h].is_none() {
                if let Ok(s) = tls.connect(hubs[h]).await {
                    let (mut r, w) = tokio::io::split(s);
                    let tx = tx.clone();
                    let key = key.clone();
                    tokio::spawn(async move {
                        while let Ok(Wire::Acked { id }) =
                            frame::read::<_, Wire>(&mut r, &key).await
                        {
                            let _ = tx.send(id);
                        }
                    });
                    conns[h] = Some(w);
                }
            }
            let Some(w) = conns[h].as_mut() else { continue };
            let submit = Wire::Submit {
                id,
                size,
                body: body.clone(),
            };
            if frame::write(w, key, &submit).await.is_ok() {
                receipts.insert(id, crate::mail::Receipt::of(id, size, &body));
                sent += 1;
                break;
            }
            conns[h] = None;
        }
        while let Ok(id) = rx.try_recv() {
            acked.push(id);
        }
        next += every;
        tokio::time::sleep_until(next.into()).await;
    }
    let deadline = Instant::now() + grace;
    while (acked.len() as u64) < sent && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            Ok(Some(id)) => acked.push(id),
            Ok(None) => break,
            Err(_) => {}
        }
    }
    acked.sort();
    acked.dedup();
    let receipts = acked
        .iter()
        .filter_map(|id| receipts.get(id).copied())
        .collect();
    Ok(LoadReport {
        sent,
        acked,
        receipts,
    })
}
