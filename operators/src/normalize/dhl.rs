//! DHL: the Shipment Tracking - Unified response and Push API bodies.
//!
//! Polling returns `{shipments[], possibleAdditionalShipmentsUrl}`; each
//! shipment has `id`, `service` and `events[]` (newest first, though DHL
//! does not promise it). Push bodies carry the same `shipments[]`
//! envelope, a single shipment object, or an array of shipments; all three
//! are accepted. Errors are RFC 7807 problem documents.
//!
//! Timestamps carry an offset in some divisions and none in others (DHL
//! Express). Without one, the zone comes from the event's country (the
//! `countryCode`, or the country name at the end of Express localities
//! such as "LEIPZIG - GERMANY"); failing that the local time is read as UTC
//! with the offset marked unknown.

use serde::Deserialize;

use super::dhl_codes::classify;
use super::keywords::Upper;
use super::local_time::{ScanTime, parse_iso};
use super::location::{clean, country_code, split_locality};
use super::{NormalizeError, Scan, Sink, Text, first_byte, non_blank, parse, text, zone};
use crate::model::{Carrier, Location};

const EXPECTED: &str = "a Unified tracking response or push body (shipments[]), a single shipment \
                        (id + events[]), an array of shipments, or a problem+json error";

/// The top-level `status`: a number in a problem document, an object in a
/// bare shipment.
#[derive(Deserialize)]
#[serde(untagged)]
enum TopStatus {
    Code(i64),
    Other(serde::de::IgnoredAny),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    #[serde(borrow)]
    shipments: Option<Vec<Shipment<'a>>>,
    #[serde(borrow)]
    id: Option<Text<'a>>,
    #[serde(borrow)]
    events: Option<Vec<Event<'a>>>,
    #[serde(borrow)]
    title: Option<Text<'a>>,
    #[serde(borrow)]
    detail: Option<Text<'a>>,
    status: Option<TopStatus>,
}

#[derive(Deserialize)]
struct Shipment<'a> {
    #[serde(borrow)]
    id: Option<Text<'a>>,
    #[serde(borrow, default)]
    events: Vec<Event<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    #[serde(borrow)]
    timestamp: Option<Text<'a>>,
    #[serde(borrow)]
    location: Option<EventLocation<'a>>,
    #[serde(borrow)]
    status_code: Option<Text<'a>>,
    #[serde(borrow)]
    status: Option<Text<'a>>,
    #[serde(borrow)]
    description: Option<Text<'a>>,
    #[serde(borrow)]
    remark: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct EventLocation<'a> {
    #[serde(borrow)]
    address: Option<Address<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Address<'a> {
    #[serde(borrow)]
    address_locality: Option<Text<'a>>,
    #[serde(borrow)]
    country_code: Option<Text<'a>>,
    #[serde(borrow)]
    postal_code: Option<Text<'a>>,
}

/// Normalizes a DHL payload into `sink`.
pub(crate) fn normalize(payload: &[u8], sink: &mut Sink) -> Result<(), NormalizeError> {
    let carrier = Carrier::Dhl;
    if first_byte(payload) == Some(b'[') {
        let shipments: Vec<Shipment<'_>> = parse(carrier, payload)?;
        for (i, s) in shipments.iter().enumerate() {
            shipment(s.id.as_ref(), &s.events, &format!("[{i}]."), sink)?;
        }
        return Ok(());
    }
    let body: Body<'_> = parse(carrier, payload)?;
    if let Some(shipments) = &body.shipments {
        for (i, s) in shipments.iter().enumerate() {
            shipment(s.id.as_ref(), &s.events, &format!("shipments[{i}]."), sink)?;
        }
        return Ok(());
    }
    if body.id.is_some() || body.events.is_some() {
        let events = body.events.as_deref().unwrap_or(&[]);
        return shipment(body.id.as_ref(), events, "", sink);
    }
    if let (Some(title), Some(TopStatus::Code(code))) = (&body.title, &body.status) {
        return Err(NormalizeError::CarrierError {
            carrier,
            code: code.to_string(),
            message: match non_blank(&body.detail) {
                Some(detail) => format!("{title}: {detail}"),
                None => title.to_string(),
            },
        });
    }
    Err(NormalizeError::UnrecognizedEnvelope {
        carrier,
        expected: EXPECTED,
    })
}

fn shipment(
    id: Option<&Text<'_>>,
    events: &[Event<'_>],
    prefix: &str,
    sink: &mut Sink,
) -> Result<(), NormalizeError> {
    let carrier = sink.carrier();
    let number = id
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| NormalizeError::MissingField {
            carrier,
            path: format!("{prefix}id"),
        })?;
    let mark = sink.begin_package();
    for (k, event) in events.iter().enumerate() {
        let path = format!("{prefix}events[{k}].timestamp");
        let stamp = non_blank(&event.timestamp).ok_or_else(|| NormalizeError::MissingField {
            carrier,
            path: path.clone(),
        })?;
        let (local, offset) = parse_iso(stamp).ok_or_else(|| {
            NormalizeError::invalid(carrier, path, stamp, "expected an ISO date-time")
        })?;
        let place = place(event.location.as_ref().and_then(|l| l.address.as_ref()));
        let time = match offset {
            Some(offset) => ScanTime::with_offset(local, offset),
            None => match zone::infer_zone(
                place.country.as_deref(),
                place.region.as_deref(),
                place.postal_code.as_deref(),
            ) {
                Some(zone) => ScanTime::in_zone(local, zone, None),
                None => ScanTime::offset_unknown(local),
            },
        };
        let status_code = text(&event.status_code).trim();
        let words = Upper::new(&[
            text(&event.status),
            text(&event.description),
            text(&event.remark),
        ]);
        let (status, sub_status) = classify(status_code, &words);
        let raw_text = non_blank(&event.description)
            .or(non_blank(&event.status))
            .or(non_blank(&event.remark))
            .unwrap_or("");
        sink.push(
            number,
            Scan {
                status,
                sub_status,
                raw_code: status_code,
                raw_text,
                time,
                location: place,
            },
        )?;
    }
    sink.end_package(mark);
    Ok(())
}

fn place(address: Option<&Address<'_>>) -> Location {
    let Some(a) = address else {
        return Location::default();
    };
    let (city, region, named_country) = match non_blank(&a.address_locality) {
        Some(locality) => split_locality(locality),
        None => (None, None, None),
    };
    Location {
        city,
        region,
        postal_code: clean(a.postal_code.as_deref()),
        country: country_code(a.country_code.as_deref()).or(named_country),
    }
}

#[cfg(test)]
mod tests {
    use crate::model::time::format_rfc3339_ms;
    use crate::model::{Carrier, EventSource, Status, SubStatus};
    use crate::normalize::normalize;

    #[test]
    fn express_events_without_code_or_offset() {
        let json = r#"{"shipments":[{"id":"1234567890","service":"express","events":[
            {"timestamp":"2024-03-31T09:10:00","location":{"address":{"addressLocality":"AMSTERDAM - NETHERLANDS"}},"description":"Delivered - Signed for by: J DE VRIES"},
            {"timestamp":"2024-03-30T23:40:00","location":{"address":{"addressLocality":"LEIPZIG - GERMANY"}},"description":"Departed Facility in LEIPZIG - GERMANY"}]}]}"#;
        let out = normalize(Carrier::Dhl, json.as_bytes(), 0, EventSource::Poll).unwrap();
        let [dep, del] = &out.events[..] else {
            panic!("two events")
        };
        assert_eq!(
            (dep.status, dep.sub_status),
            (Status::InTransit, SubStatus::DepartureScan)
        );
        assert_eq!(dep.utc_offset_minutes, Some(60));
        assert_eq!(
            format_rfc3339_ms(dep.occurred_at_ms),
            "2024-03-30T22:40:00.000Z"
        );
        // Europe moved to summer time in the night of 2024-03-31.
        assert_eq!(del.utc_offset_minutes, Some(120));
        assert_eq!(del.location.country.as_deref(), Some("NL"));
        assert_eq!(
            (del.status, del.sub_status),
            (Status::Delivered, SubStatus::Signed)
        );
        assert_eq!(del.raw_code, "");
    }

    #[test]
    fn single_shipment_push_and_problem_documents() {
        let json = r#"{"id":"00340434292135100186","service":"parcel-de","status":{"statusCode":"failure"},"events":[
            {"timestamp":"2024-05-02T10:12:00+02:00","statusCode":"failure","status":"Delivery not accepted","description":"The recipient refused to accept the shipment.","location":{"address":{"addressLocality":"Oderweg 2, Bonn","countryCode":"DE","postalCode":"53113"}}}]}"#;
        let out = normalize(Carrier::Dhl, json.as_bytes(), 0, EventSource::Webhook).unwrap();
        assert_eq!(
            (out.events[0].status, out.events[0].sub_status),
            (Status::Exception, SubStatus::Refused)
        );
        assert_eq!(out.events[0].location.city.as_deref(), Some("BONN"));
        let problem = r#"{"type":"about:blank","title":"No shipment with given tracking number found.","status":404,"detail":"Unknown number"}"#;
        let err = normalize(Carrier::Dhl, problem.as_bytes(), 0, EventSource::Poll).unwrap_err();
        assert!(
            matches!(&err, crate::normalize::NormalizeError::CarrierError { code, .. } if code == "404"),
            "{err}"
        );
    }
}
