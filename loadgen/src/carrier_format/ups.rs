//! UPS Track API responses and Track Alert webhook bodies.
//!
//! Activities carry the local `date`/`time`, the GMT date and time and
//! `gmtOffset`; Track Alert events carry the local and GMT fields and an
//! `activityStatus` with the type, the two-letter code and the 3-digit
//! status code.

use dropline_operators::model::{Status, SubStatus};
use serde_json::{Value, json};

use super::{
    Journey, JourneyScan, Row, local_time, newest_first, offset_text, opt, pick, utc_time,
};

use Status as S;
use SubStatus as B;

/// One reverse-table row.
pub(crate) struct Code {
    pub(crate) status: Status,
    pub(crate) sub: SubStatus,
    kind: &'static str,
    code: &'static str,
    status_code: &'static str,
    text: &'static str,
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
    kind: &'static str,
    code: &'static str,
    status_code: &'static str,
    text: &'static str,
) -> Code {
    Code {
        status,
        sub,
        kind,
        code,
        status_code,
        text,
    }
}

/// The reverse table; the first row of a status is its default.
pub(crate) const CODES: &[Code] = &[
    c(
        S::LabelCreated,
        B::InfoReceived,
        "M",
        "MP",
        "003",
        "Shipper created a label, UPS has not received the package yet.",
    ),
    c(
        S::PickedUp,
        B::Accepted,
        "P",
        "PU",
        "038",
        "Picked up by UPS",
    ),
    c(
        S::PickedUp,
        B::DroppedOff,
        "I",
        "AP",
        "044",
        "Dropped off at a UPS Access Point, on the way to UPS",
    ),
    c(S::InTransit, B::None, "I", "OR", "005", "Origin Scan"),
    c(
        S::InTransit,
        B::ArrivalScan,
        "I",
        "AR",
        "005",
        "Arrived at Facility",
    ),
    c(
        S::InTransit,
        B::DepartureScan,
        "I",
        "DP",
        "005",
        "Departed from Facility",
    ),
    c(
        S::InTransit,
        B::Forwarded,
        "I",
        "FW",
        "005",
        "Package forwarded to a new facility",
    ),
    c(
        S::InTransit,
        B::CustomsProcessing,
        "I",
        "IP",
        "012",
        "Import Scan",
    ),
    c(
        S::InTransit,
        B::CustomsCleared,
        "I",
        "CR",
        "014",
        "Your package has cleared customs",
    ),
    c(
        S::OutForDelivery,
        B::OnVehicle,
        "I",
        "OT",
        "072",
        "Out For Delivery Today",
    ),
    c(
        S::AvailableForPickup,
        B::AccessPoint,
        "D",
        "2Q",
        "161",
        "Delivered to UPS Access Point and awaiting customer pickup",
    ),
    c(
        S::DeliveryAttempted,
        B::RecipientUnavailable,
        "X",
        "48",
        "022",
        "The receiver was not available for delivery.",
    ),
    c(
        S::DeliveryAttempted,
        B::None,
        "X",
        "DA",
        "060",
        "A delivery attempt was made.",
    ),
    c(
        S::DeliveryAttempted,
        B::SignatureRequired,
        "X",
        "AS",
        "061",
        "An adult signature is required for delivery.",
    ),
    c(
        S::DeliveryAttempted,
        B::PaymentRequired,
        "X",
        "CF",
        "062",
        "Payment is required before delivery.",
    ),
    c(S::Delivered, B::None, "D", "FS", "011", "DELIVERED"),
    c(
        S::Delivered,
        B::LeftSafePlace,
        "D",
        "FS",
        "011",
        "DELIVERED, Front Door",
    ),
    c(
        S::Delivered,
        B::Signed,
        "D",
        "FS",
        "011",
        "DELIVERED, Signed by receiver",
    ),
    c(
        S::Delivered,
        B::Neighbor,
        "D",
        "FS",
        "011",
        "DELIVERED, Left with neighbor",
    ),
    c(
        S::Delivered,
        B::Locker,
        "D",
        "FS",
        "011",
        "DELIVERED, Parcel Locker",
    ),
    c(
        S::Delivered,
        B::PickedUpByCustomer,
        "D",
        "KB",
        "011",
        "DELIVERED, Picked up by customer",
    ),
    c(
        S::Delivered,
        B::CodCollected,
        "D",
        "FS",
        "011",
        "DELIVERED, COD collected",
    ),
    c(
        S::Delivered,
        B::Agent,
        "D",
        "KM",
        "143",
        "Delivered to agent",
    ),
    c(
        S::Exception,
        B::AddressIssue,
        "X",
        "AA",
        "029",
        "Exception: Action Required. The address is incomplete.",
    ),
    c(
        S::Exception,
        B::CustomsDocs,
        "X",
        "CD",
        "058",
        "Additional documentation is required for customs clearance.",
    ),
    c(
        S::Exception,
        B::CustomsHold,
        "X",
        "G1",
        "126",
        "Pending Government Agency Release",
    ),
    c(
        S::Exception,
        B::DelayWeather,
        "X",
        "7W",
        "052",
        "Severe weather conditions have delayed delivery.",
    ),
    c(
        S::Exception,
        B::DelayOther,
        "X",
        "D1",
        "046",
        "A delay has occurred.",
    ),
    c(
        S::Exception,
        B::Damaged,
        "X",
        "DM",
        "059",
        "The package was damaged.",
    ),
    c(
        S::Exception,
        B::Lost,
        "X",
        "LF",
        "068",
        "Sent to Lost and Found",
    ),
    c(
        S::Exception,
        B::Refused,
        "X",
        "RF",
        "064",
        "The receiver refused the delivery.",
    ),
    c(
        S::Exception,
        B::Undeliverable,
        "X",
        "UD",
        "069",
        "The package is undeliverable.",
    ),
    c(
        S::Exception,
        B::SeizedOrDestroyed,
        "X",
        "SZ",
        "147",
        "The package was seized by a government agency.",
    ),
    c(
        S::ReturningToSender,
        B::None,
        "RS",
        "RS",
        "033",
        "Returning to shipper",
    ),
    c(
        S::ReturningToSender,
        B::Refused,
        "RS",
        "RS",
        "033",
        "Returning to shipper: refused by receiver",
    ),
    c(
        S::ReturningToSender,
        B::Unclaimed,
        "RS",
        "RS",
        "033",
        "Returning to shipper: unclaimed",
    ),
    c(
        S::ReturningToSender,
        B::SenderRequested,
        "RS",
        "RS",
        "033",
        "Returning to shipper at shipper request",
    ),
    c(
        S::ReturningToSender,
        B::Undeliverable,
        "RS",
        "RS",
        "033",
        "Returning to shipper: undeliverable",
    ),
    c(
        S::ReturnedToSender,
        B::None,
        "D",
        "RS",
        "034",
        "Returned to Sender",
    ),
    c(
        S::Cancelled,
        B::LabelVoided,
        "MV",
        "VP",
        "007",
        "Shipment information voided",
    ),
    c(S::Stale, B::NoInfoYet, "NA", "NA", "", "Not available"),
    c(
        S::Unknown,
        B::UnmappedCode,
        "Q",
        "ZZ",
        "999",
        "Status unavailable",
    ),
];

fn address(scan: &JourneyScan) -> Value {
    let l = &scan.location;
    json!({
        "city": opt(&l.city),
        "stateProvince": opt(&l.region),
        "postalCode": opt(&l.postal_code),
        "country": opt(&l.country),
        "countryCode": opt(&l.country),
    })
}

fn activity(scan: &JourneyScan) -> Value {
    let code = pick(CODES, scan.status, scan.sub_status);
    let local = local_time(scan);
    let utc = utc_time(scan);
    json!({
        "location": { "address": address(scan), "slic": "0000" },
        "status": {
            "type": code.kind,
            "code": code.code,
            "statusCode": code.status_code,
            "description": code.text,
        },
        "date": local.format("%Y%m%d").to_string(),
        "time": local.format("%H%M%S").to_string(),
        "gmtDate": utc.format("%Y%m%d").to_string(),
        "gmtTime": utc.format("%H:%M:%S").to_string(),
        "gmtOffset": offset_text(scan.utc_offset_minutes),
    })
}

pub(crate) fn poll(journeys: &[Journey]) -> Value {
    let shipments: Vec<Value> = journeys
        .iter()
        .map(|j| {
            json!({
                "inquiryNumber": j.tracking_number,
                "package": [{
                    "trackingNumber": j.tracking_number,
                    "activity": newest_first(j).map(activity).collect::<Vec<_>>(),
                }],
            })
        })
        .collect();
    json!({ "trackResponse": { "shipment": shipments } })
}

pub(crate) fn webhook(journey: &Journey) -> Value {
    let alerts: Vec<Value> = journey
        .scans
        .iter()
        .map(|scan| {
            let code = pick(CODES, scan.status, scan.sub_status);
            let local = local_time(scan);
            let utc = utc_time(scan);
            let l = &scan.location;
            json!({
                "trackingNumber": journey.tracking_number,
                "localActivityDate": local.format("%Y%m%d").to_string(),
                "localActivityTime": local.format("%H%M%S").to_string(),
                "gmtActivityDate": utc.format("%Y%m%d").to_string(),
                "gmtActivityTime": utc.format("%H%M%S").to_string(),
                "activityLocation": {
                    "city": opt(&l.city),
                    "stateProvince": opt(&l.region),
                    "postalCode": opt(&l.postal_code),
                    "country": opt(&l.country),
                },
                "activityStatus": {
                    "type": code.kind,
                    "code": code.code,
                    "statusCode": code.status_code,
                    "description": code.text,
                },
                "scheduledDeliveryDate": "",
                "actualDeliveryDate": "",
                "actualDeliveryTime": "",
            })
        })
        .collect();
    Value::Array(alerts)
}
