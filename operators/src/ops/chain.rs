//! The fused operator chain of one partition: dedup, debounce, rules with
//! order enrichment, exceptions, fan-out and the shipment view, over one
//! flat state table. One owner thread, no locks, no clock, no I/O.
//!
//! Inputs are records with their log time; outputs go into caller-owned
//! buffers. Every entry point first advances the timer wheel to the record's
//! log time, so debounce releases and SLA timers fire at the same records
//! in a replay. Within a shipment, processing depends only on that
//! shipment's records, except where documented in `ops::fanout` (per-buyer
//! caps and per-order consolidation) and for eviction under `shipments_max`.

use std::collections::HashMap;
use std::sync::Arc;

use chrono_tz::Tz;

use crate::model::{ArchivedCarrierEvent, Carrier, Channel, Status, SubStatus};
use crate::ops::apply::Accepted;
use crate::ops::arena::TextArena;
use crate::ops::config::ChainConfig;
use crate::ops::debounce::{self, Debounce};
use crate::ops::decision::{Decision, DecisionKind};
use crate::ops::dedup;
use crate::ops::fanout::{
    BuyerCaps, Consolidation, OptOuts, OrderCounts, ZoneClock, buyer_key, opt_out_key, order_key,
};
use crate::ops::hash::{NameHash, PassThrough, key_of};
use crate::ops::interner::Interner;
use crate::ops::journal::CaseJournal;
use crate::ops::order_input::OrderInput;
use crate::ops::outputs::{
    DeadLetter, DeadLetterReason, OrderField, Outputs, ShipmentView, SourceRef, ViewChange,
};
use crate::ops::prefetch::prefetch_item;
use crate::ops::rules::{LayerId, Rules};
use crate::ops::shipment::{NO_OFFSET, Shipment, flag, secs_u32, secs_u32_signed};
use crate::ops::table::Index;
use crate::ops::text::{IdText, MarketplaceText, RuleText, TrackingNumber};
use crate::ops::timers::TimerWheel;
use crate::ops::view;

/// Most time-zone names remembered with their id (the tz database has
/// about 600 names and aliases).
const ZONE_NAMES_CACHED_MAX: usize = 1024;

/// Text bytes a shipment is expected to need (pre-sizing the arena).
const TEXT_BYTES_PER_SHIPMENT_EXPECTED: usize = 48;

/// Longest seller name kept, bytes.
pub const SELLER_BYTES_MAX: usize = 64;

/// Events ahead of the current one whose table slot is prefetched.
const PREFETCH_SLOT_AHEAD: usize = 6;
/// Events ahead whose record is prefetched (its slot arrived meanwhile).
const PREFETCH_RECORD_AHEAD: usize = 3;
/// Events ahead whose text block is prefetched (its record arrived).
const PREFETCH_TEXT_AHEAD: usize = 1;

/// A carrier event for [`Chain::on_events`]: where it is in the log, and
/// the event read in place.
#[derive(Clone, Copy, Debug)]
pub struct EventInput<'a> {
    /// The record.
    pub source: SourceRef,
    /// The event.
    pub event: &'a ArchivedCarrierEvent,
}

/// Counters for metrics (not part of snapshots; they restart at zero).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChainStats {
    /// Carrier events seen.
    pub events: u64,
    /// Orders seen.
    pub orders: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Late scans kept out of the view.
    pub late: u64,
    /// Unmapped scans counted.
    pub unmapped: u64,
    /// Pings held by debounce.
    pub debounced: u64,
    /// Held pings released.
    pub released: u64,
    /// Intents emitted.
    pub intents: u64,
    /// Notifications suppressed (consent, opt-out, cap, consolidation, rule).
    pub suppressed: u64,
    /// Shipments marked stale.
    pub stale: u64,
    /// Escalations emitted.
    pub escalations: u64,
    /// Shipments evicted to respect `shipments_max`.
    pub evicted: u64,
    /// Shipments retired after their terminal status or idleness.
    pub retired: u64,
    /// Records dead-lettered.
    pub dead_letters: u64,
}

/// The configuration's durations in the units the hot path compares
/// (derived from [`ChainConfig`] once; index 1 is drop mode), so that no
/// event pays for divisions of configured milliseconds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) dedup_window_min: [u32; 2],
    pub(crate) debounce_s: [u32; 2],
    pub(crate) stale_after_s: u32,
    pub(crate) escalate_after_s: u32,
    pub(crate) retain_terminal_s: u32,
    pub(crate) retain_idle_s: u32,
    pub(crate) consolidate_window_s: u32,
}

impl Limits {
    fn of(c: &ChainConfig) -> Limits {
        let min = |ms: u64| u32::try_from(ms / 60_000).unwrap_or(u32::MAX);
        // Seconds rounded up, as the timers always did.
        let up = |ms: u64| u32::try_from(ms.div_ceil(1000)).unwrap_or(u32::MAX);
        Limits {
            dedup_window_min: [min(c.dedup_window_ms), min(c.dedup_window_drop_mode_ms)],
            debounce_s: [up(c.debounce_ms), up(c.debounce_drop_mode_ms)],
            stale_after_s: up(c.stale_after_ms),
            escalate_after_s: up(c.exception_escalate_after_ms),
            retain_terminal_s: up(c.retain_terminal_ms),
            retain_idle_s: up(c.retain_idle_ms),
            consolidate_window_s: u32::try_from(c.consolidate_window_ms / 1000).unwrap_or(u32::MAX),
        }
    }
}

/// One partition's operator state and logic.
pub struct Chain {
    pub(crate) config: ChainConfig,
    pub(crate) limits: Limits,
    pub(crate) rules: Arc<Rules>,
    pub(crate) records: Vec<Shipment>,
    pub(crate) free: Vec<u32>,
    pub(crate) index: Index,
    pub(crate) arena: TextArena,
    pub(crate) marketplaces: Interner,
    pub(crate) sellers: Interner,
    pub(crate) zones: Vec<Tz>,
    pub(crate) zone_ids: HashMap<Tz, u16>,
    /// Zone names already parsed, with their id (derived; not in
    /// snapshots): parsing a name costs a perfect-hash lookup per order.
    pub(crate) zone_names: HashMap<Box<str>, u16, NameHash>,
    /// Each interned marketplace's name as intents carry it (derived).
    pub(crate) mp_texts: Vec<MarketplaceText>,
    /// Cached offsets per zone (derived; not in snapshots).
    pub(crate) zone_clocks: Vec<ZoneClock>,
    pub(crate) order_counts: OrderCounts,
    pub(crate) mp_layers: Vec<Option<LayerId>>,
    pub(crate) seller_layers: HashMap<u64, LayerId, PassThrough>,
    pub(crate) wheel: TimerWheel,
    pub(crate) caps: BuyerCaps,
    pub(crate) opt_outs: OptOuts,
    pub(crate) consolidation: Consolidation,
    pub(crate) journals: HashMap<u32, CaseJournal>,
    pub(crate) clock_hand: u32,
    pub(crate) now_ms: u64,
    pub(crate) drop_mode: bool,
    pub(crate) live: u32,
    pub(crate) stats: ChainStats,
    /// Scratch of [`Chain::on_events`]: each event's table key and the
    /// record guessed for it (derived; not in snapshots).
    pub(crate) batch_keys: Vec<((u64, u32), u32)>,
}

pub(crate) fn status_of(s: &crate::model::status::ArchivedStatus) -> Status {
    rkyv::deserialize::<Status, rkyv::rancor::Error>(s).unwrap_or(Status::Unknown)
}

pub(crate) fn sub_status_of(s: &crate::model::status::ArchivedSubStatus) -> SubStatus {
    rkyv::deserialize::<SubStatus, rkyv::rancor::Error>(s).unwrap_or(SubStatus::UnmappedCode)
}

fn carrier_of(c: &crate::model::event::ArchivedCarrier) -> Option<Carrier> {
    rkyv::deserialize::<Carrier, rkyv::rancor::Error>(c).ok()
}

/// A decision with no rule, channel or intent yet.
#[inline]
pub(crate) fn decision(
    tracking_number: TrackingNumber,
    kind: DecisionKind,
    log_time_ms: u64,
    source: SourceRef,
    status: Status,
    sub_status: SubStatus,
) -> Decision {
    Decision {
        tracking_number,
        kind,
        log_time_ms,
        source,
        status,
        sub_status,
        rule_id: RuleText::empty(),
        channel: None,
        intent_id: None,
        until_ms: 0,
        related_offset: None,
    }
}

pub(crate) fn seller_key(marketplace: u16, seller: u32) -> u64 {
    (u64::from(marketplace) << 32) | u64::from(seller)
}

impl Chain {
    /// A chain with empty state.
    pub fn new(config: ChainConfig, rules: Arc<Rules>) -> Chain {
        let config = config.clamped();
        let initial = config.shipments_initial as usize;
        let mut chain = Chain {
            records: Vec::with_capacity(initial),
            free: Vec::new(),
            index: Index::with_capacity(initial),
            arena: TextArena::with_capacity(initial * TEXT_BYTES_PER_SHIPMENT_EXPECTED),
            marketplaces: Interner::new(config.marketplaces_max as usize),
            sellers: Interner::new(config.sellers_max as usize),
            zones: vec![Tz::UTC],
            zone_ids: HashMap::from([(Tz::UTC, 0)]),
            zone_names: HashMap::default(),
            mp_texts: Vec::new(),
            zone_clocks: Vec::new(),
            order_counts: OrderCounts::with_slots(
                (initial * 4).max(crate::ops::fanout::ORDER_COUNT_SLOTS_MIN),
            ),
            mp_layers: Vec::new(),
            seller_layers: HashMap::default(),
            wheel: TimerWheel::default(),
            caps: BuyerCaps {
                max: config.buyer_caps_max as usize,
                ..BuyerCaps::default()
            },
            opt_outs: OptOuts::default(),
            consolidation: Consolidation {
                max: config.consolidation_entries_max as usize,
                ..Consolidation::default()
            },
            journals: HashMap::new(),
            clock_hand: 0,
            now_ms: 0,
            drop_mode: false,
            live: 0,
            stats: ChainStats::default(),
            batch_keys: Vec::new(),
            rules,
            limits: Limits::of(&config),
            config,
        };
        chain.rebuild_layer_cache();
        chain
    }

    /// The configuration in force (after clamping).
    pub fn config(&self) -> &ChainConfig {
        &self.config
    }

    /// The rules in force.
    pub fn rules(&self) -> &Arc<Rules> {
        &self.rules
    }

    /// Replaces the rules (a reload). Shipments keep their state; the next
    /// scans are decided by the new rules.
    pub fn set_rules(&mut self, rules: Arc<Rules>) {
        self.rules = rules;
        self.rebuild_layer_cache();
    }

    pub(crate) fn rebuild_layer_cache(&mut self) {
        self.mp_layers = self
            .marketplaces
            .names()
            .map(|n| self.rules.marketplace_layer(n))
            .collect();
        self.seller_layers.clear();
        for (m, s, layer) in self.rules.seller_overrides() {
            if let (Some(mid), Some(sid)) = (self.marketplaces.lookup(m), self.sellers.lookup(s)) {
                self.seller_layers
                    .insert(seller_key(mid as u16, sid), layer);
            }
        }
    }

    /// Number of shipments held.
    pub fn shipments(&self) -> usize {
        self.live as usize
    }

    /// Whether drop mode is on.
    pub fn drop_mode(&self) -> bool {
        self.drop_mode
    }

    /// Counters for metrics.
    pub fn stats(&self) -> &ChainStats {
        &self.stats
    }

    /// The latest log time seen, ms.
    pub fn log_time_ms(&self) -> u64 {
        self.now_ms
    }

    /// Bytes of state held, everything counted: records (by capacity), the
    /// index, the text arena, interners, timers, caps, opt-outs,
    /// consolidation entries and case journals.
    pub fn state_bytes(&self) -> usize {
        self.state_breakdown().iter().map(|(_, b)| b).sum()
    }

    /// [`Chain::state_bytes`] by component, for metrics and tuning.
    pub fn state_breakdown(&self) -> [(&'static str, usize); 10] {
        let journals = self
            .journals
            .values()
            .map(CaseJournal::bytes_held)
            .sum::<usize>()
            + self.journals.capacity() * 8;
        let names = self.marketplaces.bytes_held()
            + self.sellers.bytes_held()
            + self.zones.capacity() * std::mem::size_of::<Tz>()
            + self.zone_clocks.capacity() * std::mem::size_of::<ZoneClock>()
            + self.zone_ids.capacity() * 8
            + self.zone_names.capacity() * 24
            + self.zone_names.keys().map(|k| k.len()).sum::<usize>()
            + self.mp_texts.capacity() * std::mem::size_of::<MarketplaceText>()
            + self.mp_layers.capacity() * 4
            + self.seller_layers.capacity() * 17;
        [
            (
                "records",
                self.records.capacity() * std::mem::size_of::<Shipment>()
                    + self.free.capacity() * 4,
            ),
            ("index", self.index.bytes()),
            ("text", self.arena.bytes_held()),
            ("names", names),
            ("timers", self.wheel.bytes_held()),
            ("caps", self.caps.bytes_held()),
            ("opt_outs", self.opt_outs.bytes_held()),
            ("consolidation", self.consolidation.bytes_held()),
            ("order_counts", self.order_counts.bytes_held()),
            ("journals", journals),
        ]
    }

    /// Advances log time without a record (an idle partition's tick):
    /// releases debounced pings and fires SLA timers that are due.
    pub fn on_tick(&mut self, log_time_ms: u64, out: &mut Outputs) {
        self.advance(log_time_ms, out);
    }

    /// Switches drop mode (a `control` record): wider dedup window, coarser
    /// debounce, low-priority intents as digests. Critical intents never wait.
    pub fn set_drop_mode(&mut self, on: bool, log_time_ms: u64, out: &mut Outputs) {
        self.advance(log_time_ms, out);
        self.drop_mode = on;
    }

    /// Records a buyer's opt-out of a channel (a `control` record).
    pub fn apply_opt_out(
        &mut self,
        src: SourceRef,
        buyer_id: &str,
        channel: Channel,
        out: &mut Outputs,
    ) {
        self.advance(src.log_time_ms, out);
        let key = opt_out_key(buyer_key(buyer_id.as_bytes()), channel);
        if self.opt_outs.set.contains(&key) {
            return;
        }
        if self.opt_outs.set.len() >= self.config.opt_outs_max as usize {
            self.dead_letter(
                src,
                DeadLetterReason::OptOutsFull {
                    opt_outs_max: self.config.opt_outs_max,
                },
                out,
            );
            return;
        }
        self.opt_outs.set.insert(key);
    }

    /// Withdraws an opt-out (the buyer opted back in).
    pub fn apply_opt_in(
        &mut self,
        src: SourceRef,
        buyer_id: &str,
        channel: Channel,
        out: &mut Outputs,
    ) {
        self.advance(src.log_time_ms, out);
        self.opt_outs
            .set
            .remove(&opt_out_key(buyer_key(buyer_id.as_bytes()), channel));
    }

    pub(crate) fn dead_letter(
        &mut self,
        source: SourceRef,
        reason: DeadLetterReason,
        out: &mut Outputs,
    ) {
        self.stats.dead_letters += 1;
        out.dead_letters.push(DeadLetter { source, reason });
    }

    fn check_tracking_number(
        &mut self,
        tn: &str,
        src: SourceRef,
        out: &mut Outputs,
    ) -> Option<TrackingNumber> {
        if tn.is_empty() {
            self.dead_letter(src, DeadLetterReason::TrackingNumberEmpty, out);
            return None;
        }
        let t = TrackingNumber::new(tn);
        if t.is_none() {
            self.dead_letter(
                src,
                DeadLetterReason::TrackingNumberTooLong {
                    bytes: u32::try_from(tn.len()).unwrap_or(u32::MAX),
                },
                out,
            );
        }
        t
    }

    #[inline]
    pub(crate) fn dedup_window_min(&self) -> u32 {
        self.limits.dedup_window_min[usize::from(self.drop_mode)]
    }

    #[inline]
    pub(crate) fn debounce_s(&self) -> u32 {
        self.limits.debounce_s[usize::from(self.drop_mode)]
    }

    /// Applies one carrier event (read in place from the log).
    pub fn on_event(&mut self, src: SourceRef, event: &ArchivedCarrierEvent, out: &mut Outputs) {
        let key = key_of(event.tracking_number.as_str().as_bytes());
        self.on_event_keyed(src, event, key, out);
    }

    /// Applies carrier events in order, with the same outputs and state as
    /// [`Chain::on_event`] on each in turn. Faster on large state: while an
    /// event is processed, the table slots, records and text of the next
    /// few are prefetched (see `ops::prefetch`), so their cache misses
    /// overlap instead of following one another.
    pub fn on_events(&mut self, events: &[EventInput<'_>], out: &mut Outputs) {
        let mut keys = std::mem::take(&mut self.batch_keys);
        keys.clear();
        keys.extend(events.iter().map(|e| {
            (
                key_of(e.event.tracking_number.as_str().as_bytes()),
                u32::MAX,
            )
        }));
        for i in 0..events.len() {
            if let Some(&(k, _)) = keys.get(i + PREFETCH_SLOT_AHEAD) {
                self.index.prefetch(k.0);
            }
            if let Some((k, guess)) = keys.get_mut(i + PREFETCH_RECORD_AHEAD)
                && let Some(r) = self.index.guess(k.0)
            {
                *guess = r;
                prefetch_item(&self.records, r as usize);
            }
            if let Some(&(_, guess)) = keys.get(i + PREFETCH_TEXT_AHEAD)
                && let Some(rec) = self.records.get(guess as usize)
            {
                self.arena.prefetch(rec.text_at);
            }
            let e = events[i];
            self.on_event_keyed(e.source, e.event, keys[i].0, out);
        }
        self.batch_keys = keys;
    }

    fn on_event_keyed(
        &mut self,
        src: SourceRef,
        event: &ArchivedCarrierEvent,
        key: (u64, u32),
        out: &mut Outputs,
    ) {
        self.stats.events += 1;
        self.advance(src.log_time_ms, out);
        let tn_str = event.tracking_number.as_str();
        let Some(tn) = self.check_tracking_number(tn_str, src, out) else {
            return;
        };
        let now_s = secs_u32(src.log_time_ms);
        let idx = self.shipment_for(tn_str, key, now_s, src.log_time_ms, out);
        let status = status_of(&event.status);
        let sub = sub_status_of(&event.sub_status);
        let window_min = self.dedup_window_min();
        let debounce_s = self.debounce_s();
        let now_min = now_s / 60;
        let fp = dedup::fingerprint(event);
        let rec = &mut self.records[idx];
        rec.flags |= flag::REFERENCED;
        if rec.carrier == 0 {
            rec.carrier = carrier_of(&event.carrier).map_or(0, |c| c as u8);
        }
        if rec.dedup.contains(fp, now_min, window_min) {
            self.stats.duplicates += 1;
            let d = decision(
                tn,
                DecisionKind::Deduplicated,
                src.log_time_ms,
                src,
                status,
                sub,
            );
            self.emit(idx, d, out);
            return;
        }
        if status == Status::Unknown {
            rec.dedup.insert(fp, now_min);
            self.stats.unmapped += 1;
            let d = decision(
                tn,
                DecisionKind::Unmapped,
                src.log_time_ms,
                src,
                status,
                sub,
            );
            self.emit(idx, d, out);
            self.rearm(idx);
            return;
        }
        let occurred_ms = event.occurred_at_ms.to_native();
        if rec.has(flag::HAS_SCAN) && occurred_ms < rec.newest_occurred_ms() {
            self.stats.late += 1;
            let d = decision(tn, DecisionKind::Late, src.log_time_ms, src, status, sub);
            self.emit(idx, d, out);
            self.rearm(idx);
            return;
        }
        // Late scans stay out of the ring: a replay of one is late again,
        // and the ring keeps room for the scans that can still matter.
        rec.dedup.insert(fp, now_min);
        rec.last_log_s = now_s;
        let loc = debounce::location_hash(event);
        let verdict = if rec.has(flag::STALE) {
            Debounce::Pass
        } else {
            debounce::decide(rec, status, loc, now_s, debounce_s)
        };
        let previously_held = rec
            .has(flag::HELD)
            .then_some((rec.held_offset, rec.held_log_s));
        if let Some((held_offset, held_log_s)) = previously_held {
            let held_src = self.event_ref(held_offset, held_log_s);
            let (hs, hsub) = self.held_status(idx);
            let mut d = decision(
                tn,
                DecisionKind::Superseded,
                src.log_time_ms,
                held_src,
                hs,
                hsub,
            );
            d.related_offset = Some(src.offset);
            self.stats.suppressed += 1;
            self.records[idx].set(flag::HELD, false);
            self.emit(idx, d, out);
        }
        if verdict == Debounce::Hold {
            let rec = &mut self.records[idx];
            rec.set(flag::HELD, true);
            rec.held_offset = src.offset;
            rec.held_log_s = now_s;
            rec.held_occurred_ms = occurred_ms;
            rec.held_status = status as u8;
            rec.held_sub = sub as u8;
            let due_s = u64::from(rec.pass_log_s.saturating_add(debounce_s));
            self.stats.debounced += 1;
            let mut d = decision(
                tn,
                DecisionKind::Debounced,
                src.log_time_ms,
                src,
                status,
                sub,
            );
            d.until_ms = due_s * 1000;
            self.emit(idx, d, out);
            self.rearm(idx);
            return;
        }
        self.accept(
            idx,
            tn,
            Accepted {
                status,
                sub,
                offset: src.offset,
                occurred_ms,
                pass_s: now_s,
                loc,
                event_log_ms: src.log_time_ms,
                at_ms: src.log_time_ms,
                source: src,
                change: ViewChange::Scan,
                location: Some(view::location_summary(event)),
            },
            out,
        );
        self.rearm(idx);
    }

    /// Applies an order (owned, or archived and read in place).
    pub fn on_order<O: OrderInput + ?Sized>(
        &mut self,
        src: SourceRef,
        order: &O,
        out: &mut Outputs,
    ) {
        self.stats.orders += 1;
        self.advance(src.log_time_ms, out);
        let tn_str = order.tracking_number();
        let Some(tn) = self.check_tracking_number(tn_str, src, out) else {
            return;
        };
        let too_long = [
            (
                OrderField::OrderId,
                order.order_id().len(),
                IdText::CAPACITY,
            ),
            (
                OrderField::BuyerId,
                order.buyer_id().len(),
                IdText::CAPACITY,
            ),
            (
                OrderField::Marketplace,
                order.marketplace().len(),
                MarketplaceText::CAPACITY,
            ),
            (OrderField::Seller, order.seller().len(), SELLER_BYTES_MAX),
        ]
        .into_iter()
        .find(|(_, len, max)| len > max);
        if let Some((field, len, _)) = too_long {
            self.dead_letter(
                src,
                DeadLetterReason::OrderFieldTooLong {
                    field,
                    bytes: u32::try_from(len).unwrap_or(u32::MAX),
                },
                out,
            );
            return;
        }
        let now_s = secs_u32(src.log_time_ms);
        let idx = self.shipment_for(
            tn_str,
            key_of(tn_str.as_bytes()),
            now_s,
            src.log_time_ms,
            out,
        );
        let marketplace = self.intern_marketplace(order.marketplace());
        let seller = self.intern_seller(marketplace, order.marketplace(), order.seller());
        let tz = self.intern_zone(order.buyer_time_zone());
        let text_at = self.records[idx].text_at;
        let texts = self.arena.get(text_at);
        if texts.order_id != order.order_id().as_bytes() {
            self.order_counts
                .add(order_key(order.order_id().as_bytes()));
            self.records[idx].set(flag::MULTI_KNOWN, false);
        }
        let texts = self.arena.get(text_at);
        if texts.order_id != order.order_id().as_bytes()
            || texts.buyer_id != order.buyer_id().as_bytes()
        {
            let fresh = crate::ops::arena::Texts {
                tracking_number: tn_str,
                order_id: order.order_id(),
                buyer_id: order.buyer_id(),
            };
            // Freeing first lets a block at the end (the usual case: the
            // shipment was created by this order) be reused in place.
            self.arena.free(text_at);
            self.records[idx].text_at = self.arena.push(fresh).unwrap_or(u32::MAX);
        }
        let rec = &mut self.records[idx];
        rec.flags |= flag::REFERENCED | flag::HAS_ORDER;
        rec.set(flag::DROP_ORDER, order.is_drop());
        rec.order_offset = src.offset;
        rec.marketplace = marketplace;
        rec.seller = seller;
        rec.tz = tz;
        rec.consent = order.consent_bits();
        rec.promised_from_s = secs_u32_signed(order.promised_from_ms());
        rec.promised_to_s = secs_u32_signed(order.promised_to_ms());
        if rec.carrier == 0 {
            rec.carrier = order.carrier() as u8;
        }
        if !rec.has(flag::HAS_SCAN) {
            rec.last_log_s = now_s;
        }
        let status = rec.status().unwrap_or(Status::Unknown);
        let sub = rec.sub_status();
        let v = view::build(rec, tn, ViewChange::OrderLinked, src.log_time_ms, None);
        out.views.push(v);
        let d = decision(
            tn,
            DecisionKind::OrderLinked,
            src.log_time_ms,
            src,
            status,
            sub,
        );
        self.emit(idx, d, out);
        self.rearm(idx);
        self.maybe_compact_arena();
    }

    /// The shipment for a record, with its overdue timers fired first (as
    /// of their due times); a shipment retired by them starts afresh.
    fn shipment_for(
        &mut self,
        tn: &str,
        key: (u64, u32),
        now_s: u32,
        now_ms: u64,
        out: &mut Outputs,
    ) -> usize {
        let idx = self.find_or_create(tn, key, now_s, now_ms, out);
        if self.fire_due(idx, now_s, out) {
            idx
        } else {
            self.find_or_create(tn, key, now_s, now_ms, out)
        }
    }

    fn intern_marketplace(&mut self, name: &str) -> u16 {
        let id = self.marketplaces.intern(name);
        while self.mp_layers.len() < self.marketplaces.len() {
            let n = self.marketplaces.name(self.mp_layers.len() as u32);
            let layer = self.rules.marketplace_layer(n);
            self.mp_layers.push(layer);
        }
        u16::try_from(id).unwrap_or(0)
    }

    fn intern_seller(&mut self, marketplace: u16, marketplace_name: &str, name: &str) -> u32 {
        let id = self.sellers.intern(name);
        if self.rules.has_seller_overrides() {
            let key = seller_key(marketplace, id);
            if !self.seller_layers.contains_key(&key)
                && let Some(layer) = self.rules.seller_layer(marketplace_name, name)
            {
                self.seller_layers.insert(key, layer);
            }
        }
        id
    }

    fn intern_zone(&mut self, name: &str) -> u16 {
        if let Some(&id) = self.zone_names.get(name) {
            return id;
        }
        let parsed: Option<Tz> = name.parse().ok();
        let tz = parsed.unwrap_or(Tz::UTC);
        let id = if let Some(&id) = self.zone_ids.get(&tz) {
            id
        } else {
            let Ok(id) = u16::try_from(self.zones.len()) else {
                return 0;
            };
            self.zones.push(tz);
            self.zone_ids.insert(tz, id);
            id
        };
        // Only names of real zones are remembered (a few hundred exist),
        // so arbitrary text in orders cannot grow the cache.
        if parsed.is_some() && self.zone_names.len() < ZONE_NAMES_CACHED_MAX {
            self.zone_names.insert(name.into(), id);
        }
        id
    }

    /// The marketplace's name as intents carry it (cut to fit).
    pub(crate) fn marketplace_text(&mut self, id: u16) -> MarketplaceText {
        let i = usize::from(id);
        while self.mp_texts.len() <= i && self.mp_texts.len() < self.marketplaces.len() {
            let n = self.marketplaces.name(self.mp_texts.len() as u32);
            self.mp_texts.push(MarketplaceText::truncated(n));
        }
        self.mp_texts
            .get(i)
            .copied()
            .unwrap_or_else(|| MarketplaceText::truncated(self.marketplaces.name(u32::from(id))))
    }

    /// The layers that apply to a shipment: its seller's, its marketplace's.
    pub(crate) fn layer_chain(&self, rec: &Shipment) -> [Option<LayerId>; 2] {
        let seller = if self.seller_layers.is_empty() {
            None
        } else {
            self.seller_layers
                .get(&seller_key(rec.marketplace, rec.seller))
                .copied()
        };
        let mp = self
            .mp_layers
            .get(usize::from(rec.marketplace))
            .copied()
            .flatten();
        [seller, mp]
    }

    /// A reference to an event of this partition.
    pub(crate) fn event_ref(&self, offset: u64, log_s: u32) -> SourceRef {
        SourceRef::event(self.config.partition, offset, u64::from(log_s) * 1000)
    }

    /// The record a timer output is about: the latest scan, else the order.
    pub(crate) fn latest_ref(&self, idx: usize) -> SourceRef {
        let rec = &self.records[idx];
        if rec.last_offset != NO_OFFSET {
            self.event_ref(rec.last_offset, rec.last_log_s)
        } else {
            SourceRef::order(
                self.config.partition,
                rec.order_offset,
                u64::from(rec.last_log_s) * 1000,
            )
        }
    }

    pub(crate) fn held_status(&self, idx: usize) -> (Status, SubStatus) {
        let rec = &self.records[idx];
        (
            crate::ops::wire::codes::status(rec.held_status).unwrap_or(Status::Unknown),
            crate::ops::wire::codes::sub_status(rec.held_sub).unwrap_or(SubStatus::None),
        )
    }

    pub(crate) fn tracking_number_of(&self, idx: usize) -> TrackingNumber {
        TrackingNumber::from_utf8_bytes(self.arena.get(self.records[idx].text_at).tracking_number)
    }

    /// Pushes a decision, and into the case journal while an exception is open.
    #[inline(always)]
    pub(crate) fn emit(&mut self, idx: usize, d: Decision, out: &mut Outputs) {
        out.decisions.push(d);
        if self.records[idx].has(flag::EXCEPTION_OPEN)
            && let Some(j) = self.journals.get_mut(&(idx as u32))
            && let Some(d) = out.decisions.last()
        {
            j.push_decision(d);
        }
    }

    /// Finds a shipment by tracking number.
    pub(crate) fn find(&self, tn: &str) -> Option<usize> {
        let (h, c) = key_of(tn.as_bytes());
        self.index
            .find(h, |i| {
                let r = &self.records[i as usize];
                r.key_hash == h && r.key_check == c
            })
            .map(|i| i as usize)
    }

    /// The current view of a shipment, if it is held.
    pub fn shipment_view(&self, tracking_number: &str) -> Option<ShipmentView> {
        let idx = self.find(tracking_number)?;
        let rec = &self.records[idx];
        Some(view::build(
            rec,
            self.tracking_number_of(idx),
            ViewChange::Scan,
            self.now_ms,
            None,
        ))
    }
}
