//! Real-looking, deterministic tracking numbers.
//!
//! Each carrier's format and check digit, so that a simulated number would
//! pass a carrier-side format check:
//!
//! - UPS: `1Z`, a 6-character shipper, a 2-digit service, 7 digits and a
//!   mod-10 check character (18 characters).
//! - FedEx: 11 digits and a 1-3-7 weighted mod-11 check digit.
//! - USPS: `94001`, 16 digits and a 3-1 weighted mod-10 check digit (22).
//! - DHL Express: 9 digits and a mod-7 check digit.
//!
//! `seq` is spread over the number space by an affine bijection, so
//! consecutive sequence numbers do not give consecutive numbers, and
//! distinct `seq` below the space size give distinct numbers.

use dropline_operators::model::Carrier;

/// Spreads `seq` over `[0, space)` bijectively (the multiplier is coprime
/// with 2, 3 and 5, the only prime factors of the spaces used here).
fn spread(seq: u64, space: u128) -> u128 {
    const MULTIPLIER: u128 = 7_777_777_777_777_777;
    const OFFSET: u128 = 1_234_567_891_011;
    (u128::from(seq) % space * MULTIPLIER + OFFSET) % space
}

fn digits(mut value: u128, width: usize) -> String {
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        // A decimal digit: value % 10 < 10 always fits in a u8.
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
    String::from_utf8(out).unwrap_or_default()
}

/// UPS's check character over the 15 characters after `1Z`.
pub(crate) fn ups_check(body: &str) -> char {
    let mut sum = 0u32;
    for (i, b) in body.bytes().enumerate() {
        let v = if b.is_ascii_digit() {
            u32::from(b - b'0')
        } else {
            (u32::from(b) - 63) % 10
        };
        sum += if i % 2 == 1 { 2 * v } else { v };
    }
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}

/// FedEx's check digit over the first 11 digits.
pub(crate) fn fedex_check(body: &str) -> char {
    const WEIGHTS: [u32; 3] = [1, 3, 7];
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * WEIGHTS[i % 3])
        .sum();
    char::from(b'0' + (sum % 11 % 10) as u8)
}

/// The USPS (GS1) check digit over the first 21 digits.
pub(crate) fn usps_check(body: &str) -> char {
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}

/// DHL Express's check digit: the first 9 digits, as a number, mod 7.
pub(crate) fn dhl_check(body: &str) -> char {
    let n: u64 = body.parse().unwrap_or(0);
    char::from(b'0' + (n % 7) as u8)
}

const BASE36: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// A tracking number for `carrier`, deterministic in `seq`.
pub fn tracking_number(carrier: Carrier, seq: u64) -> String {
    match carrier {
        Carrier::Ups => {
            let space = 36u128.pow(6) * 10u128.pow(7);
            let v = spread(seq, space);
            let (mut shipper_n, package) = (v / 10u128.pow(7), v % 10u128.pow(7));
            let mut shipper = [b'0'; 6];
            for slot in shipper.iter_mut().rev() {
                *slot = BASE36[(shipper_n % 36) as usize];
                shipper_n /= 36;
            }
            let body = format!(
                "{}03{}",
                String::from_utf8_lossy(&shipper),
                digits(package, 7)
            );
            let check = ups_check(&body);
            format!("1Z{body}{check}")
        }
        Carrier::Fedex => {
            let body = format!("7{}", digits(spread(seq, 10u128.pow(10)), 10));
            let check = fedex_check(&body);
            format!("{body}{check}")
        }
        Carrier::Usps => {
            let body = format!("94001{}", digits(spread(seq, 10u128.pow(16)), 16));
            let check = usps_check(&body);
            format!("{body}{check}")
        }
        Carrier::Dhl => {
            let body = digits(spread(seq, 10u128.pow(9)), 9);
            let check = dhl_check(&body);
            format!("{body}{check}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ups_check_matches_a_published_example() {
        // 1Z999AA10123456784 is UPS's documented sample number.
        assert_eq!(ups_check("999AA1012345678"), '4');
    }

    #[test]
    fn formats_and_determinism() {
        for seq in [0, 1, 2, 99, 1_000_000, u64::MAX] {
            let ups = tracking_number(Carrier::Ups, seq);
            assert_eq!(ups.len(), 18, "{ups}");
            assert!(ups.starts_with("1Z"));
            assert_eq!(ups.chars().last(), Some(ups_check(&ups[2..17])));
            let fedex = tracking_number(Carrier::Fedex, seq);
            assert_eq!(fedex.len(), 12);
            assert!(fedex.bytes().all(|b| b.is_ascii_digit()));
            assert_eq!(fedex.chars().last(), Some(fedex_check(&fedex[..11])));
            let usps = tracking_number(Carrier::Usps, seq);
            assert_eq!(usps.len(), 22);
            assert!(usps.starts_with("9400"));
            assert_eq!(usps.chars().last(), Some(usps_check(&usps[..21])));
            let dhl = tracking_number(Carrier::Dhl, seq);
            assert_eq!(dhl.len(), 10);
            assert_eq!(dhl.chars().last(), Some(dhl_check(&dhl[..9])));
            for c in Carrier::ALL {
                assert_eq!(tracking_number(c, seq), tracking_number(c, seq));
            }
        }
    }

    #[test]
    fn distinct_for_distinct_seq() {
        for c in Carrier::ALL {
            let mut seen = std::collections::HashSet::new();
            for seq in 0..5_000 {
                assert!(seen.insert(tracking_number(c, seq)), "{c} {seq}");
            }
        }
    }
}
