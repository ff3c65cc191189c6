//! Carrier normalizers: UPS, FedEx, USPS and DHL payloads in, canonical
//! [`CarrierEvent`]s out.
//!
//! Carriers send the same facts in four dialects, each with its own traps:
//! local times without offsets, codes that mean different things under
//! different activity types, tracking numbers reused by a later shipment.
//! Everything downstream (dedup fingerprints, debounce, rules) trusts the
//! canonical form, so this is where those traps are handled, once.
//!
//! Each carrier accepts both its polling response body and its webhook
//! body; the shape is recognized from the document, not from the caller.
//! docs/CARRIERS.md lists the accepted shapes and the time-zone rules.
//!
//! Guarantees:
//! - A code we do not map becomes [`Status::Unknown`] /
//!   [`SubStatus::UnmappedCode`] with the raw code kept, and is listed in
//!   [`Normalized::unknown_codes`]; it is never dropped.
//! - A malformed payload is a [`NormalizeError`] naming the carrier, the
//!   JSON path or position, and the reason; carrier input never panics.
//! - Events come out grouped per package in payload order, each group
//!   oldest first.
//! - Location text is trimmed, whitespace-collapsed and upper-cased;
//!   countries are ISO alpha-2 codes.

mod dhl;
mod dhl_codes;
mod error;
mod fedex;
mod fedex_codes;
mod keywords;
mod local_time;
mod location;
mod ups;
mod ups_codes;
mod usps;
mod usps_codes;
pub mod zone;

use std::io::Write;

use serde::{Deserialize, Serialize};

pub use error::NormalizeError;
use local_time::ScanTime;

use crate::model::{Carrier, CarrierEvent, EventSource, Location, Status, SubStatus};

/// Largest payload accepted, in bytes. FedEx's 30-number responses with
/// full scan histories stay well under 1 MiB; anything near this limit is
/// not a tracking response.
pub const PAYLOAD_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Most events one payload may yield before it is rejected.
pub const EVENTS_PER_PAYLOAD_MAX: usize = 50_000;

/// How much of an offending value an error message repeats, in characters.
pub const ERROR_VALUE_CHARS_MAX: usize = 80;

/// A scan whose carrier code is not in our tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownCode {
    /// The package it belongs to.
    pub tracking_number: String,
    /// The carrier's raw code (empty if the carrier sent none).
    pub raw_code: String,
    /// The carrier's description text.
    pub raw_text: String,
}

/// Why a scan or package in the payload produced no event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// A record that is not a milestone (UPS activity type `U`: a delivery
    /// photo or an updated delivery date or time; UPS status 153/154).
    MetaUpdate {
        /// The raw code of the record.
        raw_code: String,
    },
    /// An older shipment that used the same tracking number (FedEx reuses
    /// numbers); its scans do not belong to the current parcel.
    SupersededShipment {
        /// The carrier's unique id of the older shipment, if given.
        unique_id: String,
        /// How many scans it held.
        scans: usize,
    },
    /// The carrier answered for this number with an error or a warning and
    /// no scans (number not found yet, data rolled off).
    NotFound {
        /// The carrier's code (`TRACKING.TRACKINGNUMBER.NOTFOUND`).
        code: String,
        /// The carrier's message.
        message: String,
    },
}

/// Something in the payload that was deliberately not turned into an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The package concerned.
    pub tracking_number: String,
    /// Why.
    pub reason: SkipReason,
}

/// The result of normalizing one payload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Normalized {
    /// Canonical events, grouped per package in payload order, each group
    /// oldest first.
    pub events: Vec<CarrierEvent>,
    /// One entry per event mapped to `unknown` / `unmapped_code`
    /// (`unknown_codes.len()` is the count to report).
    pub unknown_codes: Vec<UnknownCode>,
    /// Records and packages that produced no event, with the reason.
    pub skipped: Vec<Skipped>,
}

/// Normalizes one carrier payload (a polling response body or a webhook
/// body) into canonical events. `received_at_ms` and `source` are copied
/// onto every event.
pub fn normalize(
    carrier: Carrier,
    payload: &[u8],
    received_at_ms: i64,
    source: EventSource,
) -> Result<Normalized, NormalizeError> {
    if payload.len() > PAYLOAD_BYTES_MAX {
        return Err(NormalizeError::TooLarge {
            carrier,
            bytes: payload.len(),
            max: PAYLOAD_BYTES_MAX,
        });
    }
    let mut sink = Sink::new(carrier, received_at_ms, source);
    match carrier {
        Carrier::Ups => ups::normalize(payload, &mut sink)?,
        Carrier::Fedex => fedex::normalize(payload, &mut sink)?,
        Carrier::Usps => usps::normalize(payload, &mut sink)?,
        Carrier::Dhl => dhl::normalize(payload, &mut sink)?,
    }
    Ok(sink.out)
}

/// Normalizes a payload and writes one JSON object per event to `out`
/// (see [`write_json_lines`]). Returns the number of events written.
pub fn normalize_to_json_lines(
    carrier: Carrier,
    payload: &[u8],
    out: &mut impl Write,
) -> Result<usize, NormalizeError> {
    let normalized = normalize(carrier, payload, 0, EventSource::Synthetic)?;
    write_json_lines(&normalized.events, out)?;
    Ok(normalized.events.len())
}

/// One event as a JSON line: the event's JSON form without the adapter's
/// receive time and source, which are not in the payload, so that the same
/// payload always prints the same lines.
#[derive(Serialize)]
struct EventLine<'a> {
    tracking_number: &'a str,
    carrier: Carrier,
    status: Status,
    sub_status: SubStatus,
    raw_code: &'a str,
    raw_text: &'a str,
    occurred_at: String,
    local_time: &'a str,
    utc_offset_minutes: Option<i16>,
    location: &'a Location,
}

/// Writes events as JSON lines with the fields `tracking_number`,
/// `carrier`, `status`, `sub_status`, `raw_code`, `raw_text`,
/// `occurred_at` (RFC 3339 UTC, milliseconds), `local_time`,
/// `utc_offset_minutes` and `location` {`city`, `region`, `postal_code`,
/// `country`}.
pub fn write_json_lines(events: &[CarrierEvent], out: &mut impl Write) -> std::io::Result<()> {
    for e in events {
        let line = EventLine {
            tracking_number: &e.tracking_number,
            carrier: e.carrier,
            status: e.status,
            sub_status: e.sub_status,
            raw_code: &e.raw_code,
            raw_text: &e.raw_text,
            occurred_at: crate::model::time::format_rfc3339_ms(e.occurred_at_ms),
            local_time: &e.local_time,
            utc_offset_minutes: e.utc_offset_minutes,
            location: &e.location,
        };
        serde_json::to_writer(&mut *out, &line).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// Where a carrier module puts what it found.
pub(crate) struct Sink {
    carrier: Carrier,
    received_at_ms: i64,
    source: EventSource,
    out: Normalized,
}

/// One scan, classified, ready to become an event.
pub(crate) struct Scan<'a> {
    pub(crate) status: Status,
    pub(crate) sub_status: SubStatus,
    pub(crate) raw_code: &'a str,
    pub(crate) raw_text: &'a str,
    pub(crate) time: ScanTime,
    pub(crate) location: Location,
}

impl Sink {
    fn new(carrier: Carrier, received_at_ms: i64, source: EventSource) -> Sink {
        Sink {
            carrier,
            received_at_ms,
            source,
            out: Normalized::default(),
        }
    }

    /// The carrier being read, for errors.
    pub(crate) fn carrier(&self) -> Carrier {
        self.carrier
    }

    /// Marks the start of a package's events; pass the mark to
    /// [`Sink::end_package`].
    pub(crate) fn begin_package(&self) -> usize {
        self.out.events.len()
    }

    /// Puts the package's events, which carriers list newest first (DHL
    /// does not promise an order), oldest first. Scans at the same instant
    /// keep the carrier's relative order, reversed.
    pub(crate) fn end_package(&mut self, mark: usize) {
        if let Some(group) = self.out.events.get_mut(mark..) {
            group.reverse();
            group.sort_by_key(|e| e.occurred_at_ms);
        }
    }

    /// Adds one event.
    pub(crate) fn push(
        &mut self,
        tracking_number: &str,
        scan: Scan<'_>,
    ) -> Result<(), NormalizeError> {
        if self.out.events.len() >= EVENTS_PER_PAYLOAD_MAX {
            return Err(NormalizeError::TooManyEvents {
                carrier: self.carrier,
                max: EVENTS_PER_PAYLOAD_MAX,
            });
        }
        if scan.status == Status::Unknown && scan.sub_status == SubStatus::UnmappedCode {
            self.out.unknown_codes.push(UnknownCode {
                tracking_number: tracking_number.to_owned(),
                raw_code: scan.raw_code.to_owned(),
                raw_text: scan.raw_text.to_owned(),
            });
        }
        self.out.events.push(CarrierEvent {
            tracking_number: tracking_number.to_owned(),
            carrier: self.carrier,
            status: scan.status,
            sub_status: scan.sub_status,
            raw_code: scan.raw_code.to_owned(),
            raw_text: scan.raw_text.to_owned(),
            occurred_at_ms: scan.time.occurred_at_ms,
            local_time: scan.time.local_text(),
            utc_offset_minutes: scan.time.utc_offset_minutes,
            location: scan.location,
            source: self.source,
            received_at_ms: self.received_at_ms,
        });
        Ok(())
    }

    /// Records something that produced no event.
    pub(crate) fn skip(&mut self, tracking_number: &str, reason: SkipReason) {
        self.out.skipped.push(Skipped {
            tracking_number: tracking_number.to_owned(),
            reason,
        });
    }
}

/// Parses a payload into borrowed structs, mapping serde errors.
pub(crate) fn parse<'a, T: Deserialize<'a>>(
    carrier: Carrier,
    payload: &'a [u8],
) -> Result<T, NormalizeError> {
    serde_json::from_slice(payload).map_err(|e| NormalizeError::from_json(carrier, &e))
}

/// The first byte that is not JSON whitespace: tells an array body from an
/// object body without parsing twice.
pub(crate) fn first_byte(payload: &[u8]) -> Option<u8> {
    payload
        .iter()
        .copied()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// A text field that borrows from the payload unless it contains escapes.
///
/// serde only borrows a bare `Cow<str>` field; inside an `Option` it always
/// allocates. This newtype's visitor borrows wherever serde_json can lend
/// the bytes, which removes most allocations from parsing.
pub(crate) struct Text<'a>(std::borrow::Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);

        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = Text<'a>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(std::borrow::Cow::Borrowed(v)))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(std::borrow::Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Text<'a>, E> {
                Ok(Text(std::borrow::Cow::Owned(v)))
            }
        }

        deserializer.deserialize_str(Visit(std::marker::PhantomData))
    }
}

/// The string value of an optional text field, `""` when absent.
pub(crate) fn text<'s>(field: &'s Option<Text<'_>>) -> &'s str {
    field.as_deref().unwrap_or("")
}

/// The value of an optional text field if present and not blank.
pub(crate) fn non_blank<'s>(field: &'s Option<Text<'_>>) -> Option<&'s str> {
    field.as_deref().map(str::trim).filter(|s| !s.is_empty())
}
