//! Reading meaning out of carrier description text, for the cases where the
//! code alone does not say enough.
//!
//! A code gives the milestone; the text often gives the manner ("Delivered,
//! Parcel Locker", "Departed FedEx location", DHL's whole vocabulary). The
//! rules are plain substring tests on an upper-cased copy, in a fixed order,
//! so the same text always gives the same answer and a reader can see why.

use crate::model::{Status, SubStatus};

/// An upper-cased copy of one or more description fields.
pub(crate) struct Upper(String);

impl Upper {
    /// Joins the non-empty parts with a space and upper-cases them.
    pub(crate) fn new(parts: &[&str]) -> Upper {
        let mut text = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
        for part in parts.iter().filter(|p| !p.is_empty()) {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(part);
        }
        text.make_ascii_uppercase();
        Upper(text)
    }

    /// Whether the text contains `needle` (upper case).
    pub(crate) fn has(&self, needle: &str) -> bool {
        self.0.contains(needle)
    }

    /// Whether the text contains any of `needles`.
    pub(crate) fn any(&self, needles: &[&str]) -> bool {
        needles.iter().any(|n| self.0.contains(n))
    }
}

/// Fills in a missing sub-status from the text, for the statuses whose
/// manner carriers put in words rather than codes.
pub(crate) fn refine(status: Status, sub: SubStatus, text: &Upper) -> SubStatus {
    if sub != SubStatus::None {
        return sub;
    }
    match status {
        Status::InTransit => in_transit(text),
        Status::Delivered => delivered(text),
        Status::ReturningToSender => returning(text),
        _ => SubStatus::None,
    }
}

/// The manner of an in-transit scan, from its text.
pub(crate) fn in_transit(text: &Upper) -> SubStatus {
    if text.any(&["ARRIVED", "ARRIVAL", "AT LOCAL FEDEX", "AT DESTINATION"]) {
        SubStatus::ArrivalScan
    } else if text.any(&["DEPARTED", "DEPARTURE", "LEFT FEDEX"]) {
        SubStatus::DepartureScan
    } else if text.has("FORWARDED") {
        SubStatus::Forwarded
    } else {
        SubStatus::None
    }
}

/// Why a parcel is going back, from its text.
pub(crate) fn returning(text: &Upper) -> SubStatus {
    if text.any(&["REFUSED", "NOT ACCEPTED", "REJECTED BY RECIPIENT"]) {
        SubStatus::Refused
    } else if text.any(&["UNCLAIMED", "NOT CLAIMED", "NOT PICKED UP"]) {
        SubStatus::Unclaimed
    } else if text.any(&["SHIPPER REQUEST", "SENDER REQUEST", "RECALL"]) {
        SubStatus::SenderRequested
    } else if text.any(&["UNDELIVERABLE", "ADDRESS"]) {
        SubStatus::Undeliverable
    } else {
        SubStatus::None
    }
}

/// How a parcel was delivered, from its text.
pub(crate) fn delivered(text: &Upper) -> SubStatus {
    if text.any(&["PARCEL LOCKER", "PACKSTATION", "LOCKER"]) {
        SubStatus::Locker
    } else if text.any(&["NEIGHBOR", "NEIGHBOUR"]) {
        SubStatus::Neighbor
    } else if text.any(&[
        "PICKED UP AT",
        "PICKED UP BY",
        "CUSTOMER PICKUP",
        "PICKED UP FROM",
    ]) {
        SubStatus::PickedUpByCustomer
    } else if text.any(&[
        "AGENT",
        "FRONT DESK",
        "RECEPTION",
        "MAIL ROOM",
        "MAILROOM",
        "CONCIERGE",
    ]) {
        SubStatus::Agent
    } else if text.any(&[
        "FRONT DOOR",
        "PORCH",
        "MAILBOX",
        "SAFE PLACE",
        "GARAGE",
        "BACK DOOR",
        "SIDE DOOR",
    ]) {
        SubStatus::LeftSafePlace
    } else if text.any(&["SIGNED", "SIGNATURE"]) {
        SubStatus::Signed
    } else if text.any(&["CASH ON DELIVERY", "COD COLLECTED"]) {
        SubStatus::CodCollected
    } else {
        SubStatus::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_rules() {
        let t = |s: &str| Upper::new(&[s]);
        assert_eq!(
            in_transit(&t("Arrived at FedEx location")),
            SubStatus::ArrivalScan
        );
        assert_eq!(
            in_transit(&t("Departed USPS Regional Facility")),
            SubStatus::DepartureScan
        );
        assert_eq!(
            in_transit(&t("In Transit to Next Facility")),
            SubStatus::None
        );
        assert_eq!(
            returning(&t("Return to sender: refused")),
            SubStatus::Refused
        );
        assert_eq!(
            returning(&t("Unclaimed/Being Returned to Sender")),
            SubStatus::Unclaimed
        );
        assert_eq!(returning(&t("Returning to shipper")), SubStatus::None);
        assert_eq!(delivered(&t("Delivered, Parcel Locker")), SubStatus::Locker);
        assert_eq!(
            delivered(&t("Delivered, Front Door/Porch")),
            SubStatus::LeftSafePlace
        );
        assert_eq!(
            delivered(&t("Delivered, Left with Individual")),
            SubStatus::None
        );
        assert_eq!(delivered(&t("Delivered - Neighbour")), SubStatus::Neighbor);
        let joined = Upper::new(&["", "a", "", "b"]);
        assert!(joined.has("A B"));
    }
}
