//! The poller's rate limiter: at most `requests` per sliding window,
//! counting a request from when it leaves until `window` after its answer.
//!
//! Why count from the answer: a carrier counts a request when it arrives,
//! which is somewhere between our send and our receipt of the answer. A
//! request may leave only if fewer than `requests` others are in flight or
//! were answered within the last window; then any window of the carrier's
//! clock sees at most `requests` arrivals, whatever the network latency.
//! (Proof sketch: if `requests + 1` arrived in one window, the last of
//! them to leave found the others in flight or answered after the window
//! began, so it would not have left.) A headroom widens every window to
//! absorb clock granularity.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// `requests` per `window_ms` of the adapter's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Requests allowed per window.
    pub requests: u32,
    /// The window, in ms.
    pub window_ms: u64,
}

#[derive(Debug, Clone)]
struct Window {
    requests: usize,
    window_ms: i64,
    /// Answer times of recent requests, oldest first (at most `requests`).
    answered: VecDeque<i64>,
}

/// Every limit of one carrier.
#[derive(Debug, Clone)]
pub(crate) struct RateWindows {
    windows: Vec<Window>,
    inflight: usize,
}

impl RateWindows {
    /// Limits widened by `headroom_percent` (0..=90).
    pub(crate) fn new(limits: &[RateLimit], headroom_percent: u8) -> RateWindows {
        let share = 100 - u64::from(headroom_percent.min(90));
        RateWindows {
            windows: limits
                .iter()
                .map(|l| Window {
                    requests: l.requests.max(1) as usize,
                    window_ms: (l.window_ms.saturating_mul(100).div_ceil(share)) as i64,
                    answered: VecDeque::new(),
                })
                .collect(),
            inflight: 0,
        }
    }

    fn prune(&mut self, now_ms: i64) {
        for w in &mut self.windows {
            while w
                .answered
                .front()
                .is_some_and(|t| *t <= now_ms - w.window_ms)
            {
                w.answered.pop_front();
            }
        }
    }

    /// When a request may leave: `Some(now)` if now, `Some(t)` for a later
    /// time, `None` if only an answer can free a slot.
    pub(crate) fn ready_at(&mut self, now_ms: i64) -> Option<i64> {
        self.prune(now_ms);
        let mut at = now_ms;
        for w in &self.windows {
            let used = w.answered.len() + self.inflight;
            if used < w.requests {
                continue;
            }
            // Slots held by answers expire in order; in-flight ones do not.
            let must_expire = used + 1 - w.requests;
            if must_expire > w.answered.len() {
                return None;
            }
            let t = w.answered[must_expire - 1] + w.window_ms;
            at = at.max(t);
        }
        Some(at)
    }

    /// A request leaves (call only when `ready_at` said now).
    pub(crate) fn start(&mut self) {
        self.inflight += 1;
    }

    /// Its answer (or failure) came back at `now_ms`.
    pub(crate) fn finish(&mut self, now_ms: i64) {
        self.inflight = self.inflight.saturating_sub(1);
        for w in &mut self.windows {
            w.answered.push_back(now_ms);
            while w.answered.len() > w.requests {
                w.answered.pop_front();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spacing_counts_from_the_answer() {
        let mut r = RateWindows::new(
            &[RateLimit {
                requests: 1,
                window_ms: 5_000,
            }],
            0,
        );
        assert_eq!(r.ready_at(0), Some(0));
        r.start();
        assert_eq!(r.ready_at(100), None, "in flight holds the only slot");
        r.finish(700);
        assert_eq!(r.ready_at(800), Some(5_700));
        assert_eq!(r.ready_at(5_700), Some(5_700));
    }

    #[test]
    fn headroom_widens_and_every_window_applies() {
        let mut r = RateWindows::new(
            &[
                RateLimit {
                    requests: 2,
                    window_ms: 1_000,
                },
                RateLimit {
                    requests: 3,
                    window_ms: 100_000,
                },
            ],
            10,
        );
        for t in [0, 0] {
            assert_eq!(r.ready_at(t), Some(t));
            r.start();
            r.finish(t);
        }
        // 1,000 ms widened by 10 % headroom: 1,112 ms.
        assert_eq!(r.ready_at(10), Some(1_112));
        r.start();
        r.finish(1_112);
        // The long window is full until its oldest answer expires.
        assert_eq!(r.ready_at(5_000), Some(111_112));
    }
}
