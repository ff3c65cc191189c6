//! Decision records: why the chain did, or did not, notify.
//!
//! Every input record produces at least one decision, and the suppressions
//! are recorded like the notifications: a duplicate, a debounced ping, an
//! opt-out, a cap, quiet hours. The engine writes them to the `decisions`
//! topic keyed by tracking number, and forensics answers "why (not)" from
//! them. Each decision names the source record (topic, partition, offset,
//! log time) and, where one applies, the rule, the channel and the intent.

use serde::{Deserialize, Serialize};

use crate::model::{Channel, Status, SubStatus};
use crate::ops::outputs::{IntentId, SourceRef};
use crate::ops::text::{RuleText, TrackingNumber};
use crate::ops::wire::{Reader, WireError, Writer, codes};

/// Version byte of the decision encoding.
pub const DECISION_FORMAT_V1: u8 = 1;

/// Longest encoded decision, bytes (version, tracking number, kind, log
/// time, source, status, sub-status, rule id, channel, intent id, until,
/// related offset).
const DECISION_BYTES_MAX: usize = 1 + 41 + 1 + 8 + 21 + 2 + 33 + 1 + 17 + 8 + 9;

macro_rules! decision_kinds {
    ($( $(#[$doc:meta])* $variant:ident = $n:literal => $name:literal ),+ $(,)?) => {
        /// What was decided.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[repr(u8)]
        pub enum DecisionKind {
            $( $(#[$doc])* $variant = $n, )+
        }

        impl DecisionKind {
            /// Every kind.
            pub const ALL: &'static [DecisionKind] = &[$(DecisionKind::$variant),+];

            /// The snake_case name.
            pub fn as_str(self) -> &'static str {
                match self { $(DecisionKind::$variant => $name,)+ }
            }

            pub(crate) fn from_code(v: u8) -> Option<DecisionKind> {
                match v { $($n => Some(DecisionKind::$variant),)+ _ => None }
            }
        }
    };
}

decision_kinds! {
    /// The scan's fingerprint was seen within the dedup window.
    Deduplicated = 1 => "deduplicated",
    /// Older than the newest scan already accepted: kept out of the view
    /// and not notified.
    Late = 2 => "late",
    /// The carrier code is unmapped (`unknown`): counted, view unchanged.
    Unmapped = 3 => "unmapped",
    /// A ping at the same place within the debounce window: held.
    Debounced = 4 => "debounced",
    /// A held ping was replaced by a newer scan (`related_offset`: the held one).
    Superseded = 5 => "superseded",
    /// A held ping was released when its window closed (`related_offset`: it).
    Released = 6 => "released",
    /// Accepted; no rule matches this milestone.
    NoRule = 7 => "no_rule",
    /// Accepted; no order is known for the parcel, so nobody to notify.
    NoOrder = 8 => "no_order",
    /// An intent was emitted on `channel` by `rule_id`.
    Notified = 9 => "notified",
    /// The buyer opted out of `channel`.
    SuppressedOptOut = 10 => "suppressed_opt_out",
    /// No contact with consent on `channel`.
    SuppressedNoConsent = 11 => "suppressed_no_consent",
    /// The buyer's daily cap on `channel` is reached.
    SuppressedCap = 12 => "suppressed_cap",
    /// Merged into the message of another parcel of the same order
    /// (`intent_id`: the message it joined).
    Consolidated = 13 => "consolidated",
    /// Emitted, but held until the end of the buyer's quiet hours (`until_ms`).
    HeldQuietHours = 14 => "held_quiet_hours",
    /// Emitted as part of a digest, sent at `until_ms`.
    Digested = 15 => "digested",
    /// No scan within the stale SLA.
    Stale = 16 => "stale",
    /// An exception unresolved past the SLA was escalated.
    Escalated = 17 => "escalated",
    /// The order was linked to the parcel.
    OrderLinked = 18 => "order_linked",
    /// The shipment was evicted to keep state within `shipments_max`.
    Evicted = 19 => "evicted",
    /// The shipment was retired after its terminal status.
    Retired = 20 => "retired",
    /// The matching rule notifies nobody (`rule_id`).
    SuppressedByRule = 21 => "suppressed_by_rule",
    /// The milestone repeated and the matching rule notifies transitions only.
    NotATransition = 22 => "not_a_transition",
}

/// One decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The parcel (the `decisions` topic key).
    pub tracking_number: TrackingNumber,
    /// What was decided.
    pub kind: DecisionKind,
    /// Effective log time (a timer's due time for timer decisions).
    pub log_time_ms: u64,
    /// The record the decision is about.
    pub source: SourceRef,
    /// The milestone concerned.
    pub status: Status,
    /// Its sub-status.
    pub sub_status: SubStatus,
    /// The rule involved (empty when none).
    pub rule_id: RuleText,
    /// The channel involved.
    pub channel: Option<Channel>,
    /// The intent emitted (or joined, for `consolidated`).
    pub intent_id: Option<IntentId>,
    /// Not before (quiet hours end, digest slot), ms; 0 when not delayed.
    pub until_ms: u64,
    /// Another record involved (a held ping's offset).
    pub related_offset: Option<u64>,
}

impl Decision {
    /// Appends the binary encoding.
    ///
    /// The fixed-width runs between the two strings are assembled in
    /// arrays at constant offsets and appended whole (one capacity check
    /// each instead of one per field); the bytes are the ones listed in
    /// docs/FORMAT.md.
    #[inline]
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer::reserving(out, DECISION_BYTES_MAX);
        w.u8(DECISION_FORMAT_V1).inline(&self.tracking_number);
        let mut mid = [0u8; 32];
        mid[0] = self.kind as u8;
        mid[1..9].copy_from_slice(&self.log_time_ms.to_le_bytes());
        mid[9..30].copy_from_slice(&self.source.to_bytes());
        mid[30] = self.status as u8;
        mid[31] = self.sub_status as u8;
        w.bytes(&mid).inline(&self.rule_id);
        let mut tail = [0u8; 35];
        tail[0] = self.channel.map_or(0, |c| c as u8);
        let mut n = 2;
        if let Some(id) = self.intent_id {
            tail[1] = 1;
            tail[2..18].copy_from_slice(&id.as_u128().to_le_bytes());
            n = 18;
        }
        let mut rest = [0u8; 17];
        rest[..8].copy_from_slice(&self.until_ms.to_le_bytes());
        let mut m = 9;
        if let Some(o) = self.related_offset {
            rest[8] = 1;
            rest[9..17].copy_from_slice(&o.to_le_bytes());
            m = 17;
        }
        tail[n..n + m].copy_from_slice(&rest[..m]);
        w.bytes(&tail[..n + m]);
    }

    /// Decodes [`Decision::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<Decision, WireError> {
        let mut r = Reader::new(bytes);
        r.version("decision", DECISION_FORMAT_V1)?;
        let tracking_number = r.inline("decision.tracking_number")?;
        let kind = r.tag("decision.kind", DecisionKind::from_code)?;
        let log_time_ms = r.u64()?;
        let source = SourceRef::read(&mut r)?;
        let status = r.tag("decision.status", codes::status)?;
        let sub_status = r.tag("decision.sub_status", codes::sub_status)?;
        let rule_id = r.inline("decision.rule_id")?;
        let channel = r.tag("decision.channel", |v| {
            if v == 0 {
                Some(None)
            } else {
                codes::channel(v).map(Some)
            }
        })?;
        let intent_id = if r.bool("decision.intent_id")? {
            Some(IntentId::from_u128(r.u128()?))
        } else {
            None
        };
        let until_ms = r.u64()?;
        let related_offset = if r.bool("decision.related_offset")? {
            Some(r.u64()?)
        } else {
            None
        };
        r.finish()?;
        Ok(Decision {
            tracking_number,
            kind,
            log_time_ms,
            source,
            status,
            sub_status,
            rule_id,
            channel,
            intent_id,
            until_ms,
            related_offset,
        })
    }
}
