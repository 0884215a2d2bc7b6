//! `ccr client` and the admin commands: talking to a running cluster.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::frame::{self, Key};
use crate::wire::{AdminReply, AdminRequest, Wire};

/// Sends `req` to a node's admin endpoint and returns its answer.
pub async fn admin(addr: SocketAddr, key: &Key, req: AdminRequest) -> Result<AdminReply, String> {
    let work = async {
        let mut s = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot reach the admin endpoint {addr}: {e}"))?;
        frame::write(&mut s, key, &Wire::Admin(req))
            .await
            .map_err(|e| e.to_string())?;
        match frame::read::<_, Wire>(&mut s, key).await {
            Ok(Wire::AdminReply(r)) => Ok(r),
            Ok(_) => Err("unexpected answer".to_string()),
            Err(e) => Err(format!("{addr}: {e} (is the cluster key right?)")),
        }
    };
    tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .map_err(|_| format!("{addr}: no answer within 5 s"))?
}

pub struct LoadReport {
    pub sent: u64,
    pub acked: Vec<u64>,
}

/// Submits messages at `rate` per second for `duration`, then waits up to `grace` for the
/// last acknowledgements. Reconnects when the hub connection drops.
pub async fn load(
    hub: SocketAddr,
    key: &Key,
    first_id: u64,
    rate: f64,
    duration: Duration,
    size: u32,
    grace: Duration,
) -> Result<LoadReport, String> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let start = Instant::now();
    let every = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut sent = 0u64;
    let mut acked = Vec::new();
    let mut conn: Option<tokio::net::tcp::OwnedWriteHalf> = None;
    let mut next = start;
    while start.elapsed() < duration {
        if conn.is_none() {
            if let Ok(s) = TcpStream::connect(hub).await {
                let (mut r, w) = s.into_split();
                let tx = tx.clone();
                let key = key.clone();
                tokio::spawn(async move {
                    while let Ok(Wire::Acked { id }) = frame::read::<_, Wire>(&mut r, &key).await {
                        let _ = tx.send(id);
                    }
                });
                conn = Some(w);
            }
        }
        if let Some(w) = conn.as_mut() {
            let id = first_id + sent;
            if frame::write(w, key, &Wire::Submit { id, size })
                .await
                .is_ok()
            {
                sent += 1;
            } else {
                conn = None;
            }
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
    Ok(LoadReport { sent, acked })
}
