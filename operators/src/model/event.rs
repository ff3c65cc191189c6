//! The canonical carrier event: one scan, whatever carrier it came from.
//!
//! It is what adapters send over QUIC and what the `carrier-events` topic
//! holds. In the log it is an rkyv archive behind a one-byte format version,
//! so the engine reads it in place from the mapped segment without copying
//! it into a struct. rkyv is built with `unaligned`, so an archive can be
//! accessed at any byte offset inside a batch.

use serde::{Deserialize, Serialize};

use super::status::{Status, SubStatus};
use super::time::rfc3339_ms;

/// The carriers Dropline normalizes.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[rkyv(compare(PartialEq), derive(Debug, Clone, Copy, PartialEq, Eq))]
#[repr(u8)]
pub enum Carrier {
    /// United Parcel Service (Track API).
    Ups = 1,
    /// FedEx (Track API and Advanced Integrated Visibility webhooks).
    Fedex = 2,
    /// United States Postal Service (tracking v3).
    Usps = 3,
    /// DHL (Shipment Tracking - Unified).
    Dhl = 4,
}

impl Carrier {
    /// Every carrier.
    pub const ALL: [Carrier; 4] = [Carrier::Ups, Carrier::Fedex, Carrier::Usps, Carrier::Dhl];

    /// Lower-case name used on the command line, in URLs and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Carrier::Ups => "ups",
            Carrier::Fedex => "fedex",
            Carrier::Usps => "usps",
            Carrier::Dhl => "dhl",
        }
    }

    /// Parses the lower-case name.
    pub fn parse(name: &str) -> Option<Carrier> {
        Carrier::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

impl std::fmt::Display for Carrier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the adapter learned of the event.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[rkyv(compare(PartialEq), derive(Debug, Clone, Copy, PartialEq, Eq))]
#[repr(u8)]
pub enum EventSource {
    /// Pushed by the carrier.
    Webhook = 1,
    /// Fetched by the adaptive poller.
    Poll = 2,
    /// Written by a tool (load generator, fixtures, tests).
    Synthetic = 3,
}

/// Where a scan happened, as the carrier reported it (normalized casing
/// aside). Any field may be unknown.
#[derive(
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(derive(Debug))]
pub struct Location {
    /// City or facility locality.
    pub city: Option<String>,
    /// State, province or region code.
    pub region: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
}

/// One canonical carrier event.
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
pub struct CarrierEvent {
    /// The carrier's tracking number (the partition key).
    pub tracking_number: String,
    /// Which carrier reported it.
    pub carrier: Carrier,
    /// Canonical milestone.
    pub status: Status,
    /// Canonical reason or manner.
    pub sub_status: SubStatus,
    /// The carrier's raw code, always kept (`"OD"`, `"005"`, `"GX"`, `"transit"`).
    pub raw_code: String,
    /// The carrier's raw description text, always kept.
    pub raw_text: String,
    /// When the scan happened, milliseconds since the Unix epoch (UTC).
    #[serde(rename = "occurred_at", with = "rfc3339_ms")]
    pub occurred_at_ms: i64,
    /// The carrier's local wall time of the scan as `YYYY-MM-DDTHH:MM:SS`,
    /// exactly as it was meant locally (no offset).
    pub local_time: String,
    /// Offset of `local_time` from UTC in minutes, when known or inferred.
    pub utc_offset_minutes: Option<i16>,
    /// Where the scan happened.
    pub location: Location,
    /// How the event arrived.
    pub source: EventSource,
    /// When the adapter received the event, ms since the Unix epoch. The log
    /// time (when the node appended it) travels in the batch header instead.
    #[serde(rename = "received_at", with = "rfc3339_ms")]
    pub received_at_ms: i64,
}

/// Format version byte in front of every archived event value in the log.
pub const EVENT_FORMAT_V1: u8 = 1;

/// Errors reading an event value from the log or the wire.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventDecodeError {
    /// The value was empty.
    #[error("event value is empty")]
    Empty,
    /// The version byte is not one this build knows.
    #[error("unknown event format version {version}")]
    UnknownVersion {
        /// The version byte found.
        version: u8,
    },
    /// The archive failed validation.
    #[error("event archive is invalid ({bytes} bytes)")]
    InvalidArchive {
        /// Length of the archive that failed.
        bytes: usize,
    },
}

impl CarrierEvent {
    /// Encodes the event as a log value: the version byte, then the archive.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(160);
        self.encode_into(&mut out);
        out
    }

    /// Appends the log-value encoding of the event to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(EVENT_FORMAT_V1);
        // Serializing plain owned data into a Vec cannot fail: the only
        // error sources are allocation failure and pointer-width overflow,
        // neither reachable for events within the record size limit.
        match rkyv::to_bytes::<rkyv::rancor::Error>(self) {
            Ok(bytes) => out.extend_from_slice(&bytes),
            Err(_) => out.truncate(out.len() - 1),
        }
    }

    /// Validates and accesses an encoded event in place (zero-copy).
    pub fn access(value: &[u8]) -> Result<&ArchivedCarrierEvent, EventDecodeError> {
        let (&version, archive) = value.split_first().ok_or(EventDecodeError::Empty)?;
        if version != EVENT_FORMAT_V1 {
            return Err(EventDecodeError::UnknownVersion { version });
        }
        rkyv::access::<ArchivedCarrierEvent, rkyv::rancor::Error>(archive).map_err(|_| {
            EventDecodeError::InvalidArchive {
                bytes: archive.len(),
            }
        })
    }

    /// Decodes an encoded event into an owned struct.
    pub fn decode(value: &[u8]) -> Result<CarrierEvent, EventDecodeError> {
        let archived = Self::access(value)?;
        rkyv::deserialize::<CarrierEvent, rkyv::rancor::Error>(archived).map_err(|_| {
            EventDecodeError::InvalidArchive {
                bytes: value.len().saturating_sub(1),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CarrierEvent {
        CarrierEvent {
            tracking_number: "1Z999AA10123456784".into(),
            carrier: Carrier::Ups,
            status: Status::OutForDelivery,
            sub_status: SubStatus::OnVehicle,
            raw_code: "OT".into(),
            raw_text: "Out For Delivery Today".into(),
            occurred_at_ms: 1_700_000_000_000,
            local_time: "2023-11-14T17:13:20".into(),
            utc_offset_minutes: Some(-300),
            location: Location {
                city: Some("Atlanta".into()),
                region: Some("GA".into()),
                postal_code: Some("30301".into()),
                country: Some("US".into()),
            },
            source: EventSource::Webhook,
            received_at_ms: 1_700_000_000_500,
        }
    }

    #[test]
    fn encode_access_decode_round_trip() {
        let event = sample();
        let bytes = event.encode();
        let archived = CarrierEvent::access(&bytes).unwrap();
        assert_eq!(archived.tracking_number.as_str(), event.tracking_number);
        assert_eq!(archived.status, Status::OutForDelivery);
        assert_eq!(CarrierEvent::decode(&bytes).unwrap(), event);
    }

    #[test]
    fn access_works_at_odd_offsets() {
        let bytes = sample().encode();
        let mut shifted = vec![0u8; 3];
        shifted.extend_from_slice(&bytes);
        let archived = CarrierEvent::access(&shifted[3..]).unwrap();
        assert_eq!(archived.carrier, Carrier::Ups);
    }

    #[test]
    fn bad_values_are_typed_errors() {
        assert_eq!(
            CarrierEvent::access(&[]).unwrap_err(),
            EventDecodeError::Empty
        );
        assert_eq!(
            CarrierEvent::access(&[9, 1, 2]).unwrap_err(),
            EventDecodeError::UnknownVersion { version: 9 }
        );
        assert!(matches!(
            CarrierEvent::access(&[EVENT_FORMAT_V1, 1, 2, 3]).unwrap_err(),
            EventDecodeError::InvalidArchive { .. }
        ));
    }

    #[test]
    fn json_form_has_rfc3339_utc() {
        let json = serde_json::to_value(sample()).unwrap();
        assert_eq!(json["occurred_at"], "2023-11-14T22:13:20.000Z");
        assert_eq!(json["status"], "out_for_delivery");
        assert_eq!(json["location"]["city"], "Atlanta");
    }
}
