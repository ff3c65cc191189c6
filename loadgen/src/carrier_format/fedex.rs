//! FedEx Track API responses and Advanced Integrated Visibility webhook
//! bodies.
//!
//! Scan dates are ISO text with the scan's offset; exceptions carry an
//! `exceptionCode` and `exceptionDescription`, delays a `delayDetail`.

use dropline_operators::model::{Status, SubStatus};
use serde_json::{Value, json};

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

fn scan_event(scan: &JourneyScan) -> Value {
    let code = pick(CODES, scan.status, scan.sub_status);
    let l = &scan.location;
    let date = format!(
        "{}{}",
        iso_local(local_time(scan)),
        offset_text(scan.utc_offset_minutes)
    );
    let mut event = json!({
        "date": date,
        "eventType": code.event_type,
        "eventDescription": code.description,
        "exceptionCode": code.exception_code,
        "exceptionDescription": code.exception_text,
        "scanLocation": {
            "streetLines": [""],
            "city": opt(&l.city),
            "stateOrProvinceCode": opt(&l.region),
            "postalCode": opt(&l.postal_code),
            "countryCode": opt(&l.country),
            "residential": false,
        },
        "locationType": "FEDEX_FACILITY",
    });
    if !code.delay_type.is_empty()
        && let Some(map) = event.as_object_mut()
    {
        map.insert(
            "delayDetail".into(),
            json!({ "type": code.delay_type, "status": "DELAYED" }),
        );
    }
    event
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

fn complete_result(journey: &Journey) -> Value {
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
    json!({
        "trackingNumber": journey.tracking_number,
        "trackResults": [{
            "trackingNumberInfo": {
                "trackingNumber": journey.tracking_number,
                "trackingNumberUniqueId": unique_id(journey),
                "carrierCode": "FDXE",
            },
            "latestStatusDetail": {
                "code": latest.map(|c| c.event_type).unwrap_or(""),
                "description": latest.map(|c| c.description).unwrap_or(""),
            },
            "dateAndTimes": ship.map(|s| vec![json!({ "type": "SHIP", "dateTime": s })]).unwrap_or_default(),
            "scanEvents": newest_first(journey).map(scan_event).collect::<Vec<_>>(),
        }],
    })
}

pub(crate) fn poll(journeys: &[Journey]) -> Value {
    json!({
        "transactionId": "dropline-carrier-sim",
        "output": { "completeTrackResults": journeys.iter().map(complete_result).collect::<Vec<_>>() },
    })
}

pub(crate) fn webhook(journey: &Journey) -> Value {
    webhook_batch(std::slice::from_ref(journey))
}

/// An AIV body for several parcels: one `completeTrackResults` entry each,
/// stamped with the newest scan's time.
pub(crate) fn webhook_batch(journeys: &[Journey]) -> Value {
    let timestamp = journeys
        .iter()
        .filter_map(|j| j.scans.last())
        .max_by_key(|s| s.occurred_at_ms)
        .map(|s| format!("{}Z", iso_local(super::utc_time(s))))
        .unwrap_or_default();
    json!({
        "completeTrackResults": journeys.iter().map(complete_result).collect::<Vec<_>>(),
        "outputMetaData": { "timestamp": timestamp, "attempt": 1 },
    })
}
