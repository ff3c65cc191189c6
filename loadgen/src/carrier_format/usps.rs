//! USPS tracking v3 items and tracking pushes.
//!
//! Events carry the local `eventTimestamp` with no offset, `GMTTimestamp`
//! in UTC and `GMTOffset`. `eventCountry` is null for domestic scans, as
//! USPS sends it.

use dropline_operators::model::{Status, SubStatus};
use serde::Serialize;

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

#[derive(Serialize)]
pub(crate) struct Event<'a> {
    #[serde(rename = "eventType")]
    event_type: &'static str,
    #[serde(rename = "eventTimestamp")]
    event_timestamp: String,
    #[serde(rename = "GMTTimestamp")]
    gmt_timestamp: String,
    #[serde(rename = "GMTOffset")]
    gmt_offset: String,
    #[serde(rename = "eventCountry")]
    event_country: Option<&'a str>,
    #[serde(rename = "eventCity")]
    event_city: Option<&'a str>,
    #[serde(rename = "eventState")]
    event_state: Option<&'a str>,
    #[serde(rename = "eventZIP")]
    event_zip: Option<&'a str>,
    firm: Option<&'static str>,
    name: Option<&'static str>,
    #[serde(rename = "authorizedAgent")]
    authorized_agent: &'static str,
    #[serde(rename = "eventCode")]
    event_code: &'static str,
    #[serde(rename = "actionCode")]
    action_code: Option<&'static str>,
    #[serde(rename = "reasonCode")]
    reason_code: Option<&'static str>,
}

/// A tracking item; with the subscription envelope when pushed.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Item<'a> {
    tracking_number: &'a str,
    mail_class: &'static str,
    mail_type: &'static str,
    status: &'static str,
    tracking_events: Vec<Event<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subscription_id: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notification_type: Option<&'static str>,
}

fn event(scan: &JourneyScan) -> Event<'_> {
    let code = pick(CODES, scan.status, scan.sub_status);
    let l = &scan.location;
    // Domestic scans come with a null country; the state says it is US.
    let domestic = l.country.as_deref() == Some("US")
        && l.region
            .as_deref()
            .is_some_and(dropline_operators::normalize::zone::is_us_state);
    Event {
        event_type: code.text,
        event_timestamp: iso_local(local_time(scan)),
        gmt_timestamp: format!("{}Z", iso_local(utc_time(scan))),
        gmt_offset: offset_text(scan.utc_offset_minutes),
        event_country: if domestic { None } else { opt(&l.country) },
        event_city: opt(&l.city),
        event_state: opt(&l.region),
        event_zip: opt(&l.postal_code),
        firm: None,
        name: None,
        authorized_agent: "false",
        event_code: code.code,
        action_code: None,
        reason_code: (!code.reason.is_empty()).then_some(code.reason),
    }
}

/// The tracking item of `journey` (`pushed`: with the webhook envelope).
pub(crate) fn item(journey: &Journey, pushed: bool) -> Item<'_> {
    let latest = journey
        .scans
        .last()
        .map(|s| pick(CODES, s.status, s.sub_status));
    Item {
        tracking_number: &journey.tracking_number,
        mail_class: "USPS Ground Advantage",
        mail_type: "DOMESTIC_MAIL",
        status: latest.map(|c| c.text).unwrap_or(""),
        tracking_events: newest_first(journey).map(event).collect(),
        subscription_id: pushed.then_some("dropline-carrier-sim"),
        notification_type: pushed.then_some("TRACKING_EVENT"),
    }
}

/// One item for one journey, an array of items for several.
pub(crate) fn poll(journeys: &[Journey]) -> Vec<u8> {
    match journeys {
        [one] => super::to_bytes(&item(one, false)),
        many => super::to_bytes(&many.iter().map(|j| item(j, false)).collect::<Vec<_>>()),
    }
}
