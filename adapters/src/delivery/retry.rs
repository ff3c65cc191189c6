//! Retries: capped, jittered exponential backoff, and a retry budget.
//!
//! Why a budget as well as a cap: when a provider is down, every message
//! retrying up to its cap multiplies the load on a service that is already
//! failing. The budget lets retries be at most a share of first attempts
//! (plus a small floor), so a storm of failures turns into dead letters
//! that can be replayed later instead of a retry flood.

use serde::{Deserialize, Serialize};

/// How a failed send is retried.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts per message including the first; then it is dead-lettered.
    pub attempts_max: u32,
    /// Backoff before the first retry, in ms (doubled per attempt).
    pub backoff_base_ms: u64,
    /// Largest backoff, in ms.
    pub backoff_cap_ms: u64,
    /// Retries allowed per first attempt, as a share (0.2 = one retry per
    /// five sends), on top of `budget_floor`.
    pub budget_ratio: f64,
    /// Retries always allowed, however few first attempts there were.
    pub budget_floor: u32,
    /// Times a message may be pushed back by 429 answers before it is
    /// dead-lettered (429s are safe to retry and do not use the budget).
    pub rate_limited_max: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts_max: 6,
            backoff_base_ms: 500,
            backoff_cap_ms: 60_000,
            budget_ratio: 0.2,
            budget_floor: 100,
            rate_limited_max: 1_000,
        }
    }
}

impl RetryPolicy {
    /// Backoff before retry number `retry` (1 for the first retry), with
    /// "equal jitter": half fixed, half uniform from `random`.
    pub fn backoff_ms(&self, retry: u32, random: u64) -> u64 {
        let exp = self
            .backoff_base_ms
            .saturating_mul(1u64 << retry.saturating_sub(1).min(32));
        let ceiling = exp.min(self.backoff_cap_ms).max(1);
        let half = ceiling / 2;
        half + random % (ceiling - half + 1)
    }
}

/// Deposits per first attempt and withdrawals per retry.
#[derive(Clone, Debug)]
pub struct RetryBudget {
    ratio: f64,
    floor: f64,
    balance: f64,
    cap: f64,
}

impl RetryBudget {
    /// A budget starting with `floor` retries available.
    pub fn new(policy: &RetryPolicy) -> RetryBudget {
        let floor = f64::from(policy.budget_floor);
        RetryBudget {
            ratio: policy.budget_ratio.max(0.0),
            floor,
            balance: floor,
            cap: floor.max(1.0) * 10.0,
        }
    }

    /// A first attempt was made.
    pub fn on_first_attempt(&mut self) {
        self.balance = (self.balance + self.ratio).min(self.cap.max(self.floor));
    }

    /// Takes one retry from the budget; false when it is spent.
    pub fn try_retry(&mut self) -> bool {
        if self.balance >= 1.0 {
            self.balance -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A small seeded generator for jitter (SplitMix64).
#[derive(Clone, Debug)]
pub struct Jitter(u64);

impl Jitter {
    /// A generator with this seed.
    pub fn new(seed: u64) -> Jitter {
        Jitter(seed)
    }

    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let p = RetryPolicy {
            backoff_base_ms: 100,
            backoff_cap_ms: 1_000,
            ..RetryPolicy::default()
        };
        let mut j = Jitter::new(7);
        for _ in 0..100 {
            let b1 = p.backoff_ms(1, j.next_u64());
            assert!((50..=100).contains(&b1));
            let b3 = p.backoff_ms(3, j.next_u64());
            assert!((200..=400).contains(&b3));
            let b20 = p.backoff_ms(20, j.next_u64());
            assert!((500..=1_000).contains(&b20));
        }
    }

    #[test]
    fn budget_limits_retries_to_a_share_of_sends() {
        let p = RetryPolicy {
            budget_ratio: 0.5,
            budget_floor: 2,
            ..RetryPolicy::default()
        };
        let mut b = RetryBudget::new(&p);
        assert!(b.try_retry());
        assert!(b.try_retry());
        assert!(!b.try_retry());
        b.on_first_attempt();
        assert!(!b.try_retry());
        b.on_first_attempt();
        assert!(b.try_retry());
    }
}
