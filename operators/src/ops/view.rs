//! The shipment view: the state the tracking API serves, built from the
//! compact record and emitted as a change whenever it moves.
//!
//! The estimate is a deliberately simple, documented heuristic (carriers'
//! own estimates are not in the canonical event): the latest scan's time
//! plus a typical remaining transit time for its milestone. A delivered
//! parcel's estimate is its delivery time. "Late" means the estimate is
//! past the promised window's end.

use crate::model::{ArchivedCarrierEvent, Status};
use crate::ops::exceptions::ExceptionClass;
use crate::ops::outputs::{LastEvent, LocationSummary, OpenException, ShipmentView, ViewChange};
use crate::ops::shipment::{NO_OFFSET, Shipment, flag};
use crate::ops::text::{InlineStr, TrackingNumber};

const HOUR_MS: i64 = 3600 * 1000;

/// Typical time from a milestone to delivery, hours (`None`: no estimate).
fn remaining_hours(status: Status) -> Option<i64> {
    match status {
        Status::LabelCreated => Some(96),
        Status::PickedUp => Some(72),
        Status::InTransit | Status::Exception | Status::Stale | Status::Unknown => Some(48),
        Status::OutForDelivery => Some(8),
        Status::DeliveryAttempted => Some(24),
        Status::Delivered | Status::ReturnedToSender => Some(0),
        Status::AvailableForPickup | Status::ReturningToSender | Status::Cancelled => None,
    }
}

/// The estimated delivery instant, ms.
pub(crate) fn estimate_ms(rec: &Shipment) -> Option<i64> {
    match rec.status() {
        None => (rec.promised_to_s != 0).then(|| i64::from(rec.promised_to_s) * 1000),
        Some(s) => remaining_hours(s).map(|h| rec.last_occurred_ms + h * HOUR_MS),
    }
}

fn opt_s(s: u32) -> Option<i64> {
    (s != 0).then(|| i64::from(s) * 1000)
}

/// The view of `rec` after a change.
#[inline]
pub(crate) fn build(
    rec: &Shipment,
    tracking_number: TrackingNumber,
    change: ViewChange,
    at_ms: u64,
    location: Option<LocationSummary>,
) -> ShipmentView {
    let estimate = estimate_ms(rec);
    let promised_to = opt_s(rec.promised_to_s);
    let open_exception = if rec.has(flag::EXCEPTION_OPEN) {
        let class = ExceptionClass::from_code(rec.exc_class).unwrap_or(ExceptionClass::Other);
        Some(OpenException {
            class,
            remediation: class.remediation(),
            since_log_ms: u64::from(rec.exception_since_s) * 1000,
            escalated: rec.has(flag::ESCALATED),
        })
    } else {
        None
    };
    ShipmentView {
        tracking_number,
        change,
        updated_log_ms: at_ms,
        carrier: rec.carrier(),
        status: rec.status(),
        sub_status: rec.sub_status(),
        last_event: (rec.last_offset != NO_OFFSET).then_some(LastEvent {
            offset: rec.last_offset,
            occurred_at_ms: rec.last_occurred_ms,
            location,
        }),
        promised_from_ms: opt_s(rec.promised_from_s),
        promised_to_ms: promised_to,
        estimate_ms: estimate,
        late: matches!((estimate, promised_to), (Some(e), Some(p)) if e > p),
        stale: rec.has(flag::STALE),
        open_exception,
    }
}

/// The scan's location as display text.
pub(crate) fn location_summary(event: &ArchivedCarrierEvent) -> LocationSummary {
    fn text<const N: usize>(s: Option<&rkyv::string::ArchivedString>) -> InlineStr<N> {
        s.map_or_else(InlineStr::empty, |s| InlineStr::truncated(s.as_str()))
    }
    let l = &event.location;
    LocationSummary {
        city: text(l.city.as_ref()),
        region: text(l.region.as_ref()),
        postal_code: text(l.postal_code.as_ref()),
        country: text(l.country.as_ref()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_and_lateness() {
        let mut rec = Shipment::new(1, 1, 0);
        rec.promised_to_s = 1_000_000;
        assert_eq!(estimate_ms(&rec), Some(1_000_000_000));
        rec.set(flag::HAS_SCAN, true);
        rec.status = Status::InTransit as u8;
        rec.last_occurred_ms = 999_000_000;
        rec.last_offset = 5;
        let v = build(
            &rec,
            TrackingNumber::truncated("X"),
            ViewChange::Scan,
            1,
            None,
        );
        assert_eq!(v.estimate_ms, Some(999_000_000 + 48 * HOUR_MS));
        assert!(v.late);
    }
}
