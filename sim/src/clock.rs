//! Simulated machine clocks: virtual time, plus a per-machine drift (rate error) for the
//! monotonic reading, and an offset with jumps for the wall reading.

use std::sync::Mutex;
use std::time::Duration;

use ccr_core::cluster::Now;
use ccr_core::host::Clock;

/// Virtual milliseconds since it was made, read from madsim's time handle: the clock
/// `Instant::now()` reads too, without the intercepted libc `clock_gettime` that each such read
/// goes through (a thread-local lookup, two `Arc` clones and a `timespec` round trip — an
/// eighth of a simulation's time when every clock read paid it).
#[derive(Clone)]
pub struct Elapsed {
    handle: madsim::time::TimeHandle,
    from: Duration,
}

impl Elapsed {
    /// Starts counting now. Inside a madsim runtime only.
    pub fn start() -> Elapsed {
        let handle = madsim::time::TimeHandle::current();
        let from = handle.elapsed();
        Elapsed { handle, from }
    }

    pub fn ms(&self) -> u64 {
        (self.handle.elapsed() - self.from).as_millis() as u64
    }

    pub fn ns(&self) -> u64 {
        (self.handle.elapsed() - self.from).as_nanos() as u64
    }
}

pub struct SimClock {
    start: Elapsed,
    state: Mutex<ClockState>,
}

impl std::fmt::Debug for SimClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimClock")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct ClockState {
    /// Rate error in parts per million (positive: runs fast).
    drift_ppm: i64,
    /// Wall clock minus monotonic clock, in ms (skew and jumps).
    wall_offset_ms: i64,
    /// Where the current rate began: virtual ms elapsed and the monotonic reading then. A new
    /// drift changes the rate from now on; the monotonic clock never jumps.
    base_elapsed_ms: u64,
    base_mono_ms: u64,
}

impl SimClock {
    pub fn new() -> SimClock {
        SimClock {
            start: Elapsed::start(),
            state: Mutex::new(ClockState::default()),
        }
    }

    pub fn set_drift_ppm(&self, ppm: i64) {
        let elapsed = self.elapsed_ms();
        let mut s = self.state.lock().expect("clock");
        s.base_mono_ms = mono_at(&s, elapsed);
        s.base_elapsed_ms = elapsed;
        s.drift_ppm = ppm;
    }

    /// Moves the wall clock by `ms` (a skew or a jump); the monotonic clock is untouched.
    pub fn shift_wall(&self, ms: i64) {
        self.state.lock().expect("clock").wall_offset_ms += ms;
    }

    /// The drift (ppm) and the wall offset (ms) in force, for reports.
    pub fn error(&self) -> (i64, i64) {
        let s = *self.state.lock().expect("clock");
        (s.drift_ppm, s.wall_offset_ms)
    }

    fn elapsed_ms(&self) -> u64 {
        self.start.ms()
    }
}

impl Default for SimClock {
    fn default() -> Self {
        SimClock::new()
    }
}

fn scale(ms: u64, ppm: i64) -> u64 {
    (i128::from(ms) * i128::from(1_000_000 + ppm) / 1_000_000).max(0) as u64
}

fn mono_at(s: &ClockState, elapsed: u64) -> u64 {
    s.base_mono_ms + scale(elapsed.saturating_sub(s.base_elapsed_ms), s.drift_ppm)
}

impl Clock for SimClock {
    fn now(&self) -> Now {
        let s = *self.state.lock().expect("clock");
        let mono = mono_at(&s, self.elapsed_ms());
        Now {
            mono,
            wall: (mono as i64 + s.wall_offset_ms).max(0) as u64,
        }
    }

    fn until(&self, mono: u64) -> Duration {
        let s = *self.state.lock().expect("clock");
        let now = self.now().mono;
        let local = mono.saturating_sub(now);
        // Local milliseconds back to virtual ones, rounded up so a timer never fires early.
        let virt =
            (i128::from(local) * 1_000_000).div_euclid(i128::from(1_000_000 + s.drift_ppm)) + 1;
        Duration::from_millis(virt.max(0) as u64)
    }
}
