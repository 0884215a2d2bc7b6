//! An emulated WAN circuit between a lab machine and the lab's bridge, for kernels without
//! `tc netem` (this machine's, like many CI kernels, has none). Two TAP devices carry the
//! machine's Ethernet frames — one on the bridge, one inside the machine's namespace — and
//! this process forwards between them: each direction releases frames no faster than the
//! link's bandwidth, holds each for the link's one-way delay, and drops what a full queue
//! cannot take, as the router in front of a slow circuit does. TCP over it sees a real round
//! trip and a real bottleneck.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tun_rs::{DeviceBuilder, Layer, SyncDevice};

/// What the router in front of the circuit can hold: a few megabytes, so that TCP finds the
/// bandwidth by delay rather than by losing packets at once.
const QUEUE_BYTES: u64 = 4 << 20;

/// A running circuit. Its threads forward until either device is deleted (the lab deletes
/// both when it is dropped: the near one by name, the far one with its namespace).
pub struct WanLink {
    _devices: [Arc<SyncDevice>; 2],
}

impl WanLink {
    /// Makes TAP devices `near` and `far` in this network namespace and forwards between
    /// them at `mbit` Mbit/s with `delay` each way. The caller puts `far` where it belongs.
    pub fn start(near: &str, far: &str, mbit: u32, delay: Duration) -> Result<WanLink, String> {
        let tap = |name: &str| {
            DeviceBuilder::new()
                .name(name)
                .layer(Layer::L2)
                .build_sync()
                .map(Arc::new)
                .map_err(|e| format!("TAP device {name}: {e}"))
        };
        let devices = [tap(near)?, tap(far)?];
        let bytes_per_s = u64::from(mbit) * 1_000_000 / 8;
        for (from, to) in [(0, 1), (1, 0)] {
            let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
            let (from, to) = (devices[from].clone(), devices[to].clone());
            std::thread::spawn(move || shape(&from, &tx, bytes_per_s, delay));
            std::thread::spawn(move || release(&to, &rx));
        }
        Ok(WanLink { _devices: devices })
    }
}

/// Reads frames as the sender puts them on the wire and stamps each with when it leaves the
/// far end: after the frames queued before it have been sent, its own transmission time, and
/// the delay.
fn shape(
    from: &SyncDevice,
    tx: &mpsc::Sender<(Instant, Vec<u8>)>,
    bytes_per_s: u64,
    delay: Duration,
) {
    let mut buf = vec![0u8; 65_536];
    let mut line_free = Instant::now();
    while let Ok(n) = from.recv(&mut buf) {
        let now = Instant::now();
        let start = line_free.max(now);
        if (start - now).as_secs_f64() * bytes_per_s as f64 > QUEUE_BYTES as f64 {
            continue; // the queue is full: dropped, as a router would
        }
        line_free = start + Duration::from_secs_f64(n as f64 / bytes_per_s as f64);
        if tx.send((line_free + delay, buf[..n].to_vec())).is_err() {
            return;
        }
    }
}

/// Delivers frames at the far end when they arrive there (the stamps never decrease).
fn release(to: &SyncDevice, rx: &mpsc::Receiver<(Instant, Vec<u8>)>) {
    while let Ok((at, frame)) = rx.recv() {
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
        if to.send(&frame).is_err() {
            return;
        }
    }
}
