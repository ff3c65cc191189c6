//! FedEx: the Track API response and the Advanced Integrated Visibility
//! webhook.
//!
//! Both carry `completeTrackResults[{trackingNumber, trackResults[]}]`,
//! under `output` in the Track API response; the webhook adds
//! `outputMetaData` and may or may not wrap the results in `output`. Scan
//! dates are ISO text with an offset, except the label event, which can be a
//! bare `2024-08-15T00:00:00`.
//!
//! FedEx reuses tracking numbers: one number can hold several
//! `trackResults`, one per shipment. Only the current shipment's scans
//! belong to the parcel. The current one is the shipment that started
//! last: its `SHIP` date (else `ACTUAL_PICKUP`, `ACTUAL_TENDER`, else its
//! oldest scan), ties broken by the numeric prefix of
//! `trackingNumberUniqueId` (FedEx issues them in increasing order). The
//! others are reported as skipped, not emitted.

use serde::Deserialize;

use super::fedex_codes::{Detail, classify};
use super::local_time::{ScanTime, parse_iso};
use super::location::location;
use super::{NormalizeError, Scan, Sink, SkipReason, Text, non_blank, parse, text, zone};
use crate::model::{Carrier, Location};

const EXPECTED: &str = "a Track API response (output.completeTrackResults[]) or a webhook body \
                        (completeTrackResults[] with outputMetaData, wrapped in output or not)";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    #[serde(borrow)]
    output: Option<Output<'a>>,
    #[serde(borrow)]
    complete_track_results: Option<Vec<CompleteTrackResult<'a>>>,
    #[serde(borrow)]
    errors: Option<Vec<CodeMessage<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Output<'a> {
    #[serde(borrow)]
    complete_track_results: Option<Vec<CompleteTrackResult<'a>>>,
}

#[derive(Deserialize)]
struct CodeMessage<'a> {
    #[serde(borrow)]
    code: Option<Text<'a>>,
    #[serde(borrow)]
    message: Option<Text<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CompleteTrackResult<'a> {
    #[serde(borrow)]
    tracking_number: Option<Text<'a>>,
    #[serde(borrow, default)]
    track_results: Vec<TrackResult<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TrackResult<'a> {
    #[serde(borrow)]
    tracking_number_info: Option<TrackingNumberInfo<'a>>,
    #[serde(borrow)]
    latest_status_detail: Option<LatestStatus<'a>>,
    #[serde(borrow, default)]
    date_and_times: Vec<DateAndTime<'a>>,
    #[serde(borrow, default)]
    scan_events: Vec<ScanEvent<'a>>,
    #[serde(borrow)]
    error: Option<CodeMessage<'a>>,
    #[serde(borrow)]
    shipper_information: Option<Party<'a>>,
    #[serde(borrow)]
    origin_location: Option<OriginLocation<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TrackingNumberInfo<'a> {
    #[serde(borrow)]
    tracking_number: Option<Text<'a>>,
    #[serde(borrow)]
    tracking_number_unique_id: Option<Text<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LatestStatus<'a> {
    #[serde(borrow)]
    code: Option<Text<'a>>,
    #[serde(borrow, default)]
    ancillary_details: Vec<Ancillary<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Ancillary<'a> {
    #[serde(borrow)]
    reason: Option<Text<'a>>,
    #[serde(borrow)]
    reason_description: Option<Text<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DateAndTime<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Text<'a>>,
    #[serde(borrow)]
    date_time: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct Party<'a> {
    #[serde(borrow)]
    address: Option<Address<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OriginLocation<'a> {
    #[serde(borrow)]
    location_contact_and_address: Option<Party<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Address<'a> {
    #[serde(borrow)]
    city: Option<Text<'a>>,
    #[serde(borrow)]
    state_or_province_code: Option<Text<'a>>,
    #[serde(borrow)]
    postal_code: Option<Text<'a>>,
    #[serde(borrow)]
    country_code: Option<Text<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScanEvent<'a> {
    #[serde(borrow)]
    date: Option<Text<'a>>,
    #[serde(borrow)]
    event_type: Option<Text<'a>>,
    #[serde(borrow)]
    event_description: Option<Text<'a>>,
    #[serde(borrow)]
    exception_code: Option<Text<'a>>,
    #[serde(borrow)]
    exception_description: Option<Text<'a>>,
    #[serde(borrow)]
    scan_location: Option<Address<'a>>,
    #[serde(borrow)]
    delay_detail: Option<DelayDetail<'a>>,
}

#[derive(Deserialize)]
struct DelayDetail<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Text<'a>>,
}

/// Normalizes a FedEx payload into `sink`.
pub(crate) fn normalize(payload: &[u8], sink: &mut Sink) -> Result<(), NormalizeError> {
    let carrier = Carrier::Fedex;
    let body: Body<'_> = parse(carrier, payload)?;
    let (results, prefix) = match (&body.output, &body.complete_track_results) {
        (
            Some(Output {
                complete_track_results: Some(r),
            }),
            _,
        ) => (r, "output.completeTrackResults"),
        (_, Some(r)) => (r, "completeTrackResults"),
        (Some(_), None) => {
            return Err(NormalizeError::MissingField {
                carrier,
                path: "output.completeTrackResults".into(),
            });
        }
        (None, None) => {
            if let Some(first) = body.errors.as_ref().and_then(|e| e.first()) {
                return Err(NormalizeError::CarrierError {
                    carrier,
                    code: text(&first.code).to_owned(),
                    message: text(&first.message).to_owned(),
                });
            }
            return Err(NormalizeError::UnrecognizedEnvelope {
                carrier,
                expected: EXPECTED,
            });
        }
    };
    for (i, complete) in results.iter().enumerate() {
        let path = format!("{prefix}[{i}]");
        one_number(complete, &path, sink)?;
    }
    Ok(())
}

/// When a shipment started: its ship, pickup or tender date, else its
/// oldest scan. Epoch ms, offsets applied where given.
fn started_at_ms(result: &TrackResult<'_>) -> Option<i64> {
    for kind in ["SHIP", "ACTUAL_PICKUP", "ACTUAL_TENDER"] {
        let found = result
            .date_and_times
            .iter()
            .filter(|d| text(&d.kind) == kind)
            .find_map(|d| rough_instant(text(&d.date_time)));
        if found.is_some() {
            return found;
        }
    }
    result
        .scan_events
        .iter()
        .filter_map(|s| rough_instant(text(&s.date)))
        .min()
}

/// An instant good enough to order shipments weeks apart: the offset when
/// given, else the wall time read as UTC.
fn rough_instant(date: &str) -> Option<i64> {
    let (local, offset) = parse_iso(date)?;
    Some(local.and_utc().timestamp_millis() - i64::from(offset.unwrap_or(0)) * 60_000)
}

fn unique_id<'r>(result: &'r TrackResult<'_>) -> &'r str {
    result
        .tracking_number_info
        .as_ref()
        .map(|i| text(&i.tracking_number_unique_id))
        .unwrap_or("")
}

fn unique_serial(result: &TrackResult<'_>) -> u64 {
    unique_id(result)
        .split('~')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(0)
}

fn one_number(
    complete: &CompleteTrackResult<'_>,
    path: &str,
    sink: &mut Sink,
) -> Result<(), NormalizeError> {
    let carrier = sink.carrier();
    let outer_number = non_blank(&complete.tracking_number);
    // The current shipment among those without an error.
    let current = complete
        .track_results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.error.is_none())
        .max_by_key(|(_, r)| (started_at_ms(r), unique_serial(r)))
        .map(|(j, _)| j);
    for (j, result) in complete.track_results.iter().enumerate() {
        let path = format!("{path}.trackResults[{j}]");
        let number = result
            .tracking_number_info
            .as_ref()
            .and_then(|i| non_blank(&i.tracking_number))
            .or(outer_number)
            .ok_or_else(|| NormalizeError::MissingField {
                carrier,
                path: format!("{path}.trackingNumberInfo.trackingNumber"),
            })?;
        if let Some(err) = &result.error {
            sink.skip(
                number,
                SkipReason::NotFound {
                    code: text(&err.code).to_owned(),
                    message: text(&err.message).to_owned(),
                },
            );
            continue;
        }
        if Some(j) != current {
            sink.skip(
                number,
                SkipReason::SupersededShipment {
                    unique_id: unique_id(result).to_owned(),
                    scans: result.scan_events.len(),
                },
            );
            continue;
        }
        shipment(result, number, &path, sink)?;
    }
    Ok(())
}

fn scan_place(a: Option<&Address<'_>>) -> Location {
    match a {
        Some(a) => location(
            a.city.as_deref(),
            a.state_or_province_code.as_deref(),
            a.postal_code.as_deref(),
            a.country_code.as_deref(),
        ),
        None => Location::default(),
    }
}

fn shipment(
    result: &TrackResult<'_>,
    number: &str,
    path: &str,
    sink: &mut Sink,
) -> Result<(), NormalizeError> {
    let carrier = sink.carrier();
    // Parse every date first: bare label timestamps borrow an offset from
    // their neighbours.
    let mut parsed = Vec::with_capacity(result.scan_events.len());
    for (k, scan) in result.scan_events.iter().enumerate() {
        let date = non_blank(&scan.date).ok_or_else(|| NormalizeError::MissingField {
            carrier,
            path: format!("{path}.scanEvents[{k}].date"),
        })?;
        let parsed_date = parse_iso(date).ok_or_else(|| {
            NormalizeError::invalid(
                carrier,
                format!("{path}.scanEvents[{k}].date"),
                date,
                "expected an ISO date-time like 2024-08-20T12:41:57-04:00",
            )
        })?;
        parsed.push(parsed_date);
    }
    let latest = result.latest_status_detail.as_ref();
    let latest_code = latest.map(|l| text(&l.code)).unwrap_or("");
    let ancillary = latest.and_then(|l| l.ancillary_details.first());
    let latest_scan = result
        .scan_events
        .iter()
        .position(|s| !latest_code.is_empty() && text(&s.event_type) == latest_code);
    let fallback_place = result
        .shipper_information
        .as_ref()
        .and_then(|p| p.address.as_ref())
        .or_else(|| {
            result
                .origin_location
                .as_ref()
                .and_then(|o| o.location_contact_and_address.as_ref())
                .and_then(|p| p.address.as_ref())
        });

    let mark = sink.begin_package();
    for (k, scan) in result.scan_events.iter().enumerate() {
        let (local, offset) = parsed[k];
        let place = scan_place(scan.scan_location.as_ref());
        let time = match offset {
            Some(offset) => ScanTime::with_offset(local, offset),
            None => bare_time(local, &place, fallback_place, &parsed),
        };
        let event_type = text(&scan.event_type).trim();
        let exception_code = text(&scan.exception_code).trim();
        let mut exception_text = text(&scan.exception_description).trim();
        let mut reason = "";
        if let (true, Some(a)) = (latest_scan == Some(k), ancillary) {
            reason = text(&a.reason);
            if exception_text.is_empty() {
                exception_text = text(&a.reason_description);
            }
        }
        let description = text(&scan.event_description).trim();
        let detail = Detail {
            exception_code,
            reason,
            delay_type: scan
                .delay_detail
                .as_ref()
                .map(|d| text(&d.kind))
                .unwrap_or(""),
            description,
            exception_text,
        };
        let (status, sub_status) = classify(event_type, &detail);
        let raw_code = if exception_code.is_empty() {
            event_type.to_owned()
        } else {
            format!("{event_type}/{exception_code}")
        };
        let raw_text = match text(&scan.exception_description).trim() {
            "" => description.to_owned(),
            extra => format!("{description} - {extra}"),
        };
        sink.push(
            number,
            Scan {
                status,
                sub_status,
                raw_code: &raw_code,
                raw_text: &raw_text,
                time,
                location: place,
            },
        )?;
    }
    sink.end_package(mark);
    Ok(())
}

/// A scan date without an offset (the label event): the scan's own place,
/// then the shipper's address, then the offset of the nearest scan that has
/// one, then unknown.
fn bare_time(
    local: chrono::NaiveDateTime,
    place: &Location,
    fallback: Option<&Address<'_>>,
    all: &[(chrono::NaiveDateTime, Option<i32>)],
) -> ScanTime {
    let zone_of = |l: &Location| {
        zone::infer_zone(
            l.country.as_deref(),
            l.region.as_deref(),
            l.postal_code.as_deref(),
        )
    };
    if let Some(z) = zone_of(place).or_else(|| fallback.and_then(|a| zone_of(&scan_place(Some(a)))))
    {
        return ScanTime::in_zone(local, z, None);
    }
    let nearest = all
        .iter()
        .filter_map(|(t, o)| o.map(|o| ((*t - local).num_seconds().abs(), o)))
        .min_by_key(|(distance, _)| *distance);
    match nearest {
        Some((_, offset)) => ScanTime::with_offset(local, offset),
        None => ScanTime::offset_unknown(local),
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{Carrier, EventSource, Status, SubStatus};
    use crate::normalize::{SkipReason, normalize};

    #[test]
    fn reused_number_keeps_only_the_current_shipment() {
        let json = r#"{"output":{"completeTrackResults":[{"trackingNumber":"776094337676","trackResults":[
          {"trackingNumberInfo":{"trackingNumber":"776094337676","trackingNumberUniqueId":"2460425000~776094337676~FX"},
           "dateAndTimes":[{"type":"SHIP","dateTime":"2022-03-01T00:00:00-06:00"}],
           "scanEvents":[{"date":"2022-03-03T10:00:00-06:00","eventType":"DL","eventDescription":"Delivered","scanLocation":{"city":"Austin","stateOrProvinceCode":"TX","countryCode":"US"}}]},
          {"trackingNumberInfo":{"trackingNumber":"776094337676","trackingNumberUniqueId":"2461234000~776094337676~FX"},
           "dateAndTimes":[{"type":"SHIP","dateTime":"2024-08-16T00:00:00-05:00"}],
           "scanEvents":[{"date":"2024-08-16T18:00:00-05:00","eventType":"PU","eventDescription":"Picked up","scanLocation":{"city":"Minneapolis","stateOrProvinceCode":"MN","countryCode":"US"}},
                         {"date":"2024-08-15T00:00:00","eventType":"OC","eventDescription":"Shipment information sent to FedEx","scanLocation":{}}]}]}]}}"#;
        let out = normalize(Carrier::Fedex, json.as_bytes(), 0, EventSource::Poll).unwrap();
        let statuses: Vec<_> = out.events.iter().map(|e| e.status).collect();
        assert_eq!(statuses, [Status::LabelCreated, Status::PickedUp]);
        // The bare label timestamp borrowed the pickup scan's offset.
        assert_eq!(out.events[0].utc_offset_minutes, Some(-300));
        assert!(
            matches!(&out.skipped[..], [s] if matches!(&s.reason, SkipReason::SupersededShipment { unique_id, scans: 1 } if unique_id.starts_with("2460425000")))
        );
    }

    #[test]
    fn not_found_numbers_are_skipped_and_errors_typed() {
        let json = r#"{"output":{"completeTrackResults":[{"trackingNumber":"123456789012","trackResults":[{"trackingNumberInfo":{"trackingNumber":"123456789012"},"error":{"code":"TRACKING.TRACKINGNUMBER.NOTFOUND","message":"not found"}}]}]}}"#;
        let out = normalize(Carrier::Fedex, json.as_bytes(), 0, EventSource::Poll).unwrap();
        assert!(out.events.is_empty());
        assert!(
            matches!(&out.skipped[0].reason, SkipReason::NotFound { code, .. } if code == "TRACKING.TRACKINGNUMBER.NOTFOUND")
        );
        let bad = r#"{"output":{"completeTrackResults":[{"trackingNumber":"1","trackResults":[{"scanEvents":[{"date":"soon","eventType":"DL"}]}]}]}}"#;
        let err = normalize(Carrier::Fedex, bad.as_bytes(), 0, EventSource::Poll).unwrap_err();
        assert_eq!(err.kind(), "invalid_field");
        assert!(
            err.to_string()
                .contains("output.completeTrackResults[0].trackResults[0].scanEvents[0].date"),
            "{err}"
        );
        let errors =
            r#"{"transactionId":"x","errors":[{"code":"NOT.AUTHORIZED.ERROR","message":"no"}]}"#;
        assert_eq!(
            normalize(Carrier::Fedex, errors.as_bytes(), 0, EventSource::Poll)
                .unwrap_err()
                .kind(),
            "carrier_error"
        );
    }

    #[test]
    fn delivery_exception_reads_the_latest_status_reason() {
        let json = r#"{"completeTrackResults":[{"trackingNumber":"1","trackResults":[{
          "latestStatusDetail":{"code":"DE","ancillaryDetails":[{"reason":"15","reasonDescription":"Customer not available or business closed"}]},
          "scanEvents":[{"date":"2024-08-20T12:41:57-04:00","eventType":"DE","eventDescription":"Delivery exception","exceptionCode":"","scanLocation":{"city":"BROOKLYN","stateOrProvinceCode":"NY","countryCode":"US"}}]}]}],
          "outputMetaData":{"timestamp":"2024-08-20T16:42:10Z","attempt":1}}"#;
        let out = normalize(Carrier::Fedex, json.as_bytes(), 0, EventSource::Webhook).unwrap();
        assert_eq!(out.events[0].status, Status::DeliveryAttempted);
        assert_eq!(out.events[0].sub_status, SubStatus::RecipientUnavailable);
        assert_eq!(out.events[0].raw_code, "DE");
    }
}
