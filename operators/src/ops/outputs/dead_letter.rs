//! Input the chain refuses: kept, with the reason, never dropped silently.

use serde::{Deserialize, Serialize};

use super::SourceRef;
use crate::ops::wire::{Reader, WireError, Writer};

/// Version byte of the dead-letter encoding.
pub const DEAD_LETTER_FORMAT_V1: u8 = 1;

/// Which order field broke a limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum OrderField {
    /// `order_id` (limit: [`IdText`](crate::ops::text::IdText) capacity).
    OrderId = 1,
    /// `buyer_id` (limit: [`IdText`](crate::ops::text::IdText) capacity).
    BuyerId = 2,
    /// `marketplace` (limit: [`MarketplaceText`](crate::ops::text::MarketplaceText) capacity).
    Marketplace = 3,
    /// `seller` (limit: `SELLER_BYTES_MAX`).
    Seller = 4,
}

impl OrderField {
    fn from_code(v: u8) -> Option<OrderField> {
        match v {
            1 => Some(OrderField::OrderId),
            2 => Some(OrderField::BuyerId),
            3 => Some(OrderField::Marketplace),
            4 => Some(OrderField::Seller),
            _ => None,
        }
    }
}

/// Why a record was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum DeadLetterReason {
    /// The tracking number is empty.
    TrackingNumberEmpty,
    /// The tracking number is longer than the state keeps.
    TrackingNumberTooLong {
        /// Its length.
        bytes: u32,
    },
    /// An order field is longer than the state keeps.
    OrderFieldTooLong {
        /// Which field.
        field: OrderField,
        /// Its length.
        bytes: u32,
    },
    /// The opt-out set is at its bound; the opt-out was not recorded.
    OptOutsFull {
        /// The bound.
        opt_outs_max: u32,
    },
}

/// A rejected input record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The record.
    pub source: SourceRef,
    /// Why.
    pub reason: DeadLetterReason,
}

impl DeadLetter {
    /// Appends the binary encoding.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut w = Writer::new(out);
        w.u8(DEAD_LETTER_FORMAT_V1);
        self.source.write(&mut w);
        match self.reason {
            DeadLetterReason::TrackingNumberEmpty => {
                w.u8(1);
            }
            DeadLetterReason::TrackingNumberTooLong { bytes } => {
                w.u8(2).u32(bytes);
            }
            DeadLetterReason::OrderFieldTooLong { field, bytes } => {
                w.u8(3).u8(field as u8).u32(bytes);
            }
            DeadLetterReason::OptOutsFull { opt_outs_max } => {
                w.u8(4).u32(opt_outs_max);
            }
        }
    }

    /// Decodes [`DeadLetter::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<DeadLetter, WireError> {
        let mut r = Reader::new(bytes);
        r.version("dead letter", DEAD_LETTER_FORMAT_V1)?;
        let source = SourceRef::read(&mut r)?;
        let offset = r.pos();
        let reason = match r.u8()? {
            1 => DeadLetterReason::TrackingNumberEmpty,
            2 => DeadLetterReason::TrackingNumberTooLong { bytes: r.u32()? },
            3 => DeadLetterReason::OrderFieldTooLong {
                field: r.tag("dead_letter.field", OrderField::from_code)?,
                bytes: r.u32()?,
            },
            4 => DeadLetterReason::OptOutsFull {
                opt_outs_max: r.u32()?,
            },
            v => {
                return Err(WireError::InvalidTag {
                    field: "dead_letter.reason",
                    value: u64::from(v),
                    offset,
                });
            }
        };
        r.finish()?;
        Ok(DeadLetter { source, reason })
    }
}
