//! Applying an accepted scan: the shipment's state and view, its exception
//! bookkeeping, then the rules (enriched with the order) and the fan-out
//! into intents per channel, with a decision for every outcome.

use crate::model::{Priority, Status, SubStatus};
use crate::ops::chain::{Chain, decision};
use crate::ops::decision::DecisionKind;
use crate::ops::exceptions::{ExceptionClass, Remediation, resolves_exception};
use crate::ops::fanout::{
    ConsolidationEntry, LocalClock, ZoneClock, buyer_key, consolidation_key, local_clock_cached,
    order_key,
};
use crate::ops::journal::CaseJournal;
use crate::ops::outputs::{
    CaseEvent, IntentId, LocationSummary, NotificationIntent, Outputs, SourceRef, ViewChange,
};
use crate::ops::rules::{Rule, RuleMatch};
use crate::ops::shipment::{NO_OFFSET, consents, flag, secs_u32};
use crate::ops::text::{IdText, TrackingNumber};
use crate::ops::view;

/// A scan that passed dedup and debounce (or a released ping).
pub(crate) struct Accepted {
    pub(crate) status: Status,
    pub(crate) sub: SubStatus,
    pub(crate) offset: u64,
    pub(crate) occurred_ms: i64,
    /// Debounce window start (log s).
    pub(crate) pass_s: u32,
    pub(crate) loc: u32,
    /// Log time of the scan itself.
    pub(crate) event_log_ms: u64,
    /// Effective time of the change (a release's due time).
    pub(crate) at_ms: u64,
    pub(crate) source: SourceRef,
    pub(crate) change: ViewChange,
    pub(crate) location: Option<LocationSummary>,
}

/// What the rules are asked about.
pub(crate) struct Trigger {
    pub(crate) status: Status,
    pub(crate) sub: SubStatus,
    pub(crate) previous: Option<Status>,
    pub(crate) source: SourceRef,
    pub(crate) event_log_ms: u64,
    pub(crate) at_ms: u64,
}

impl Chain {
    pub(crate) fn accept(
        &mut self,
        idx: usize,
        tn: TrackingNumber,
        a: Accepted,
        out: &mut Outputs,
    ) {
        let journals_max = self.config.case_journals_max as usize;
        let rec = &mut self.records[idx];
        let previous = rec.status();
        let before = (rec.last_offset != NO_OFFSET).then(|| CaseEvent {
            offset: rec.last_offset,
            log_time_ms: u64::from(rec.pass_log_s) * 1000,
            occurred_at_ms: rec.last_occurred_ms,
            status: previous.unwrap_or(Status::Unknown),
            sub_status: rec.sub_status(),
        });
        rec.status = a.status as u8;
        rec.sub = a.sub as u8;
        rec.set(flag::HAS_SCAN, true);
        rec.set(flag::STALE, false);
        rec.last_offset = a.offset;
        rec.last_occurred_ms = a.occurred_ms;
        rec.loc_hash = a.loc;
        rec.pass_log_s = a.pass_s;
        let this = CaseEvent {
            offset: a.offset,
            log_time_ms: a.event_log_ms,
            occurred_at_ms: a.occurred_ms,
            status: a.status,
            sub_status: a.sub,
        };
        let key = idx as u32;
        if let Some(class) = ExceptionClass::classify(a.status, a.sub) {
            rec.exc_class = class as u8;
            if !rec.has(flag::EXCEPTION_OPEN) {
                rec.set(flag::EXCEPTION_OPEN, true);
                rec.set(flag::ESCALATED, false);
                rec.exception_since_s = secs_u32(a.at_ms);
                if self.journals.len() < journals_max {
                    let mut j = CaseJournal::default();
                    if let Some(b) = before {
                        j.push_event(b);
                    }
                    self.journals.insert(key, j);
                }
            }
            if let Some(j) = self.journals.get_mut(&key) {
                j.push_event(this);
            }
        } else if rec.has(flag::EXCEPTION_OPEN) {
            if resolves_exception(a.status) {
                rec.set(flag::EXCEPTION_OPEN, false);
                rec.set(flag::ESCALATED, false);
                self.journals.remove(&key);
            } else if let Some(j) = self.journals.get_mut(&key) {
                j.push_event(this);
            }
        }
        let rec = &self.records[idx];
        out.views
            .push(view::build(rec, tn, a.change, a.at_ms, a.location));
        self.notify(
            idx,
            tn,
            Trigger {
                status: a.status,
                sub: a.sub,
                previous,
                source: a.source,
                event_log_ms: a.event_log_ms,
                at_ms: a.at_ms,
            },
            out,
        );
    }

    /// Asks the rules about a trigger and fans out.
    pub(crate) fn notify(&mut self, idx: usize, tn: TrackingNumber, t: Trigger, out: &mut Outputs) {
        let rec = &self.records[idx];
        if !rec.has(flag::HAS_ORDER) {
            let d = decision(
                tn,
                DecisionKind::NoOrder,
                t.at_ms,
                t.source,
                t.status,
                t.sub,
            );
            self.emit(idx, d, out);
            return;
        }
        let chain = self.layer_chain(rec);
        let matched = match self.rules.match_layers(&chain, t.status, t.sub, t.previous) {
            RuleMatch::None => Err(None),
            RuleMatch::NotATransition(r) => Err(Some(r.id)),
            RuleMatch::Fire(r) => Ok(*r),
        };
        match matched {
            Err(rule_id) => {
                let kind = if rule_id.is_some() {
                    DecisionKind::NotATransition
                } else {
                    DecisionKind::NoRule
                };
                let mut d = decision(tn, kind, t.at_ms, t.source, t.status, t.sub);
                d.rule_id = rule_id.unwrap_or_default();
                self.emit(idx, d, out);
            }
            Ok(rule) if rule.channels.is_empty() => {
                self.stats.suppressed += 1;
                let mut d = decision(
                    tn,
                    DecisionKind::SuppressedByRule,
                    t.at_ms,
                    t.source,
                    t.status,
                    t.sub,
                );
                d.rule_id = rule.id;
                self.emit(idx, d, out);
            }
            Ok(rule) => self.fan_out(idx, tn, &rule, &t, out),
        }
    }

    fn fan_out(
        &mut self,
        idx: usize,
        tn: TrackingNumber,
        rule: &Rule,
        t: &Trigger,
        out: &mut Outputs,
    ) {
        // The few fields fan-out reads, not a copy of the whole record.
        let rec = &self.records[idx];
        let settings = self.rules.settings_for(&self.layer_chain(rec));
        let (text_at, marketplace_id, tz_raw, flags, exc_class, parcel) = (
            rec.text_at,
            rec.marketplace,
            rec.tz,
            rec.flags,
            rec.exc_class,
            rec.key_hash as u32,
        );
        let (consent, carrier, order_offset) = (rec.consent, rec.carrier(), rec.order_offset);
        let texts = self.arena.get(text_at);
        let order_id = IdText::from_utf8_bytes(texts.order_id);
        let buyer_id = IdText::from_utf8_bytes(texts.buyer_id);
        let marketplace = self.marketplace_text(marketplace_id);
        let buyer = buyer_key(buyer_id.as_bytes());
        let tz_id = usize::from(tz_raw).min(self.zones.len().saturating_sub(1));
        let tz = self.zones.get(tz_id).copied().unwrap_or(chrono_tz::Tz::UTC);
        if self.zone_clocks.len() < self.zones.len() {
            self.zone_clocks
                .resize(self.zones.len(), ZoneClock::default());
        }
        let order = order_key(order_id.as_bytes());
        // The order's parcel count is read once per shipment, at its first
        // notification (orders arrive at checkout, days before).
        let multi_parcel = if flags & flag::MULTI_KNOWN != 0 {
            flags & flag::MULTI_PARCEL != 0
        } else {
            let multi = self.order_counts.multi(order);
            let r = &mut self.records[idx];
            r.set(flag::MULTI_KNOWN, true);
            r.set(flag::MULTI_PARCEL, multi);
            multi
        };
        let id_prefix = IntentId::prefix(tn.as_bytes(), rule.id.as_bytes());
        let at_s = secs_u32(t.at_ms);
        let priority = rule.priority;
        let critical = priority == Priority::Critical;
        let remediation = if t.status == Status::Exception {
            ExceptionClass::from_code(exc_class)
                .map_or(Remediation::None, ExceptionClass::remediation)
        } else {
            Remediation::None
        };
        let digest = !critical
            && (rule.digest
                || (self.drop_mode
                    && (priority == Priority::Low
                        || (priority == Priority::Normal && self.config.drop_mode_digest_normal))));
        let window_s = self.limits.consolidate_window_s;
        let mut clock: Option<LocalClock> = None;
        // The digest slot is the same for every channel.
        let digest_send_after_ms = if digest {
            let slot_s = u64::from(settings.digest_interval_minutes) * 60;
            (u64::from(at_s) / slot_s + 1) * slot_s * 1000
        } else {
            0
        };
        for channel in rule.channels.iter() {
            let id = IntentId::from_prefix(id_prefix, channel, t.source.topic, t.source.offset);
            let mut d = decision(
                tn,
                DecisionKind::Notified,
                t.at_ms,
                t.source,
                t.status,
                t.sub,
            );
            d.rule_id = rule.id;
            d.channel = Some(channel);
            let suppressed = if !consents(consent, channel) {
                Some(DecisionKind::SuppressedNoConsent)
            } else if self.opt_outs.contains(buyer, channel) {
                Some(DecisionKind::SuppressedOptOut)
            } else {
                None
            };
            if let Some(kind) = suppressed {
                self.stats.suppressed += 1;
                d.kind = kind;
                self.emit(idx, d, out);
                continue;
            }
            let ckey = consolidation_key(order, t.status, channel);
            if multi_parcel
                && let Some(into) = self.consolidation.joined(ckey, parcel, at_s, window_s)
            {
                self.stats.suppressed += 1;
                d.kind = DecisionKind::Consolidated;
                d.intent_id = Some(into);
                self.emit(idx, d, out);
                continue;
            }
            let mut send_after_ms = 0u64;
            if digest {
                send_after_ms = digest_send_after_ms;
                d.kind = DecisionKind::Digested;
            } else {
                // The buyer's local clock (caps' day, quiet hours) is only
                // needed here; the zone cache it fills is derived state.
                let zone_clock = &mut self.zone_clocks[tz_id];
                let local = *clock.get_or_insert_with(|| local_clock_cached(zone_clock, tz, at_s));
                let cap = settings.caps_per_day[channel as usize - 1];
                if !self.caps.try_take(buyer, local.day, channel, cap, critical) {
                    self.stats.suppressed += 1;
                    d.kind = DecisionKind::SuppressedCap;
                    self.emit(idx, d, out);
                    continue;
                }
                if let Some(q) = settings.quiet_hours
                    && q.applies(channel, priority)
                    && let Some(left) = q.minutes_left(local.minute)
                {
                    let start_of_minute = u64::from(at_s - at_s % 60);
                    send_after_ms = (start_of_minute + u64::from(left) * 60) * 1000;
                    d.kind = DecisionKind::HeldQuietHours;
                }
            }
            out.intents.push(NotificationIntent {
                id,
                tracking_number: tn,
                carrier: carrier.unwrap_or(crate::model::Carrier::Ups),
                channel,
                priority,
                template: rule.template,
                rule_id: rule.id,
                order_id,
                marketplace,
                buyer_id,
                order_offset,
                status: t.status,
                sub_status: t.sub,
                remediation,
                digest,
                send_after_ms,
                created_log_ms: t.at_ms,
                event_log_ms: t.event_log_ms,
                source_offset: t.source.offset,
            });
            self.stats.intents += 1;
            d.intent_id = Some(id);
            d.until_ms = send_after_ms;
            self.emit(idx, d, out);
            if multi_parcel {
                self.consolidation.record(
                    ckey,
                    ConsolidationEntry {
                        log_s: at_s,
                        parcel,
                        intent: id,
                    },
                    window_s,
                );
            }
        }
    }
}
