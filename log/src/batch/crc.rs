//! CRC32C of a concatenation from the CRCs of its parts.
//!
//! A batch's CRC covers its header and then its records. The records' CRC
//! is computed before the writer lock (it is most of the work); the header
//! is only known under the lock, so the two are combined there. The
//! `crc32c` crate's `crc32c_combine` squares 32×32 bit matrices once per
//! bit of the length (tens of thousands of operations, about 10 µs for a
//! 64 KiB batch, measured as 11 % of a `bench log` profile), all under the
//! partition's writer lock. This does the same in a few hundred operations:
//! appending `n` zero bytes to a message multiplies its CRC register by
//! x^(8n) modulo the polynomial, and x^(8n) is a product of precomputed
//! powers x^(2^k) picked by the bits of `8n`.
//!
//! Everything is in the reflected bit order the CRC uses: bit 31 is the
//! coefficient of x^0.

/// The CRC32C (Castagnoli) polynomial, reflected.
const POLY: u32 = 0x82F6_3B78;

/// `a * b mod POLY`, both in reflected order.
const fn mul_mod(a: u32, mut b: u32) -> u32 {
    let mut m: u32 = 1 << 31;
    let mut product = 0;
    loop {
        if a & m != 0 {
            product ^= b;
            if a & (m - 1) == 0 {
                return product;
            }
        }
        m >>= 1;
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
        if m == 0 {
            return product;
        }
    }
}

/// `X_POW_2K[k]` = x^(2^k) mod POLY.
const X_POW_2K: [u32; 32] = {
    let mut table = [0u32; 32];
    let mut p: u32 = 1 << 30; // x^1
    table[0] = p;
    let mut k = 1;
    while k < 32 {
        p = mul_mod(p, p);
        table[k] = p;
        k += 1;
    }
    table
};

/// x^(8 * bytes) mod POLY: the operator that appends `bytes` zero bytes.
fn x_pow_8n(bytes: u64) -> u32 {
    let mut p: u32 = 1 << 31; // x^0
    let mut n = bytes;
    let mut k = 3; // 8 = 2^3
    while n != 0 {
        if n & 1 != 0 {
            p = mul_mod(X_POW_2K[k & 31], p);
        }
        n >>= 1;
        k += 1;
    }
    p
}

/// The CRC32C of `a ++ b` from `crc(a)`, `crc(b)` and `b`'s length.
pub(crate) fn combine(crc_a: u32, crc_b: u32, len_b: usize) -> u32 {
    if len_b == 0 {
        return crc_a;
    }
    mul_mod(x_pow_8n(len_b as u64), crc_a) ^ crc_b
}

#[cfg(test)]
mod tests {
    use super::combine;
    use proptest::prelude::*;

    #[test]
    fn known_lengths_match_the_crate() {
        for len in [
            0usize,
            1,
            2,
            3,
            7,
            8,
            63,
            64,
            4095,
            65_536,
            262_144,
            1 << 24,
        ] {
            let a = b"header bytes of some batch";
            let b: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let mut whole = a.to_vec();
            whole.extend_from_slice(&b);
            let ours = combine(crc32c::crc32c(a), crc32c::crc32c(&b), b.len());
            assert_eq!(ours, crc32c::crc32c(&whole), "len {len}");
            assert_eq!(
                ours,
                crc32c::crc32c_combine(crc32c::crc32c(a), crc32c::crc32c(&b), b.len())
            );
        }
    }

    proptest! {
        #[test]
        fn combine_equals_crc_of_concatenation(
            a in proptest::collection::vec(any::<u8>(), 0..300),
            b in proptest::collection::vec(any::<u8>(), 0..3000),
        ) {
            let mut whole = a.clone();
            whole.extend_from_slice(&b);
            prop_assert_eq!(
                combine(crc32c::crc32c(&a), crc32c::crc32c(&b), b.len()),
                crc32c::crc32c(&whole)
            );
        }
    }
}
