//! What a sender needs: a notification as read from a notify topic (with
//! where it was read), the contact it resolves to, and the message that
//! carries one or more of them to a provider.

use dropline_operators::model::{Carrier, Channel, Priority, Status, SubStatus};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One notification intent, as the delivery edge sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Deterministic id (tracking number, rule, channel, source record).
    pub id: u128,
    /// The parcel.
    pub tracking_number: String,
    /// Its carrier.
    pub carrier: Carrier,
    /// The channel.
    pub channel: Channel,
    /// The priority.
    pub priority: Priority,
    /// Message template name.
    pub template: String,
    /// The rule that decided it.
    pub rule_id: String,
    /// The storefront's order id (consolidation key).
    pub order_id: String,
    /// The marketplace (webhook secret and endpoint).
    pub marketplace: String,
    /// The buyer (caps, digests, opt-outs).
    pub buyer_id: String,
    /// Offset of the order in `orders` (same partition number as the
    /// notify record), where the contact is read.
    pub order_offset: u64,
    /// The milestone.
    pub status: Status,
    /// Its sub-status.
    pub sub_status: SubStatus,
    /// Part of a digest rather than a message of its own.
    pub digest: bool,
    /// Not before this instant (ms since the epoch); 0: now.
    pub send_after_ms: u64,
    /// Log time at which the chain decided it.
    pub created_log_ms: u64,
    /// Log time of the carrier event behind it (KPI latencies start here).
    pub event_log_ms: u64,
    /// Offset of the carrier event behind it.
    pub source_offset: u64,
}

impl Notification {
    /// The id as 32 lower-case hex digits.
    pub fn id_hex(&self) -> String {
        format!("{:032x}", self.id)
    }
}

/// Where a notification was read: topic class, partition, offset, log time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SourcePos {
    /// The channel of the notify topic.
    pub channel: Channel,
    /// The priority of the notify topic.
    pub priority: Priority,
    /// The partition.
    pub partition: u32,
    /// The record's offset.
    pub offset: u64,
    /// The record's log (append) time, ms.
    pub log_time_ms: u64,
}

/// The contact a notification resolved to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedContact {
    /// The opened address (email, E.164 number, push token, webhook URL).
    pub address: String,
    /// The buyer's IANA time zone (quiet hours).
    pub time_zone: String,
    /// The buyer's locale (templates).
    pub locale: String,
}

/// A notification ready to be grouped into a message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The notification.
    pub notification: Notification,
    /// Where it was read.
    pub source: SourcePos,
    /// Its contact.
    pub contact: ResolvedContact,
    /// The record's raw value (kept for the dead-letter topic and replay).
    pub raw: Vec<u8>,
}

/// How a message came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// One notification.
    Single,
    /// Several notifications of one order and status, merged.
    Consolidated,
    /// Low-priority updates of one buyer over a digest window.
    Digest,
}

/// One message to one contact on one channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Idempotency key: the member's id, or a hash of the sorted member ids.
    pub key: u128,
    /// The channel.
    pub channel: Channel,
    /// The highest priority among the members.
    pub priority: Priority,
    /// Single, consolidated or digest.
    pub kind: MessageKind,
    /// The members, in source order.
    pub members: Vec<Member>,
    /// Attempts made so far (429 answers not counted).
    pub attempts: u32,
    /// 429 answers received so far.
    pub rate_limited: u32,
    /// The last error, for the dead-letter record.
    pub last_error: Option<String>,
}

impl Message {
    /// Builds a message from members (at least one), computing its key.
    pub fn new(channel: Channel, kind: MessageKind, mut members: Vec<Member>) -> Message {
        members.sort_by_key(|m| m.source);
        let priority = members
            .iter()
            .map(|m| m.source.priority)
            .min()
            .unwrap_or(Priority::Low);
        Message {
            key: message_key(members.iter().map(|m| m.notification.id)),
            channel,
            priority,
            kind,
            members,
            attempts: 0,
            rate_limited: 0,
            last_error: None,
        }
    }

    /// The idempotency key as sent to providers: `dl-` and 32 hex digits.
    pub fn idempotency_key(&self) -> String {
        format!("dl-{:032x}", self.key)
    }

    /// The contact (all members share it).
    pub fn contact(&self) -> Option<&ResolvedContact> {
        self.members.first().map(|m| &m.contact)
    }

    /// The address (all members share it).
    pub fn address(&self) -> &str {
        self.contact().map_or("", |c| c.address.as_str())
    }

    /// Earliest carrier-event log time among the members.
    pub fn first_event_log_ms(&self) -> u64 {
        self.members
            .iter()
            .map(|m| m.notification.event_log_ms)
            .min()
            .unwrap_or(0)
    }
}

/// The key of a message covering these ids: the id itself for one, else
/// the first 128 bits of SHA-256 over the sorted ids. Deterministic, so a
/// message rebuilt after a restart from the same members has the same key.
pub fn message_key(ids: impl Iterator<Item = u128>) -> u128 {
    let mut ids: Vec<u128> = ids.collect();
    ids.sort_unstable();
    ids.dedup();
    if let [only] = ids.as_slice() {
        return *only;
    }
    let mut h = Sha256::new();
    h.update(b"dropline-message-v1");
    for id in &ids {
        h.update(id.to_le_bytes());
    }
    let digest = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    u128::from_le_bytes(out)
}
