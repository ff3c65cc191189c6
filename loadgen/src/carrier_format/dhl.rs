//! DHL Shipment Tracking - Unified responses and Push API bodies.
//!
//! Events carry a timestamp with the scan's offset (the parcel divisions'
//! style), one of the five coarse status codes, and the finer meaning in
//! `status` and `description` text. A region is written into the locality
//! as "CITY, REGION", the eCommerce style.

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
    status_code: &'static str,
    title: &'static str,
    description: &'static str,
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
    status_code: &'static str,
    title: &'static str,
    description: &'static str,
) -> Code {
    Code {
        status,
        sub,
        status_code,
        title,
        description,
    }
}

/// The reverse table; the first row of a status is its default.
pub(crate) const CODES: &[Code] = &[
    c(
        S::LabelCreated,
        B::InfoReceived,
        "pre-transit",
        "Electronic notification",
        "The instruction data for this shipment have been provided by the sender to DHL electronically",
    ),
    c(
        S::PickedUp,
        B::Accepted,
        "transit",
        "Picked up",
        "The shipment has been picked up",
    ),
    c(
        S::PickedUp,
        B::DroppedOff,
        "transit",
        "Posted",
        "The shipment has been posted by the sender at the retail outlet",
    ),
    c(
        S::InTransit,
        B::None,
        "transit",
        "Processed",
        "The shipment has been processed in the parcel center",
    ),
    c(
        S::InTransit,
        B::ArrivalScan,
        "transit",
        "Arrived",
        "The shipment has arrived at the parcel center",
    ),
    c(
        S::InTransit,
        B::DepartureScan,
        "transit",
        "Departed",
        "The shipment has departed the parcel center",
    ),
    c(
        S::InTransit,
        B::CustomsProcessing,
        "transit",
        "Customs",
        "Customs status updated",
    ),
    c(
        S::InTransit,
        B::CustomsCleared,
        "transit",
        "Customs",
        "Clearance processing complete",
    ),
    c(
        S::InTransit,
        B::ArrivedDestinationCountry,
        "transit",
        "Arrived",
        "The shipment has arrived in the destination country",
    ),
    c(
        S::InTransit,
        B::Forwarded,
        "transit",
        "Forwarded",
        "The shipment has been forwarded",
    ),
    c(
        S::OutForDelivery,
        B::OnVehicle,
        "transit",
        "In delivery",
        "The shipment has been loaded onto the delivery vehicle",
    ),
    c(
        S::AvailableForPickup,
        B::AccessPoint,
        "transit",
        "Ready for pickup",
        "The shipment is ready for pickup at the parcel shop",
    ),
    c(
        S::AvailableForPickup,
        B::Locker,
        "transit",
        "Ready for pickup",
        "The shipment is ready for pickup at the Packstation",
    ),
    c(
        S::AvailableForPickup,
        B::PostOffice,
        "transit",
        "Ready for pickup",
        "The shipment is ready for pickup at the retail outlet",
    ),
    c(
        S::DeliveryAttempted,
        B::RecipientUnavailable,
        "failure",
        "Delivery failed",
        "The recipient was not present",
    ),
    c(
        S::DeliveryAttempted,
        B::BusinessClosed,
        "failure",
        "Delivery failed",
        "The business was closed",
    ),
    c(
        S::DeliveryAttempted,
        B::AccessIssue,
        "failure",
        "Delivery failed",
        "No access to the delivery location",
    ),
    c(
        S::Delivered,
        B::None,
        "delivered",
        "Delivered",
        "The shipment has been delivered",
    ),
    c(
        S::Delivered,
        B::Locker,
        "delivered",
        "Delivered",
        "The shipment has been delivered to the Packstation",
    ),
    c(
        S::Delivered,
        B::Neighbor,
        "delivered",
        "Delivered",
        "The shipment has been delivered to the neighbour",
    ),
    c(
        S::Delivered,
        B::Signed,
        "delivered",
        "Delivered",
        "Delivered - Signed for by recipient",
    ),
    c(
        S::Delivered,
        B::LeftSafePlace,
        "delivered",
        "Delivered",
        "The shipment has been left at the front door",
    ),
    c(
        S::Delivered,
        B::Agent,
        "delivered",
        "Delivered",
        "The shipment has been delivered to the reception",
    ),
    c(
        S::Delivered,
        B::PickedUpByCustomer,
        "delivered",
        "Delivered",
        "The shipment has been picked up by the recipient",
    ),
    c(
        S::Exception,
        B::None,
        "failure",
        "Problem",
        "There is a problem with the shipment",
    ),
    c(
        S::Exception,
        B::Refused,
        "failure",
        "Delivery not accepted",
        "The recipient refused to accept the shipment.",
    ),
    c(
        S::Exception,
        B::AddressIssue,
        "failure",
        "Delivery failed",
        "The address is incorrect",
    ),
    c(
        S::Exception,
        B::CustomsHold,
        "transit",
        "Customs",
        "The shipment is held in customs",
    ),
    c(
        S::Exception,
        B::CustomsDocs,
        "transit",
        "Customs",
        "Customs clearance requires documents",
    ),
    c(
        S::Exception,
        B::DutiesUnpaid,
        "transit",
        "Customs",
        "Customs: awaiting payment of duties",
    ),
    c(
        S::Exception,
        B::HeldAtFacility,
        "transit",
        "Held",
        "Shipment is on hold",
    ),
    c(
        S::Exception,
        B::DelayWeather,
        "transit",
        "Delayed",
        "Delayed due to weather",
    ),
    c(
        S::Exception,
        B::DelayCarrier,
        "transit",
        "Delayed",
        "The shipment has been delayed",
    ),
    c(
        S::Exception,
        B::Damaged,
        "failure",
        "Damaged",
        "The shipment was damaged",
    ),
    c(
        S::Exception,
        B::Lost,
        "failure",
        "Lost",
        "The shipment is lost",
    ),
    c(
        S::Exception,
        B::Unclaimed,
        "failure",
        "Not picked up",
        "The shipment was not picked up by the recipient",
    ),
    c(
        S::ReturningToSender,
        B::None,
        "transit",
        "Returning",
        "The shipment is being returned to the sender",
    ),
    c(
        S::ReturningToSender,
        B::Refused,
        "transit",
        "Returning",
        "The shipment is being returned: refused by recipient",
    ),
    c(
        S::ReturnedToSender,
        B::None,
        "delivered",
        "Returned",
        "Returned to sender",
    ),
    c(
        S::Unknown,
        B::None,
        "unknown",
        "Unknown",
        "No status information is available",
    ),
    c(
        S::Unknown,
        B::UnmappedCode,
        "unmapped",
        "Status update",
        "Status update",
    ),
];

#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Address<'a> {
    address_locality: Option<String>,
    country_code: Option<&'a str>,
    postal_code: Option<&'a str>,
}

#[derive(Clone, Serialize)]
pub(crate) struct EventLocation<'a> {
    address: Address<'a>,
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Event<'a> {
    timestamp: String,
    location: EventLocation<'a>,
    status_code: &'static str,
    status: &'static str,
    description: &'static str,
}

/// One shipment: a push body on its own, an element of `shipments[]` in
/// an answer.
#[derive(Serialize)]
pub(crate) struct Shipment<'a> {
    id: &'a str,
    service: &'static str,
    status: Option<Event<'a>>,
    events: Vec<Event<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PollBody<'a> {
    shipments: Vec<Shipment<'a>>,
    possible_additional_shipments_url: [&'static str; 0],
}

fn event(scan: &JourneyScan) -> Event<'_> {
    let code = pick(CODES, scan.status, scan.sub_status);
    let l = &scan.location;
    let locality = match (&l.city, &l.region) {
        (Some(city), Some(region)) => Some(format!("{city}, {region}")),
        (Some(city), None) => Some(city.clone()),
        (None, _) => None,
    };
    Event {
        timestamp: format!(
            "{}{}",
            iso_local(local_time(scan)),
            offset_text(scan.utc_offset_minutes)
        ),
        location: EventLocation {
            address: Address {
                address_locality: locality,
                country_code: opt(&l.country),
                postal_code: opt(&l.postal_code),
            },
        },
        status_code: code.status_code,
        status: code.title,
        description: code.description,
    }
}

pub(crate) fn shipment(journey: &Journey) -> Shipment<'_> {
    let events: Vec<Event<'_>> = newest_first(journey).map(event).collect();
    Shipment {
        id: &journey.tracking_number,
        service: "parcel-de",
        status: events.first().cloned(),
        events,
    }
}

pub(crate) fn poll(journeys: &[Journey]) -> PollBody<'_> {
    PollBody {
        shipments: journeys.iter().map(shipment).collect(),
        possible_additional_shipments_url: [],
    }
}
