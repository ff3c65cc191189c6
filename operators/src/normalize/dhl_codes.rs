//! DHL Shipment Tracking - Unified: five coarse status codes, refined by
//! the event text.
//!
//! `statusCode` is only `pre-transit`, `transit`, `delivered`, `failure`
//! or `unknown`; everything finer is in `status`, `description` and
//! `remark`, worded differently per division. DHL Express events often
//! carry no `statusCode` at all, so the text also has to give the
//! milestone. `failure` is not one thing: a failed attempt, an address
//! problem, a refusal ("Delivery not accepted") or a customs hold. Routine
//! customs text is in transit; only a hold is an exception.

use super::keywords::{self, Upper};
use crate::model::{Status, SubStatus};

use Status as S;
use SubStatus as B;

/// Classifies an event from its `statusCode` (empty when absent) and its
/// upper-cased text.
pub(crate) fn classify(status_code: &str, text: &Upper) -> (Status, SubStatus) {
    match status_code {
        "pre-transit" => (S::LabelCreated, B::InfoReceived),
        "transit" => transit(text),
        "delivered" => delivered(text),
        "failure" => failure(text),
        "unknown" => (S::Unknown, B::None),
        "" => from_text(text),
        _ => (S::Unknown, B::UnmappedCode),
    }
}

fn delivered(text: &Upper) -> (Status, SubStatus) {
    if text.any(&[
        "RETURNED TO SHIPPER",
        "RETURNED TO SENDER",
        "DELIVERED BACK TO THE SENDER",
        "BACK TO SENDER",
    ]) {
        (S::ReturnedToSender, B::None)
    } else {
        (S::Delivered, keywords::delivered(text))
    }
}

fn pickup_point(text: &Upper) -> SubStatus {
    if text.any(&["PACKSTATION", "LOCKER"]) {
        SubStatus::Locker
    } else if text.any(&["POST OFFICE", "RETAIL OUTLET", "POSTAL OFFICE"]) {
        SubStatus::PostOffice
    } else {
        SubStatus::AccessPoint
    }
}

fn transit(text: &Upper) -> (Status, SubStatus) {
    if text.any(&["CUSTOMS", "CLEARANCE", "IMPORT DUTIES"]) {
        return if text.any(&["HELD", "HOLD", "AWAITING RELEASE", "DELAY"]) {
            (S::Exception, B::CustomsHold)
        } else if text.any(&["DOCUMENT", "PAPERWORK"]) {
            (S::Exception, B::CustomsDocs)
        } else if text.any(&["DUTIES UNPAID", "PAYMENT OF DUTIES", "AWAITING PAYMENT"]) {
            (S::Exception, B::DutiesUnpaid)
        } else if text.any(&["COMPLETE", "CLEARED", "RELEASED"]) {
            (S::InTransit, B::CustomsCleared)
        } else {
            (S::InTransit, B::CustomsProcessing)
        };
    }
    if text.any(&[
        "WITH DELIVERY COURIER",
        "OUT FOR DELIVERY",
        "LOADED ONTO THE DELIVERY VEHICLE",
    ]) {
        (S::OutForDelivery, B::OnVehicle)
    } else if text.any(&[
        "READY FOR PICKUP",
        "AVAILABLE FOR PICKUP",
        "READY FOR COLLECTION",
        "AWAITING COLLECTION",
    ]) {
        (S::AvailableForPickup, pickup_point(text))
    } else if text.any(&["PICKED UP", "PICKUP SCAN", "COLLECTED FROM"]) {
        (S::PickedUp, B::Accepted)
    } else if text.any(&["DROPPED OFF", "POSTED BY THE SENDER", "HANDED IN"]) {
        (S::PickedUp, B::DroppedOff)
    } else if text.any(&["RETURNED", "RETURN TO SENDER", "BEING RETURNED"]) {
        (S::ReturningToSender, keywords::returning(text))
    } else if text.any(&["ON HOLD", "HELD AT"]) {
        (S::Exception, B::HeldAtFacility)
    } else if text.has("WEATHER") {
        (S::Exception, B::DelayWeather)
    } else if text.any(&["DELAY", "MISSORT", "MISROUTED"]) {
        (S::Exception, B::DelayCarrier)
    } else if text.any(&["DESTINATION COUNTRY", "COUNTRY OF DESTINATION"]) {
        (S::InTransit, B::ArrivedDestinationCountry)
    } else {
        (S::InTransit, keywords::in_transit(text))
    }
}

fn failure(text: &Upper) -> (Status, SubStatus) {
    if text.any(&["NOT ACCEPTED", "REFUSED", "REJECTED BY", "DECLINED"]) {
        (S::Exception, B::Refused)
    } else if text.has("ADDRESS") {
        (S::Exception, B::AddressIssue)
    } else if text.any(&["CUSTOMS", "CLEARANCE"]) {
        (S::Exception, B::CustomsHold)
    } else if text.has("DAMAGE") {
        (S::Exception, B::Damaged)
    } else if text.any(&["LOST", "MISSING"]) {
        (S::Exception, B::Lost)
    } else if text.has("WEATHER") {
        (S::Exception, B::DelayWeather)
    } else if text.any(&["NOT PICKED UP", "UNCLAIMED", "NOT COLLECTED"]) {
        (S::Exception, B::Unclaimed)
    } else if text.any(&["RETURNED", "RETURN TO SENDER", "BEING RETURNED"]) {
        (S::ReturningToSender, keywords::returning(text))
    } else if text.has("CLOSED") {
        (S::DeliveryAttempted, B::BusinessClosed)
    } else if text.any(&[
        "NOT HOME",
        "NOT AVAILABLE",
        "NOBODY",
        "NO ONE",
        "ABSENT",
        "NOT PRESENT",
        "ATTEMPT",
        "COULD NOT BE DELIVERED",
    ]) {
        (S::DeliveryAttempted, B::RecipientUnavailable)
    } else if text.has("ACCESS") {
        (S::DeliveryAttempted, B::AccessIssue)
    } else {
        (S::Exception, B::None)
    }
}

/// No `statusCode` (DHL Express): the text gives the milestone too.
fn from_text(text: &Upper) -> (Status, SubStatus) {
    let failed = text.any(&[
        "NOT DELIVERED",
        "COULD NOT BE DELIVERED",
        "DELIVERY ATTEMPT",
        "NOT ACCEPTED",
        "REFUSED",
        "INCORRECT ADDRESS",
        "DAMAGE",
        "RECIPIENT NOT",
    ]);
    if failed {
        failure(text)
    } else if text.has("DELIVERED") {
        delivered(text)
    } else if text.any(&[
        "SHIPMENT INFORMATION RECEIVED",
        "LABEL CREATED",
        "ELECTRONICALLY",
        "DATA RECEIVED",
        "PRE-TRANSIT",
    ]) {
        (S::LabelCreated, B::InfoReceived)
    } else if text.any(&[
        "ARRIVED",
        "DEPARTED",
        "PROCESSED",
        "TRANSIT",
        "TRANSFERRED",
        "CUSTOMS",
        "CLEARANCE",
        "SORT",
        "FACILITY",
        "WITH DELIVERY COURIER",
        "PICKED UP",
        "FORWARDED",
        "HUB",
        "ON HOLD",
        "RETURNED",
        "READY FOR PICKUP",
        "DELAY",
    ]) {
        transit(text)
    } else {
        (S::Unknown, B::UnmappedCode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(code: &str, text: &str) -> (Status, SubStatus) {
        classify(code, &Upper::new(&[text]))
    }

    #[test]
    fn every_status_code() {
        assert_eq!(
            c(
                "pre-transit",
                "The instruction data for this shipment have been provided"
            ),
            (S::LabelCreated, B::InfoReceived)
        );
        assert_eq!(
            c("transit", "The shipment has been processed"),
            (S::InTransit, B::None)
        );
        assert_eq!(c("delivered", "DELIVERED"), (S::Delivered, B::None));
        assert_eq!(c("failure", "Problem"), (S::Exception, B::None));
        assert_eq!(c("unknown", "Status"), (S::Unknown, B::None));
        assert_eq!(c("teleported", "Status"), (S::Unknown, B::UnmappedCode));
    }

    #[test]
    fn transit_text() {
        assert_eq!(
            c("transit", "ARRIVAL AT POST OFFICE"),
            (S::InTransit, B::ArrivalScan)
        );
        assert_eq!(
            c("transit", "Departed Facility in LEIPZIG - GERMANY"),
            (S::InTransit, B::DepartureScan)
        );
        assert_eq!(
            c("transit", "Customs status updated"),
            (S::InTransit, B::CustomsProcessing)
        );
        assert_eq!(
            c("transit", "Clearance processing complete at CINCINNATI HUB"),
            (S::InTransit, B::CustomsCleared)
        );
        assert_eq!(
            c("transit", "Shipment on hold: customs clearance delay"),
            (S::Exception, B::CustomsHold)
        );
        assert_eq!(
            c("transit", "With delivery courier"),
            (S::OutForDelivery, B::OnVehicle)
        );
        assert_eq!(
            c(
                "transit",
                "The shipment is ready for pickup at the PACKSTATION"
            ),
            (S::AvailableForPickup, B::Locker)
        );
        assert_eq!(
            c(
                "transit",
                "The shipment is ready for pickup at the retail outlet"
            ),
            (S::AvailableForPickup, B::PostOffice)
        );
        assert_eq!(
            c("transit", "Shipment picked up"),
            (S::PickedUp, B::Accepted)
        );
        assert_eq!(
            c(
                "transit",
                "The shipment has been posted by the sender at the retail outlet"
            ),
            (S::PickedUp, B::DroppedOff)
        );
        assert_eq!(
            c(
                "transit",
                "The shipment has arrived in the destination country"
            ),
            (S::InTransit, B::ArrivedDestinationCountry)
        );
        assert_eq!(
            c("transit", "Shipment is on hold"),
            (S::Exception, B::HeldAtFacility)
        );
        assert_eq!(
            c(
                "transit",
                "The shipment is being returned: refused by recipient"
            ),
            (S::ReturningToSender, B::Refused)
        );
    }

    #[test]
    fn delivered_text() {
        assert_eq!(
            c("delivered", "DELIVERED - PARCEL LOCKER"),
            (S::Delivered, B::Locker)
        );
        assert_eq!(
            c(
                "delivered",
                "The shipment has been delivered to the neighbour"
            ),
            (S::Delivered, B::Neighbor)
        );
        assert_eq!(
            c("delivered", "Returned to shipper"),
            (S::ReturnedToSender, B::None)
        );
    }

    #[test]
    fn failure_is_split_by_text() {
        assert_eq!(
            c("failure", "Delivery not accepted"),
            (S::Exception, B::Refused)
        );
        assert_eq!(
            c("failure", "Incorrect address"),
            (S::Exception, B::AddressIssue)
        );
        assert_eq!(
            c("failure", "Recipient not home, delivery attempted"),
            (S::DeliveryAttempted, B::RecipientUnavailable)
        );
        assert_eq!(
            c("failure", "Business closed"),
            (S::DeliveryAttempted, B::BusinessClosed)
        );
        assert_eq!(c("failure", "Shipment damaged"), (S::Exception, B::Damaged));
        assert_eq!(
            c("failure", "The shipment was not picked up by the recipient"),
            (S::Exception, B::Unclaimed)
        );
    }

    #[test]
    fn express_without_status_code() {
        assert_eq!(
            c("", "Shipment information received"),
            (S::LabelCreated, B::InfoReceived)
        );
        assert_eq!(c("", "Shipment picked up"), (S::PickedUp, B::Accepted));
        assert_eq!(
            c("", "Processed at LEIPZIG - GERMANY"),
            (S::InTransit, B::None)
        );
        assert_eq!(
            c(
                "",
                "Arrived at Delivery Facility in AMSTERDAM - NETHERLANDS"
            ),
            (S::InTransit, B::ArrivalScan)
        );
        assert_eq!(
            c("", "Delivered - Signed for by: J SMITH"),
            (S::Delivered, B::Signed)
        );
        assert_eq!(
            c("", "Delivery attempted; recipient not home"),
            (S::DeliveryAttempted, B::RecipientUnavailable)
        );
        assert_eq!(c("", "Something new"), (S::Unknown, B::UnmappedCode));
    }
}
