//! A circuit breaker per carrier: after `failures_max` consecutive
//! failures (5xx, timeouts, refused connections, unreadable answers) the
//! carrier is left alone for `cooldown_ms`, then one probe decides.
//!
//! Why: hammering a carrier that is down wastes the rate budget we will
//! need when it comes back and can get the account throttled. 429s are
//! not failures: they are honoured through `Retry-After` instead.

/// Breaker state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BreakerState {
    /// Requests flow.
    Closed,
    /// No requests until the time.
    Open {
        /// Adapter-clock ms when a probe may go.
        until_ms: i64,
    },
    /// One probe is (or may be) in flight.
    HalfOpen {
        /// Whether the probe has left.
        probing: bool,
    },
}

/// A circuit breaker.
#[derive(Debug, Clone)]
pub(crate) struct Breaker {
    failures_max: u32,
    cooldown_ms: i64,
    failures: u32,
    state: BreakerState,
}

impl Breaker {
    pub(crate) fn new(failures_max: u32, cooldown_ms: u64) -> Breaker {
        Breaker {
            failures_max: failures_max.max(1),
            cooldown_ms: cooldown_ms as i64,
            failures: 0,
            state: BreakerState::Closed,
        }
    }

    #[cfg(test)]
    pub(crate) fn state(&self) -> BreakerState {
        self.state
    }

    /// When a request may leave (`None`: a probe is out, wait for it).
    pub(crate) fn ready_at(&self, now_ms: i64) -> Option<i64> {
        match self.state {
            BreakerState::Closed => Some(now_ms),
            BreakerState::Open { until_ms } => Some(until_ms.max(now_ms)),
            BreakerState::HalfOpen { probing: false } => Some(now_ms),
            BreakerState::HalfOpen { probing: true } => None,
        }
    }

    /// A request leaves at `now_ms` (after `ready_at` said so).
    pub(crate) fn start(&mut self, now_ms: i64) {
        match self.state {
            BreakerState::Open { until_ms } if now_ms >= until_ms => {
                self.state = BreakerState::HalfOpen { probing: true };
            }
            BreakerState::HalfOpen { probing: false } => {
                self.state = BreakerState::HalfOpen { probing: true };
            }
            _ => {}
        }
    }

    /// A success; returns true if this closed an open breaker.
    pub(crate) fn success(&mut self) -> bool {
        let was_open = self.state != BreakerState::Closed;
        self.failures = 0;
        self.state = BreakerState::Closed;
        was_open
    }

    /// A failure; returns true if this opened the breaker.
    pub(crate) fn failure(&mut self, now_ms: i64) -> bool {
        self.failures = self.failures.saturating_add(1);
        let open = match self.state {
            BreakerState::HalfOpen { .. } => true,
            BreakerState::Closed => self.failures >= self.failures_max,
            BreakerState::Open { .. } => false,
        };
        if open {
            self.state = BreakerState::Open {
                until_ms: now_ms + self.cooldown_ms,
            };
        }
        open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_probes_after_cooldown() {
        let mut b = Breaker::new(3, 1_000);
        for _ in 0..2 {
            b.start(0);
            assert!(!b.failure(0));
        }
        b.start(0);
        assert!(!b.success(), "it was closed");
        for _ in 0..2 {
            b.start(0);
            assert!(!b.failure(0));
        }
        b.start(10);
        assert!(b.failure(10), "third consecutive failure opens");
        assert_eq!(b.ready_at(20), Some(1_010));
        b.start(1_010);
        assert_eq!(b.state(), BreakerState::HalfOpen { probing: true });
        assert_eq!(b.ready_at(1_011), None, "one probe at a time");
        assert!(b.failure(1_020), "a failed probe reopens");
        assert_eq!(b.ready_at(1_030), Some(2_020));
        b.start(2_020);
        assert!(b.success(), "a good probe closes it");
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
