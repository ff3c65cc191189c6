//! USPS tracking v3 items and tracking pushes.
//!
//! Events carry the local `eventTimestamp` with no offset, `GMTTimestamp`
//! in UTC and `GMTOffset`. `eventCountry` is null for domestic scans, as
//! USPS sends it.

use dropline_operators::model::{Status, SubStatus};
use serde_json::{Value, json};

use super::{
    Journey, JourneyScan, Row, iso_local, local_time, newest_first, offset_text, opt, pick,
    utc_time,
};

use Status as S;
use SubStatus as B;

/// One reverse-table row.
pub(crate) struct Code {
    pub(crate) status: Status,
    pub(crate) sub: SubStatus,
    code: &'static str,
    text: &'static str,
    reason: &'static str,
}

impl Row for Code {
    fn status(&self) -> Status {
        self.status
    }
    fn sub(&self) -> SubStatus {
        self.sub
    }
}

const fn c(status: Status, sub: SubStatus, code: &'static str, text: &'static str) -> Code {
    Code {
        status,
        sub,
        code,
        text,
        reason: "",
    }
}

/// The reverse table; the first row of a status is its default.
pub(crate) const CODES: &[Code] = &[
    c(
        S::LabelCreated,
        B::InfoReceived,
        "GX",
        "Shipping Label Created, USPS Awaiting Item",
    ),
    c(S::PickedUp, B::Accepted, "03", "USPS in possession of item"),
    c(S::InTransit, B::None, "TL", "In Transit to Next Facility"),
    c(
        S::InTransit,
        B::ArrivalScan,
        "10",
        "Arrived at USPS Regional Facility",
    ),
    c(
        S::InTransit,
        B::DepartureScan,
        "SF",
        "Departed USPS Regional Facility",
    ),
    c(S::InTransit, B::Forwarded, "06", "Forwarded"),
    c(S::OutForDelivery, B::OnVehicle, "OF", "Out for Delivery"),
    c(
        S::AvailableForPickup,
        B::PostOffice,
        "16",
        "Available for Pickup",
    ),
    c(
        S::AvailableForPickup,
        B::Locker,
        "16",
        "Available for Pickup, Parcel Locker",
    ),
    c(
        S::DeliveryAttempted,
        B::RecipientUnavailable,
        "52",
        "Notice Left (No Authorized Recipient Available)",
    ),
    c(
        S::DeliveryAttempted,
        B::AccessIssue,
        "30",
        "No Access to Delivery Location",
    ),
    c(
        S::DeliveryAttempted,
        B::NoSecureLocation,
        "55",
        "Delivery Attempted - No Secure Location Available",
    ),
    c(
        S::DeliveryAttempted,
        B::BusinessClosed,
        "51",
        "Business Closed",
    ),
    c(
        S::Delivered,
        B::None,
        "01",
        "Delivered, Left with Individual",
    ),
    c(
        S::Delivered,
        B::LeftSafePlace,
        "01",
        "Delivered, Front Door/Porch",
    ),
    c(S::Delivered, B::Locker, "01", "Delivered, Parcel Locker"),
    c(
        S::Delivered,
        B::PickedUpByCustomer,
        "01",
        "Delivered, Individual Picked Up at Post Office",
    ),
    c(S::Delivered, B::Agent, "17", "Delivered to Agent"),
    c(
        S::Exception,
        B::DelayCarrier,
        "71",
        "Rescheduled to Next Delivery Day",
    ),
    c(S::Exception, B::Refused, "04", "Refused"),
    c(S::Exception, B::AddressIssue, "21", "No Such Number"),
    c(S::Exception, B::Undeliverable, "11", "Dead Letter"),
    c(S::ReturningToSender, B::None, "09", "Return to Sender"),
    Code {
        status: S::ReturningToSender,
        sub: B::Unclaimed,
        code: "09",
        text: "Return to Sender",
        reason: "27",
    },
    Code {
        status: S::ReturningToSender,
        sub: B::Undeliverable,
        code: "09",
        text: "Return to Sender",
        reason: "21",
    },
    c(
        S::ReturningToSender,
        B::Refused,
        "09",
        "Refused, Being Returned to Sender",
    ),
    c(
        S::ReturningToSender,
        B::SenderRequested,
        "44",
        "Customer Recall",
    ),
    c(
        S::ReturnedToSender,
        B::None,
        "01",
        "Delivered, To Original Sender",
    ),
    c(S::Stale, B::NoInfoYet, "DX", "Delivery Status Not Updated"),
    c(S::Unknown, B::UnmappedCode, "ZZ", "Status update"),
];

fn event(scan: &JourneyScan) -> Value {
    let code = pick(CODES, scan.status, scan.sub_status);
    let l = &scan.location;
    // Domestic scans come with a null country; the state says it is US.
    let domestic = l.country.as_deref() == Some("US")
        && l.region
            .as_deref()
            .is_some_and(dropline_operators::normalize::zone::is_us_state);
    let country = if domestic {
        Value::Null
    } else {
        opt(&l.country)
    };
    json!({
        "eventType": code.text,
        "eventTimestamp": iso_local(local_time(scan)),
        "GMTTimestamp": format!("{}Z", iso_local(utc_time(scan))),
        "GMTOffset": offset_text(scan.utc_offset_minutes),
        "eventCountry": country,
        "eventCity": opt(&l.city),
        "eventState": opt(&l.region),
        "eventZIP": opt(&l.postal_code),
        "firm": null,
        "name": null,
        "authorizedAgent": "false",
        "eventCode": code.code,
        "actionCode": null,
        "reasonCode": if code.reason.is_empty() { Value::Null } else { Value::String(code.reason.to_owned()) },
    })
}

fn item(journey: &Journey) -> Value {
    let latest = journey
        .scans
        .last()
        .map(|s| pick(CODES, s.status, s.sub_status));
    json!({
        "trackingNumber": journey.tracking_number,
        "mailClass": "USPS Ground Advantage",
        "mailType": "DOMESTIC_MAIL",
        "status": latest.map(|c| c.text).unwrap_or(""),
        "trackingEvents": newest_first(journey).map(event).collect::<Vec<_>>(),
    })
}

pub(crate) fn poll(journeys: &[Journey]) -> Value {
    match journeys {
        [one] => item(one),
        many => Value::Array(many.iter().map(item).collect()),
    }
}

pub(crate) fn webhook(journey: &Journey) -> Value {
    let mut body = item(journey);
    if let Some(map) = body.as_object_mut() {
        map.insert("subscriptionId".into(), json!("dropline-carrier-sim"));
        map.insert("notificationType".into(), json!("TRACKING_EVENT"));
    }
    body
}
