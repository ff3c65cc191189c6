//! Capped, jittered exponential backoff between reconnection attempts.
//!
//! Why jitter ("full jitter": a uniform draw below the capped exponential):
//! when a node restarts, every adapter loses its connection at the same
//! moment; without jitter they would all retry in lockstep and hit the node
//! in waves.

use crate::splitmix::SplitMix64;

/// Backoff state for one connection.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial_ms: u64,
    max_ms: u64,
    attempt: u32,
    rng: SplitMix64,
}

impl Backoff {
    pub(crate) fn new(initial_ms: u64, max_ms: u64, rng: SplitMix64) -> Backoff {
        Backoff {
            initial_ms: initial_ms.max(1),
            max_ms: max_ms.max(initial_ms.max(1)),
            attempt: 0,
            rng,
        }
    }

    /// The delay before the next attempt, in ms: uniform in
    /// `[cap/2, cap]` where `cap = min(max, initial * 2^attempt)`.
    pub(crate) fn next_delay_ms(&mut self) -> u64 {
        let exp = self.initial_ms.saturating_mul(1u64 << self.attempt.min(32));
        let cap = exp.min(self.max_ms);
        self.attempt = self.attempt.saturating_add(1);
        cap / 2 + self.rng.below_or_eq(cap - cap / 2)
    }

    /// Called after a successful connection.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_are_capped_and_jittered() {
        let mut b = Backoff::new(10, 1000, SplitMix64::new(7));
        let delays: Vec<u64> = (0..12).map(|_| b.next_delay_ms()).collect();
        for (i, d) in delays.iter().enumerate() {
            let cap = (10u64 << i).min(1000);
            assert!(
                *d >= cap / 2 && *d <= cap,
                "attempt {i}: {d} outside [{}, {cap}]",
                cap / 2
            );
        }
        let tail: std::collections::HashSet<u64> = delays[7..].iter().copied().collect();
        assert!(tail.len() > 1, "capped delays still vary: {delays:?}");
        b.reset();
        assert!(b.next_delay_ms() <= 10);
    }
}
