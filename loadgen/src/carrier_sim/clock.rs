//! The simulator's clock: simulated epoch milliseconds that run `speedup`
//! times faster than tokio's monotonic clock.
//!
//! Why tokio's clock: a test that pauses tokio time moves the simulator
//! with it, and both sides of a rate-limit check read the same clock.

use tokio::time::{Duration, Instant};

/// Simulated time.
#[derive(Clone, Copy, Debug)]
pub struct SimClock {
    origin: Instant,
    start_ms: i64,
    speedup: f64,
}

impl SimClock {
    /// A clock reading `start_ms` now and running `speedup` times faster
    /// than real time (non-positive or non-finite speedups read as 1).
    pub fn new(start_ms: i64, speedup: f64) -> SimClock {
        let speedup = if speedup.is_finite() && speedup > 0.0 {
            speedup
        } else {
            1.0
        };
        SimClock {
            origin: Instant::now(),
            start_ms,
            speedup,
        }
    }

    /// Simulated ms elapsed since start, fractional.
    pub fn elapsed_sim_ms(&self) -> f64 {
        self.origin.elapsed().as_secs_f64() * 1000.0 * self.speedup
    }

    /// The simulated time now, ms since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        self.start_ms + self.elapsed_sim_ms() as i64
    }

    /// The real duration of `sim_ms` simulated milliseconds.
    pub fn real(&self, sim_ms: f64) -> Duration {
        Duration::from_secs_f64((sim_ms / self.speedup / 1000.0).max(0.0))
    }

    /// The speed-up factor.
    pub fn speedup(&self) -> f64 {
        self.speedup
    }
}
