//! USPS: the tracking v3 response and tracking pushes.
//!
//! Polling returns one tracking item (`{trackingNumber, ...,
//! trackingEvents[]}`) or, from the batch endpoint, an array of them. Pushes
//! carry the same item shape (any envelope keys beside it are ignored), so
//! both are read the same way.
//!
//! Time is the trap. `eventTimestamp` is local with no offset.
//! `GMTOffset` (`-05:00` or `-7:00`) makes it exact. `GMTTimestamp` is not
//! trusted on its own: on evening scans it carries the local date and is a
//! day early. So, in order: local + `GMTOffset`; local in the zone of the
//! scan's state (ZIP-refined; Arizona without DST, Hawaii on Honolulu
//! time), with `GMTTimestamp` only choosing between the two readings of a
//! repeated fall-back hour; local vs `GMTTimestamp` moved by whole days
//! into a plausible offset; the local time read as UTC with the offset
//! marked unknown.
//!
//! `eventCountry` is usually null on domestic scans; a scan in a US state
//! with no country is in the US.

use serde::Deserialize;

use super::local_time::{ScanTime, parse_iso, parse_offset};
use super::location::location;
use super::usps_codes::classify;
use super::{
    NormalizeError, Scan, Sink, SkipReason, Text, first_byte, non_blank, parse, text, zone,
};
use crate::model::{Carrier, Location};

const EXPECTED: &str = "a tracking item (trackingNumber + trackingEvents[]), an array of them, \
                        or an error document (error{code, message})";

#[derive(Deserialize)]
#[serde(untagged)]
enum Code<'a> {
    Text(#[serde(borrow)] Text<'a>),
    Number(i64),
}

impl Code<'_> {
    fn to_text(&self) -> String {
        match self {
            Code::Text(t) => t.to_string(),
            Code::Number(n) => n.to_string(),
        }
    }
}

#[derive(Deserialize)]
struct ApiError<'a> {
    #[serde(borrow)]
    code: Option<Code<'a>>,
    #[serde(borrow)]
    message: Option<Text<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Item<'a> {
    #[serde(borrow)]
    tracking_number: Option<Text<'a>>,
    #[serde(borrow)]
    tracking_events: Option<Vec<Event<'a>>>,
    #[serde(borrow)]
    error: Option<ApiError<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    #[serde(borrow)]
    event_type: Option<Text<'a>>,
    #[serde(borrow)]
    event_code: Option<Text<'a>>,
    #[serde(borrow)]
    event_timestamp: Option<Text<'a>>,
    #[serde(borrow, rename = "GMTTimestamp")]
    gmt_timestamp: Option<Text<'a>>,
    #[serde(borrow, rename = "GMTOffset")]
    gmt_offset: Option<Text<'a>>,
    #[serde(borrow)]
    event_city: Option<Text<'a>>,
    #[serde(borrow)]
    event_state: Option<Text<'a>>,
    #[serde(borrow, rename = "eventZIP")]
    event_zip: Option<Text<'a>>,
    #[serde(borrow)]
    event_country: Option<Text<'a>>,
    #[serde(borrow)]
    reason_code: Option<Text<'a>>,
}

/// Normalizes a USPS payload into `sink`.
pub(crate) fn normalize(payload: &[u8], sink: &mut Sink) -> Result<(), NormalizeError> {
    let carrier = Carrier::Usps;
    if first_byte(payload) == Some(b'[') {
        let items: Vec<Item<'_>> = parse(carrier, payload)?;
        for (i, item) in items.iter().enumerate() {
            one_item(item, &format!("[{i}]."), sink)?;
        }
        return Ok(());
    }
    let item: Item<'_> = parse(carrier, payload)?;
    if item.tracking_number.is_none() && item.tracking_events.is_none() {
        return Err(match &item.error {
            Some(err) => NormalizeError::CarrierError {
                carrier,
                code: err.code.as_ref().map(Code::to_text).unwrap_or_default(),
                message: text(&err.message).to_owned(),
            },
            None => NormalizeError::UnrecognizedEnvelope {
                carrier,
                expected: EXPECTED,
            },
        });
    }
    one_item(&item, "", sink)
}

fn one_item(item: &Item<'_>, prefix: &str, sink: &mut Sink) -> Result<(), NormalizeError> {
    let carrier = sink.carrier();
    let number = non_blank(&item.tracking_number).ok_or_else(|| NormalizeError::MissingField {
        carrier,
        path: format!("{prefix}trackingNumber"),
    })?;
    let events = match (&item.tracking_events, &item.error) {
        (Some(events), _) => events,
        (None, Some(err)) => {
            sink.skip(
                number,
                SkipReason::NotFound {
                    code: err.code.as_ref().map(Code::to_text).unwrap_or_default(),
                    message: text(&err.message).to_owned(),
                },
            );
            return Ok(());
        }
        (None, None) => return Ok(()),
    };
    let mark = sink.begin_package();
    for (k, event) in events.iter().enumerate() {
        let path = |field: &str| format!("{prefix}trackingEvents[{k}].{field}");
        let mut place = location(
            event.event_city.as_deref(),
            event.event_state.as_deref(),
            event.event_zip.as_deref(),
            event.event_country.as_deref(),
        );
        if place.country.is_none() && place.region.as_deref().is_some_and(zone::is_us_state) {
            place.country = Some("US".to_owned());
        }
        let time = event_time(event, &place, &path, carrier)?;
        let code = text(&event.event_code).trim();
        let event_type = text(&event.event_type).trim();
        let (status, sub_status) = classify(code, event_type, text(&event.reason_code).trim());
        sink.push(
            number,
            Scan {
                status,
                sub_status,
                raw_code: code,
                raw_text: event_type,
                time,
                location: place,
            },
        )?;
    }
    sink.end_package(mark);
    Ok(())
}

fn event_time(
    event: &Event<'_>,
    place: &Location,
    path: &dyn Fn(&str) -> String,
    carrier: Carrier,
) -> Result<ScanTime, NormalizeError> {
    let local_text =
        non_blank(&event.event_timestamp).ok_or_else(|| NormalizeError::MissingField {
            carrier,
            path: path("eventTimestamp"),
        })?;
    let (local, own_offset) = parse_iso(local_text).ok_or_else(|| {
        NormalizeError::invalid(
            carrier,
            path("eventTimestamp"),
            local_text,
            "expected YYYY-MM-DDTHH:MM:SS",
        )
    })?;
    if let Some(offset) = own_offset {
        return Ok(ScanTime::with_offset(local, offset));
    }
    if let Some(offset_text) = non_blank(&event.gmt_offset) {
        let offset = parse_offset(offset_text).ok_or_else(|| {
            NormalizeError::invalid(
                carrier,
                path("GMTOffset"),
                offset_text,
                "expected an offset like -05:00 or -7:00",
            )
        })?;
        return Ok(ScanTime::with_offset(local, offset));
    }
    let gmt = match non_blank(&event.gmt_timestamp) {
        Some(gmt_text) => {
            let (gmt_wall, gmt_offset) = parse_iso(gmt_text).ok_or_else(|| {
                NormalizeError::invalid(
                    carrier,
                    path("GMTTimestamp"),
                    gmt_text,
                    "expected YYYY-MM-DDTHH:MM:SSZ",
                )
            })?;
            let utc_ms =
                gmt_wall.and_utc().timestamp_millis() - i64::from(gmt_offset.unwrap_or(0)) * 60_000;
            ScanTime::from_local_and_utc(local, utc_ms)
        }
        None => None,
    };
    let zone = zone::infer_zone(
        place.country.as_deref(),
        place.region.as_deref(),
        place.postal_code.as_deref(),
    );
    Ok(match (zone, gmt) {
        (Some(zone), gmt) => ScanTime::in_zone(local, zone, gmt.map(|g| g.occurred_at_ms)),
        (None, Some(gmt)) => gmt,
        (None, None) => ScanTime::offset_unknown(local),
    })
}

#[cfg(test)]
mod tests {
    use crate::model::time::format_rfc3339_ms;
    use crate::model::{Carrier, EventSource, Status, SubStatus};
    use crate::normalize::normalize;

    fn item(events: &str) -> String {
        format!(
            r#"{{"trackingNumber":"9400111899223197428490","statusCategory":"In Transit","trackingEvents":[{events}]}}"#
        )
    }

    fn one(events: &str) -> crate::model::CarrierEvent {
        let out = normalize(Carrier::Usps, item(events).as_bytes(), 0, EventSource::Poll).unwrap();
        assert_eq!(out.events.len(), 1);
        out.events.into_iter().next().unwrap()
    }

    #[test]
    fn honolulu_scan_without_offset() {
        let e = one(
            r#"{"eventType":"Arrived at Post Office","eventCode":"07","eventTimestamp":"2024-07-01T08:15:00","eventCity":"HONOLULU","eventState":"HI","eventZIP":"96815","eventCountry":null}"#,
        );
        assert_eq!(e.utc_offset_minutes, Some(-600));
        assert_eq!(
            format_rfc3339_ms(e.occurred_at_ms),
            "2024-07-01T18:15:00.000Z"
        );
        assert_eq!(e.location.country.as_deref(), Some("US"));
        assert_eq!(
            (e.status, e.sub_status),
            (Status::InTransit, SubStatus::ArrivalScan)
        );
    }

    #[test]
    fn arizona_has_no_dst() {
        let e = one(
            r#"{"eventType":"Out for Delivery","eventCode":"OF","eventTimestamp":"2024-07-01T08:15:00","eventCity":"PHOENIX","eventState":"AZ","eventZIP":"85001"}"#,
        );
        assert_eq!(e.utc_offset_minutes, Some(-420));
    }

    #[test]
    fn evening_scan_with_a_day_early_gmt_timestamp() {
        // 20:15 in Queens on Nov 22 is 01:15Z on Nov 23. GMTTimestamp says
        // Nov 22 01:15Z (local date): 24 h early. GMTOffset wins.
        let e = one(
            r#"{"eventType":"Departed USPS Regional Facility","eventCode":"SF","eventTimestamp":"2024-11-22T20:15:00","GMTTimestamp":"2024-11-22T01:15:00Z","GMTOffset":"-05:00","eventCity":"QUEENS NY DISTRIBUTION CENTER","eventState":"NY","eventZIP":"11101"}"#,
        );
        assert_eq!(
            format_rfc3339_ms(e.occurred_at_ms),
            "2024-11-23T01:15:00.000Z"
        );
        // Without GMTOffset the zone decides.
        let e = one(
            r#"{"eventType":"Departed USPS Regional Facility","eventCode":"SF","eventTimestamp":"2024-11-22T20:15:00","GMTTimestamp":"2024-11-22T01:15:00Z","eventCity":"QUEENS","eventState":"NY"}"#,
        );
        assert_eq!(
            format_rfc3339_ms(e.occurred_at_ms),
            "2024-11-23T01:15:00.000Z"
        );
        // With no offset and no place, the GMT field is moved by a day.
        let e = one(
            r#"{"eventType":"In Transit to Next Facility","eventCode":"TL","eventTimestamp":"2024-11-22T20:15:00","GMTTimestamp":"2024-11-22T01:15:00Z"}"#,
        );
        assert_eq!(
            format_rfc3339_ms(e.occurred_at_ms),
            "2024-11-23T01:15:00.000Z"
        );
        assert_eq!(e.utc_offset_minutes, Some(-300));
    }

    #[test]
    fn short_offset_form() {
        let e = one(
            r#"{"eventType":"Delivered, In/At Mailbox","eventCode":"01","eventTimestamp":"2024-11-22T13:58:00","GMTTimestamp":"2024-11-22T20:58:00Z","GMTOffset":"-7:00","eventCity":"DENVER","eventState":"CO","eventZIP":"80202"}"#,
        );
        assert_eq!(e.utc_offset_minutes, Some(-420));
        assert_eq!(
            format_rfc3339_ms(e.occurred_at_ms),
            "2024-11-22T20:58:00.000Z"
        );
        assert_eq!(
            (e.status, e.sub_status),
            (Status::Delivered, SubStatus::LeftSafePlace)
        );
    }

    #[test]
    fn errors() {
        let err = normalize(
            Carrier::Usps,
            br#"{"apiVersion":"3","error":{"code":"404","message":"not found"}}"#,
            0,
            EventSource::Poll,
        )
        .unwrap_err();
        assert_eq!(err.kind(), "carrier_error");
        let bad =
            item(r#"{"eventCode":"OF","eventTimestamp":"2024-11-22T13:58:00","GMTOffset":"EST"}"#);
        let err = normalize(Carrier::Usps, bad.as_bytes(), 0, EventSource::Poll).unwrap_err();
        assert!(
            err.to_string().contains("trackingEvents[0].GMTOffset"),
            "{err}"
        );
        let missing = item(r#"{"eventCode":"OF"}"#);
        assert_eq!(
            normalize(Carrier::Usps, missing.as_bytes(), 0, EventSource::Poll)
                .unwrap_err()
                .kind(),
            "missing_field"
        );
    }
}
