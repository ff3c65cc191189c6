//! Order and shipment data used to enrich carrier events: who bought what,
//! what was promised, and how (and whether) the buyer may be contacted.
//!
//! Fed from the `orders` topic, keyed by tracking number like the carrier
//! events, so one worker holds a shipment's events and its order.

use serde::{Deserialize, Serialize};

use super::event::Carrier;
use super::notification::Channel;

/// One way to reach the buyer, with the consent they gave for it.
#[derive(
    Clone,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct Contact {
    /// The channel this contact is for.
    pub channel: Channel,
    /// The address (email, E.164 phone number, push token, webhook URL).
    /// In the `orders` topic this is sealed (encrypted) by the API; the
    /// operators treat it as opaque and only the delivery edge opens it.
    pub address: String,
    /// Whether the buyer consented to notifications on this channel.
    pub consent: bool,
}

/// The order behind a shipment, as the storefront created it at checkout.
#[derive(
    Clone,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct ShipmentOrder {
    /// The parcel's tracking number (the partition key).
    pub tracking_number: String,
    /// The carrier carrying it.
    pub carrier: Carrier,
    /// Marketplace the order came from (rules overrides are keyed by it).
    pub marketplace: String,
    /// Seller on that marketplace (rules overrides are keyed by it).
    pub seller: String,
    /// The marketplace's order id; several parcels may share one.
    pub order_id: String,
    /// Items in this parcel.
    pub skus: Vec<String>,
    /// Stable id of the buyer (per-buyer caps and opt-outs key on it).
    pub buyer_id: String,
    /// Start of the promised delivery window, epoch ms UTC.
    pub promised_from_ms: i64,
    /// End of the promised delivery window, epoch ms UTC.
    pub promised_to_ms: i64,
    /// BCP 47 locale for message templates (`en-US`).
    pub buyer_locale: String,
    /// IANA time zone of the buyer, for quiet hours (`America/Chicago`).
    pub buyer_time_zone: String,
    /// Destination postal code (public lookups of the full timeline need it).
    pub destination_postal_code: String,
    /// Whether this order belongs to a drop (polled more often, digests).
    pub drop: bool,
    /// Ways to reach the buyer.
    pub contacts: Vec<Contact>,
}

/// Format version byte in front of every archived order value in the log.
pub const ORDER_FORMAT_V1: u8 = 1;

impl ShipmentOrder {
    /// Encodes the order as a log value: the version byte, then the archive.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![ORDER_FORMAT_V1];
        if let Ok(bytes) = rkyv::to_bytes::<rkyv::rancor::Error>(self) {
            out.extend_from_slice(&bytes);
        }
        out
    }

    /// Decodes an order value; `None` when the version or archive is bad.
    pub fn decode(value: &[u8]) -> Option<ShipmentOrder> {
        let (&version, archive) = value.split_first()?;
        if version != ORDER_FORMAT_V1 {
            return None;
        }
        let archived = rkyv::access::<ArchivedShipmentOrder, rkyv::rancor::Error>(archive).ok()?;
        rkyv::deserialize::<ShipmentOrder, rkyv::rancor::Error>(archived).ok()
    }
}
