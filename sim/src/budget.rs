//! A run's budget: it ends with its own outcome, `stuck`, when it spends more simulated events
//! than any healthy run could (a task that wakes itself without end), makes no progress in
//! virtual time across a long burst of events (a busy loop), or takes more wall time than
//! allowed. A sweep then always ends, and the stuck run is reported, replayed and shrunk like
//! any failure.
//!
//! The wall-clock limit reads the OS clock, but only to decide whether to give up on a run
//! that is stuck anyway; no passing run's behaviour depends on it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The limits, set once per process (by `ccr-sim`'s flags) and read by every run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Simulated events (task wakes) allowed per simulated second of the scenario (its
    /// duration plus the liveness phase). A healthy run uses a few hundred.
    pub events_per_sim_second: u64,
    /// Events in a row allowed without virtual time moving on. Generous: a process resumed
    /// after a long pause takes its whole backlog in one instant (the hub resends everything
    /// unconfirmed every two seconds, so that can be millions of messages).
    pub events_without_progress: u64,
    /// Events allowed in any one simulated second (as generous, for the same reason).
    pub events_per_window: u64,
    /// Wall time allowed for one run.
    pub wall_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            events_per_sim_second: 10_000,
            events_without_progress: 5_000_000,
            events_per_window: 5_000_000,
            wall_secs: 600,
        }
    }
}

static LIMITS: Mutex<Option<Limits>> = Mutex::new(None);

/// Sets the limits of every run that starts from now on.
pub fn set_limits(limits: Limits) {
    *LIMITS.lock().expect("limits") = Some(limits);
}

pub fn limits() -> Limits {
    LIMITS.lock().expect("limits").unwrap_or_default()
}

/// The machine's monotonic clock in ms, read past madsim: madsim replaces libc's
/// `clock_gettime` inside a simulation (so `std::time::Instant` there is virtual time), and
/// rustix asks the kernel itself.
fn wall_ms() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1000 + t.tv_nsec as u64 / 1_000_000
}

/// What a stuck run unwinds with (not a panic: no panic message, no hook).
#[derive(Debug)]
pub struct Stuck;

/// Counts one run's events against its limits.
pub struct Budget {
    max_events: u64,
    without_progress: u64,
    per_window: u64,
    wall_ms: u64,
    /// Wall-clock ms when the run began (see [`wall_ms`]).
    started_ms: u64,
    events: AtomicU64,
    /// (virtual ms, events counted then) when virtual time last moved, and (virtual second,
    /// events counted when it began).
    progress: Mutex<((u64, u64), (u64, u64))>,
}

impl Budget {
    pub fn new(sim_seconds: u64, limits: Limits) -> Budget {
        Budget {
            max_events: limits
                .events_per_sim_second
                .saturating_mul(sim_seconds.max(1)),
            without_progress: limits.events_without_progress,
            per_window: limits.events_per_window,
            wall_ms: limits.wall_secs.saturating_mul(1000),
            started_ms: wall_ms(),
            events: AtomicU64::new(0),
            progress: Mutex::new(((0, 0), (0, 0))),
        }
    }

    /// Counts an event at virtual time `now_ms`; says why the run is over budget, if it is.
    pub fn spend(&self, now_ms: u64) -> Option<String> {
        let n = self.events.fetch_add(1, Ordering::Relaxed) + 1;
        if n > self.max_events {
            return Some(format!(
                "{n} simulated events, past the budget of {} for this scenario",
                self.max_events
            ));
        }
        {
            let (moved, window) = &mut *self.progress.lock().expect("budget");
            if moved.0 != now_ms {
                *moved = (now_ms, n);
            } else if n - moved.1 > self.without_progress {
                return Some(format!(
                    "{} events without virtual time moving past {:.3} s (a busy loop)",
                    n - moved.1,
                    now_ms as f64 / 1000.0
                ));
            }
            if window.0 != now_ms / 1000 {
                *window = (now_ms / 1000, n);
            } else if n - window.1 > self.per_window {
                return Some(format!(
                    "{} events within the simulated second from {} s (a task waking itself in a loop)",
                    n - window.1,
                    now_ms / 1000
                ));
            }
        }
        if n.is_multiple_of(4096) && wall_ms().saturating_sub(self.started_ms) > self.wall_ms {
            return Some(format!(
                "more than {} s of wall time (at {:.3} s of virtual time)",
                self.wall_ms / 1000,
                now_ms as f64 / 1000.0
            ));
        }
        None
    }
}
