//! Debounce: collapse in-transit pings.
//!
//! A parcel in a sorting hub produces arrival, processing and departure
//! scans minutes apart; telling the buyer each one is noise. A non-critical
//! scan that repeats the current milestone at the same place (city and
//! postal code) within the window (30 minutes by default, coarser in drop
//! mode) is held instead of passed. If nothing newer arrives, the held ping
//! is released when the window closes, as of that log time (a timer driven by
//! ticks and later records, never by the wall clock). A newer scan that
//! passes supersedes it. Critical statuses are never held.

use crate::model::{ArchivedCarrierEvent, Status};
use crate::ops::hash::{StableHasher, seed};
use crate::ops::shipment::{Shipment, flag};

/// What debounce does with a scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Debounce {
    /// Apply it now.
    Pass,
    /// Hold it (replacing any held ping).
    Hold,
}

/// Decides for a scan of `status` at `loc_hash`, received at `now_s`.
#[inline]
pub(crate) fn decide(
    rec: &Shipment,
    status: Status,
    loc_hash: u32,
    now_s: u32,
    window_s: u32,
) -> Debounce {
    if status.is_critical()
        || !rec.has(flag::HAS_SCAN)
        || rec.status != status as u8
        || rec.loc_hash != loc_hash
        || now_s >= rec.pass_log_s.saturating_add(window_s)
    {
        Debounce::Pass
    } else {
        Debounce::Hold
    }
}

/// What each byte contributes to a place's identity: ASCII letters and
/// digits case-folded, bytes of non-ASCII characters as they are, and
/// nothing (0) for punctuation and spaces.
const FOLD: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else if !c.is_ascii() {
            c
        } else {
            0
        };
        b += 1;
    }
    t
};

#[inline]
fn normalized_hash(h: &mut StableHasher, text: &str, stop_at_comma: bool, max_chars: usize) {
    let mut buf = [0u8; 48];
    let cap = buf.len().min(max_chars);
    let mut n = 0;
    for &b in text.as_bytes() {
        if n == cap || (stop_at_comma && b == b',') {
            break;
        }
        let f = FOLD[usize::from(b)];
        if f != 0 {
            buf[n] = f;
            n += 1;
        }
    }
    h.bytes(&buf[..n]);
}

/// Identity of a scan's place: the city (up to a comma, letters and digits
/// only, case folded) and the postal code (first five letters or digits).
/// Reformatted text ("NEW YORK, NY" and "New York") gives the same identity.
#[inline]
pub(crate) fn location_hash(event: &ArchivedCarrierEvent) -> u32 {
    let mut h = StableHasher::new(seed::LOCATION);
    let loc = &event.location;
    normalized_hash(
        &mut h,
        loc.city.as_ref().map_or("", |s| s.as_str()),
        true,
        48,
    );
    normalized_hash(
        &mut h,
        loc.postal_code.as_ref().map_or("", |s| s.as_str()),
        false,
        5,
    );
    let v = h.finish64();
    (v ^ (v >> 32)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-at-a-time definition the table-driven loop must match
    /// (location hashes are kept in snapshots).
    fn reference(h: &mut StableHasher, text: &str, stop_at_comma: bool, max_chars: usize) {
        let mut buf = [0u8; 48];
        let mut n = 0;
        for b in text.bytes() {
            if stop_at_comma && b == b',' {
                break;
            }
            if (b.is_ascii_alphanumeric() || !b.is_ascii()) && n < buf.len().min(max_chars) {
                buf[n] = b.to_ascii_lowercase();
                n += 1;
            }
        }
        h.bytes(&buf[..n]);
    }

    #[test]
    fn folding_matches_the_definition() {
        let texts = [
            "",
            "NEW YORK, NY",
            "New York",
            "  st. louis ,MO",
            "São Paulo",
            "Zürich-Flughafen, ZH, CH 8058",
            "40213-1234",
            "a,b,c",
            ",leading comma",
            "x\0y",
            "THIS IS A VERY LONG FACILITY NAME THAT GOES ON AND ON PAST FORTY EIGHT",
        ];
        for t in texts {
            for (stop, max) in [(true, 48), (false, 5), (false, 48), (true, 3)] {
                let (mut a, mut b) = (StableHasher::new(1), StableHasher::new(1));
                normalized_hash(&mut a, t, stop, max);
                reference(&mut b, t, stop, max);
                assert_eq!(a.finish64(), b.finish64(), "{t:?} {stop} {max}");
            }
        }
    }
}
