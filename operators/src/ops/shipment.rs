//! The per-shipment state record: everything the chain keeps about one
//! parcel, in one flat, fixed-size value.
//!
//! Budget: at most 256 bytes per active shipment all included (this record,
//! the table slot, its text in the arena, its timer entry, its share of the
//! per-buyer caps). So: times as u32 seconds or minutes, names interned into
//! small ids, the order reduced to what the rules need (marketplace, seller,
//! time zone, consent bits, promised window, the order's offset), and no
//! location text or contact address at all. Text that outputs need (tracking
//! number, order id, buyer id) lives once in the text arena.

use crate::model::{Carrier, Status, SubStatus};
use crate::ops::dedup::DedupRing;
use crate::ops::wire::codes;

/// Sentinel for "no offset".
pub(crate) const NO_OFFSET: u64 = u64::MAX;

/// Flag bits of [`Shipment::flags`].
pub(crate) mod flag {
    /// The order is known.
    pub(crate) const HAS_ORDER: u16 = 1 << 0;
    /// A ping is held by debounce.
    pub(crate) const HELD: u16 = 1 << 1;
    /// Marked stale (no scan within the SLA).
    pub(crate) const STALE: u16 = 1 << 2;
    /// An exception is open.
    pub(crate) const EXCEPTION_OPEN: u16 = 1 << 3;
    /// The open exception was escalated.
    pub(crate) const ESCALATED: u16 = 1 << 4;
    /// Touched since the eviction clock last passed (second chance).
    pub(crate) const REFERENCED: u16 = 1 << 5;
    /// The slot holds a shipment (free slots have no flags).
    pub(crate) const LIVE: u16 = 1 << 6;
    /// The order belongs to a drop.
    pub(crate) const DROP_ORDER: u16 = 1 << 7;
    /// A scan was accepted (status is meaningful).
    pub(crate) const HAS_SCAN: u16 = 1 << 8;
    /// `MULTI_PARCEL` is known (checked at the first notification).
    pub(crate) const MULTI_KNOWN: u16 = 1 << 9;
    /// The order has other parcels (consolidation applies).
    pub(crate) const MULTI_PARCEL: u16 = 1 << 10;
}

/// One shipment's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Shipment {
    /// Table key: stable hash of the tracking number.
    pub(crate) key_hash: u64,
    /// Offset of the order in `orders` (`NO_OFFSET` until known).
    pub(crate) order_offset: u64,
    /// Offset of the latest accepted scan.
    pub(crate) last_offset: u64,
    /// Offset of the held ping.
    pub(crate) held_offset: u64,
    /// Carrier time of the latest accepted scan.
    pub(crate) last_occurred_ms: i64,
    /// Carrier time of the held ping.
    pub(crate) held_occurred_ms: i64,
    /// Independent 32-bit check of the tracking number.
    pub(crate) key_check: u32,
    /// Position of the shipment's text block in the arena.
    pub(crate) text_at: u32,
    /// Log time (s) of the latest scan received (the stale SLA's base).
    pub(crate) last_log_s: u32,
    /// Log time (s) the latest ping passed debounce (window start).
    pub(crate) pass_log_s: u32,
    /// Log time (s) of the held ping.
    pub(crate) held_log_s: u32,
    /// Log time (s) the open exception opened.
    pub(crate) exception_since_s: u32,
    /// Promised window, s since the epoch (0: unknown).
    pub(crate) promised_from_s: u32,
    /// Promised window end, s since the epoch (0: unknown).
    pub(crate) promised_to_s: u32,
    /// Minute of the pending timer wake-up (0: none).
    pub(crate) wake_min: u32,
    /// Identity of the latest accepted location (city + postal code).
    pub(crate) loc_hash: u32,
    /// Interned seller.
    pub(crate) seller: u32,
    /// Interned marketplace.
    pub(crate) marketplace: u16,
    /// Interned buyer time zone.
    pub(crate) tz: u16,
    /// Flag bits (`flag::*`).
    pub(crate) flags: u16,
    /// Current status code (valid with `HAS_SCAN`).
    pub(crate) status: u8,
    /// Current sub-status code.
    pub(crate) sub: u8,
    /// Held ping's status code.
    pub(crate) held_status: u8,
    /// Held ping's sub-status code.
    pub(crate) held_sub: u8,
    /// Carrier code (0: unknown).
    pub(crate) carrier: u8,
    /// Consent bits: low nibble consent per channel, high nibble contact present.
    pub(crate) consent: u8,
    /// Open exception's class code.
    pub(crate) exc_class: u8,
    /// Dedup fingerprints.
    pub(crate) dedup: DedupRing,
}

impl Shipment {
    pub(crate) fn new(key_hash: u64, key_check: u32, text_at: u32) -> Shipment {
        Shipment {
            key_hash,
            key_check,
            text_at,
            order_offset: NO_OFFSET,
            last_offset: NO_OFFSET,
            held_offset: NO_OFFSET,
            flags: flag::LIVE | flag::REFERENCED,
            ..Shipment::default()
        }
    }

    #[inline]
    pub(crate) fn has(&self, f: u16) -> bool {
        self.flags & f != 0
    }
    #[inline]
    pub(crate) fn set(&mut self, f: u16, on: bool) {
        if on {
            self.flags |= f;
        } else {
            self.flags &= !f;
        }
    }

    pub(crate) fn status(&self) -> Option<Status> {
        if self.has(flag::HAS_SCAN) {
            codes::status(self.status)
        } else {
            None
        }
    }
    pub(crate) fn sub_status(&self) -> SubStatus {
        codes::sub_status(self.sub).unwrap_or(SubStatus::None)
    }
    pub(crate) fn carrier(&self) -> Option<Carrier> {
        codes::carrier(self.carrier)
    }
    pub(crate) fn is_terminal(&self) -> bool {
        self.status().is_some_and(Status::is_terminal)
    }
    /// The newest carrier time seen (accepted or held).
    pub(crate) fn newest_occurred_ms(&self) -> i64 {
        if self.has(flag::HELD) {
            self.last_occurred_ms.max(self.held_occurred_ms)
        } else {
            self.last_occurred_ms
        }
    }
}

/// Whether consent bits (`Shipment::consent`) allow a channel: the buyer
/// has a contact on it and said yes.
#[inline]
pub(crate) fn consents(consent: u8, channel: crate::model::Channel) -> bool {
    consent & (1 << (channel as u8 - 1)) != 0
}

/// Seconds since the epoch as u32 (saturating; 0 for times before 1970).
pub(crate) fn secs_u32(ms: u64) -> u32 {
    u32::try_from(ms / 1000).unwrap_or(u32::MAX)
}

/// Signed epoch ms to u32 seconds (0: unknown or before 1970).
pub(crate) fn secs_u32_signed(ms: i64) -> u32 {
    if ms <= 0 { 0 } else { secs_u32(ms as u64) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_stays_small() {
        // The state budget (256 bytes per shipment with table, text, timer
        // and caps) leaves the record itself at most 160 bytes.
        assert!(
            std::mem::size_of::<Shipment>() <= 160,
            "{}",
            std::mem::size_of::<Shipment>()
        );
    }
}
