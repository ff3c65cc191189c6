//! A tiny seeded PRNG (SplitMix64) for backoff jitter and producer ids.
//!
//! Why not a crate: nothing here needs cryptographic quality, only values
//! that differ between processes and over time; a 64-bit mixer seeded from
//! the clock, the process id and a counter does that in a few lines.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static STREAM: AtomicU64 = AtomicU64::new(0);

/// SplitMix64 state.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub(crate) fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// A generator seeded from the wall clock, the process id and a
    /// process-wide counter, so two generators never start alike.
    pub(crate) fn from_entropy() -> SplitMix64 {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let pid = u64::from(std::process::id());
        let n = STREAM.fetch_add(1, Ordering::Relaxed);
        let mut g =
            SplitMix64::new(nanos ^ pid.rotate_left(32) ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let _ = g.next_u64();
        g
    }

    /// The next value.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value uniformly-enough in `0..=max`.
    pub(crate) fn below_or_eq(&mut self, max: u64) -> u64 {
        if max == u64::MAX {
            return self.next_u64();
        }
        self.next_u64() % (max + 1)
    }

    /// A random non-zero id.
    pub(crate) fn nonzero_id(&mut self) -> u64 {
        loop {
            let v = self.next_u64();
            if v != 0 {
                return v;
            }
        }
    }
}
