//! UPS activity codes to the canonical taxonomy.
//!
//! A UPS activity has three codes: `status.type` (D, I, M, MV, X, U, NA,
//! W, DO, DD), a two-letter `status.code` (OT, MP, 7W…) and a 3-digit
//! `status.statusCode`. The type alone misleads: type `D` also covers
//! "Delivered to UPS Access Point" (161, a pickup) and "Returned to Sender"
//! (034). So the status code decides first, then the few two-letter codes
//! whose meaning is unambiguous (the Track Alert webhook has no status
//! code), then the type, with the description text as a last hint.

use super::keywords::{self, Upper};
use crate::model::{Status, SubStatus};

use Status as S;
use SubStatus as B;

/// What an activity is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// A milestone.
    Event(Status, SubStatus),
    /// Not a milestone (photo, updated delivery date or time).
    Meta,
}

/// The 3-digit status code table.
pub(crate) fn by_status_code(code: &str) -> Option<(Status, SubStatus)> {
    Some(match code {
        "003" | "157" => (S::LabelCreated, B::InfoReceived),
        "007" => (S::Cancelled, B::LabelVoided),
        "043" => (S::Cancelled, B::None),
        "038" => (S::PickedUp, B::Accepted),
        "044" | "045" | "079" => (S::PickedUp, B::DroppedOff),
        "005" | "010" | "025" | "039" | "047" | "087" => (S::InTransit, B::None),
        "012" | "092" => (S::InTransit, B::CustomsProcessing),
        "014" | "084" | "134" => (S::InTransit, B::CustomsCleared),
        "006" | "021" | "037" | "072" | "089" | "091" | "146" => (S::OutForDelivery, B::OnVehicle),
        "017" | "040" | "144" | "161" => (S::AvailableForPickup, B::AccessPoint),
        "022" | "023" | "024" => (S::DeliveryAttempted, B::RecipientUnavailable),
        "060" | "145" => (S::DeliveryAttempted, B::None),
        "061" => (S::DeliveryAttempted, B::SignatureRequired),
        "062" => (S::DeliveryAttempted, B::PaymentRequired),
        "011" => (S::Delivered, B::None),
        "026" | "143" => (S::Delivered, B::Agent),
        "027" | "028" | "029" | "050" => (S::Exception, B::AddressIssue),
        "058" => (S::Exception, B::CustomsDocs),
        "123" | "124" | "125" | "126" | "141" => (S::Exception, B::CustomsHold),
        "032" | "051" | "052" | "053" => (S::Exception, B::DelayWeather),
        "046" | "048" | "049" | "086" | "090" | "132" => (S::Exception, B::DelayOther),
        "059" | "081" => (S::Exception, B::Damaged),
        "068" | "129" => (S::Exception, B::Lost),
        "064" => (S::Exception, B::Refused),
        "069" => (S::Exception, B::Undeliverable),
        "147" | "149" => (S::Exception, B::SeizedOrDestroyed),
        "033" | "035" | "036" | "118" | "119" => (S::ReturningToSender, B::None),
        "034" | "067" => (S::ReturnedToSender, B::None),
        _ => return None,
    })
}

/// Two-letter activity codes that mean one thing whatever the type.
pub(crate) fn by_activity_code(code: &str) -> Option<(Status, SubStatus)> {
    Some(match code {
        "MP" => (S::LabelCreated, B::InfoReceived),
        "VP" => (S::Cancelled, B::LabelVoided),
        "OT" => (S::OutForDelivery, B::OnVehicle),
        "7W" => (S::Exception, B::DelayWeather),
        "AA" | "AB" | "AC" | "AD" | "AE" | "AF" | "AG" => (S::Exception, B::AddressIssue),
        _ => return None,
    })
}

/// The activity-type table (current types plus the legacy P, O and RS).
fn by_type(kind: &str, text: &Upper) -> Option<(Status, SubStatus)> {
    Some(match kind {
        "D" if text.has("ACCESS POINT") => (S::AvailableForPickup, B::AccessPoint),
        "D" if text.any(&["RETURNED TO SENDER", "RETURNED TO SHIPPER"]) => {
            (S::ReturnedToSender, B::None)
        }
        "D" => (S::Delivered, B::None),
        "I" | "W" | "DO" | "DD" => (S::InTransit, B::None),
        "M" => (S::LabelCreated, B::InfoReceived),
        "MV" => (S::Cancelled, B::LabelVoided),
        "P" => (S::PickedUp, B::Accepted),
        "O" => (S::OutForDelivery, B::OnVehicle),
        "RS" => (S::ReturningToSender, B::None),
        "NA" => (S::Stale, B::NoInfoYet),
        "X" if text.has("ADDRESS") => (S::Exception, B::AddressIssue),
        "X" if text.has("WEATHER") => (S::Exception, B::DelayWeather),
        "X" if text.has("REFUSED") => (S::Exception, B::Refused),
        "X" if text.has("DAMAGE") => (S::Exception, B::Damaged),
        "X" => (S::Exception, B::None),
        _ => return None,
    })
}

/// Classifies an activity from its type, two-letter code, 3-digit status
/// code and description.
pub(crate) fn classify(kind: &str, code: &str, status_code: &str, description: &str) -> Class {
    let text = Upper::new(&[description]);
    if let Some((status, sub)) = by_status_code(status_code) {
        return Class::Event(status, keywords::refine(status, sub, &text));
    }
    if kind == "U" || matches!(status_code, "153" | "154") {
        return Class::Meta;
    }
    let found = by_activity_code(code).or_else(|| by_type(kind, &text));
    match found {
        Some((status, sub)) => Class::Event(status, keywords::refine(status, sub, &text)),
        None => Class::Event(S::Unknown, B::UnmappedCode),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every mapped status code, written out independently of the table.
    const STATUS_CODES: &[(&str, Status, SubStatus)] = &[
        ("003", S::LabelCreated, B::InfoReceived),
        ("157", S::LabelCreated, B::InfoReceived),
        ("007", S::Cancelled, B::LabelVoided),
        ("043", S::Cancelled, B::None),
        ("038", S::PickedUp, B::Accepted),
        ("044", S::PickedUp, B::DroppedOff),
        ("045", S::PickedUp, B::DroppedOff),
        ("079", S::PickedUp, B::DroppedOff),
        ("005", S::InTransit, B::None),
        ("010", S::InTransit, B::None),
        ("025", S::InTransit, B::None),
        ("039", S::InTransit, B::None),
        ("047", S::InTransit, B::None),
        ("087", S::InTransit, B::None),
        ("012", S::InTransit, B::CustomsProcessing),
        ("092", S::InTransit, B::CustomsProcessing),
        ("014", S::InTransit, B::CustomsCleared),
        ("084", S::InTransit, B::CustomsCleared),
        ("134", S::InTransit, B::CustomsCleared),
        ("006", S::OutForDelivery, B::OnVehicle),
        ("021", S::OutForDelivery, B::OnVehicle),
        ("037", S::OutForDelivery, B::OnVehicle),
        ("072", S::OutForDelivery, B::OnVehicle),
        ("089", S::OutForDelivery, B::OnVehicle),
        ("091", S::OutForDelivery, B::OnVehicle),
        ("146", S::OutForDelivery, B::OnVehicle),
        ("017", S::AvailableForPickup, B::AccessPoint),
        ("040", S::AvailableForPickup, B::AccessPoint),
        ("144", S::AvailableForPickup, B::AccessPoint),
        ("161", S::AvailableForPickup, B::AccessPoint),
        ("022", S::DeliveryAttempted, B::RecipientUnavailable),
        ("023", S::DeliveryAttempted, B::RecipientUnavailable),
        ("024", S::DeliveryAttempted, B::RecipientUnavailable),
        ("060", S::DeliveryAttempted, B::None),
        ("145", S::DeliveryAttempted, B::None),
        ("061", S::DeliveryAttempted, B::SignatureRequired),
        ("062", S::DeliveryAttempted, B::PaymentRequired),
        ("011", S::Delivered, B::None),
        ("026", S::Delivered, B::Agent),
        ("143", S::Delivered, B::Agent),
        ("027", S::Exception, B::AddressIssue),
        ("028", S::Exception, B::AddressIssue),
        ("029", S::Exception, B::AddressIssue),
        ("050", S::Exception, B::AddressIssue),
        ("058", S::Exception, B::CustomsDocs),
        ("123", S::Exception, B::CustomsHold),
        ("124", S::Exception, B::CustomsHold),
        ("125", S::Exception, B::CustomsHold),
        ("126", S::Exception, B::CustomsHold),
        ("141", S::Exception, B::CustomsHold),
        ("032", S::Exception, B::DelayWeather),
        ("051", S::Exception, B::DelayWeather),
        ("052", S::Exception, B::DelayWeather),
        ("053", S::Exception, B::DelayWeather),
        ("046", S::Exception, B::DelayOther),
        ("048", S::Exception, B::DelayOther),
        ("049", S::Exception, B::DelayOther),
        ("086", S::Exception, B::DelayOther),
        ("090", S::Exception, B::DelayOther),
        ("132", S::Exception, B::DelayOther),
        ("059", S::Exception, B::Damaged),
        ("081", S::Exception, B::Damaged),
        ("068", S::Exception, B::Lost),
        ("129", S::Exception, B::Lost),
        ("064", S::Exception, B::Refused),
        ("069", S::Exception, B::Undeliverable),
        ("147", S::Exception, B::SeizedOrDestroyed),
        ("149", S::Exception, B::SeizedOrDestroyed),
        ("033", S::ReturningToSender, B::None),
        ("035", S::ReturningToSender, B::None),
        ("036", S::ReturningToSender, B::None),
        ("118", S::ReturningToSender, B::None),
        ("119", S::ReturningToSender, B::None),
        ("034", S::ReturnedToSender, B::None),
        ("067", S::ReturnedToSender, B::None),
    ];

    #[test]
    fn every_status_code() {
        for &(code, status, sub) in STATUS_CODES {
            // A neutral description, so text hints cannot fill the sub-status.
            assert_eq!(
                classify("I", "", code, "Status"),
                Class::Event(status, sub),
                "statusCode {code}"
            );
        }
    }

    #[test]
    fn every_activity_code_and_type() {
        let cases: &[(&str, &str, Status, SubStatus)] = &[
            ("M", "MP", S::LabelCreated, B::InfoReceived),
            ("MV", "VP", S::Cancelled, B::LabelVoided),
            ("I", "OT", S::OutForDelivery, B::OnVehicle),
            ("X", "7W", S::Exception, B::DelayWeather),
            ("X", "AA", S::Exception, B::AddressIssue),
            ("X", "AB", S::Exception, B::AddressIssue),
            ("X", "AC", S::Exception, B::AddressIssue),
            ("X", "AD", S::Exception, B::AddressIssue),
            ("X", "AE", S::Exception, B::AddressIssue),
            ("X", "AF", S::Exception, B::AddressIssue),
            ("X", "AG", S::Exception, B::AddressIssue),
            ("D", "", S::Delivered, B::None),
            ("I", "", S::InTransit, B::None),
            ("W", "", S::InTransit, B::None),
            ("DO", "", S::InTransit, B::None),
            ("DD", "", S::InTransit, B::None),
            ("M", "", S::LabelCreated, B::InfoReceived),
            ("MV", "", S::Cancelled, B::LabelVoided),
            ("P", "", S::PickedUp, B::Accepted),
            ("O", "", S::OutForDelivery, B::OnVehicle),
            ("RS", "", S::ReturningToSender, B::None),
            ("NA", "", S::Stale, B::NoInfoYet),
            ("X", "", S::Exception, B::None),
        ];
        for &(kind, code, status, sub) in cases {
            assert_eq!(
                classify(kind, code, "", "Status"),
                Class::Event(status, sub),
                "{kind}/{code}"
            );
        }
    }

    #[test]
    fn type_d_is_not_always_delivered() {
        assert_eq!(
            classify("D", "2Q", "161", "Delivered to UPS Access Point"),
            Class::Event(S::AvailableForPickup, B::AccessPoint)
        );
        assert_eq!(
            classify("D", "RS", "034", "Returned to Sender"),
            Class::Event(S::ReturnedToSender, B::None)
        );
        // Without a status code (Track Alert), the text decides.
        assert_eq!(
            classify(
                "D",
                "2Q",
                "",
                "Delivered to UPS Access Point\u{2122} and awaiting customer pickup"
            ),
            Class::Event(S::AvailableForPickup, B::AccessPoint)
        );
        assert_eq!(
            classify("D", "FS", "011", "DELIVERED"),
            Class::Event(S::Delivered, B::None)
        );
        assert_eq!(
            classify("D", "FS", "011", "Delivered, Front Door"),
            Class::Event(S::Delivered, B::LeftSafePlace)
        );
    }

    #[test]
    fn refused_and_customs() {
        assert_eq!(
            classify("X", "RF", "064", "Refused"),
            Class::Event(S::Exception, B::Refused)
        );
        assert_eq!(
            classify("I", "IP", "012", "Import Scan"),
            Class::Event(S::InTransit, B::CustomsProcessing)
        );
        assert_eq!(
            classify("X", "G1", "126", "Pending Government Agency Release"),
            Class::Event(S::Exception, B::CustomsHold)
        );
    }

    #[test]
    fn meta_and_unknown() {
        assert_eq!(classify("U", "PX", "", "Photo"), Class::Meta);
        assert_eq!(
            classify("U", "UP", "", "Updated delivery date"),
            Class::Meta
        );
        assert_eq!(classify("I", "", "153", "Updated"), Class::Meta);
        assert_eq!(
            classify("Q", "ZZ", "998", "???"),
            Class::Event(S::Unknown, B::UnmappedCode)
        );
        assert_eq!(
            classify("", "", "", ""),
            Class::Event(S::Unknown, B::UnmappedCode)
        );
        // An unknown status code under a known type keeps the type's meaning.
        assert_eq!(
            classify("I", "AR", "998", "Arrived at Facility"),
            Class::Event(S::InTransit, B::ArrivalScan)
        );
    }
}
