//! Carrier payload renderers: canonical journeys in, UPS, FedEx, USPS and
//! DHL polling responses and webhook bodies out.
//!
//! The carrier simulator and the load generator must speak each carrier's
//! real dialect, or the normalizers would only ever be tested against
//! themselves. Each canonical (status, sub-status) is written with a real
//! raw code of that carrier (a reverse table: one representative code per
//! pair), local times and offsets are written the way the carrier writes
//! them, and the result normalizes back to the same status, sub-status,
//! instant and location (checked by a round-trip property test).
//!
//! Pairs a carrier cannot express are written with the status's default
//! code (its sub-status is lost); statuses a carrier cannot express at all
//! are written as an unmapped code, which normalizes to `unknown`.
//! [`representable`] and [`supports`] say which is which.

mod dhl;
mod fedex;
mod tracking_number;
mod ups;
mod usps;

use chrono::{DateTime, Datelike, NaiveDateTime, Timelike};
use dropline_operators::model::{Carrier, Location, Status, SubStatus};
use serde::Serialize;

pub use tracking_number::tracking_number;

/// One scan of a simulated parcel, in canonical terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JourneyScan {
    /// Milestone.
    pub status: Status,
    /// Reason or manner.
    pub sub_status: SubStatus,
    /// When it happened, epoch milliseconds UTC. Carriers print whole
    /// seconds; sub-second parts are dropped.
    pub occurred_at_ms: i64,
    /// The scan location's offset from UTC at that instant, in minutes.
    pub utc_offset_minutes: i16,
    /// Where (upper-case, as the normalizers produce it; `country` as ISO
    /// alpha-2).
    pub location: Location,
}

/// A parcel's scans so far, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Journey {
    /// The carrier's tracking number (see [`tracking_number`]).
    pub tracking_number: String,
    /// Scans, oldest first.
    pub scans: Vec<JourneyScan>,
}

/// Most tracking numbers FedEx accepts in one Track request; the simulator
/// should not render bigger polling responses for FedEx.
pub const FEDEX_TRACKING_NUMBERS_PER_REQUEST_MAX: usize = 30;

/// The polling response body for `journeys` (one tracking number each):
/// UPS `trackResponse.shipment[]`, FedEx `output.completeTrackResults[]`,
/// USPS one tracking item (an array of items for several journeys), DHL
/// `shipments[]`. Scans are written newest first, as the carriers do.
pub fn render_poll(carrier: Carrier, journeys: &[Journey]) -> Vec<u8> {
    match carrier {
        Carrier::Ups => to_bytes(&ups::poll(journeys)),
        Carrier::Fedex => to_bytes(&fedex::poll(journeys)),
        Carrier::Usps => usps::poll(journeys),
        Carrier::Dhl => to_bytes(&dhl::poll(journeys)),
    }
}

/// The webhook body announcing `journey`'s scans: a UPS Track Alert array
/// (one alert per scan), a FedEx AIV body (`completeTrackResults` +
/// `outputMetaData`), a USPS tracking item with a subscription envelope, a
/// DHL single-shipment push. Pass only the new scans to announce them
/// alone.
pub fn render_webhook(carrier: Carrier, journey: &Journey) -> Vec<u8> {
    match carrier {
        Carrier::Ups => to_bytes(&ups::alerts(std::slice::from_ref(journey))),
        Carrier::Fedex => to_bytes(&fedex::webhook(std::slice::from_ref(journey))),
        Carrier::Usps => to_bytes(&usps::item(journey, true)),
        Carrier::Dhl => to_bytes(&dhl::shipment(journey)),
    }
}

/// One webhook body announcing the scans of several parcels of one
/// carrier at once, in the shapes carriers use when they push in bulk: a
/// UPS Track Alert array with every parcel's alerts, a FedEx AIV body with
/// one `completeTrackResults` entry per parcel, an array of USPS tracking
/// items (each with its subscription envelope), a DHL `shipments[]`
/// document. With one journey it is exactly [`render_webhook`].
pub fn render_webhook_batch(carrier: Carrier, journeys: &[Journey]) -> Vec<u8> {
    if let [one] = journeys {
        return render_webhook(carrier, one);
    }
    match carrier {
        Carrier::Ups => to_bytes(&ups::alerts(journeys)),
        Carrier::Fedex => to_bytes(&fedex::webhook(journeys)),
        Carrier::Usps => to_bytes(
            &journeys
                .iter()
                .map(|j| usps::item(j, true))
                .collect::<Vec<_>>(),
        ),
        Carrier::Dhl => to_bytes(&dhl::poll(journeys)),
    }
}

/// Whether `carrier` has a code for this exact (status, sub-status) pair,
/// so that it survives a render and normalize round trip.
pub fn representable(carrier: Carrier, status: Status, sub_status: SubStatus) -> bool {
    match carrier {
        Carrier::Ups => ups::CODES
            .iter()
            .any(|c| c.status == status && c.sub == sub_status),
        Carrier::Fedex => fedex::CODES
            .iter()
            .any(|c| c.status == status && c.sub == sub_status),
        Carrier::Usps => usps::CODES
            .iter()
            .any(|c| c.status == status && c.sub == sub_status),
        Carrier::Dhl => dhl::CODES
            .iter()
            .any(|c| c.status == status && c.sub == sub_status),
    }
}

/// Whether `carrier` can express `status` at all (with some sub-status).
pub fn supports(carrier: Carrier, status: Status) -> bool {
    match carrier {
        Carrier::Ups => ups::CODES.iter().any(|c| c.status == status),
        Carrier::Fedex => fedex::CODES.iter().any(|c| c.status == status),
        Carrier::Usps => usps::CODES.iter().any(|c| c.status == status),
        Carrier::Dhl => dhl::CODES.iter().any(|c| c.status == status),
    }
}

/// Every (status, sub-status) pair `carrier` can express exactly.
pub fn representable_pairs(carrier: Carrier) -> Vec<(Status, SubStatus)> {
    match carrier {
        Carrier::Ups => ups::CODES.iter().map(|c| (c.status, c.sub)).collect(),
        Carrier::Fedex => fedex::CODES.iter().map(|c| (c.status, c.sub)).collect(),
        Carrier::Usps => usps::CODES.iter().map(|c| (c.status, c.sub)).collect(),
        Carrier::Dhl => dhl::CODES.iter().map(|c| (c.status, c.sub)).collect(),
    }
}

/// A reverse-table row: which carrier code stands for a canonical pair.
pub(crate) trait Row {
    /// The canonical status the row expresses.
    fn status(&self) -> Status;
    /// The canonical sub-status the row expresses.
    fn sub(&self) -> SubStatus;
}

/// The row for (status, sub-status): the exact one, else the status's
/// first row, else the table's unmapped-code row (its last).
pub(crate) fn pick<R: Row>(table: &[R], status: Status, sub: SubStatus) -> &R {
    table
        .iter()
        .find(|r| r.status() == status && r.sub() == sub)
        .or_else(|| table.iter().find(|r| r.status() == status))
        .or_else(|| {
            table
                .iter()
                .find(|r| r.status() == Status::Unknown && r.sub() == SubStatus::UnmappedCode)
        })
        .unwrap_or(&table[0])
}

/// A scan's local wall time.
pub(crate) fn local_time(scan: &JourneyScan) -> NaiveDateTime {
    let local_ms = scan.occurred_at_ms + i64::from(scan.utc_offset_minutes) * 60_000;
    DateTime::from_timestamp_millis(local_ms)
        .unwrap_or_default()
        .naive_utc()
}

/// A scan's UTC wall time.
pub(crate) fn utc_time(scan: &JourneyScan) -> NaiveDateTime {
    DateTime::from_timestamp_millis(scan.occurred_at_ms)
        .unwrap_or_default()
        .naive_utc()
}

/// `-05:00`, `+05:30`.
pub(crate) fn offset_text(minutes: i16) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    let m = minutes.unsigned_abs();
    format!("{sign}{:02}:{:02}", m / 60, m % 60)
}

/// `2024-08-20T12:41:57`.
pub(crate) fn iso_local(t: NaiveDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// `20240820`.
pub(crate) fn ymd(t: NaiveDateTime) -> String {
    format!("{:04}{:02}{:02}", t.year(), t.month(), t.day())
}

/// `124157`, or `12:41:57` with `sep`.
pub(crate) fn hms(t: NaiveDateTime, sep: &str) -> String {
    format!(
        "{:02}{sep}{:02}{sep}{:02}",
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Bodies are rendered straight from borrowed, typed structs: no
/// intermediate JSON tree, so rendering keeps up with a load run.
fn to_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing plain structs into a Vec cannot fail: no I/O, no maps
    // with non-string keys.
    serde_json::to_vec(value).unwrap_or_default()
}

/// A location field (null when unknown).
pub(crate) fn opt(field: &Option<String>) -> Option<&str> {
    field.as_deref()
}

/// Scans newest first, as carriers list them.
pub(crate) fn newest_first(journey: &Journey) -> impl Iterator<Item = &JourneyScan> {
    journey.scans.iter().rev()
}
