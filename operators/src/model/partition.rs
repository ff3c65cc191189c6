//! The partitioner every writer shares: a stable hash of the tracking
//! number. `carrier-events` and `orders` have the same partition count, so
//! a shipment's events and its order meet in one partition and one worker.
//!
//! The hash is part of the on-disk contract (documented in docs/FORMAT.md):
//! FNV-1a 64 over the key bytes, then the SplitMix64 finalizer to spread the
//! low bits, then modulo the partition count. Changing it would send a
//! shipment's new events to a different partition than its old ones.

/// Stable 64-bit hash of a key (FNV-1a 64 followed by the SplitMix64 finalizer).
pub fn key_hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The partition a key belongs to. `partitions` of zero is treated as one.
pub fn partition_for(key: &[u8], partitions: u32) -> u32 {
    let n = u64::from(partitions.max(1));
    // The remainder is below `partitions`, so it fits in a u32.
    u32::try_from(key_hash(key) % n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_values() {
        // These values are part of the format: if this test fails, the
        // partitioner changed and existing logs would be split differently.
        // Reference values computed independently of this code.
        assert_eq!(key_hash(b"1Z999AA10123456784"), 0x1f51_9fc9_dac7_68e3);
        assert_eq!(partition_for(b"1Z999AA10123456784", 1), 0);
        assert_eq!(partition_for(b"1Z999AA10123456784", 16), 3);
    }

    #[test]
    fn spreads_keys() {
        let mut counts = [0u32; 8];
        for i in 0..8000u32 {
            let key = format!("9400{i:018}");
            counts[partition_for(key.as_bytes(), 8) as usize] += 1;
        }
        for c in counts {
            assert!((800..1200).contains(&c), "uneven spread: {counts:?}");
        }
    }
}
