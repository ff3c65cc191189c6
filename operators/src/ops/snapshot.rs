//! Snapshots of a chain's state for checkpoints.
//!
//! The engine saves a snapshot with its input offsets and output sequence
//! (and checksums it); after a crash it restores and replays from those
//! offsets, and the outputs come out identical. So a snapshot holds every
//! piece of state that can influence an output, in a deterministic order
//! (maps are written sorted), and the slot layout of the records is kept
//! exactly (the eviction clock and timer wheel refer to slots). Derived
//! structures (the index, the text arena's layout, rule-layer caches) are
//! rebuilt on restore.
//!
//! Layout (little-endian): magic `DLCHAIN` and a version byte (1), then the
//! clock and mode, the timer wheel, interned names, the records with their
//! text, the free list, caps, opt-outs, consolidation entries and case
//! journals. See docs/OPERATORS.md.

use std::sync::Arc;

use chrono_tz::Tz;

use crate::ops::arena::Texts;
use crate::ops::chain::Chain;
use crate::ops::config::ChainConfig;
use crate::ops::decision::DecisionKind;
use crate::ops::dedup::{DEDUP_RING_LEN, DedupRing};
use crate::ops::fanout::{CapEntry, ConsolidationEntry};
use crate::ops::journal::CaseJournal;
use crate::ops::outputs::{CaseDecision, CaseEvent, IntentId};
use crate::ops::rules::Rules;
use crate::ops::shipment::{Shipment, flag};
use crate::ops::timers::TIMER_WHEEL_MINUTES;
use crate::ops::wire::{Reader, WireError, Writer, codes};

/// Magic bytes in front of a chain snapshot.
pub const SNAPSHOT_MAGIC: &[u8; 7] = b"DLCHAIN";
/// Current snapshot version.
pub const SNAPSHOT_VERSION: u8 = 1;

/// A snapshot that cannot be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Not a chain snapshot.
    #[error("not a chain snapshot (bad magic)")]
    BadMagic,
    /// Written by a version this build does not read.
    #[error("unsupported snapshot version {version}")]
    UnsupportedVersion {
        /// The version found.
        version: u8,
    },
    /// The bytes are malformed.
    #[error("malformed snapshot: {0}")]
    Wire(#[from] WireError),
    /// The bytes parse but describe an impossible state.
    #[error("inconsistent snapshot: {what}")]
    Inconsistent {
        /// What is wrong.
        what: &'static str,
    },
}

fn inconsistent<T>(what: &'static str) -> Result<T, SnapshotError> {
    Err(SnapshotError::Inconsistent { what })
}

fn write_record(w: &mut Writer<'_>, r: &Shipment) {
    w.u64(r.key_hash)
        .u64(r.order_offset)
        .u64(r.last_offset)
        .u64(r.held_offset)
        .i64(r.last_occurred_ms)
        .i64(r.held_occurred_ms)
        .u32(r.key_check)
        .u32(r.last_log_s)
        .u32(r.pass_log_s)
        .u32(r.held_log_s)
        .u32(r.exception_since_s)
        .u32(r.promised_from_s)
        .u32(r.promised_to_s)
        .u32(r.wake_min)
        .u32(r.loc_hash)
        .u32(r.seller)
        .u16(r.marketplace)
        .u16(r.tz)
        .u16(r.flags)
        .u8(r.status)
        .u8(r.sub)
        .u8(r.held_status)
        .u8(r.held_sub)
        .u8(r.carrier)
        .u8(r.consent)
        .u8(r.exc_class)
        .u32(r.dedup.base_min);
    for fp in r.dedup.fps {
        w.u32(fp);
    }
    for age in r.dedup.ages {
        w.u16(age);
    }
}

fn read_record(r: &mut Reader<'_>) -> Result<Shipment, WireError> {
    let mut s = Shipment {
        key_hash: r.u64()?,
        order_offset: r.u64()?,
        last_offset: r.u64()?,
        held_offset: r.u64()?,
        last_occurred_ms: r.i64()?,
        held_occurred_ms: r.i64()?,
        key_check: r.u32()?,
        last_log_s: r.u32()?,
        pass_log_s: r.u32()?,
        held_log_s: r.u32()?,
        exception_since_s: r.u32()?,
        promised_from_s: r.u32()?,
        promised_to_s: r.u32()?,
        wake_min: r.u32()?,
        loc_hash: r.u32()?,
        seller: r.u32()?,
        marketplace: r.u16()?,
        tz: r.u16()?,
        flags: r.u16()?,
        status: r.u8()?,
        sub: r.u8()?,
        held_status: r.u8()?,
        held_sub: r.u8()?,
        carrier: r.u8()?,
        consent: r.u8()?,
        exc_class: r.u8()?,
        text_at: 0,
        dedup: DedupRing {
            base_min: r.u32()?,
            ..DedupRing::default()
        },
    };
    for i in 0..DEDUP_RING_LEN {
        s.dedup.fps[i] = r.u32()?;
    }
    for i in 0..DEDUP_RING_LEN {
        s.dedup.ages[i] = r.u16()?;
    }
    Ok(s)
}

impl Chain {
    /// Appends a snapshot of the whole state to `out` (the caller adds its
    /// checksum and stores it with the input offsets).
    pub fn snapshot(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.bytes(SNAPSHOT_MAGIC).u8(SNAPSHOT_VERSION);
        w.u32(self.config.partition)
            .u64(self.now_ms)
            .bool(self.drop_mode)
            .u32(self.clock_hand)
            .bool(self.wheel.started)
            .u32(self.wheel.pos_min);
        for bucket in &self.wheel.buckets {
            w.u32(bucket.len() as u32);
            for &idx in bucket {
                w.u32(idx);
            }
        }
        for interner in [&self.marketplaces, &self.sellers] {
            w.u32(interner.len() as u32);
            for name in interner.names() {
                w.str8(name);
            }
        }
        w.u32(self.zones.len() as u32);
        for tz in &self.zones {
            w.str8(tz.name());
        }
        w.u32(self.records.len() as u32);
        for rec in &self.records {
            let live = rec.has(flag::LIVE);
            w.bool(live);
            if live {
                write_record(&mut w, rec);
                let t = self.arena.get(rec.text_at);
                w.str8(t.tracking_number).str8(t.order_id).str8(t.buyer_id);
            }
        }
        w.u32(self.free.len() as u32);
        for &f in &self.free {
            w.u32(f);
        }
        let mut caps: Vec<(u64, CapEntry)> = self.caps.map.iter().map(|(k, v)| (*k, *v)).collect();
        caps.sort_unstable_by_key(|(k, _)| *k);
        w.u32(caps.len() as u32);
        for (k, e) in caps {
            w.u64(k).u32(e.day).bytes(&e.counts);
        }
        let mut opt_outs: Vec<u64> = self.opt_outs.set.iter().copied().collect();
        opt_outs.sort_unstable();
        w.u32(opt_outs.len() as u32);
        for k in opt_outs {
            w.u64(k);
        }
        let mut cons: Vec<(u64, ConsolidationEntry)> = self
            .consolidation
            .map
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        cons.sort_unstable_by_key(|(k, _)| *k);
        w.u32(cons.len() as u32);
        for (k, e) in cons {
            w.u64(k).u32(e.log_s).u32(e.parcel).u128(e.intent.as_u128());
        }
        w.u64(self.consolidation.swept_len as u64);
        w.u32(self.order_counts.words.len() as u32);
        for &word in &self.order_counts.words {
            w.u64(word);
        }
        let mut journals: Vec<(&u32, &CaseJournal)> = self.journals.iter().collect();
        journals.sort_unstable_by_key(|(k, _)| **k);
        w.u32(journals.len() as u32);
        for (idx, j) in journals {
            w.u32(*idx).u16(j.events.len() as u16);
            for e in &j.events {
                w.u64(e.offset)
                    .u64(e.log_time_ms)
                    .i64(e.occurred_at_ms)
                    .u8(e.status as u8)
                    .u8(e.sub_status as u8);
            }
            w.u16(j.decisions.len() as u16);
            for d in &j.decisions {
                w.u8(d.kind as u8)
                    .u64(d.log_time_ms)
                    .u64(d.offset)
                    .str8(d.rule_id.as_bytes())
                    .u8(d.channel.map_or(0, |c| c as u8));
            }
            w.u8(j.rules.len() as u8);
            for r in &j.rules {
                w.str8(r.as_bytes());
            }
        }
    }

    /// Rebuilds a chain from [`Chain::snapshot`]'s bytes.
    pub fn restore(
        config: ChainConfig,
        rules: Arc<Rules>,
        bytes: &[u8],
    ) -> Result<Chain, SnapshotError> {
        let mut chain = Chain::new(config, rules);
        let mut r = Reader::new(bytes);
        if r.take(SNAPSHOT_MAGIC.len())
            .map_err(|_| SnapshotError::BadMagic)?
            != SNAPSHOT_MAGIC
        {
            return Err(SnapshotError::BadMagic);
        }
        let version = r.u8()?;
        if version != SNAPSHOT_VERSION {
            return Err(SnapshotError::UnsupportedVersion { version });
        }
        let _partition = r.u32()?;
        chain.now_ms = r.u64()?;
        chain.drop_mode = r.bool("drop_mode")?;
        chain.clock_hand = r.u32()?;
        chain.wheel.started = r.bool("wheel.started")?;
        chain.wheel.pos_min = r.u32()?;
        let mut wheel_entries = Vec::new();
        for b in 0..TIMER_WHEEL_MINUTES as usize {
            let n = r.u32()? as usize;
            let bucket = &mut chain.wheel.buckets[b];
            bucket.reserve(n.min(bytes.len() / 4));
            for _ in 0..n {
                let idx = r.u32()?;
                bucket.push(idx);
                wheel_entries.push(idx);
            }
        }
        for which in 0..2 {
            let n = r.u32()?;
            for i in 0..n {
                let name = r.str8("interned name")?;
                let interner = if which == 0 {
                    &mut chain.marketplaces
                } else {
                    &mut chain.sellers
                };
                if i == 0 {
                    if !name.is_empty() {
                        return inconsistent("interner does not start with the empty name");
                    }
                    continue;
                }
                if interner.intern(name) != i {
                    return inconsistent("interned names are duplicated or over the bound");
                }
            }
        }
        let zones = r.u32()?;
        for i in 0..zones {
            let name = r.str8("zone")?;
            let Ok(tz) = name.parse::<Tz>() else {
                return inconsistent("unknown time zone");
            };
            if i == 0 {
                continue;
            }
            let Ok(id) = u16::try_from(chain.zones.len()) else {
                return inconsistent("too many time zones");
            };
            chain.zones.push(tz);
            chain.zone_ids.insert(tz, id);
        }
        let n = r.u32()? as usize;
        chain.records.reserve(n.min(bytes.len()));
        for i in 0..n {
            if !r.bool("record.live")? {
                chain.records.push(Shipment::default());
                continue;
            }
            let mut rec = read_record(&mut r)?;
            let tn = r.str8("record.tracking_number")?;
            let order_id = r.str8("record.order_id")?;
            let buyer_id = r.str8("record.buyer_id")?;
            if !rec.has(flag::LIVE)
                || usize::from(rec.marketplace) >= chain.marketplaces.len()
                || rec.seller as usize >= chain.sellers.len()
                || usize::from(rec.tz) >= chain.zones.len()
            {
                return inconsistent("record refers to unknown names or is not live");
            }
            let Some(at) = chain.arena.push(Texts {
                tracking_number: tn,
                order_id,
                buyer_id,
            }) else {
                return inconsistent("text arena overflow");
            };
            rec.text_at = at;
            let dup = chain.index.find(rec.key_hash, |j| {
                let o = &chain.records[j as usize];
                o.key_hash == rec.key_hash && o.key_check == rec.key_check
            });
            if dup.is_some() {
                return inconsistent("two records for one tracking number");
            }
            chain.records.push(rec);
            chain.index.insert(rec.key_hash, i as u32);
            chain.live += 1;
        }
        if wheel_entries
            .iter()
            .any(|&i| i as usize >= chain.records.len())
        {
            return inconsistent("timer refers to a missing record");
        }
        let n = r.u32()? as usize;
        for _ in 0..n {
            let f = r.u32()?;
            if chain
                .records
                .get(f as usize)
                .is_none_or(|rec| rec.has(flag::LIVE))
            {
                return inconsistent("free list names a live or missing slot");
            }
            chain.free.push(f);
        }
        let n = r.u32()?;
        for _ in 0..n {
            let k = r.u64()?;
            let day = r.u32()?;
            let mut counts = [0u8; 4];
            counts.copy_from_slice(r.take(4)?);
            chain.caps.map.insert(k, CapEntry { day, counts });
        }
        let n = r.u32()?;
        for _ in 0..n {
            chain.opt_outs.set.insert(r.u64()?);
        }
        let n = r.u32()?;
        for _ in 0..n {
            let k = r.u64()?;
            let e = ConsolidationEntry {
                log_s: r.u32()?,
                parcel: r.u32()?,
                intent: IntentId::from_u128(r.u128()?),
            };
            chain.consolidation.map.insert(k, e);
        }
        chain.consolidation.swept_len = usize::try_from(r.u64()?).unwrap_or(usize::MAX);
        let words = r.u32()? as usize;
        if !words.is_power_of_two() || words * 8 > bytes.len() {
            return inconsistent("order counts are not a power-of-two table");
        }
        chain.order_counts.words.clear();
        chain.order_counts.words.shrink_to_fit();
        chain.order_counts.words.reserve_exact(words);
        for _ in 0..words {
            chain.order_counts.words.push(r.u64()?);
        }
        let n = r.u32()?;
        for _ in 0..n {
            let idx = r.u32()?;
            let mut j = CaseJournal::default();
            for _ in 0..r.u16()? {
                j.events.push(CaseEvent {
                    offset: r.u64()?,
                    log_time_ms: r.u64()?,
                    occurred_at_ms: r.i64()?,
                    status: r.tag("journal.status", codes::status)?,
                    sub_status: r.tag("journal.sub_status", codes::sub_status)?,
                });
            }
            for _ in 0..r.u16()? {
                j.decisions.push(CaseDecision {
                    kind: r.tag("journal.kind", DecisionKind::from_code)?,
                    log_time_ms: r.u64()?,
                    offset: r.u64()?,
                    rule_id: r.inline("journal.rule_id")?,
                    channel: r.tag("journal.channel", |v| {
                        if v == 0 {
                            Some(None)
                        } else {
                            codes::channel(v).map(Some)
                        }
                    })?,
                });
            }
            for _ in 0..r.u8()? {
                j.rules.push(r.inline("journal.rule")?);
            }
            if chain
                .records
                .get(idx as usize)
                .is_none_or(|rec| !rec.has(flag::LIVE))
            {
                return inconsistent("case journal of a missing shipment");
            }
            chain.journals.insert(idx, j);
        }
        r.finish()?;
        chain.rebuild_layer_cache();
        Ok(chain)
    }
}
