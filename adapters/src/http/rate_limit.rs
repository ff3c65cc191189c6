//! Per-client token buckets for the public tracking routes.
//!
//! Why per IP and bounded: enumeration (walking tracking numbers to learn
//! who ships what) is the abuse a public tracking API invites; a bucket per
//! client address stops it, and the table of buckets must itself not grow
//! without bound under a flood of addresses. The table is sharded; when a
//! shard is full, buckets that have refilled completely (idle clients) are
//! dropped, and if none has, the new client is refused until one has.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use super::config::RateLimit;

const SHARDS: usize = 16;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The table of buckets.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    limit: RateLimit,
    per_shard_max: usize,
    shards: Box<[Mutex<HashMap<IpAddr, Bucket>>]>,
}

/// The verdict for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allow,
    /// Refused; retry after this many seconds.
    Refuse(u32),
}

impl RateLimiter {
    pub(crate) fn new(limit: RateLimit) -> RateLimiter {
        RateLimiter {
            limit,
            per_shard_max: limit.clients_max.div_ceil(SHARDS).max(1),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn shard_of(ip: &IpAddr) -> usize {
        let h = match ip {
            IpAddr::V4(a) => u64::from(u32::from_le_bytes(a.octets())),
            IpAddr::V6(a) => {
                let o = a.octets();
                // Clients in one /64 share a bucket table shard.
                u64::from_le_bytes([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]])
            }
        };
        (h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 60) as usize % SHARDS
    }

    /// Takes one token for `ip` at `now`.
    pub(crate) fn check(&self, ip: IpAddr, now: Instant) -> Verdict {
        let rate = f64::from(self.limit.requests_per_s.max(1));
        let burst = f64::from(self.limit.burst_requests.max(1));
        let mut shard = self.shards[Self::shard_of(&ip)]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !shard.contains_key(&ip) && shard.len() >= self.per_shard_max {
            shard.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
            });
            if shard.len() >= self.per_shard_max {
                return Verdict::Refuse(1);
            }
        }
        let b = shard.entry(ip).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let refill = now.saturating_duration_since(b.at).as_secs_f64() * rate;
        b.tokens = (b.tokens + refill).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Verdict::Allow
        } else {
            let wait = ((1.0 - b.tokens) / rate).ceil().max(1.0);
            Verdict::Refuse(wait as u32)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill_and_bounded_table() {
        let rl = RateLimiter::new(RateLimit {
            requests_per_s: 2,
            burst_requests: 3,
            clients_max: 16,
        });
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(rl.check(ip, t0), Verdict::Allow);
        }
        assert!(matches!(rl.check(ip, t0), Verdict::Refuse(_)));
        assert_eq!(
            rl.check(ip, t0 + Duration::from_millis(500)),
            Verdict::Allow
        );
        // Fill the table with busy clients: new ones are refused.
        let mut refused = 0;
        for i in 0..200u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            for _ in 0..3 {
                let _ = rl.check(ip, t0);
            }
            if matches!(rl.check(ip, t0), Verdict::Refuse(_)) {
                refused += 1;
            }
        }
        assert_eq!(refused, 200);
        let total: usize = rl.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(total <= 16 + SHARDS, "table grew to {total}");
    }
}
