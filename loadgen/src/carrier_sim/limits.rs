//! Carrier rate limits as token buckets on simulated time.
//!
//! A bucket of capacity `requests` refilled at `requests / window_ms` lets
//! through every request stream that keeps to `requests` per any sliding
//! window of `window_ms`, and refuses any that exceeds it by a whole
//! request, so a poller that respects the sliding window never sees a 429
//! and one that does not is caught.

use super::config::RateWindow;

/// Tolerance on a bucket's level, in tokens: floating-point refill must
/// not turn an exactly-on-time request into a violation.
const TOKEN_EPSILON: f64 = 1e-6;

#[derive(Debug, Clone)]
struct Bucket {
    window: RateWindow,
    tokens: f64,
    at_sim_ms: f64,
}

impl Bucket {
    fn refill(&mut self, now_sim_ms: f64) {
        let capacity = f64::from(self.window.requests.max(1));
        let rate = capacity / (self.window.window_ms.max(1) as f64);
        if now_sim_ms > self.at_sim_ms {
            self.tokens = (self.tokens + (now_sim_ms - self.at_sim_ms) * rate).min(capacity);
            self.at_sim_ms = now_sim_ms;
        }
    }

    /// Simulated ms until one token is there (0 if there is one).
    fn wait_ms(&self) -> f64 {
        if self.tokens >= 1.0 - TOKEN_EPSILON {
            return 0.0;
        }
        let capacity = f64::from(self.window.requests.max(1));
        let rate = capacity / (self.window.window_ms.max(1) as f64);
        (1.0 - self.tokens) / rate
    }
}

/// Every limit of one carrier: a request passes only if each bucket has a
/// token.
#[derive(Debug, Clone)]
pub(crate) struct CarrierLimiter {
    buckets: Vec<Bucket>,
}

impl CarrierLimiter {
    pub(crate) fn new(windows: &[RateWindow]) -> CarrierLimiter {
        CarrierLimiter {
            buckets: windows
                .iter()
                .map(|w| Bucket {
                    window: *w,
                    tokens: f64::from(w.requests.max(1)),
                    at_sim_ms: 0.0,
                })
                .collect(),
        }
    }

    /// Takes a token from every bucket, or returns the simulated ms until
    /// all have one (taking nothing).
    pub(crate) fn take(&mut self, now_sim_ms: f64) -> Result<(), f64> {
        let mut wait = 0.0f64;
        for b in &mut self.buckets {
            b.refill(now_sim_ms);
            wait = wait.max(b.wait_ms());
        }
        if wait > 0.0 {
            return Err(wait);
        }
        for b in &mut self.buckets {
            b.tokens = (b.tokens - 1.0).max(0.0);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_window_pace_passes_and_faster_fails() {
        let w = RateWindow {
            requests: 3,
            window_ms: 1_000,
        };
        let mut l = CarrierLimiter::new(&[w]);
        // Three at once, then one per third of a window: always within.
        for t in [0.0, 0.0, 0.0, 1000.0, 1000.0, 1000.0] {
            assert!(l.take(t).is_ok(), "{t}");
        }
        // A fourth in the same window is refused with the wait.
        let wait = l.take(1000.0).unwrap_err();
        assert!(wait > 0.0 && wait <= 334.0, "{wait}");
        assert!(l.take(1000.0 + wait).is_ok());
    }

    #[test]
    fn every_bucket_must_pass() {
        let mut l = CarrierLimiter::new(&[
            RateWindow {
                requests: 1,
                window_ms: 5,
            },
            RateWindow {
                requests: 2,
                window_ms: 1_000,
            },
        ]);
        assert!(l.take(0.0).is_ok());
        assert!(l.take(5.0).is_ok());
        // The per-5 ms bucket is full again, the daily one is empty.
        assert!(l.take(10.0).is_err());
    }
}
