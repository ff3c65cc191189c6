//! Fan-out bookkeeping: per-buyer daily caps, opt-outs, consolidation of an
//! order's parcels, and the buyer's local clock (quiet hours, cap days).
//!
//! Caps and consolidation are the two places where one shipment's outcome
//! depends on others (the buyer's other parcels, the order's other
//! parcels). Both are partition-local: a buyer's parcels in other
//! partitions are counted there, and parcels of one order in different
//! partitions are merged by order id at the delivery edge. A re-run over
//! one parcel's records alone (forensics) reports caps and consolidation as
//! if the parcel were alone; the `decisions` topic holds what happened.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Offset, TimeZone};
use chrono_tz::Tz;

use crate::model::{Channel, Status};
use crate::ops::hash::{PassThrough, StableHasher, finalize, seed};
use crate::ops::outputs::IntentId;

/// A buyer's counts for one local day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct CapEntry {
    pub(crate) day: u32,
    pub(crate) counts: [u8; 4],
}

/// Per-buyer daily counts on capped channels.
#[derive(Debug, Clone, Default)]
pub(crate) struct BuyerCaps {
    pub(crate) map: HashMap<u64, CapEntry, PassThrough>,
    pub(crate) max: usize,
}

impl BuyerCaps {
    /// Counts one message; `false` when the cap forbids it. Critical
    /// messages always go (and count).
    pub(crate) fn try_take(
        &mut self,
        buyer: u64,
        day: u32,
        channel: Channel,
        cap: u8,
        critical: bool,
    ) -> bool {
        if cap == 0 {
            return true;
        }
        if !self.map.contains_key(&buyer) && self.map.len() >= self.max {
            self.map.retain(|_, e| e.day >= day);
            if self.map.len() >= self.max {
                return true;
            }
        }
        let e = self.map.entry(buyer).or_default();
        if e.day != day {
            *e = CapEntry {
                day,
                counts: [0; 4],
            };
        }
        let c = &mut e.counts[channel as usize - 1];
        if *c >= cap && !critical {
            return false;
        }
        *c = c.saturating_add(1);
        true
    }

    pub(crate) fn bytes_held(&self) -> usize {
        self.map.capacity() * (std::mem::size_of::<(u64, CapEntry)>() + 1)
    }
}

/// Buyers' opt-outs per channel.
#[derive(Debug, Clone, Default)]
pub(crate) struct OptOuts {
    pub(crate) set: HashSet<u64, PassThrough>,
}

pub(crate) fn buyer_key(buyer_id: &[u8]) -> u64 {
    StableHasher::new(seed::BUYER).bytes(buyer_id).finish64()
}

pub(crate) fn opt_out_key(buyer: u64, channel: Channel) -> u64 {
    finalize(buyer ^ (u64::from(channel as u8) << 59))
}

impl OptOuts {
    pub(crate) fn contains(&self, buyer: u64, channel: Channel) -> bool {
        !self.set.is_empty() && self.set.contains(&opt_out_key(buyer, channel))
    }
    pub(crate) fn bytes_held(&self) -> usize {
        self.set.capacity() * 9
    }
}

/// One order milestone already messaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConsolidationEntry {
    pub(crate) log_s: u32,
    pub(crate) parcel: u32,
    pub(crate) intent: IntentId,
}

/// Recently messaged (order, milestone, channel) triples.
#[derive(Debug, Clone, Default)]
pub(crate) struct Consolidation {
    pub(crate) map: HashMap<u64, ConsolidationEntry, PassThrough>,
    pub(crate) max: usize,
    /// Entries after the last sweep of expired ones (sweeps happen when the
    /// map doubles, so they cost O(1) per insert).
    pub(crate) swept_len: usize,
}

pub(crate) fn order_key(order_id: &[u8]) -> u64 {
    StableHasher::new(seed::ORDER).bytes(order_id).finish64()
}

pub(crate) fn consolidation_key(order: u64, status: Status, channel: Channel) -> u64 {
    finalize(order ^ (u64::from(status as u8) << 48) ^ (u64::from(channel as u8) << 56))
}

/// Smallest order-count table, slots (2 bits each: 1 MiB).
pub const ORDER_COUNT_SLOTS_MIN: usize = 1 << 22;

/// Saturating 2-bit counts of parcels per order id (hashed into a fixed
/// table). Consolidation only looks up and records orders counted twice or
/// more, so the single-parcel orders of a drop cost no map traffic. A
/// collision only makes an order look multi-parcel (a lookup that finds
/// nothing), never the reverse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OrderCounts {
    pub(crate) words: Vec<u64>,
}

impl OrderCounts {
    pub(crate) fn with_slots(slots: usize) -> OrderCounts {
        OrderCounts {
            words: vec![0; slots.next_power_of_two().max(64) / 32],
        }
    }

    #[inline]
    fn slot(&self, order: u64) -> (usize, u32) {
        let slots = self.words.len() * 32;
        let i = (order as usize) & (slots - 1);
        (i / 32, (i % 32) as u32 * 2)
    }

    pub(crate) fn add(&mut self, order: u64) {
        let (w, shift) = self.slot(order);
        let c = (self.words[w] >> shift) & 3;
        if c < 3 {
            self.words[w] += 1 << shift;
        }
    }

    #[inline]
    pub(crate) fn multi(&self, order: u64) -> bool {
        let (w, shift) = self.slot(order);
        (self.words[w] >> shift) & 3 >= 2
    }

    pub(crate) fn bytes_held(&self) -> usize {
        self.words.capacity() * 8
    }
}

impl Consolidation {
    /// The message another parcel of the order already got within the window.
    pub(crate) fn joined(
        &self,
        key: u64,
        parcel: u32,
        now_s: u32,
        window_s: u32,
    ) -> Option<IntentId> {
        let e = self.map.get(&key)?;
        (e.parcel != parcel && now_s.saturating_sub(e.log_s) <= window_s).then_some(e.intent)
    }

    /// Records a message for the order milestone.
    pub(crate) fn record(&mut self, key: u64, entry: ConsolidationEntry, window_s: u32) {
        if !self.map.contains_key(&key)
            && (self.map.len() >= self.max || self.map.len() >= 2 * self.swept_len.max(512))
        {
            let now = entry.log_s;
            self.map
                .retain(|_, e| now.saturating_sub(e.log_s) <= window_s);
            self.swept_len = self.map.len();
            if self.map.len() >= self.max {
                return;
            }
        }
        self.map.insert(key, entry);
    }

    pub(crate) fn bytes_held(&self) -> usize {
        self.map.capacity() * (std::mem::size_of::<(u64, ConsolidationEntry)>() + 1)
    }
}

/// The buyer's local clock at a UTC instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LocalClock {
    /// Days since the epoch, local.
    pub(crate) day: u32,
    /// Minutes after local midnight.
    pub(crate) minute: u16,
}

fn offset_s(tz: Tz, utc_s: u32) -> i32 {
    DateTime::from_timestamp(i64::from(utc_s), 0).map_or(0, |t| {
        tz.offset_from_utc_datetime(&t.naive_utc())
            .fix()
            .local_minus_utc()
    })
}

/// Seconds in a cache slot of a zone's offset. Offset changes happen at
/// instants aligned to 15 minutes in every zone of the tz database, so an
/// offset looked up anywhere in a slot holds for the whole slot.
const ZONE_SLOT_S: u32 = 15 * 60;

/// The last offset looked up for a zone and the slot it holds for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ZoneClock {
    pub(crate) slot: u32,
    pub(crate) offset_s: i32,
}

impl Default for ZoneClock {
    fn default() -> Self {
        ZoneClock {
            slot: u32::MAX,
            offset_s: 0,
        }
    }
}

/// The local clock, reusing the cached offset when it holds.
pub(crate) fn local_clock_cached(cache: &mut ZoneClock, tz: Tz, utc_s: u32) -> LocalClock {
    let slot = utc_s / ZONE_SLOT_S;
    if cache.slot != slot {
        *cache = ZoneClock {
            slot,
            offset_s: offset_s(tz, utc_s),
        };
    }
    from_offset(utc_s, cache.offset_s)
}

#[cfg(test)]
pub(crate) fn local_clock(tz: Tz, utc_s: u32) -> LocalClock {
    from_offset(utc_s, offset_s(tz, utc_s))
}

fn from_offset(utc_s: u32, offset_s: i32) -> LocalClock {
    let local = (i64::from(utc_s) + i64::from(offset_s)).max(0);
    LocalClock {
        day: u32::try_from(local / 86_400).unwrap_or(0),
        minute: ((local % 86_400) / 60) as u16,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_counts_saturate_and_flag_multi_parcel_orders() {
        let mut c = OrderCounts::with_slots(1024);
        c.add(5);
        assert!(!c.multi(5));
        c.add(5);
        assert!(c.multi(5));
        for _ in 0..10 {
            c.add(5);
        }
        assert!(c.multi(5));
        assert!(!c.multi(6));
    }

    #[test]
    fn caps_per_day_and_critical_exemption() {
        let mut caps = BuyerCaps {
            max: 10,
            ..BuyerCaps::default()
        };
        for _ in 0..3 {
            assert!(caps.try_take(1, 100, Channel::Sms, 3, false));
        }
        assert!(!caps.try_take(1, 100, Channel::Sms, 3, false));
        assert!(
            caps.try_take(1, 100, Channel::Sms, 3, true),
            "critical always goes"
        );
        assert!(
            caps.try_take(1, 100, Channel::Email, 3, false),
            "per channel"
        );
        assert!(caps.try_take(1, 101, Channel::Sms, 3, false), "a new day");
        assert!(caps.try_take(2, 100, Channel::Sms, 0, false), "no cap");
    }

    #[test]
    fn local_clock_follows_the_zone() {
        // 2024-07-01T03:30:00Z is 23:30 on June 30 in New York (EDT, -4).
        let t = 1_719_804_600;
        let ny = local_clock(chrono_tz::America::New_York, t);
        assert_eq!(ny.minute, 23 * 60 + 30);
        let utc = local_clock(chrono_tz::UTC, t);
        assert_eq!(utc.minute, 3 * 60 + 30);
        assert_eq!(utc.day, ny.day + 1);
        // Honolulu has no DST: -10 h all year.
        let hnl = local_clock(chrono_tz::Pacific::Honolulu, t);
        assert_eq!(hnl.minute, 17 * 60 + 30);
        // The cache gives the same answer across a DST change (2024-11-03
        // 06:00Z in New York), slot by slot.
        let mut cache = ZoneClock::default();
        for s in (1_730_600_000..1_730_700_000).step_by(337) {
            let tz = chrono_tz::America::New_York;
            assert_eq!(
                local_clock_cached(&mut cache, tz, s),
                local_clock(tz, s),
                "{s}"
            );
        }
    }
}
