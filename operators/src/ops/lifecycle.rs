//! A shipment's life in the state: creation on its first record, timers
//! (debounce release, stale SLA, exception escalation, retirement), and
//! removal (retired after its terminal status or long idleness, or evicted
//! when the state is at `shipments_max`). Timer outputs carry their due time
//! as their log time, so they are the same whichever later record or tick
//! happened to fire them.

use crate::model::{Status, SubStatus};
use crate::ops::apply::{Accepted, Trigger};
use crate::ops::arena::Texts;
use crate::ops::chain::{Chain, decision};
use crate::ops::decision::DecisionKind;
use crate::ops::exceptions::ExceptionClass;
use crate::ops::outputs::{
    CaseFile, CaseOrder, Escalation, EscalationKind, IntentId, Outputs, ViewChange,
};
use crate::ops::shipment::{Shipment, flag, secs_u32};
use crate::ops::view;

/// Timer kinds, in the order they fire when due at the same second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Release,
    Stale,
    Escalate,
    Retire,
}

/// Most timers handled for one shipment in one wake-up (each changes state,
/// so a handful always suffices; the bound keeps the loop finite).
const TIMERS_PER_WAKE_MAX: usize = 8;

impl Chain {
    fn due(&self, rec: &Shipment) -> Option<(u32, Timer)> {
        let mut best: Option<(u32, Timer)> = None;
        let mut consider = |due: u32, t: Timer| {
            if best.is_none_or(|b| (due, t) < b) {
                best = Some((due, t));
            }
        };
        if rec.has(flag::HELD) {
            consider(
                rec.pass_log_s.saturating_add(self.debounce_s()),
                Timer::Release,
            );
        }
        let active = rec.has(flag::HAS_SCAN) || rec.has(flag::HAS_ORDER);
        let terminal = rec.is_terminal();
        if active && !terminal && !rec.has(flag::STALE) {
            consider(
                rec.last_log_s.saturating_add(self.limits.stale_after_s),
                Timer::Stale,
            );
        }
        if rec.has(flag::EXCEPTION_OPEN) && !rec.has(flag::ESCALATED) {
            consider(
                rec.exception_since_s
                    .saturating_add(self.limits.escalate_after_s),
                Timer::Escalate,
            );
        }
        let retain_s = if terminal {
            self.limits.retain_terminal_s
        } else {
            self.limits.retain_idle_s
        };
        consider(rec.last_log_s.saturating_add(retain_s), Timer::Retire);
        best
    }

    /// Schedules the shipment's next wake-up if it is earlier than the one
    /// pending.
    pub(crate) fn rearm(&mut self, idx: usize) {
        let rec = &self.records[idx];
        if !rec.has(flag::LIVE) {
            return;
        }
        let Some((due, _)) = self.due(rec) else {
            return;
        };
        let m = self.wheel.wake_minute(due);
        let rec = &mut self.records[idx];
        if rec.wake_min == 0 || m < rec.wake_min {
            rec.wake_min = m;
            self.wheel.schedule(idx as u32, m);
        }
    }

    /// Advances log time, firing every wake-up whose minute has begun.
    pub(crate) fn advance(&mut self, log_time_ms: u64, out: &mut Outputs) {
        self.now_ms = self.now_ms.max(log_time_ms);
        let now_s = secs_u32(self.now_ms);
        self.wheel.start(now_s / 60);
        while u64::from(self.wheel.pos_min) * 60 <= u64::from(now_s) {
            let m = self.wheel.pos_min;
            loop {
                let bucket = self.wheel.take(m);
                if bucket.is_empty() {
                    self.wheel.put_back(m, bucket);
                    break;
                }
                for &idx in &bucket {
                    let idx = idx as usize;
                    let valid = self
                        .records
                        .get(idx)
                        .is_some_and(|r| r.has(flag::LIVE) && r.wake_min == m);
                    if valid {
                        self.records[idx].wake_min = 0;
                        if self.fire_due(idx, m.saturating_mul(60), out) {
                            self.rearm(idx);
                        }
                    }
                }
                self.wheel.put_back(m, bucket);
            }
            self.wheel.pos_min += 1;
        }
    }

    /// Fires the shipment's timers due at or before `limit_s`, each as of
    /// its due time. Returns whether the shipment is still held.
    pub(crate) fn fire_due(&mut self, idx: usize, limit_s: u32, out: &mut Outputs) -> bool {
        for _ in 0..TIMERS_PER_WAKE_MAX {
            let rec = &self.records[idx];
            if !rec.has(flag::LIVE) {
                return false;
            }
            let Some((due, timer)) = self.due(rec) else {
                return true;
            };
            if due > limit_s {
                return true;
            }
            match timer {
                Timer::Release => self.release(idx, due, out),
                Timer::Stale => self.mark_stale(idx, due, out),
                Timer::Escalate => self.escalate(idx, due, out),
                Timer::Retire => {
                    self.stats.retired += 1;
                    self.remove(idx, DecisionKind::Retired, u64::from(due) * 1000, out);
                    return false;
                }
            }
        }
        true
    }

    fn release(&mut self, idx: usize, due_s: u32, out: &mut Outputs) {
        let tn = self.tracking_number_of(idx);
        let rec = &mut self.records[idx];
        rec.set(flag::HELD, false);
        let (offset, log_s, occurred_ms, loc) = (
            rec.held_offset,
            rec.held_log_s,
            rec.held_occurred_ms,
            rec.loc_hash,
        );
        let (status, sub) = self.held_status(idx);
        let src = self.event_ref(offset, log_s);
        let at_ms = u64::from(due_s) * 1000;
        self.stats.released += 1;
        let mut d = decision(tn, DecisionKind::Released, at_ms, src, status, sub);
        d.related_offset = Some(offset);
        self.emit(idx, d, out);
        self.accept(
            idx,
            tn,
            Accepted {
                status,
                sub,
                offset,
                occurred_ms,
                pass_s: due_s,
                loc,
                event_log_ms: src.log_time_ms,
                at_ms,
                source: src,
                change: ViewChange::Released,
                location: None,
            },
            out,
        );
    }

    fn mark_stale(&mut self, idx: usize, due_s: u32, out: &mut Outputs) {
        let tn = self.tracking_number_of(idx);
        let src = self.latest_ref(idx);
        let at_ms = u64::from(due_s) * 1000;
        let rec = &mut self.records[idx];
        rec.set(flag::STALE, true);
        let previous = rec.status();
        let sub = if rec.has(flag::HAS_SCAN) {
            SubStatus::None
        } else {
            SubStatus::NoInfoYet
        };
        self.stats.stale += 1;
        let rec = &self.records[idx];
        out.views
            .push(view::build(rec, tn, ViewChange::Stale, at_ms, None));
        let d = decision(tn, DecisionKind::Stale, at_ms, src, Status::Stale, sub);
        self.emit(idx, d, out);
        self.notify(
            idx,
            tn,
            Trigger {
                status: Status::Stale,
                sub,
                previous,
                source: src,
                event_log_ms: src.log_time_ms,
                at_ms,
            },
            out,
        );
    }

    fn escalate(&mut self, idx: usize, due_s: u32, out: &mut Outputs) {
        let tn = self.tracking_number_of(idx);
        let at_ms = u64::from(due_s) * 1000;
        let rec = self.records[idx];
        self.records[idx].set(flag::ESCALATED, true);
        let journal = self.journals.remove(&(idx as u32)).unwrap_or_default();
        let exception_offset = journal
            .events
            .iter()
            .find(|e| e.status == Status::Exception)
            .map_or(rec.last_offset, |e| e.offset);
        let class = ExceptionClass::from_code(rec.exc_class).unwrap_or(ExceptionClass::Other);
        let texts = self.arena.get(rec.text_at);
        let order = rec.has(flag::HAS_ORDER).then(|| CaseOrder {
            order_id: crate::ops::text::IdText::from_utf8_bytes(texts.order_id),
            marketplace: self
                .marketplaces
                .name(u32::from(rec.marketplace))
                .to_string(),
            seller: self.sellers.name(rec.seller).to_string(),
            buyer_id: crate::ops::text::IdText::from_utf8_bytes(texts.buyer_id),
            order_offset: rec.order_offset,
            promised_from_ms: (rec.promised_from_s != 0)
                .then(|| i64::from(rec.promised_from_s) * 1000),
            promised_to_ms: (rec.promised_to_s != 0).then(|| i64::from(rec.promised_to_s) * 1000),
        });
        let kind = EscalationKind::ExceptionUnresolved;
        self.stats.escalations += 1;
        out.escalations.push(Escalation {
            id: IntentId::for_escalation(tn.as_str(), kind as u8, exception_offset),
            tracking_number: tn,
            kind,
            class,
            remediation: class.remediation(),
            exception_offset,
            opened_log_ms: u64::from(rec.exception_since_s) * 1000,
            breached_log_ms: at_ms,
            case_file: CaseFile {
                order,
                events: journal.events,
                decisions: journal.decisions,
                rules: journal.rules,
            },
        });
        let src = self.event_ref(exception_offset, rec.exception_since_s);
        let d = decision(
            tn,
            DecisionKind::Escalated,
            at_ms,
            src,
            Status::Exception,
            rec.sub_status(),
        );
        self.emit(idx, d, out);
        let rec = &self.records[idx];
        out.views
            .push(view::build(rec, tn, ViewChange::Escalated, at_ms, None));
    }

    /// Finds the shipment for a tracking number, creating it (and evicting
    /// another when the state is full) on its first record.
    pub(crate) fn find_or_create(
        &mut self,
        tn: &str,
        (h, c): (u64, u32),
        now_s: u32,
        now_ms: u64,
        out: &mut Outputs,
    ) -> usize {
        let records = &self.records;
        if let Some(i) = self.index.find(h, |i| {
            let r = &records[i as usize];
            r.key_hash == h && r.key_check == c
        }) {
            return i as usize;
        }
        if self.live >= self.config.shipments_max {
            self.evict_one(now_ms, out);
        }
        let text_at = self
            .arena
            .push(Texts {
                tracking_number: tn,
                order_id: "",
                buyer_id: "",
            })
            .unwrap_or(u32::MAX);
        let mut rec = Shipment::new(h, c, text_at);
        rec.last_log_s = now_s;
        let idx = match self.free.pop() {
            Some(i) => {
                self.records[i as usize] = rec;
                i as usize
            }
            None => {
                self.records.push(rec);
                self.records.len() - 1
            }
        };
        self.index.insert(h, idx as u32);
        self.live += 1;
        idx
    }

    /// Evicts one shipment: a clock sweep that takes the first terminal
    /// shipment, or the first not touched since the hand last passed.
    fn evict_one(&mut self, now_ms: u64, out: &mut Outputs) {
        let n = self.records.len();
        if n == 0 {
            return;
        }
        for _ in 0..2 * n + 1 {
            let i = self.clock_hand as usize % n;
            self.clock_hand = ((i + 1) % n) as u32;
            let rec = &mut self.records[i];
            if !rec.has(flag::LIVE) {
                continue;
            }
            if !rec.is_terminal() && rec.has(flag::REFERENCED) {
                rec.set(flag::REFERENCED, false);
                continue;
            }
            self.stats.evicted += 1;
            self.remove(i, DecisionKind::Evicted, now_ms, out);
            return;
        }
    }

    /// Removes a shipment from the state, with a decision and a view change.
    pub(crate) fn remove(&mut self, idx: usize, kind: DecisionKind, at_ms: u64, out: &mut Outputs) {
        let tn = self.tracking_number_of(idx);
        let src = self.latest_ref(idx);
        let rec = self.records[idx];
        let d = decision(
            tn,
            kind,
            at_ms,
            src,
            rec.status().unwrap_or(Status::Unknown),
            rec.sub_status(),
        );
        self.emit(idx, d, out);
        out.views
            .push(view::build(&rec, tn, ViewChange::Removed, at_ms, None));
        self.index.remove(rec.key_hash, idx as u32);
        if rec.text_at != u32::MAX {
            self.arena.free(rec.text_at);
        }
        self.journals.remove(&(idx as u32));
        self.records[idx] = Shipment::default();
        self.free.push(idx as u32);
        self.live -= 1;
        self.maybe_compact_arena();
    }

    /// Rewrites the text arena without dead blocks when they dominate.
    pub(crate) fn maybe_compact_arena(&mut self) {
        if !self.arena.wants_compaction() {
            return;
        }
        let live_bytes = self.arena.bytes.len() - self.arena.dead;
        let mut fresh = Vec::with_capacity(live_bytes + live_bytes / 8);
        for rec in self.records.iter_mut().filter(|r| r.has(flag::LIVE)) {
            if rec.text_at == u32::MAX {
                continue;
            }
            let start = rec.text_at as usize;
            let len = self.arena.block_len(rec.text_at);
            let Ok(at) = u32::try_from(fresh.len()) else {
                break;
            };
            fresh.extend_from_slice(&self.arena.bytes[start..start + len]);
            rec.text_at = at;
        }
        self.arena.bytes = fresh;
        self.arena.dead = 0;
    }
}
