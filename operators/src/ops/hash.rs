//! Stable hashes for state keys, dedup fingerprints and deterministic ids.
//!
//! These values outlive a process: intent ids are idempotency keys at the
//! providers, fingerprints and table keys are in checkpoints. So they come
//! from a fixed, documented function (word-at-a-time multiply-xorshift over
//! little-endian words, with the SplitMix64 finalizer), never from std's
//! randomly seeded `Hasher`. Changing any constant here changes intent ids
//! and invalidates checkpoints.

use std::hash::{BuildHasherDefault, Hasher};

const MUL_A: u64 = 0x9e37_79b9_7f4a_7c15;
const MUL_B: u64 = 0xc2b2_ae3d_27d4_eb4f;

/// SplitMix64's finalizer: a bijective 64-bit mix.
pub(crate) fn finalize(mut h: u64) -> u64 {
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// A streaming two-lane hasher: 64-bit outputs for tables and fingerprints,
/// 128-bit outputs for ids.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StableHasher {
    a: u64,
    b: u64,
    len: u64,
}

impl StableHasher {
    /// Starts a hash with a domain seed (each use has its own seed, so the
    /// same bytes hash differently as a table key and as an id).
    pub(crate) fn new(seed: u64) -> Self {
        StableHasher {
            a: seed ^ 0x243f_6a88_85a3_08d3,
            b: seed.rotate_left(32) ^ 0x1319_8a2e_0370_7344,
            len: 0,
        }
    }

    #[inline]
    fn word(&mut self, v: u64) {
        self.a = (self.a ^ v).wrapping_mul(MUL_A);
        self.a ^= self.a >> 29;
        self.b = (self.b ^ v.rotate_left(23)).wrapping_mul(MUL_B);
        self.b ^= self.b >> 31;
    }

    /// Feeds bytes, then their length (so `"ab","c"` differs from `"a","bc"`).
    #[inline]
    pub(crate) fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            self.word(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        self.word(u64::from_le_bytes(w) ^ ((bytes.len() as u64) << 56));
        self.len = self.len.wrapping_add(bytes.len() as u64 + 1);
        self
    }

    /// Feeds one integer.
    #[inline]
    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.word(v);
        self.len = self.len.wrapping_add(8);
        self
    }

    /// 64-bit result.
    #[inline]
    pub(crate) fn finish64(&self) -> u64 {
        finalize(self.a ^ finalize(self.b ^ self.len))
    }

    /// 128-bit result (two independently finalized lanes).
    pub(crate) fn finish128(&self) -> u128 {
        let hi = finalize(self.a ^ self.len.rotate_left(17));
        let lo = finalize(self.b ^ hi);
        (u128::from(hi) << 64) | u128::from(lo)
    }
}

/// Seeds: one per use, fixed forever.
pub(crate) mod seed {
    /// Shipment table key (tracking number).
    pub(crate) const KEY: u64 = 0x6b65_795f_7461_626c;
    /// Dedup fingerprint of a scan.
    pub(crate) const FINGERPRINT: u64 = 0x6670_5f73_6361_6e31;
    /// Location (city + postal code) identity for debounce.
    pub(crate) const LOCATION: u64 = 0x6c6f_635f_6964_3031;
    /// Notification intent ids.
    pub(crate) const INTENT: u64 = 0x696e_7465_6e74_5f31;
    /// Escalation ids.
    pub(crate) const ESCALATION: u64 = 0x6573_6361_6c61_7431;
    /// Buyer keys (caps, opt-outs).
    pub(crate) const BUYER: u64 = 0x6275_7965_725f_6964;
    /// Order keys (consolidation).
    pub(crate) const ORDER: u64 = 0x6f72_6465_725f_6964;
}

/// A tracking number's table key and its independent 32-bit check, from
/// one pass (the two lanes of the 128-bit hash).
#[inline]
pub(crate) fn key_of(tracking_number: &[u8]) -> (u64, u32) {
    let v = StableHasher::new(seed::KEY)
        .bytes(tracking_number)
        .finish128();
    ((v >> 64) as u64, v as u32)
}

/// A `Hasher` for keys that are already stable hashes: passes them through.
/// Used for std maps keyed by our own 64-bit hashes (lookups only; nothing
/// iterates these maps to produce output).
#[derive(Default, Clone, Copy)]
pub(crate) struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(b) ^ (self.0 >> 56);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

/// Build hasher for maps keyed by stable 64-bit hashes.
pub(crate) type PassThrough = BuildHasherDefault<PassThroughHasher>;

/// A `Hasher` for short names (marketplaces, sellers, time zones) in the
/// chain's lookup maps: a word at a time, fixed, no random seed. Why not
/// std's SipHash: it cost about 190 instructions per order for two names.
/// The maps it serves are bounded (`marketplaces_max`, `sellers_max`, the
/// zone cache's limit), so crafted colliding names can slow lookups only
/// within those bounds; nothing iterates these maps to produce output.
#[derive(Default, Clone, Copy)]
pub(crate) struct NameHasher(u64);

impl Hasher for NameHasher {
    #[inline]
    fn finish(&self) -> u64 {
        finalize(self.0)
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0 ^ (bytes.len() as u64).wrapping_mul(MUL_B);
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            h = (h ^ u64::from_le_bytes(w))
                .wrapping_mul(MUL_A)
                .rotate_left(29);
        }
        let rest = chunks.remainder();
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        self.0 = (h ^ u64::from_le_bytes(w))
            .wrapping_mul(MUL_A)
            .rotate_left(29);
    }
}

/// Build hasher for maps keyed by names.
pub(crate) type NameHash = BuildHasherDefault<NameHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_values() {
        // Part of the format (intent ids, checkpoints): must never change.
        assert_eq!(key_of(b"1Z999AA10123456784").0, 0x6ec1_388f_fdff_c421);
        let id = StableHasher::new(seed::INTENT)
            .bytes(b"1Z999AA10123456784")
            .bytes(b"delivered")
            .u64(42)
            .finish128();
        assert_eq!(id, 0x82f3_e21c_80aa_b0d7_dd3d_aaad_1e05_e30e);
    }

    #[test]
    fn boundaries_matter() {
        let a = StableHasher::new(1).bytes(b"ab").bytes(b"c").finish64();
        let b = StableHasher::new(1).bytes(b"a").bytes(b"bc").finish64();
        assert_ne!(a, b);
        let h = |seed, b: &[u8]| StableHasher::new(seed).bytes(b).finish64();
        assert_ne!(h(1, b"x"), h(2, b"x"));
        assert_ne!(h(1, b""), h(1, b"\0"));
    }
}
