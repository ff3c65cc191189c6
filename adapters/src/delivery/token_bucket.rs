//! Token buckets, on a clock passed in (sans-IO), for provider limits.
//!
//! Why a bucket per sender and not a global rate: providers limit each
//! sender number (an SMS long code sends one message a second) and each
//! push project separately, so the pool's throughput is the sum of its
//! members' and a message may go out on whichever has a token.

use serde::{Deserialize, Serialize};

/// A sustained rate and a burst size.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    /// Sustained messages per second.
    pub per_second: f64,
    /// Bucket size: messages that may go at once after an idle period.
    pub burst: u32,
}

/// A token bucket. Tokens are fractional; time is in ms.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: Rate,
    tokens: f64,
    at_ms: u64,
}

impl TokenBucket {
    /// A full bucket at `now_ms`.
    pub fn new(rate: Rate, now_ms: u64) -> TokenBucket {
        TokenBucket {
            rate,
            tokens: f64::from(rate.burst.max(1)),
            at_ms: now_ms,
        }
    }

    /// The configured rate.
    pub fn rate(&self) -> Rate {
        self.rate
    }

    fn refill(&mut self, now_ms: u64) {
        if now_ms > self.at_ms {
            let dt_s = (now_ms - self.at_ms) as f64 / 1000.0;
            self.tokens =
                (self.tokens + dt_s * self.rate.per_second).min(f64::from(self.rate.burst.max(1)));
            self.at_ms = now_ms;
        }
    }

    /// Takes one token, or returns the ms until one will be there.
    pub fn try_take(&mut self, now_ms: u64) -> Result<(), u64> {
        self.refill(now_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(self.wait_ms(now_ms))
        }
    }

    /// Ms until a token is available (0 if one is).
    pub fn wait_ms(&mut self, now_ms: u64) -> u64 {
        self.refill(now_ms);
        if self.tokens >= 1.0 {
            return 0;
        }
        let per_ms = self.rate.per_second.max(1e-9) / 1000.0;
        // The epsilon keeps float noise from adding a whole ms.
        ((1.0 - self.tokens) / per_ms - 1e-6).ceil().max(1.0) as u64
    }

    /// Empties the bucket (the provider said 429: believe it).
    pub fn drain(&mut self, now_ms: u64) {
        self.refill(now_ms);
        self.tokens = self.tokens.min(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_code_bucket_sends_one_per_second() {
        let mut b = TokenBucket::new(
            Rate {
                per_second: 1.0,
                burst: 1,
            },
            0,
        );
        assert_eq!(b.try_take(0), Ok(()));
        assert_eq!(b.try_take(1), Err(999));
        assert_eq!(b.try_take(999), Err(1));
        assert_eq!(b.try_take(1000), Ok(()));
        let mut sent = 0;
        for ms in (1000..11_000).step_by(10) {
            if b.try_take(ms).is_ok() {
                sent += 1;
            }
        }
        assert_eq!(sent, 9);
    }

    #[test]
    fn burst_then_sustained() {
        let mut b = TokenBucket::new(
            Rate {
                per_second: 100.0,
                burst: 100,
            },
            0,
        );
        let first = (0..200).filter(|_| b.try_take(0).is_ok()).count();
        assert_eq!(first, 100);
        assert_eq!(b.wait_ms(0), 10);
    }
}
