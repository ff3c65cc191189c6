//! Notification intents: what the fan-out decided to send, to be delivered
//! by the per-channel workers.
//!
//! An intent carries no contact address: the delivery edge reads the order
//! at `order_offset` in the `orders` topic and opens the sealed address at
//! send time. That keeps personal data out of the state and out of the
//! notify topics. The `id` is deterministic (tracking number, rule, channel,
//! source record), so a replay produces the same ids and the providers'
//! idempotency keys drop the repeat.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de::Error as _};

use crate::model::{Carrier, Channel, Priority, Status, SubStatus};
use crate::ops::exceptions::Remediation;
use crate::ops::hash::{StableHasher, seed};
use crate::ops::text::{IdText, MarketplaceText, RuleText, TrackingNumber};
use crate::ops::wire::{Reader, WireError, Writer, codes};

use super::InputTopic;

/// Version byte of the intent encoding.
pub const INTENT_FORMAT_V1: u8 = 1;

/// Longest encoded intent, bytes.
const INTENT_BYTES_MAX: usize = 1 + 16 + 41 + 3 + 33 + 33 + 65 + 33 + 65 + 8 + 4 + 32;

/// A deterministic 128-bit id, rendered as 32 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct IntentId(pub u128);

impl IntentId {
    /// From the 128-bit value.
    pub const fn from_u128(v: u128) -> IntentId {
        IntentId(v)
    }

    /// The 128-bit value.
    pub const fn as_u128(self) -> u128 {
        self.0
    }

    /// The id of the intent for (tracking number, rule, channel, source record).
    pub fn for_notification(
        tracking_number: &str,
        rule_id: &str,
        channel: Channel,
        topic: InputTopic,
        offset: u64,
    ) -> IntentId {
        IntentId::from_u128(
            StableHasher::new(seed::INTENT)
                .bytes(tracking_number.as_bytes())
                .bytes(rule_id.as_bytes())
                .u64(u64::from(channel as u8) | (u64::from(topic as u8) << 8))
                .u64(offset)
                .finish128(),
        )
    }

    /// The hashing state after the tracking number and rule id, so the ids
    /// of one rule's channels share that work.
    pub(crate) fn prefix(tracking_number: &[u8], rule_id: &[u8]) -> StableHasher {
        let mut h = StableHasher::new(seed::INTENT);
        h.bytes(tracking_number).bytes(rule_id);
        h
    }

    /// Completes [`IntentId::prefix`] (equal to `for_notification`).
    pub(crate) fn from_prefix(
        mut h: StableHasher,
        channel: Channel,
        topic: InputTopic,
        offset: u64,
    ) -> IntentId {
        IntentId::from_u128(
            h.u64(u64::from(channel as u8) | (u64::from(topic as u8) << 8))
                .u64(offset)
                .finish128(),
        )
    }

    /// The id of an escalation for (tracking number, kind, exception record).
    pub fn for_escalation(tracking_number: &str, kind: u8, offset: u64) -> IntentId {
        IntentId::from_u128(
            StableHasher::new(seed::ESCALATION)
                .bytes(tracking_number.as_bytes())
                .u64(u64::from(kind))
                .u64(offset)
                .finish128(),
        )
    }

    /// Parses 32 hex digits.
    pub fn parse(text: &str) -> Option<IntentId> {
        if text.len() != 32 {
            return None;
        }
        u128::from_str_radix(text, 16).ok().map(IntentId::from_u128)
    }
}

impl fmt::Display for IntentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.as_u128())
    }
}

impl fmt::Debug for IntentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IntentId({self})")
    }
}

impl Serialize for IntentId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IntentId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        IntentId::parse(&text).ok_or_else(|| D::Error::custom("intent id: 32 hex digits"))
    }
}

/// One notification to send on one channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationIntent {
    /// Deterministic id (the providers' idempotency key).
    pub id: IntentId,
    /// The parcel.
    pub tracking_number: TrackingNumber,
    /// Its carrier.
    pub carrier: Carrier,
    /// Where to send.
    pub channel: Channel,
    /// How urgently.
    pub priority: Priority,
    /// Message template name (from the rule).
    pub template: RuleText,
    /// The rule that decided it.
    pub rule_id: RuleText,
    /// The storefront's order id (the delivery edge consolidates across
    /// partitions by it).
    pub order_id: IdText,
    /// Marketplace of the order.
    pub marketplace: MarketplaceText,
    /// The buyer.
    pub buyer_id: IdText,
    /// Offset of the order record in `orders` (same partition as the
    /// parcel): the delivery edge reads the contact address there.
    pub order_offset: u64,
    /// The milestone being notified.
    pub status: Status,
    /// Its sub-status.
    pub sub_status: SubStatus,
    /// What to offer the buyer (exceptions).
    pub remediation: Remediation,
    /// Part of a digest rather than a message of its own.
    pub digest: bool,
    /// Do not send before this instant (quiet hours, digest slot); 0: now.
    pub send_after_ms: u64,
    /// Log time at which the chain decided it.
    pub created_log_ms: u64,
    /// Log time of the scan behind it (latency from ingest to intent).
    pub event_log_ms: u64,
    /// Offset of the scan behind it in `carrier-events`.
    pub source_offset: u64,
}

impl NotificationIntent {
    /// Appends the binary encoding.
    #[inline]
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer::reserving(out, INTENT_BYTES_MAX);
        let mut head = [0u8; 17];
        head[0] = INTENT_FORMAT_V1;
        head[1..17].copy_from_slice(&self.id.as_u128().to_le_bytes());
        w.bytes(&head)
            .inline(&self.tracking_number)
            .bytes(&[self.carrier as u8, self.channel as u8, self.priority as u8])
            .inline(&self.template)
            .inline(&self.rule_id)
            .inline(&self.order_id)
            .inline(&self.marketplace)
            .inline(&self.buyer_id);
        let mut tail = [0u8; 44];
        tail[..8].copy_from_slice(&self.order_offset.to_le_bytes());
        tail[8] = self.status as u8;
        tail[9] = self.sub_status as u8;
        tail[10] = self.remediation as u8;
        tail[11] = u8::from(self.digest);
        tail[12..20].copy_from_slice(&self.send_after_ms.to_le_bytes());
        tail[20..28].copy_from_slice(&self.created_log_ms.to_le_bytes());
        tail[28..36].copy_from_slice(&self.event_log_ms.to_le_bytes());
        tail[36..44].copy_from_slice(&self.source_offset.to_le_bytes());
        w.bytes(&tail);
    }

    /// Decodes [`NotificationIntent::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<NotificationIntent, WireError> {
        let mut r = Reader::new(bytes);
        r.version("intent", INTENT_FORMAT_V1)?;
        let intent = NotificationIntent {
            id: IntentId::from_u128(r.u128()?),
            tracking_number: r.inline("intent.tracking_number")?,
            carrier: r.tag("intent.carrier", codes::carrier)?,
            channel: r.tag("intent.channel", codes::channel)?,
            priority: r.tag("intent.priority", codes::priority)?,
            template: r.inline("intent.template")?,
            rule_id: r.inline("intent.rule_id")?,
            order_id: r.inline("intent.order_id")?,
            marketplace: r.inline("intent.marketplace")?,
            buyer_id: r.inline("intent.buyer_id")?,
            order_offset: r.u64()?,
            status: r.tag("intent.status", codes::status)?,
            sub_status: r.tag("intent.sub_status", codes::sub_status)?,
            remediation: r.tag("intent.remediation", Remediation::from_code)?,
            digest: r.bool("intent.digest")?,
            send_after_ms: r.u64()?,
            created_log_ms: r.u64()?,
            event_log_ms: r.u64()?,
            source_offset: r.u64()?,
        };
        r.finish()?;
        Ok(intent)
    }

    /// The topic this intent goes to (`notify-<channel>-<priority>`).
    pub fn topic(&self) -> String {
        crate::model::notify_topic(self.channel, self.priority)
    }
}
