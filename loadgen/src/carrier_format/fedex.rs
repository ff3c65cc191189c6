//! FedEx Track API responses and Advanced Integrated Visibility webhook
//! bodies.
//!
//! Scan dates are ISO text with the scan's offset; exceptions carry an
//! `exceptionCode` and `exceptionDescription`, delays a `delayDetail`.

use dropline_operators::model::{Status, SubStatus};
use serde::Serialize;

use super::{
    Journey, JourneyScan, Row, iso_local, local_time, newest_first, offset_text, opt, pick,
};

use Status as S;
use SubStatus as B;

/// One reverse-table row.
pub(crate) struct Code {
    pub(crate) status: Status,
    pub(crate) sub: SubStatus,
    event_type: &'static str,
    description: &'static str,
    exception_code: &'static str,
    exception_text: &'static str,
    delay_type: &'static str,
}

impl Row for Code {
    fn status(&self) -> Status {
        self.status
    }
    fn sub(&self) -> SubStatus {
        self.sub
    }
}

const fn c(
    status: Status,
    sub: SubStatus,
    event_type: &'static str,
    description: &'static str,
) -> Code {
    Code {
        status,
        sub,
        event_type,
        description,
        exception_code: "",
        exception_text: "",
        delay_type: "",
    }
}

const fn x(
    status: Status,
    sub: SubStatus,
    event_type: &'static str,
    exception_code: &'static str,
    exception_text: &'static str,
) -> Code {
    let description = if matches!(event_type.as_bytes(), b"DE") {
        "Delivery exception"
    } else {
        "Shipment exception"
    };
    Code {
        status,
        sub,
        event_type,
        description,
        exception_code,
        exception_text,
        delay_type: "",
    }
}

const fn d(sub: SubStatus, delay_type: &'static str) -> Code {
    Code {
        status: S::Exception,
        sub,
        event_type: "DY",
        description: "Delay",
        exception_code: "",
        exception_text: "",
        delay_type,
    }
}

/// The reverse table; the first row of a status is its default.
pub(crate) const CODES: &[Code] = &[
    c(
        S::LabelCreated,
        B::InfoReceived,
        "OC",
        "Shipment information sent to FedEx",
    ),
    c(S::PickedUp, B::Accepted, "PU", "Picked up"),
    c(S::InTransit, B::None, "IT", "On the way"),
    c(
        S::InTransit,
        B::ArrivalScan,
        "AR",
        "Arrived at FedEx location",
    ),
    c(
        S::InTransit,
        B::DepartureScan,
        "DP",
        "Departed FedEx location",
    ),
    c(
        S::InTransit,
        B::Forwarded,
        "IT",
        "Package forwarded to a new FedEx location",
    ),
    c(
        S::InTransit,
        B::CustomsProcessing,
        "CP",
        "Clearance in progress",
    ),
    c(
        S::InTransit,
        B::CustomsCleared,
        "CC",
        "International shipment release - Import",
    ),
    c(
        S::OutForDelivery,
        B::OnVehicle,
        "OD",
        "On FedEx vehicle for delivery",
    ),
    c(
        S::AvailableForPickup,
        B::AccessPoint,
        "HP",
        "Ready for recipient pickup",
    ),
    x(S::DeliveryAttempted, B::None, "DE", "", ""),
    x(
        S::DeliveryAttempted,
        B::RecipientUnavailable,
        "DE",
        "08",
        "Recipient not in",
    ),
    x(
        S::DeliveryAttempted,
        B::BusinessClosed,
        "DE",
        "",
        "Business closed",
    ),
    x(
        S::DeliveryAttempted,
        B::AccessIssue,
        "DE",
        "",
        "No access to delivery location",
    ),
    x(
        S::DeliveryAttempted,
        B::SignatureRequired,
        "DE",
        "",
        "Signature required for delivery",
    ),
    x(
        S::DeliveryAttempted,
        B::PaymentRequired,
        "DE",
        "",
        "Payment required before delivery",
    ),
    c(S::Delivered, B::None, "DL", "Delivered"),
    c(
        S::Delivered,
        B::LeftSafePlace,
        "DL",
        "Delivered - Left at front door",
    ),
    c(
        S::Delivered,
        B::Signed,
        "DL",
        "Delivered - Signed for by recipient",
    ),
    c(S::Delivered, B::Neighbor, "DL", "Delivered to neighbor"),
    c(S::Delivered, B::Agent, "DL", "Delivered to front desk"),
    x(S::Exception, B::None, "SE", "", ""),
    x(
        S::Exception,
        B::AddressIssue,
        "DE",
        "03",
        "Incorrect address",
    ),
    x(S::Exception, B::Refused, "DE", "07", "Refused by recipient"),
    x(S::Exception, B::Damaged, "SE", "", "Package damaged"),
    x(
        S::Exception,
        B::Security,
        "SE",
        "",
        "Held for security inspection",
    ),
    c(
        S::Exception,
        B::CustomsHold,
        "CD",
        "Clearance delay - Import",
    ),
    d(B::DelayWeather, "WEATHER"),
    d(B::DelayCarrier, "OPERATIONAL"),
    d(B::DelayOther, "LOCAL"),
    c(
        S::ReturningToSender,
        B::None,
        "RS",
        "Returning package to shipper",
    ),
    c(
        S::ReturningToSender,
        B::Refused,
        "RS",
        "Returning package to shipper: refused",
    ),
    c(
        S::ReturningToSender,
        B::Unclaimed,
        "RS",
        "Returning package to shipper: unclaimed",
    ),
    c(
        S::ReturningToSender,
        B::Undeliverable,
        "RS",
        "Returning package to shipper: undeliverable",
    ),
    c(
        S::Cancelled,
        B::LabelVoided,
        "CA",
        "Shipment cancelled by sender",
    ),
    c(S::Unknown, B::UnmappedCode, "ZZ", "Status update"),
];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ScanLocation<'a> {
    street_lines: [&'static str; 1],
    city: Option<&'a str>,
    state_or_province_code: Option<&'a str>,
    postal_code: Option<&'a str>,
    country_code: Option<&'a str>,
    residential: bool,
}

#[derive(Serialize)]
pub(crate) struct DelayDetail {
    #[serde(rename = "type")]
    kind: &'static str,
    status: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ScanEvent<'a> {
    date: String,
    event_type: &'static str,
    event_description: &'static str,
    exception_code: &'static str,
    exception_description: &'static str,
    scan_location: ScanLocation<'a>,
    location_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    delay_detail: Option<DelayDetail>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TrackingNumberInfo<'a> {
    tracking_number: &'a str,
    tracking_number_unique_id: String,
    carrier_code: &'static str,
}

#[derive(Serialize)]
pub(crate) struct LatestStatusDetail {
    code: &'static str,
    description: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DateAndTime {
    #[serde(rename = "type")]
    kind: &'static str,
    date_time: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TrackResult<'a> {
    tracking_number_info: TrackingNumberInfo<'a>,
    latest_status_detail: LatestStatusDetail,
    date_and_times: Vec<DateAndTime>,
    scan_events: Vec<ScanEvent<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CompleteResult<'a> {
    tracking_number: &'a str,
    track_results: [TrackResult<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Output<'a> {
    complete_track_results: Vec<CompleteResult<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PollBody<'a> {
    transaction_id: &'static str,
    output: Output<'a>,
}

#[derive(Serialize)]
pub(crate) struct MetaData {
    timestamp: String,
    attempt: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WebhookBody<'a> {
    complete_track_results: Vec<CompleteResult<'a>>,
    output_meta_data: MetaData,
}

fn scan_event(scan: &JourneyScan) -> ScanEvent<'_> {
    let code = pick(CODES, scan.status, scan.sub_status);
    let l = &scan.location;
    ScanEvent {
        date: format!(
            "{}{}",
            iso_local(local_time(scan)),
            offset_text(scan.utc_offset_minutes)
        ),
        event_type: code.event_type,
        event_description: code.description,
        exception_code: code.exception_code,
        exception_description: code.exception_text,
        scan_location: ScanLocation {
            street_lines: [""],
            city: opt(&l.city),
            state_or_province_code: opt(&l.region),
            postal_code: opt(&l.postal_code),
            country_code: opt(&l.country),
            residential: false,
        },
        location_type: "FEDEX_FACILITY",
        delay_detail: (!code.delay_type.is_empty()).then_some(DelayDetail {
            kind: code.delay_type,
            status: "DELAYED",
        }),
    }
}

/// FedEx's unique id for a shipment: a serial, the number, the carrier.
fn unique_id(journey: &Journey) -> String {
    let serial = journey
        .scans
        .first()
        .map(|s| s.occurred_at_ms / 86_400_000)
        .unwrap_or(0)
        + 2_440_588;
    format!("{serial}000~{}~FX", journey.tracking_number)
}

fn complete_result(journey: &Journey) -> CompleteResult<'_> {
    let latest = journey
        .scans
        .last()
        .map(|s| pick(CODES, s.status, s.sub_status));
    let ship = journey.scans.first().map(|s| {
        let day = local_time(s)
            .date()
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default();
        format!("{}{}", iso_local(day), offset_text(s.utc_offset_minutes))
    });
    CompleteResult {
        tracking_number: &journey.tracking_number,
        track_results: [TrackResult {
            tracking_number_info: TrackingNumberInfo {
                tracking_number: &journey.tracking_number,
                tracking_number_unique_id: unique_id(journey),
                carrier_code: "FDXE",
            },
            latest_status_detail: LatestStatusDetail {
                code: latest.map(|c| c.event_type).unwrap_or(""),
                description: latest.map(|c| c.description).unwrap_or(""),
            },
            date_and_times: ship
                .map(|s| {
                    vec![DateAndTime {
                        kind: "SHIP",
                        date_time: s,
                    }]
                })
                .unwrap_or_default(),
            scan_events: newest_first(journey).map(scan_event).collect(),
        }],
    }
}

pub(crate) fn poll(journeys: &[Journey]) -> PollBody<'_> {
    PollBody {
        transaction_id: "dropline-carrier-sim",
        output: Output {
            complete_track_results: journeys.iter().map(complete_result).collect(),
        },
    }
}

/// An AIV body for one or several parcels: one `completeTrackResults`
/// entry each, stamped with the newest scan's time.
pub(crate) fn webhook(journeys: &[Journey]) -> WebhookBody<'_> {
    let timestamp = journeys
        .iter()
        .filter_map(|j| j.scans.last())
        .max_by_key(|s| s.occurred_at_ms)
        .map(|s| format!("{}Z", iso_local(super::utc_time(s))))
        .unwrap_or_default();
    WebhookBody {
        complete_track_results: journeys.iter().map(complete_result).collect(),
        output_meta_data: MetaData {
            timestamp,
            attempt: 1,
        },
    }
}
