//! Randomized knobs, in the manner of FoundationDB's knobs and BUGGIFY: a swarm seed draws the
//! cluster's timings, log size, lost-log resilience depth, dial limits, dumpster limits and
//! database flush cadence, each left at its default half the time so that the defaults keep
//! most of the coverage. Every drawn set passes [`ClusterConfig::validate`] — in particular its
//! shortest possible failover is at least 10 s, so the failover window stays the fixed
//! invariant it is — and its longest automatic failover stays under a minute.
//!
//! The workload is then bounded by what the drawn knobs can carry: an isolated active keeps
//! writing for up to a peer lease (or a detection period) before it stops, and what it writes
//! then must fit in lost-log resilience, or the old stream can no longer be rolled back — CCR
//! as shipped needs an administrator for that, and the swarm is about the automatic envelope.

use ccr_core::cluster::config::{ClusterConfig, DialLimits, Os};
use ccr_core::cluster::hub::HubConfig;
use rand::rngs::StdRng;
use rand::Rng;

use crate::scenario::Scenario;

/// Log sizes a seed may draw: Exchange 2007's 1 MB down to 64 KB.
const LOG_SIZES: [u64; 5] = [64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20];

/// Draws the knobs into `scenario`'s cluster and hub settings and bounds its workload.
pub fn draw(r: &mut StdRng, scenario: &mut Scenario) {
    let mut c = ClusterConfig::default();
    // Buggify: each knob is drawn only half the time.
    let flip = |r: &mut StdRng| r.random_bool(0.5);
    if flip(r) {
        // Windows Server 2008's profile, or any heartbeat in a wider range.
        if r.random_bool(0.5) {
            c.os = Os::Windows2008;
        } else {
            c.heartbeat_interval_ms = Some(r.random_range(5..=20) * 100);
            c.heartbeat_threshold = Some(r.random_range(3..=8));
        }
    }
    let hb = c.heartbeat_interval_ms();
    if flip(r) {
        c.max_drift_ppm = r.random_range(0..=50_000);
    }
    if flip(r) {
        c.lease_margin_ms = r.random_range(50..=1_000);
    }
    // Half the seeds that draw leases draw a peer lease longer than the survivor's fastest
    // way to a mount, so that the takeover guard (not the failover's own slowness) is what
    // keeps a still-leased old owner from serving beside the new one. (With Windows Server
    // 2003's slower detection the default lease is already over when the survivor could
    // mount: only these seeds test the guard.)
    let mut long_lease = false;
    if flip(r) || c.peer_lease_ms <= c.witness_prefetch_ms + hb {
        c.witness_prefetch_ms = r.random_range(hb..=3 * hb);
        c.peer_lease_ms = c.witness_prefetch_ms + hb + r.random_range(hb..=8 * hb);
        long_lease = r.random_bool(0.5);
    }
    if flip(r) || c.witness_lease_ms <= hb {
        c.witness_lease_ms = r.random_range(hb + 1..=10 * hb);
    }
    if flip(r) {
        c.passive_arbitration_delay_ms = r.random_range(500..=5_000);
    }
    if flip(r) {
        c.lost_log_copy_timeout_ms = r.random_range(1_000..=15_000);
    }
    if flip(r) {
        c.online_delay_ms = r.random_range(1_000..=15_000);
    }
    if flip(r) {
        c.store_restart_ms = r.random_range(2_000..=30_000);
    }
    if flip(r) {
        // Idle log roll: off (RTM) in a quarter of the draws, else from 10 s to 10 minutes.
        c.idle_log_roll_ms = Some(if r.random_bool(0.25) {
            0
        } else {
            r.random_range(10..=600) * 1_000
        });
    }
    if flip(r) {
        // The restart policy, from "fail over at the first failure" to more patient than
        // either Windows profile.
        c.restart_threshold = Some(r.random_range(0..=5));
        c.restart_period_ms = Some(r.random_range(1..=30) * 60_000);
    }
    if flip(r) {
        c.copy_timeout_ms = r.random_range(1_000..=10_000);
        c.copy_retry_ms = r.random_range(200..=5_000);
    }
    if flip(r) {
        c.move_timeout_ms = r.random_range(5_000..=60_000);
    }
    if flip(r) {
        c.db_flush_every = r.random_range(1..=16);
    }
    if flip(r) {
        c.storage.log_size = LOG_SIZES[r.random_range(0..LOG_SIZES.len())];
    }
    if flip(r) {
        c.storage.llr_depth = r.random_range(4..=16);
    }
    if flip(r) {
        let good = r.random_range(1..=6);
        c.dial_limits = DialLimits {
            lossless: 0,
            good_availability: good,
            best_availability: r.random_range(good..=12),
        };
    }
    let mut hub = HubConfig::default();
    if flip(r) {
        hub.dumpster_max_bytes = r.random_range(256 << 10..=32 << 20);
    }
    if flip(r) {
        // Anywhere from half a minute to the default week, evenly on a log scale.
        let exp = r.random_range(0.0..1.0f64);
        hub.dumpster_max_age_ms =
            (30_000.0 * (hub.dumpster_max_age_ms as f64 / 30_000.0).powf(exp)) as u64;
    }
    if flip(r) {
        hub.redelivery_timeout_ms = r.random_range(500..=5_000);
    }
    // The article's lower bound: a detection, an arbitration and bringing resources online
    // can never add up to less than 10 s.
    let (shortest, _) = c.failover_bounds_ms();
    if shortest < 10_000 {
        c.online_delay_ms += 10_000 - shortest;
    }
    if long_lease {
        let (shortest, _) = c.failover_bounds_ms();
        c.peer_lease_ms = c.peer_lease_ms.max(shortest + r.random_range(0..=10_000));
    }
    // However long the leases, an automatic failover ends within a minute.
    while c.failover_bounds_ms().1 > 60_000 && c.peer_lease_ms > c.witness_prefetch_ms + hb + 1 {
        c.peer_lease_ms = (c.peer_lease_ms - 500).max(c.witness_prefetch_ms + hb + 1);
    }
    debug_assert!(c.validate().is_ok(), "{:?}", c.validate());
    c.mount_dial = scenario.cluster.mount_dial;
    scenario.cluster = c;
    scenario.hub = hub;

    let w = &mut scenario.workload;
    let max = max_bytes_per_s(&scenario.cluster);
    w.message_size = w.message_size.min(max.max(1_000.0) as u32);
    let rate = w.messages_per_s * f64::from(w.message_size);
    if rate > max {
        w.messages_per_s = (max / f64::from(w.message_size)).floor().max(1.0);
    }
}

/// The stream an isolated active may write, at most, while it still believes it serves,
/// with lost-log resilience to spare: `log_size · llr_depth · 0.8` over the longer of its
/// peer lease and the survivor's detection and arbitration.
pub fn max_bytes_per_s(c: &ClusterConfig) -> f64 {
    let window_ms = c
        .peer_lease_ms
        .max(c.peer_down_after_ms() + c.passive_arbitration_delay_ms);
    c.storage.log_size as f64 * f64::from(c.storage.llr_depth) * 0.8 / (window_ms as f64 / 1000.0)
}

/// The knobs of `scenario` that differ from the defaults, as `name=value`.
pub fn describe(scenario: &Scenario) -> Vec<String> {
    let mut out = Vec::new();
    let (c, d) = (&scenario.cluster, ClusterConfig::default());
    let mut knob = |name: &str, value: u64, default: u64| {
        if value != default {
            out.push(format!("{name}={value}"));
        }
    };
    knob(
        "heartbeat_interval_ms",
        c.heartbeat_interval_ms(),
        d.heartbeat_interval_ms(),
    );
    knob(
        "heartbeat_threshold",
        c.heartbeat_threshold().into(),
        d.heartbeat_threshold().into(),
    );
    knob("max_drift_ppm", c.max_drift_ppm, d.max_drift_ppm);
    knob("lease_margin_ms", c.lease_margin_ms, d.lease_margin_ms);
    knob(
        "witness_prefetch_ms",
        c.witness_prefetch_ms,
        d.witness_prefetch_ms,
    );
    knob("peer_lease_ms", c.peer_lease_ms, d.peer_lease_ms);
    knob("witness_lease_ms", c.witness_lease_ms, d.witness_lease_ms);
    knob(
        "passive_arbitration_delay_ms",
        c.passive_arbitration_delay_ms,
        d.passive_arbitration_delay_ms,
    );
    knob(
        "lost_log_copy_timeout_ms",
        c.lost_log_copy_timeout_ms,
        d.lost_log_copy_timeout_ms,
    );
    knob("online_delay_ms", c.online_delay_ms, d.online_delay_ms);
    knob("store_restart_ms", c.store_restart_ms, d.store_restart_ms);
    knob(
        "idle_log_roll_ms",
        c.idle_log_roll().unwrap_or(0),
        d.idle_log_roll().unwrap_or(0),
    );
    let ((t, p), (dt, dp)) = (c.restart_policy(), d.restart_policy());
    knob("restart_threshold", t.into(), dt.into());
    knob("restart_period_ms", p, dp);
    knob("copy_timeout_ms", c.copy_timeout_ms, d.copy_timeout_ms);
    knob("copy_retry_ms", c.copy_retry_ms, d.copy_retry_ms);
    knob("copy_window", c.copy_window.into(), d.copy_window.into());
    knob(
        "forced_database_mount_after_ms",
        c.forced_database_mount_after_ms.unwrap_or(0),
        d.forced_database_mount_after_ms.unwrap_or(0),
    );
    knob("move_timeout_ms", c.move_timeout_ms, d.move_timeout_ms);
    knob(
        "db_flush_every",
        c.db_flush_every.into(),
        d.db_flush_every.into(),
    );
    knob("storage.log_size", c.storage.log_size, d.storage.log_size);
    knob(
        "storage.llr_depth",
        c.storage.llr_depth.into(),
        d.storage.llr_depth.into(),
    );
    let (l, dl) = (c.dial_limits, d.dial_limits);
    knob(
        "dial_limits.good_availability",
        l.good_availability.into(),
        dl.good_availability.into(),
    );
    knob(
        "dial_limits.best_availability",
        l.best_availability.into(),
        dl.best_availability.into(),
    );
    let (h, dh) = (&scenario.hub, HubConfig::default());
    knob(
        "hub.dumpster_max_bytes",
        h.dumpster_max_bytes,
        dh.dumpster_max_bytes,
    );
    knob(
        "hub.dumpster_max_age_ms",
        h.dumpster_max_age_ms,
        dh.dumpster_max_age_ms,
    );
    knob(
        "hub.redelivery_timeout_ms",
        h.redelivery_timeout_ms,
        dh.redelivery_timeout_ms,
    );
    knob(
        "hub.max_concurrent_deliveries",
        h.max_concurrent_deliveries.into(),
        dh.max_concurrent_deliveries.into(),
    );
    if h.redelivery != dh.redelivery {
        out.push("hub.redelivery=time-window".into());
    }
    if c.os != d.os {
        out.insert(
            0,
            format!(
                "os={}",
                if c.os == Os::Windows2008 {
                    "windows-2008"
                } else {
                    "windows-2003"
                }
            ),
        );
    }
    out
}
