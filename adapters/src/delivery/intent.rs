//! The one place that maps the operators' notification intents (the
//! records of `notify-<channel>-<priority>`) to and from the delivery
//! edge's own [`Notification`].
//!
//! Why a mapping: senders need owned strings and a few fields, the intent
//! is a flat inline-text value built for the hot path; keeping the mapping
//! here means a change of the intent format touches one file.

use dropline_operators::ops::outputs::{IntentId, NotificationIntent};
use dropline_operators::ops::text::InlineStr;
use dropline_operators::ops::{Remediation, WireError};

use super::notification::Notification;

/// Why a notify record could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("notification intent does not decode: {source}")]
pub struct IntentDecodeError {
    /// The decoder's error.
    #[source]
    pub source: WireError,
}

/// Decodes a notify record's value.
pub fn decode_notification(value: &[u8]) -> Result<Notification, IntentDecodeError> {
    let i = NotificationIntent::decode(value).map_err(|source| IntentDecodeError { source })?;
    Ok(Notification {
        id: i.id.0,
        tracking_number: i.tracking_number.as_str().to_string(),
        carrier: i.carrier,
        channel: i.channel,
        priority: i.priority,
        template: i.template.as_str().to_string(),
        rule_id: i.rule_id.as_str().to_string(),
        order_id: i.order_id.as_str().to_string(),
        marketplace: i.marketplace.as_str().to_string(),
        buyer_id: i.buyer_id.as_str().to_string(),
        order_offset: i.order_offset,
        status: i.status,
        sub_status: i.sub_status,
        digest: i.digest,
        send_after_ms: i.send_after_ms,
        created_log_ms: i.created_log_ms,
        event_log_ms: i.event_log_ms,
        source_offset: i.source_offset,
    })
}

fn text<const N: usize>(s: &str) -> InlineStr<N> {
    InlineStr::<N>::truncated(s)
}

/// Encodes a notification as an intent record value (tools, tests and the
/// bench write notify topics with it). Text longer than the intent's
/// inline capacity is truncated.
pub fn encode_notification(n: &Notification) -> Vec<u8> {
    let intent = NotificationIntent {
        id: IntentId(n.id),
        tracking_number: text(&n.tracking_number),
        carrier: n.carrier,
        channel: n.channel,
        priority: n.priority,
        template: text(&n.template),
        rule_id: text(&n.rule_id),
        order_id: text(&n.order_id),
        marketplace: text(&n.marketplace),
        buyer_id: text(&n.buyer_id),
        order_offset: n.order_offset,
        status: n.status,
        sub_status: n.sub_status,
        remediation: Remediation::None,
        digest: n.digest,
        send_after_ms: n.send_after_ms,
        created_log_ms: n.created_log_ms,
        event_log_ms: n.event_log_ms,
        source_offset: n.source_offset,
    };
    let mut out = Vec::with_capacity(256);
    intent.encode(&mut out);
    out
}
