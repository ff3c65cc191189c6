//! Escalations: an SLA breach handed to support with its case file.
//!
//! The case file holds what the chain saw of the shipment since the
//! exception opened (scans and decisions, bounded by
//! `CASE_JOURNAL_EVENTS_MAX` and `CASE_JOURNAL_DECISIONS_MAX`), the rules
//! that decided, and the order summary. The complete timeline is one key
//! lookup away in the log (the `carrier-events` key index), which is why the
//! state does not keep every scan of every parcel.

use serde::{Deserialize, Serialize};

use crate::model::{Channel, Status, SubStatus};
use crate::ops::decision::DecisionKind;
use crate::ops::exceptions::{ExceptionClass, Remediation};
use crate::ops::text::{IdText, RuleText, TrackingNumber};
use crate::ops::wire::{Reader, WireError, Writer, codes};

use super::{IntentId, opt_i64, read_opt_i64};

/// Version byte of the escalation encoding.
pub const ESCALATION_FORMAT_V1: u8 = 1;

/// Which SLA was breached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum EscalationKind {
    /// An exception stayed unresolved past `exception_escalate_after_ms`.
    ExceptionUnresolved = 1,
}

/// The order behind the shipment, as the case file shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseOrder {
    /// Storefront order id.
    pub order_id: IdText,
    /// Marketplace.
    pub marketplace: String,
    /// Seller.
    pub seller: String,
    /// Buyer.
    pub buyer_id: IdText,
    /// Offset of the order in `orders`.
    pub order_offset: u64,
    /// Promised window start.
    pub promised_from_ms: Option<i64>,
    /// Promised window end.
    pub promised_to_ms: Option<i64>,
}

/// A scan, as the case file shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseEvent {
    /// Offset in `carrier-events`.
    pub offset: u64,
    /// Log time (second resolution).
    pub log_time_ms: u64,
    /// Carrier time.
    pub occurred_at_ms: i64,
    /// Milestone.
    pub status: Status,
    /// Sub-status.
    pub sub_status: SubStatus,
}

/// A decision, as the case file shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseDecision {
    /// What was decided.
    pub kind: DecisionKind,
    /// When (log time).
    pub log_time_ms: u64,
    /// The source record's offset.
    pub offset: u64,
    /// The rule involved (empty when none).
    pub rule_id: RuleText,
    /// The channel involved.
    pub channel: Option<Channel>,
}

/// What support needs to act on an escalation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CaseFile {
    /// The order (when known).
    pub order: Option<CaseOrder>,
    /// Scans since the exception opened (the exception scan first).
    pub events: Vec<CaseEvent>,
    /// Decisions taken since the exception opened.
    pub decisions: Vec<CaseDecision>,
    /// The distinct rules that decided, in first-use order.
    pub rules: Vec<RuleText>,
}

/// An SLA breach.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    /// Deterministic id (tracking number, kind, exception scan offset).
    pub id: IntentId,
    /// The parcel.
    pub tracking_number: TrackingNumber,
    /// Which SLA.
    pub kind: EscalationKind,
    /// The exception's class.
    pub class: ExceptionClass,
    /// Its remediation.
    pub remediation: Remediation,
    /// Offset of the exception scan.
    pub exception_offset: u64,
    /// Log time the exception opened.
    pub opened_log_ms: u64,
    /// Log time the SLA was breached.
    pub breached_log_ms: u64,
    /// The case file.
    pub case_file: CaseFile,
}

impl Escalation {
    /// Appends the binary encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.u8(ESCALATION_FORMAT_V1)
            .u128(self.id.as_u128())
            .str8(self.tracking_number.as_bytes())
            .u8(self.kind as u8)
            .u8(self.class as u8)
            .u8(self.remediation as u8)
            .u64(self.exception_offset)
            .u64(self.opened_log_ms)
            .u64(self.breached_log_ms);
        let case = &self.case_file;
        match &case.order {
            None => {
                w.u8(0);
            }
            Some(o) => {
                w.u8(1)
                    .str8(o.order_id.as_bytes())
                    .str8(&o.marketplace)
                    .str8(&o.seller)
                    .str8(o.buyer_id.as_bytes())
                    .u64(o.order_offset);
                opt_i64(&mut w, o.promised_from_ms);
                opt_i64(&mut w, o.promised_to_ms);
            }
        }
        w.u32(case.events.len() as u32);
        for e in &case.events {
            w.u64(e.offset)
                .u64(e.log_time_ms)
                .i64(e.occurred_at_ms)
                .u8(e.status as u8)
                .u8(e.sub_status as u8);
        }
        w.u32(case.decisions.len() as u32);
        for d in &case.decisions {
            w.u8(d.kind as u8)
                .u64(d.log_time_ms)
                .u64(d.offset)
                .str8(d.rule_id.as_bytes())
                .u8(d.channel.map_or(0, |c| c as u8));
        }
        w.u32(case.rules.len() as u32);
        for r in &case.rules {
            w.str8(r.as_bytes());
        }
    }

    /// Decodes [`Escalation::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<Escalation, WireError> {
        let mut r = Reader::new(bytes);
        r.version("escalation", ESCALATION_FORMAT_V1)?;
        let id = IntentId::from_u128(r.u128()?);
        let tracking_number = r.inline("escalation.tracking_number")?;
        let kind = r.tag("escalation.kind", |v| {
            (v == 1).then_some(EscalationKind::ExceptionUnresolved)
        })?;
        let class = r.tag("escalation.class", ExceptionClass::from_code)?;
        let remediation = r.tag("escalation.remediation", Remediation::from_code)?;
        let exception_offset = r.u64()?;
        let opened_log_ms = r.u64()?;
        let breached_log_ms = r.u64()?;
        let order = if r.bool("escalation.order")? {
            Some(CaseOrder {
                order_id: r.inline("case.order_id")?,
                marketplace: r.str8("case.marketplace")?.to_string(),
                seller: r.str8("case.seller")?.to_string(),
                buyer_id: r.inline("case.buyer_id")?,
                order_offset: r.u64()?,
                promised_from_ms: read_opt_i64(&mut r, "case.promised_from")?,
                promised_to_ms: read_opt_i64(&mut r, "case.promised_to")?,
            })
        } else {
            None
        };
        // Each entry takes at least 10 bytes, so the counts are bounded by
        // the input length before anything is allocated.
        let n = (r.u32()? as usize).min(bytes.len() / 10);
        let mut events = Vec::with_capacity(n);
        for _ in 0..n {
            events.push(CaseEvent {
                offset: r.u64()?,
                log_time_ms: r.u64()?,
                occurred_at_ms: r.i64()?,
                status: r.tag("case.status", codes::status)?,
                sub_status: r.tag("case.sub_status", codes::sub_status)?,
            });
        }
        let n = (r.u32()? as usize).min(bytes.len() / 10);
        let mut decisions = Vec::with_capacity(n);
        for _ in 0..n {
            decisions.push(CaseDecision {
                kind: r.tag("case.decision", DecisionKind::from_code)?,
                log_time_ms: r.u64()?,
                offset: r.u64()?,
                rule_id: r.inline("case.rule_id")?,
                channel: r.tag("case.channel", |v| {
                    if v == 0 {
                        Some(None)
                    } else {
                        codes::channel(v).map(Some)
                    }
                })?,
            });
        }
        let n = (r.u32()? as usize).min(bytes.len());
        let mut rules = Vec::with_capacity(n);
        for _ in 0..n {
            rules.push(r.inline("case.rule")?);
        }
        r.finish()?;
        Ok(Escalation {
            id,
            tracking_number,
            kind,
            class,
            remediation,
            exception_offset,
            opened_log_ms,
            breached_log_ms,
            case_file: CaseFile {
                order,
                events,
                decisions,
                rules,
            },
        })
    }
}
