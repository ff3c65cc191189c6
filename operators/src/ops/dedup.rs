//! Dedup: drop a scan already seen.
//!
//! The same carrier event arrives twice (webhook and poll), several times
//! (FedEx sends several payloads per milestone), or again with only its
//! location text reformatted or enriched. So the fingerprint covers what
//! identifies the scan (carrier, status, sub-status, raw code, the instant
//! it happened) and never the location text. Each shipment keeps a ring of
//! its last `DEDUP_RING_LEN` fingerprints with the log minute they were seen;
//! a fingerprint counts as seen while it is younger than the window (24 h by
//! default, wider in drop mode). Older repeats that fell out of the ring are
//! caught by the chain's lateness check (a scan older than the newest one
//! accepted never changes the view or notifies).

use crate::model::ArchivedCarrierEvent;
use crate::ops::hash::{StableHasher, seed};

/// Fingerprints kept per shipment.
pub const DEDUP_RING_LEN: usize = 8;

/// Longest dedup window the ring can represent (entries keep 16-bit minute
/// ages), 21 days.
pub const DEDUP_WINDOW_MS_MAX: u64 = 21 * 24 * 3600 * 1000;

/// Minutes of age the ring keeps before rebasing (must exceed the window).
const REBASE_KEEP_MIN: u32 = 32_768;

/// A fixed-size ring of recent fingerprints with their log minutes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct DedupRing {
    /// Minute the ages count from.
    pub(crate) base_min: u32,
    /// Fingerprints.
    pub(crate) fps: [u32; DEDUP_RING_LEN],
    /// Minute seen, minus `base_min`, plus one (0: empty entry).
    pub(crate) ages: [u16; DEDUP_RING_LEN],
}

impl DedupRing {
    /// Whether `fp` was seen at most `window_min` minutes before `now_min`.
    #[inline]
    pub(crate) fn contains(&self, fp: u32, now_min: u32, window_min: u32) -> bool {
        for i in 0..DEDUP_RING_LEN {
            if self.fps[i] == fp && self.ages[i] != 0 {
                let seen = self.base_min + u32::from(self.ages[i]) - 1;
                if now_min.saturating_sub(seen) <= window_min {
                    return true;
                }
            }
        }
        false
    }

    /// Records `fp` as seen at `now_min`, in an empty entry or else in
    /// place of the oldest one (lowest position on ties).
    #[inline]
    pub(crate) fn insert(&mut self, fp: u32, now_min: u32) {
        if self.ages.iter().all(|a| *a == 0) {
            self.base_min = now_min;
        }
        let now_min = now_min.max(self.base_min);
        if now_min - self.base_min >= u32::from(u16::MAX) - 1 {
            self.rebase(now_min.saturating_sub(REBASE_KEEP_MIN));
        }
        let mut i = 0;
        for j in 1..DEDUP_RING_LEN {
            if self.ages[j] < self.ages[i] {
                i = j;
            }
        }
        self.fps[i] = fp;
        self.ages[i] = (now_min - self.base_min + 1) as u16;
    }

    fn rebase(&mut self, new_base: u32) {
        for age in &mut self.ages {
            if *age == 0 {
                continue;
            }
            let seen = self.base_min + u32::from(*age) - 1;
            *age = if seen < new_base {
                0
            } else {
                (seen - new_base + 1) as u16
            };
        }
        self.base_min = new_base;
    }
}

/// The scan's fingerprint: carrier, status, sub-status, raw code and the
/// instant it happened. Location text is deliberately left out.
#[inline]
pub(crate) fn fingerprint(event: &ArchivedCarrierEvent) -> u32 {
    let code = u64::from(event.carrier as u8)
        | (u64::from(event.status as u8) << 8)
        | (u64::from(event.sub_status as u8) << 16);
    let h = StableHasher::new(seed::FINGERPRINT)
        .u64(code)
        .u64(event.occurred_at_ms.to_native() as u64)
        .bytes(event.raw_code.as_bytes())
        .finish64();
    (h ^ (h >> 32)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_and_ring() {
        let mut ring = DedupRing::default();
        ring.insert(7, 1000);
        assert!(ring.contains(7, 1000, 60));
        assert!(ring.contains(7, 1060, 60));
        assert!(!ring.contains(7, 1061, 60), "outside the window");
        assert!(!ring.contains(8, 1000, 60));
        for fp in 100..100 + DEDUP_RING_LEN as u32 {
            ring.insert(fp, 1001);
        }
        assert!(!ring.contains(7, 1001, 60), "evicted by newer fingerprints");
        assert!(ring.contains(100, 1001, 60));
    }

    #[test]
    fn rebase_keeps_recent_entries() {
        let mut ring = DedupRing::default();
        ring.insert(1, 10);
        ring.insert(2, 10 + 70_000);
        assert!(ring.contains(2, 10 + 70_000, 1440));
        assert!(!ring.contains(1, 10 + 70_000, 1440));
        ring.insert(3, 10 + 70_001);
        assert!(ring.contains(2, 10 + 70_001, 1440));
    }
}
