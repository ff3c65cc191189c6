//! UPS: the Track API response and the Track Alert webhook.
//!
//! Polling: `trackResponse.shipment[].package[].activity[]`, newest first.
//! Each activity gives the local `date` (`YYYYMMDD`) and `time` (`HHMMSS`)
//! with no offset, and alongside them `gmtDate`, `gmtTime` (`09:41:00`, or
//! `74700` in UPS's own example) and `gmtOffset` (`-05:00`).
//!
//! Webhook (Track Alert): one object per activity, or an array of them:
//! `{trackingNumber, localActivityDate, localActivityTime, gmtActivityDate,
//! gmtActivityTime, activityLocation{city, stateProvince, postalCode,
//! country}, activityStatus{type, code, statusCode?, description}}`. It
//! carries no offset: the offset is the difference between the local and
//! GMT fields.
//!
//! Time, in order of trust: local + `gmtOffset`; local vs GMT fields; the
//! zone inferred from the activity's address; the local time read as UTC
//! with the offset marked unknown.

use serde::Deserialize;

use super::local_time::{ScanTime, parse_clock, parse_compact_date, parse_offset};
use super::location::location;
use super::ups_codes::{Class, classify};
use super::{
    NormalizeError, Scan, Sink, SkipReason, Text, first_byte, non_blank, parse, text, zone,
};
use crate::model::{Carrier, Location};

const EXPECTED: &str = "a Track API response (trackResponse.shipment[]), a Track Alert event \
                        (trackingNumber + activityStatus) or an array of Track Alert events";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    #[serde(borrow)]
    track_response: Option<TrackResponse<'a>>,
    #[serde(borrow)]
    response: Option<ErrorResponse<'a>>,
    #[serde(borrow)]
    tracking_number: Option<Text<'a>>,
    #[serde(borrow)]
    local_activity_date: Option<Text<'a>>,
    #[serde(borrow)]
    local_activity_time: Option<Text<'a>>,
    #[serde(borrow)]
    gmt_activity_date: Option<Text<'a>>,
    #[serde(borrow)]
    gmt_activity_time: Option<Text<'a>>,
    #[serde(borrow)]
    activity_location: Option<Address<'a>>,
    #[serde(borrow)]
    activity_status: Option<ActivityStatus<'a>>,
}

#[derive(Deserialize)]
struct ErrorResponse<'a> {
    #[serde(borrow, default)]
    errors: Vec<CodeMessage<'a>>,
}

#[derive(Deserialize)]
struct CodeMessage<'a> {
    #[serde(borrow)]
    code: Option<Text<'a>>,
    #[serde(borrow)]
    message: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct TrackResponse<'a> {
    #[serde(borrow)]
    shipment: Option<Vec<Shipment<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Shipment<'a> {
    #[serde(borrow)]
    inquiry_number: Option<Text<'a>>,
    #[serde(borrow, default)]
    warnings: Vec<CodeMessage<'a>>,
    #[serde(borrow, default)]
    package: Vec<Package<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Package<'a> {
    #[serde(borrow)]
    tracking_number: Option<Text<'a>>,
    #[serde(borrow, default)]
    activity: Vec<Activity<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Activity<'a> {
    #[serde(borrow)]
    date: Option<Text<'a>>,
    #[serde(borrow)]
    time: Option<Text<'a>>,
    #[serde(borrow)]
    gmt_date: Option<Text<'a>>,
    #[serde(borrow)]
    gmt_time: Option<Text<'a>>,
    #[serde(borrow)]
    gmt_offset: Option<Text<'a>>,
    #[serde(borrow)]
    location: Option<ActivityLocation<'a>>,
    #[serde(borrow)]
    status: Option<ActivityStatus<'a>>,
}

#[derive(Deserialize)]
struct ActivityLocation<'a> {
    #[serde(borrow)]
    address: Option<Address<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Address<'a> {
    #[serde(borrow)]
    city: Option<Text<'a>>,
    #[serde(borrow)]
    state_province: Option<Text<'a>>,
    #[serde(borrow)]
    postal_code: Option<Text<'a>>,
    #[serde(borrow)]
    country: Option<Text<'a>>,
    #[serde(borrow)]
    country_code: Option<Text<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ActivityStatus<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Text<'a>>,
    #[serde(borrow)]
    code: Option<Text<'a>>,
    #[serde(borrow)]
    status_code: Option<Text<'a>>,
    #[serde(borrow)]
    description: Option<Text<'a>>,
}

/// Normalizes a UPS payload into `sink`.
pub(crate) fn normalize(payload: &[u8], sink: &mut Sink) -> Result<(), NormalizeError> {
    let carrier = Carrier::Ups;
    if first_byte(payload) == Some(b'[') {
        let alerts: Vec<Body<'_>> = parse(carrier, payload)?;
        for (i, alert) in alerts.iter().enumerate() {
            track_alert(alert, &format!("[{i}]"), sink)?;
        }
        return Ok(());
    }
    let body: Body<'_> = parse(carrier, payload)?;
    if let Some(resp) = &body.track_response {
        return track_response(resp, sink);
    }
    if let Some(err) = &body.response {
        let first = err.errors.first();
        return Err(NormalizeError::CarrierError {
            carrier,
            code: first.map(|e| text(&e.code)).unwrap_or("").to_owned(),
            message: first.map(|e| text(&e.message)).unwrap_or("").to_owned(),
        });
    }
    if body.tracking_number.is_some() || body.activity_status.is_some() {
        return track_alert(&body, "", sink);
    }
    Err(NormalizeError::UnrecognizedEnvelope {
        carrier,
        expected: EXPECTED,
    })
}

fn track_response(resp: &TrackResponse<'_>, sink: &mut Sink) -> Result<(), NormalizeError> {
    let carrier = sink.carrier();
    let shipments = resp
        .shipment
        .as_ref()
        .ok_or_else(|| NormalizeError::MissingField {
            carrier,
            path: "trackResponse.shipment".into(),
        })?;
    for (i, shipment) in shipments.iter().enumerate() {
        if shipment.package.is_empty() {
            let warning = shipment.warnings.first();
            sink.skip(
                text(&shipment.inquiry_number),
                SkipReason::NotFound {
                    code: warning.map(|w| text(&w.code)).unwrap_or("").to_owned(),
                    message: warning.map(|w| text(&w.message)).unwrap_or("").to_owned(),
                },
            );
            continue;
        }
        for (j, package) in shipment.package.iter().enumerate() {
            let path = format!("trackResponse.shipment[{i}].package[{j}]");
            let tracking_number = non_blank(&package.tracking_number).ok_or_else(|| {
                NormalizeError::MissingField {
                    carrier,
                    path: format!("{path}.trackingNumber"),
                }
            })?;
            let mark = sink.begin_package();
            for (k, activity) in package.activity.iter().enumerate() {
                let path = || format!("{path}.activity[{k}]");
                let status =
                    activity
                        .status
                        .as_ref()
                        .ok_or_else(|| NormalizeError::MissingField {
                            carrier,
                            path: format!("{}.status", path()),
                        })?;
                let address = activity.location.as_ref().and_then(|l| l.address.as_ref());
                let place = place(address);
                let times = Times {
                    date: (&activity.date, "date"),
                    time: (&activity.time, "time"),
                    gmt_date: (&activity.gmt_date, "gmtDate"),
                    gmt_time: (&activity.gmt_time, "gmtTime"),
                    gmt_offset: &activity.gmt_offset,
                };
                let time = resolve_time(&times, &place, &path, carrier)?;
                emit(sink, tracking_number, status, time, place)?;
            }
            sink.end_package(mark);
        }
    }
    Ok(())
}

fn track_alert(alert: &Body<'_>, prefix: &str, sink: &mut Sink) -> Result<(), NormalizeError> {
    let carrier = sink.carrier();
    let tracking_number =
        non_blank(&alert.tracking_number).ok_or_else(|| NormalizeError::MissingField {
            carrier,
            path: format!("{prefix}trackingNumber"),
        })?;
    let status = alert
        .activity_status
        .as_ref()
        .ok_or_else(|| NormalizeError::MissingField {
            carrier,
            path: format!("{prefix}activityStatus"),
        })?;
    let place = place(alert.activity_location.as_ref());
    let times = Times {
        date: (&alert.local_activity_date, "localActivityDate"),
        time: (&alert.local_activity_time, "localActivityTime"),
        gmt_date: (&alert.gmt_activity_date, "gmtActivityDate"),
        gmt_time: (&alert.gmt_activity_time, "gmtActivityTime"),
        gmt_offset: &None,
    };
    let path = || prefix.trim_end_matches('.').to_owned();
    let time = resolve_time(&times, &place, &path, carrier)?;
    let mark = sink.begin_package();
    emit(sink, tracking_number, status, time, place)?;
    sink.end_package(mark);
    Ok(())
}

fn emit(
    sink: &mut Sink,
    tracking_number: &str,
    status: &ActivityStatus<'_>,
    time: ScanTime,
    location: Location,
) -> Result<(), NormalizeError> {
    let status_code = text(&status.status_code).trim();
    let code = text(&status.code).trim();
    let kind = text(&status.kind).trim();
    let description = text(&status.description).trim();
    // The two-letter code first: the Track Alert webhook has no status
    // code, and the same scan should carry the same raw code whichever
    // way it arrived. The status code still decides the classification.
    let raw_code = [code, status_code, kind]
        .into_iter()
        .find(|c| !c.is_empty())
        .unwrap_or("");
    match classify(kind, code, status_code, description) {
        Class::Meta => {
            sink.skip(
                tracking_number,
                SkipReason::MetaUpdate {
                    raw_code: raw_code.to_owned(),
                },
            );
            Ok(())
        }
        Class::Event(status, sub_status) => sink.push(
            tracking_number,
            Scan {
                status,
                sub_status,
                raw_code,
                raw_text: description,
                time,
                location,
            },
        ),
    }
}

fn place(address: Option<&Address<'_>>) -> Location {
    let Some(a) = address else {
        return Location::default();
    };
    let country = non_blank(&a.country_code).or(non_blank(&a.country));
    location(
        a.city.as_deref(),
        a.state_province.as_deref(),
        a.postal_code.as_deref(),
        country,
    )
}

/// The time fields of one activity, with their JSON names for errors.
struct Times<'r, 'a> {
    date: (&'r Option<Text<'a>>, &'static str),
    time: (&'r Option<Text<'a>>, &'static str),
    gmt_date: (&'r Option<Text<'a>>, &'static str),
    gmt_time: (&'r Option<Text<'a>>, &'static str),
    gmt_offset: &'r Option<Text<'a>>,
}

fn resolve_time(
    t: &Times<'_, '_>,
    place: &Location,
    path: &dyn Fn() -> String,
    carrier: Carrier,
) -> Result<ScanTime, NormalizeError> {
    let field = |name: &str| {
        let p = path();
        if p.is_empty() {
            name.to_owned()
        } else {
            format!("{p}.{name}")
        }
    };
    let date_text = non_blank(t.date.0).ok_or_else(|| NormalizeError::MissingField {
        carrier,
        path: field(t.date.1),
    })?;
    let time_text = non_blank(t.time.0).ok_or_else(|| NormalizeError::MissingField {
        carrier,
        path: field(t.time.1),
    })?;
    let date = parse_compact_date(date_text).ok_or_else(|| {
        NormalizeError::invalid(carrier, field(t.date.1), date_text, "expected YYYYMMDD")
    })?;
    let clock = parse_clock(time_text).ok_or_else(|| {
        NormalizeError::invalid(
            carrier,
            field(t.time.1),
            time_text,
            "expected HHMMSS or HH:MM:SS",
        )
    })?;
    let local = date.and_time(clock);

    if let Some(offset_text) = non_blank(t.gmt_offset) {
        let offset = parse_offset(offset_text).ok_or_else(|| {
            NormalizeError::invalid(
                carrier,
                field("gmtOffset"),
                offset_text,
                "expected an offset like -05:00",
            )
        })?;
        return Ok(ScanTime::with_offset(local, offset));
    }
    if let (Some(gd), Some(gt)) = (non_blank(t.gmt_date.0), non_blank(t.gmt_time.0)) {
        let gmt_date = parse_compact_date(gd).ok_or_else(|| {
            NormalizeError::invalid(carrier, field(t.gmt_date.1), gd, "expected YYYYMMDD")
        })?;
        let gmt_clock = parse_clock(gt).ok_or_else(|| {
            NormalizeError::invalid(
                carrier,
                field(t.gmt_time.1),
                gt,
                "expected HH:MM:SS or HHMMSS",
            )
        })?;
        let gmt_ms = gmt_date.and_time(gmt_clock).and_utc().timestamp_millis();
        if let Some(time) = ScanTime::from_local_and_utc(local, gmt_ms) {
            return Ok(time);
        }
    }
    let zone = zone::infer_zone(
        place.country.as_deref(),
        place.region.as_deref(),
        place.postal_code.as_deref(),
    );
    Ok(match zone {
        Some(zone) => ScanTime::in_zone(local, zone, None),
        None => ScanTime::offset_unknown(local),
    })
}

#[cfg(test)]
mod tests {
    use crate::model::{Carrier, EventSource, Status, SubStatus};
    use crate::normalize::{NormalizeError, SkipReason, normalize};

    fn run(json: &str) -> Result<crate::normalize::Normalized, NormalizeError> {
        normalize(Carrier::Ups, json.as_bytes(), 7, EventSource::Poll)
    }

    fn activity(date: &str, time: &str, extra: &str, status: &str) -> String {
        format!(
            r#"{{"date":"{date}","time":"{time}"{extra},"location":{{"address":{{"city":"New York","stateProvince":"NY","postalCode":"10001","countryCode":"US","country":"US"}}}},"status":{status}}}"#
        )
    }

    fn response(activities: &[String]) -> String {
        format!(
            r#"{{"trackResponse":{{"shipment":[{{"inquiryNumber":"1Z999AA10123456784","package":[{{"trackingNumber":"1Z999AA10123456784","activity":[{}]}}]}}]}}}}"#,
            activities.join(",")
        )
    }

    const IN_TRANSIT: &str =
        r#"{"type":"I","code":"AR","statusCode":"005","description":"Arrived at Facility"}"#;

    #[test]
    fn dst_change_without_offset_uses_the_zone() {
        // 2024-03-10: New York springs forward at 02:00 local.
        let before = activity("20240310", "013000", "", IN_TRANSIT);
        let after = activity("20240310", "033000", "", IN_TRANSIT);
        let out = run(&response(&[after, before])).unwrap();
        let [a, b] = &out.events[..] else {
            panic!("two events")
        };
        assert_eq!(a.local_time, "2024-03-10T01:30:00");
        assert_eq!(a.utc_offset_minutes, Some(-300));
        assert_eq!(b.utc_offset_minutes, Some(-240));
        // One real hour apart although the wall clocks are two hours apart.
        assert_eq!(b.occurred_at_ms - a.occurred_at_ms, 3_600_000);
        assert_eq!(a.sub_status, SubStatus::ArrivalScan);
    }

    #[test]
    fn dst_change_with_gmt_fields_in_both_shapes() {
        let before = activity(
            "20240310",
            "013000",
            r#","gmtDate":"20240310","gmtTime":"06:30:00","gmtOffset":"-05:00""#,
            IN_TRANSIT,
        );
        // After the change: no gmtOffset, and gmtTime in the 5-digit shape.
        let after = activity(
            "20240310",
            "094700",
            r#","gmtDate":"20240310","gmtTime":"134700""#,
            IN_TRANSIT,
        );
        let odd = activity(
            "20240310",
            "024700",
            r#","gmtDate":"20240310","gmtTime":"74700""#,
            IN_TRANSIT,
        );
        let out = run(&response(&[after, odd, before])).unwrap();
        let offsets: Vec<_> = out.events.iter().map(|e| e.utc_offset_minutes).collect();
        assert_eq!(offsets, [Some(-300), Some(-300), Some(-240)]);
        assert_eq!(
            crate::model::time::format_rfc3339_ms(out.events[1].occurred_at_ms),
            "2024-03-10T07:47:00.000Z"
        );
        assert_eq!(
            crate::model::time::format_rfc3339_ms(out.events[2].occurred_at_ms),
            "2024-03-10T13:47:00.000Z"
        );
    }

    #[test]
    fn meta_updates_are_skipped_and_unknown_codes_kept() {
        let photo = activity(
            "20240311",
            "120000",
            "",
            r#"{"type":"U","code":"PX","description":"Photo"}"#,
        );
        let odd = activity(
            "20240311",
            "110000",
            "",
            r#"{"type":"Q","code":"ZZ","statusCode":"998","description":"Odd"}"#,
        );
        let out = run(&response(&[photo, odd])).unwrap();
        assert_eq!(out.events.len(), 1);
        assert_eq!(out.events[0].status, Status::Unknown);
        assert_eq!(out.events[0].raw_code, "ZZ");
        assert_eq!(out.unknown_codes.len(), 1);
        assert_eq!(out.unknown_codes[0].raw_code, "ZZ");
        assert!(
            matches!(&out.skipped[0].reason, SkipReason::MetaUpdate { raw_code } if raw_code == "PX")
        );
    }

    #[test]
    fn errors_are_typed_with_paths() {
        let bad_time = activity("20240310", "25:99", "", IN_TRANSIT);
        match run(&response(&[bad_time])).unwrap_err() {
            NormalizeError::InvalidField { path, value, .. } => {
                assert_eq!(
                    path,
                    "trackResponse.shipment[0].package[0].activity[0].time"
                );
                assert_eq!(value, "25:99");
            }
            other => panic!("{other:?}"),
        }
        let no_date = r#"{"trackResponse":{"shipment":[{"package":[{"trackingNumber":"1Z","activity":[{"time":"010000","status":{"type":"I"}}]}]}]}}"#;
        assert!(
            matches!(run(no_date).unwrap_err(), NormalizeError::MissingField { path, .. } if path.ends_with("activity[0].date"))
        );
        let carrier_error =
            r#"{"response":{"errors":[{"code":"TV1002","message":"Invalid inquiry number"}]}}"#;
        assert!(
            matches!(run(carrier_error).unwrap_err(), NormalizeError::CarrierError { code, .. } if code == "TV1002")
        );
        assert_eq!(
            run(r#"{"hello":1}"#).unwrap_err().kind(),
            "unrecognized_envelope"
        );
        assert_eq!(run(r#"{"trackResponse":"#).unwrap_err().kind(), "not_json");
        assert_eq!(
            run(r#"{"trackResponse":{"shipment":{"x":1}}}"#)
                .unwrap_err()
                .kind(),
            "shape"
        );
        assert_eq!(run("").unwrap_err().kind(), "not_json");
        assert_eq!(run("[]").unwrap().events.len(), 0);
    }
}
