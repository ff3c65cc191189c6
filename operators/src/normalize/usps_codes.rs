//! USPS tracking v3 event codes (Pub 199 appendix) to the canonical
//! taxonomy.
//!
//! Two codes need their text: `01` "Delivered" also covers "Delivered, To
//! Original Sender" (a completed return), and its manner ("Parcel Locker",
//! "Front Door/Porch") is only in the text. `09` (return to sender) takes
//! its reason from `reasonCode` (27 and 31: unclaimed). `71` "Rescheduled
//! to Next Delivery Day" is a delay, not an attempt, and `04` (refused) is
//! an exception, not an attempt.

use super::keywords::{self, Upper};
use crate::model::{Status, SubStatus};

use Status as S;
use SubStatus as B;

/// The event-code table, before text refinement.
pub(crate) fn by_event_code(code: &str) -> Option<(Status, SubStatus)> {
    Some(match code {
        "GX" | "MA" => (S::LabelCreated, B::InfoReceived),
        "03" | "TM" | "PA" => (S::PickedUp, B::Accepted),
        "10" | "SF" | "EF" | "PC" | "T1" | "TL" | "A1" | "07" | "42" | "80" | "81" | "82" => {
            (S::InTransit, B::None)
        }
        "06" => (S::InTransit, B::Forwarded),
        "OF" => (S::OutForDelivery, B::OnVehicle),
        "14" | "16" => (S::AvailableForPickup, B::PostOffice),
        "01" => (S::Delivered, B::None),
        "17" => (S::Delivered, B::Agent),
        "02" | "52" | "56" => (S::DeliveryAttempted, B::RecipientUnavailable),
        "53" | "30" => (S::DeliveryAttempted, B::AccessIssue),
        "54" | "55" => (S::DeliveryAttempted, B::NoSecureLocation),
        "51" => (S::DeliveryAttempted, B::BusinessClosed),
        "71" | "08" | "15" => (S::Exception, B::DelayCarrier),
        "04" => (S::Exception, B::Refused),
        "05" | "21" | "22" | "23" | "25" | "26" => (S::Exception, B::AddressIssue),
        "11" => (S::Exception, B::Undeliverable),
        "09" => (S::ReturningToSender, B::None),
        "44" => (S::ReturningToSender, B::SenderRequested),
        "DX" => (S::Stale, B::NoInfoYet),
        _ => return None,
    })
}

/// Classifies one tracking event from its code, text and reason code.
pub(crate) fn classify(code: &str, event_type: &str, reason_code: &str) -> (Status, SubStatus) {
    let Some((status, sub)) = by_event_code(code) else {
        return (S::Unknown, B::UnmappedCode);
    };
    let text = Upper::new(&[event_type]);
    match code {
        "01" if text.any(&["ORIGINAL SENDER", "TO SENDER", "RETURNED TO SHIPPER"]) => {
            (S::ReturnedToSender, B::None)
        }
        "09" if matches!(reason_code, "27" | "31") => (S::ReturningToSender, B::Unclaimed),
        "09" if matches!(reason_code, "21" | "22" | "23" | "24" | "25" | "26") => {
            (S::ReturningToSender, B::Undeliverable)
        }
        "14" | "16" if text.any(&["LOCKER", "APBP"]) => (S::AvailableForPickup, B::Locker),
        _ => (status, keywords::refine(status, sub, &text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT_CODES: &[(&str, Status, SubStatus)] = &[
        ("GX", S::LabelCreated, B::InfoReceived),
        ("MA", S::LabelCreated, B::InfoReceived),
        ("03", S::PickedUp, B::Accepted),
        ("TM", S::PickedUp, B::Accepted),
        ("PA", S::PickedUp, B::Accepted),
        ("10", S::InTransit, B::None),
        ("SF", S::InTransit, B::None),
        ("EF", S::InTransit, B::None),
        ("PC", S::InTransit, B::None),
        ("T1", S::InTransit, B::None),
        ("TL", S::InTransit, B::None),
        ("A1", S::InTransit, B::None),
        ("07", S::InTransit, B::None),
        ("42", S::InTransit, B::None),
        ("80", S::InTransit, B::None),
        ("81", S::InTransit, B::None),
        ("82", S::InTransit, B::None),
        ("06", S::InTransit, B::Forwarded),
        ("OF", S::OutForDelivery, B::OnVehicle),
        ("14", S::AvailableForPickup, B::PostOffice),
        ("16", S::AvailableForPickup, B::PostOffice),
        ("01", S::Delivered, B::None),
        ("17", S::Delivered, B::Agent),
        ("02", S::DeliveryAttempted, B::RecipientUnavailable),
        ("52", S::DeliveryAttempted, B::RecipientUnavailable),
        ("56", S::DeliveryAttempted, B::RecipientUnavailable),
        ("53", S::DeliveryAttempted, B::AccessIssue),
        ("30", S::DeliveryAttempted, B::AccessIssue),
        ("54", S::DeliveryAttempted, B::NoSecureLocation),
        ("55", S::DeliveryAttempted, B::NoSecureLocation),
        ("51", S::DeliveryAttempted, B::BusinessClosed),
        ("71", S::Exception, B::DelayCarrier),
        ("08", S::Exception, B::DelayCarrier),
        ("15", S::Exception, B::DelayCarrier),
        ("04", S::Exception, B::Refused),
        ("05", S::Exception, B::AddressIssue),
        ("21", S::Exception, B::AddressIssue),
        ("22", S::Exception, B::AddressIssue),
        ("23", S::Exception, B::AddressIssue),
        ("25", S::Exception, B::AddressIssue),
        ("26", S::Exception, B::AddressIssue),
        ("11", S::Exception, B::Undeliverable),
        ("09", S::ReturningToSender, B::None),
        ("44", S::ReturningToSender, B::SenderRequested),
        ("DX", S::Stale, B::NoInfoYet),
        ("ZZ", S::Unknown, B::UnmappedCode),
        ("", S::Unknown, B::UnmappedCode),
    ];

    #[test]
    fn every_event_code() {
        for &(code, status, sub) in EVENT_CODES {
            assert_eq!(
                classify(code, "Status", ""),
                (status, sub),
                "eventCode {code}"
            );
        }
    }

    #[test]
    fn text_and_reason_codes() {
        assert_eq!(
            classify("01", "Delivered, To Original Sender", ""),
            (S::ReturnedToSender, B::None)
        );
        assert_eq!(
            classify("01", "Delivered, Parcel Locker", ""),
            (S::Delivered, B::Locker)
        );
        assert_eq!(
            classify("01", "Delivered, Front Door/Porch", ""),
            (S::Delivered, B::LeftSafePlace)
        );
        assert_eq!(
            classify("01", "Delivered, Individual Picked Up at Post Office", ""),
            (S::Delivered, B::PickedUpByCustomer)
        );
        assert_eq!(
            classify("09", "Return to Sender", "27"),
            (S::ReturningToSender, B::Unclaimed)
        );
        assert_eq!(
            classify("09", "Return to Sender", "31"),
            (S::ReturningToSender, B::Unclaimed)
        );
        assert_eq!(
            classify("09", "Return to Sender", "23"),
            (S::ReturningToSender, B::Undeliverable)
        );
        assert_eq!(
            classify("09", "Refused, Returned to Sender", ""),
            (S::ReturningToSender, B::Refused)
        );
        assert_eq!(
            classify("16", "Available for Pickup, Parcel Locker", ""),
            (S::AvailableForPickup, B::Locker)
        );
        assert_eq!(
            classify("10", "Arrived at USPS Regional Facility", ""),
            (S::InTransit, B::ArrivalScan)
        );
        assert_eq!(
            classify("SF", "Departed USPS Facility", ""),
            (S::InTransit, B::DepartureScan)
        );
        assert_eq!(
            classify("71", "Rescheduled to Next Delivery Day", ""),
            (S::Exception, B::DelayCarrier)
        );
    }
}
