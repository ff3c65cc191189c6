//! Reading an order the same way whether it is an owned `ShipmentOrder`
//! (tests, tools) or an rkyv archive read in place from the `orders` topic.

use crate::model::order::ArchivedShipmentOrder;
use crate::model::{Carrier, Channel, ShipmentOrder};

/// The order fields the chain reads.
pub trait OrderInput {
    /// Tracking number.
    fn tracking_number(&self) -> &str;
    /// Carrier.
    fn carrier(&self) -> Carrier;
    /// Marketplace.
    fn marketplace(&self) -> &str;
    /// Seller.
    fn seller(&self) -> &str;
    /// Order id.
    fn order_id(&self) -> &str;
    /// Buyer id.
    fn buyer_id(&self) -> &str;
    /// Promised window start, ms.
    fn promised_from_ms(&self) -> i64;
    /// Promised window end, ms.
    fn promised_to_ms(&self) -> i64;
    /// IANA zone of the buyer.
    fn buyer_time_zone(&self) -> &str;
    /// Part of a drop.
    fn is_drop(&self) -> bool;
    /// Consent bits: low nibble consent per channel, high nibble contact present.
    fn consent_bits(&self) -> u8;
}

fn bit(c: Channel) -> u8 {
    1 << (c as u8 - 1)
}

impl OrderInput for ShipmentOrder {
    fn tracking_number(&self) -> &str {
        &self.tracking_number
    }
    fn carrier(&self) -> Carrier {
        self.carrier
    }
    fn marketplace(&self) -> &str {
        &self.marketplace
    }
    fn seller(&self) -> &str {
        &self.seller
    }
    fn order_id(&self) -> &str {
        &self.order_id
    }
    fn buyer_id(&self) -> &str {
        &self.buyer_id
    }
    fn promised_from_ms(&self) -> i64 {
        self.promised_from_ms
    }
    fn promised_to_ms(&self) -> i64 {
        self.promised_to_ms
    }
    fn buyer_time_zone(&self) -> &str {
        &self.buyer_time_zone
    }
    fn is_drop(&self) -> bool {
        self.drop
    }
    fn consent_bits(&self) -> u8 {
        self.contacts.iter().fold(0u8, |acc, c| {
            acc | (bit(c.channel) << 4) | if c.consent { bit(c.channel) } else { 0 }
        })
    }
}

fn channel_of(c: &crate::model::notification::ArchivedChannel) -> Channel {
    rkyv::deserialize::<Channel, rkyv::rancor::Error>(c).unwrap_or(Channel::Webhook)
}

impl OrderInput for ArchivedShipmentOrder {
    fn tracking_number(&self) -> &str {
        self.tracking_number.as_str()
    }
    fn carrier(&self) -> Carrier {
        rkyv::deserialize::<Carrier, rkyv::rancor::Error>(&self.carrier).unwrap_or(Carrier::Ups)
    }
    fn marketplace(&self) -> &str {
        self.marketplace.as_str()
    }
    fn seller(&self) -> &str {
        self.seller.as_str()
    }
    fn order_id(&self) -> &str {
        self.order_id.as_str()
    }
    fn buyer_id(&self) -> &str {
        self.buyer_id.as_str()
    }
    fn promised_from_ms(&self) -> i64 {
        self.promised_from_ms.to_native()
    }
    fn promised_to_ms(&self) -> i64 {
        self.promised_to_ms.to_native()
    }
    fn buyer_time_zone(&self) -> &str {
        self.buyer_time_zone.as_str()
    }
    fn is_drop(&self) -> bool {
        self.drop
    }
    fn consent_bits(&self) -> u8 {
        self.contacts.iter().fold(0u8, |acc, c| {
            let b = bit(channel_of(&c.channel));
            acc | (b << 4) | if c.consent { b } else { 0 }
        })
    }
}
