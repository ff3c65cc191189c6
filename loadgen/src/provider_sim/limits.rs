//! How the simulator enforces and audits rate limits.
//!
//! Enforcement is a token bucket per sender (refused sends get 429 and a
//! `Retry-After`). The audit is independent of it: a sliding window over
//! the instants of accepted sends, which counts a violation whenever more
//! were accepted in any window than the limit allows. If enforcement were
//! ever wrong (or bypassed), the audit would say so.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::config::RateLimit;

/// Most instants an exact audit window keeps; larger limits are audited
/// with one-second slots instead.
const EXACT_AUDIT_ENTRIES_MAX: usize = 100_000;
/// The exact audit window as a share of one refill period (see
/// [`Audit::new`]).
const AUDIT_WINDOW_SHARE: f64 = 0.999;

/// A token bucket on the simulator's monotonic clock.
#[derive(Debug)]
pub(crate) struct Bucket {
    limit: RateLimit,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub(crate) fn new(limit: RateLimit, now: Instant) -> Bucket {
        Bucket {
            limit,
            tokens: f64::from(limit.burst.max(1)),
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        let cap = f64::from(self.limit.burst.max(1));
        self.tokens = (self.tokens + dt * self.limit.per_second).min(cap);
    }

    /// Takes a token, or says how long until one is available.
    pub(crate) fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let missing = 1.0 - self.tokens;
            let per_second = self.limit.per_second.max(f64::MIN_POSITIVE);
            Err(Duration::from_secs_f64(missing / per_second))
        }
    }
}

/// An independent check that accepted sends stayed within the limit over
/// every window.
#[derive(Debug)]
pub(crate) enum Audit {
    /// Every accepted instant in the last `window`.
    Exact {
        window: Duration,
        allowed: usize,
        instants: VecDeque<Instant>,
    },
    /// Counts per one-second slot over the last 60 s (a minute quota).
    Slotted {
        allowed: u64,
        origin: Instant,
        slots: VecDeque<(u64, u64)>,
    },
}

impl Audit {
    pub(crate) fn new(limit: RateLimit, now: Instant) -> Audit {
        // Within any half-open window [t, t + W) a bucket lets through at
        // most burst + floor(rate * W) sends. W is just under one refill
        // period (or one second), so a sender going even slightly too fast
        // is caught.
        let period_s = if limit.per_second >= 1.0 {
            1.0
        } else {
            1.0 / limit.per_second.max(1e-6)
        };
        let window_s = period_s * AUDIT_WINDOW_SHARE;
        let allowed = limit.burst.max(1) as usize + (limit.per_second * window_s).floor() as usize;
        if allowed <= EXACT_AUDIT_ENTRIES_MAX {
            Audit::Exact {
                window: Duration::from_secs_f64(window_s),
                allowed,
                instants: VecDeque::with_capacity(allowed + 1),
            }
        } else {
            Audit::Slotted {
                allowed: (f64::from(limit.burst.max(1)) + limit.per_second * 61.0) as u64,
                origin: now,
                slots: VecDeque::with_capacity(61),
            }
        }
    }

    /// Records an accepted send; true if it exceeded the limit.
    pub(crate) fn record(&mut self, now: Instant) -> bool {
        match self {
            Audit::Exact {
                window,
                allowed,
                instants,
            } => {
                while let Some(front) = instants.front() {
                    if now.saturating_duration_since(*front) >= *window {
                        instants.pop_front();
                    } else {
                        break;
                    }
                }
                instants.push_back(now);
                let over = instants.len() > *allowed;
                if instants.len() > *allowed + 1 {
                    instants.pop_front();
                }
                over
            }
            Audit::Slotted {
                allowed,
                origin,
                slots,
            } => {
                let second = now.saturating_duration_since(*origin).as_secs();
                while let Some(&(s, _)) = slots.front() {
                    if s + 60 < second {
                        slots.pop_front();
                    } else {
                        break;
                    }
                }
                match slots.back_mut() {
                    Some((s, n)) if *s == second => *n += 1,
                    _ => slots.push_back((second, 1)),
                }
                slots.iter().map(|(_, n)| n).sum::<u64>() > *allowed
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refuses_the_second_send_within_a_second() {
        let t0 = Instant::now();
        let limit = RateLimit {
            per_second: 1.0,
            burst: 1,
        };
        let mut b = Bucket::new(limit, t0);
        assert!(b.take(t0).is_ok());
        let wait = b.take(t0 + Duration::from_millis(400)).unwrap_err();
        assert!(wait > Duration::from_millis(500) && wait <= Duration::from_millis(600));
        assert!(b.take(t0 + Duration::from_millis(1000)).is_ok());
    }

    #[test]
    fn audit_flags_a_send_over_the_window_limit() {
        let t0 = Instant::now();
        let limit = RateLimit {
            per_second: 1.0,
            burst: 1,
        };
        let mut a = Audit::new(limit, t0);
        assert!(!a.record(t0));
        assert!(a.record(t0 + Duration::from_millis(500)));
        let mut ok = Audit::new(limit, t0);
        for i in 0..10 {
            assert!(!ok.record(t0 + Duration::from_millis(1000 * i)));
        }
    }
}
