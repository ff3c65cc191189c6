//! The adapter's clock, injectable so that tests can run the poller on
//! simulated time.
//!
//! Why not `Instant::now()` deep in the poller: cadences are hours long,
//! rate-limit windows a day; tests must run them in seconds, and the
//! decisions (`schedule`, `rate_window`, `breaker`, `silence`) take `now`
//! as an argument so they can be tested with no clock at all.

use std::future::Future;
use std::pin::Pin;

use tokio::time::{Duration, Instant};

/// Longest single sleep, in real ms; the poller re-reads the clock after it.
pub const SLEEP_REAL_MS_MAX: u64 = 60_000;

/// A source of "now" in ms since the Unix epoch, and a way to wait for a
/// later "now".
pub trait Clock: Send + Sync + 'static {
    /// Now, ms since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// Completes at (or after) `at_ms` on this clock, or after at most
    /// [`SLEEP_REAL_MS_MAX`] real ms.
    fn sleep_until(&self, at_ms: i64) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    fn sleep_until(&self, at_ms: i64) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let wait = (at_ms - self.now_ms()).clamp(0, SLEEP_REAL_MS_MAX as i64) as u64;
        Box::pin(tokio::time::sleep(Duration::from_millis(wait)))
    }
}

/// Simulated time: starts at `start_ms` and runs `speedup` times faster
/// than tokio's clock (which a test may pause). Used against the carrier
/// simulator, whose clock runs at the same speed.
#[derive(Debug, Clone, Copy)]
pub struct ScaledClock {
    origin: Instant,
    start_ms: i64,
    speedup: f64,
}

impl ScaledClock {
    /// A clock reading `start_ms` now, `speedup` times faster than real
    /// time (non-positive or non-finite speedups read as 1).
    pub fn new(start_ms: i64, speedup: f64) -> ScaledClock {
        let speedup = if speedup.is_finite() && speedup > 0.0 {
            speedup
        } else {
            1.0
        };
        ScaledClock {
            origin: Instant::now(),
            start_ms,
            speedup,
        }
    }
}

impl Clock for ScaledClock {
    fn now_ms(&self) -> i64 {
        self.start_ms + (self.origin.elapsed().as_secs_f64() * 1000.0 * self.speedup) as i64
    }

    fn sleep_until(&self, at_ms: i64) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let sim_wait_ms = (at_ms - self.now_ms()).max(0) as f64;
        let real_ms = (sim_wait_ms / self.speedup).min(SLEEP_REAL_MS_MAX as f64);
        // Round up so that the wake-up is never before `at_ms`.
        Box::pin(tokio::time::sleep(Duration::from_micros(
            (real_ms * 1000.0).ceil() as u64,
        )))
    }
}
