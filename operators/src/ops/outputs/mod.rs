//! What the chain produces, and how each output is encoded for its topic.
//!
//! Every output is a flat value (inline strings, no per-event allocation)
//! written into reusable buffers in [`Outputs`]; the engine clears them
//! after appending their encodings to the output topics. Each type has a
//! compact binary encoding behind a version byte (`encode`/`decode`, typed
//! [`WireError`](super::wire::WireError)) for the log, and a serde JSON form
//! for the API and tools.

mod dead_letter;
mod escalation;
mod intent;
mod view;

use serde::{Deserialize, Serialize};

pub use dead_letter::{DEAD_LETTER_FORMAT_V1, DeadLetter, DeadLetterReason, OrderField};
pub use escalation::{
    CaseDecision, CaseEvent, CaseFile, CaseOrder, ESCALATION_FORMAT_V1, Escalation, EscalationKind,
};
pub use intent::{INTENT_FORMAT_V1, IntentId, NotificationIntent};
pub use view::{
    LastEvent, LocationSummary, OpenException, ShipmentView, VIEW_FORMAT_V1, ViewChange,
};

use super::decision::Decision;
use super::wire::{Reader, WireError, Writer};

/// Which input topic a record came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum InputTopic {
    /// `carrier-events`.
    Events = 1,
    /// `orders`.
    Orders = 2,
    /// `control` (drop mode, rule reloads, opt-outs).
    Control = 3,
}

impl InputTopic {
    pub(crate) fn from_code(v: u8) -> Option<InputTopic> {
        match v {
            1 => Some(InputTopic::Events),
            2 => Some(InputTopic::Orders),
            3 => Some(InputTopic::Control),
            _ => None,
        }
    }
}

/// Where an input record lives in the log, and when it was appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SourceRef {
    /// The input topic.
    pub topic: InputTopic,
    /// The partition (events and orders share the partitioner).
    pub partition: u32,
    /// The record's offset in that partition.
    pub offset: u64,
    /// The log (append) time of the record's batch, ms since the epoch.
    pub log_time_ms: u64,
}

impl SourceRef {
    /// A reference to a carrier event.
    pub fn event(partition: u32, offset: u64, log_time_ms: u64) -> SourceRef {
        SourceRef {
            topic: InputTopic::Events,
            partition,
            offset,
            log_time_ms,
        }
    }

    /// A reference to an order.
    pub fn order(partition: u32, offset: u64, log_time_ms: u64) -> SourceRef {
        SourceRef {
            topic: InputTopic::Orders,
            partition,
            offset,
            log_time_ms,
        }
    }

    #[inline]
    pub(crate) fn write(&self, w: &mut Writer<'_>) {
        w.bytes(&self.to_bytes());
    }

    /// The encoding [`SourceRef::write`] appends: topic, partition, offset,
    /// log time.
    #[inline]
    pub(crate) fn to_bytes(self) -> [u8; 21] {
        let mut b = [0u8; 21];
        b[0] = self.topic as u8;
        b[1..5].copy_from_slice(&self.partition.to_le_bytes());
        b[5..13].copy_from_slice(&self.offset.to_le_bytes());
        b[13..21].copy_from_slice(&self.log_time_ms.to_le_bytes());
        b
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<SourceRef, WireError> {
        Ok(SourceRef {
            topic: r.tag("source.topic", InputTopic::from_code)?,
            partition: r.u32()?,
            offset: r.u64()?,
            log_time_ms: r.u64()?,
        })
    }
}

/// The chain's output buffers. The caller clears them (keeping their
/// capacity) after consuming a batch's outputs.
#[derive(Debug, Default)]
pub struct Outputs {
    /// Notification intents, for `notify-<channel>-<priority>`.
    pub intents: Vec<NotificationIntent>,
    /// Shipment view changes, for `shipment-views`.
    pub views: Vec<ShipmentView>,
    /// SLA escalations with their case files, for `escalations`.
    pub escalations: Vec<Escalation>,
    /// Every decision, including suppressions, for `decisions`.
    pub decisions: Vec<Decision>,
    /// Rejected input, for `dead-letters`.
    pub dead_letters: Vec<DeadLetter>,
}

impl Outputs {
    /// Empty buffers.
    pub fn new() -> Outputs {
        Outputs::default()
    }

    /// Clears every buffer, keeping capacity.
    pub fn clear(&mut self) {
        self.intents.clear();
        self.views.clear();
        self.escalations.clear();
        self.decisions.clear();
        self.dead_letters.clear();
    }

    /// Whether every buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.intents.is_empty()
            && self.views.is_empty()
            && self.escalations.is_empty()
            && self.decisions.is_empty()
            && self.dead_letters.is_empty()
    }

    /// Appends all of `other`'s outputs (used by tests and tools that
    /// collect a whole run).
    pub fn extend_from(&mut self, other: &Outputs) {
        self.intents.extend_from_slice(&other.intents);
        self.views.extend_from_slice(&other.views);
        self.escalations.extend(other.escalations.iter().cloned());
        self.decisions.extend_from_slice(&other.decisions);
        self.dead_letters.extend_from_slice(&other.dead_letters);
    }
}

#[inline]
pub(crate) fn opt_i64(w: &mut Writer<'_>, v: Option<i64>) {
    match v {
        Some(v) => w.u8(1).i64(v),
        None => w.u8(0),
    };
}

pub(crate) fn read_opt_i64(
    r: &mut Reader<'_>,
    field: &'static str,
) -> Result<Option<i64>, WireError> {
    Ok(if r.bool(field)? { Some(r.i64()?) } else { None })
}
