//! FedEx scan event types to the canonical taxonomy.
//!
//! `eventType` decides; `derivedStatusCode` is not used because FedEx
//! derives `IT` for out-for-delivery, pickup-ready and arrival scans alike.
//! Two types need more than the type: `DE` (delivery exception) and `SE`
//! (shipment exception) are split on the scan's `exceptionCode`, the
//! latest status's `ancillaryDetails[].reason`, and then the exception
//! text; the delay types `DY`, `DD` and `PD` are split on
//! `delayDetail.type`.

use super::keywords::{self, Upper};
use crate::model::{Status, SubStatus};

use Status as S;
use SubStatus as B;

/// The plain event-type table (types that need no further detail).
pub(crate) fn by_event_type(event_type: &str) -> Option<(Status, SubStatus)> {
    Some(match event_type {
        "OC" | "OX" => (S::LabelCreated, B::InfoReceived),
        "PU" | "PX" => (S::PickedUp, B::Accepted),
        "AR" | "AF" | "FD" => (S::InTransit, B::ArrivalScan),
        "DP" | "LO" => (S::InTransit, B::DepartureScan),
        "AA" | "AC" | "AX" | "IT" | "IX" | "SF" | "TR" | "PF" | "PL" | "EA" | "EO" | "AO"
        | "AE" => (S::InTransit, B::None),
        "CP" => (S::InTransit, B::CustomsProcessing),
        "CC" => (S::InTransit, B::CustomsCleared),
        "CD" => (S::Exception, B::CustomsHold),
        "OD" | "ED" | "AD" => (S::OutForDelivery, B::OnVehicle),
        "HP" | "HL" => (S::AvailableForPickup, B::AccessPoint),
        "DL" => (S::Delivered, B::None),
        "RS" => (S::ReturningToSender, B::None),
        "CA" => (S::Cancelled, B::LabelVoided),
        _ => return None,
    })
}

/// FedEx exception (DEX) codes whose meaning is settled.
fn by_exception_code(code: &str) -> Option<(Status, SubStatus)> {
    Some(match code {
        "03" => (S::Exception, B::AddressIssue),
        "07" => (S::Exception, B::Refused),
        "08" | "15" => (S::DeliveryAttempted, B::RecipientUnavailable),
        _ => return None,
    })
}

/// Exception text rules, in order (refusal before address before attempt).
fn by_exception_text(text: &Upper) -> Option<(Status, SubStatus)> {
    Some(if text.any(&["REFUSED", "REJECTED BY RECIPIENT"]) {
        (S::Exception, B::Refused)
    } else if text.any(&[
        "INCORRECT ADDRESS",
        "ADDRESS CORRECTION",
        "ADDRESS INCOMPLETE",
        "UNABLE TO LOCATE",
        "WRONG ADDRESS",
    ]) {
        (S::Exception, B::AddressIssue)
    } else if text.any(&["NOT AVAILABLE", "NOT IN", "NO ONE", "NOBODY"]) {
        (S::DeliveryAttempted, B::RecipientUnavailable)
    } else if text.has("CLOSED") {
        (S::DeliveryAttempted, B::BusinessClosed)
    } else if text.any(&["NO ACCESS", "ACCESS TO", "GATE"]) {
        (S::DeliveryAttempted, B::AccessIssue)
    } else if text.has("SIGNATURE") {
        (S::DeliveryAttempted, B::SignatureRequired)
    } else if text.any(&["PAYMENT", "COD AMOUNT"]) {
        (S::DeliveryAttempted, B::PaymentRequired)
    } else if text.has("DAMAGE") {
        (S::Exception, B::Damaged)
    } else if text.has("WEATHER") {
        (S::Exception, B::DelayWeather)
    } else if text.any(&["CUSTOMS", "CLEARANCE"]) {
        (S::Exception, B::CustomsHold)
    } else if text.any(&["MISSORT", "MISROUTE", "SORTING ERROR"]) {
        (S::Exception, B::DelayCarrier)
    } else if text.has("SECURITY") {
        (S::Exception, B::Security)
    } else {
        return None;
    })
}

fn by_delay_type(delay_type: &str, text: &Upper) -> (Status, SubStatus) {
    match delay_type {
        "WEATHER" => (S::Exception, B::DelayWeather),
        "OPERATIONAL" => (S::Exception, B::DelayCarrier),
        "CLEARANCE" => (S::Exception, B::CustomsHold),
        _ if text.has("WEATHER") => (S::Exception, B::DelayWeather),
        _ => (S::Exception, B::DelayOther),
    }
}

/// The detail a scan carries besides its type.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Detail<'a> {
    /// `exceptionCode` (often empty).
    pub(crate) exception_code: &'a str,
    /// `ancillaryDetails[0].reason` of the latest status, when this scan is
    /// the latest status.
    pub(crate) reason: &'a str,
    /// `delayDetail.type`.
    pub(crate) delay_type: &'a str,
    /// `eventDescription`.
    pub(crate) description: &'a str,
    /// `exceptionDescription` and `ancillaryDetails[0].reasonDescription`.
    pub(crate) exception_text: &'a str,
}

/// Classifies one scan event.
pub(crate) fn classify(event_type: &str, d: &Detail<'_>) -> (Status, SubStatus) {
    match event_type {
        "DE" | "SE" => {
            let default = if event_type == "DE" {
                (S::DeliveryAttempted, B::None)
            } else {
                (S::Exception, B::None)
            };
            let code = if d.exception_code.is_empty() {
                d.reason
            } else {
                d.exception_code
            };
            by_exception_code(code.trim())
                .or_else(|| by_exception_text(&Upper::new(&[d.exception_text, d.description])))
                .unwrap_or(default)
        }
        "DY" | "DD" | "PD" => by_delay_type(
            d.delay_type,
            &Upper::new(&[d.description, d.exception_text]),
        ),
        _ => match by_event_type(event_type) {
            Some((status, sub)) => (
                status,
                keywords::refine(status, sub, &Upper::new(&[d.description])),
            ),
            None => (S::Unknown, B::UnmappedCode),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVENT_TYPES: &[(&str, Status, SubStatus)] = &[
        ("OC", S::LabelCreated, B::InfoReceived),
        ("OX", S::LabelCreated, B::InfoReceived),
        ("PU", S::PickedUp, B::Accepted),
        ("PX", S::PickedUp, B::Accepted),
        ("AR", S::InTransit, B::ArrivalScan),
        ("AF", S::InTransit, B::ArrivalScan),
        ("FD", S::InTransit, B::ArrivalScan),
        ("DP", S::InTransit, B::DepartureScan),
        ("LO", S::InTransit, B::DepartureScan),
        ("AA", S::InTransit, B::None),
        ("AC", S::InTransit, B::None),
        ("AX", S::InTransit, B::None),
        ("IT", S::InTransit, B::None),
        ("IX", S::InTransit, B::None),
        ("SF", S::InTransit, B::None),
        ("TR", S::InTransit, B::None),
        ("PF", S::InTransit, B::None),
        ("PL", S::InTransit, B::None),
        ("EA", S::InTransit, B::None),
        ("EO", S::InTransit, B::None),
        ("AO", S::InTransit, B::None),
        ("AE", S::InTransit, B::None),
        ("CP", S::InTransit, B::CustomsProcessing),
        ("CC", S::InTransit, B::CustomsCleared),
        ("CD", S::Exception, B::CustomsHold),
        ("OD", S::OutForDelivery, B::OnVehicle),
        ("ED", S::OutForDelivery, B::OnVehicle),
        ("AD", S::OutForDelivery, B::OnVehicle),
        ("HP", S::AvailableForPickup, B::AccessPoint),
        ("HL", S::AvailableForPickup, B::AccessPoint),
        ("DL", S::Delivered, B::None),
        ("RS", S::ReturningToSender, B::None),
        ("CA", S::Cancelled, B::LabelVoided),
        ("DE", S::DeliveryAttempted, B::None),
        ("SE", S::Exception, B::None),
        ("DY", S::Exception, B::DelayOther),
        ("DD", S::Exception, B::DelayOther),
        ("PD", S::Exception, B::DelayOther),
        ("ZZ", S::Unknown, B::UnmappedCode),
    ];

    #[test]
    fn every_event_type() {
        let neutral = Detail {
            description: "Status",
            ..Detail::default()
        };
        for &(code, status, sub) in EVENT_TYPES {
            assert_eq!(classify(code, &neutral), (status, sub), "eventType {code}");
        }
    }

    #[test]
    fn delivery_exceptions_split() {
        let d = |code, reason, text| Detail {
            exception_code: code,
            reason,
            exception_text: text,
            description: "Delivery exception",
            ..Detail::default()
        };
        let cases: &[(&str, &str, &str, Status, SubStatus)] = &[
            ("03", "", "", S::Exception, B::AddressIssue),
            ("07", "", "", S::Exception, B::Refused),
            ("08", "", "", S::DeliveryAttempted, B::RecipientUnavailable),
            (
                "",
                "15",
                "Customer not available or business closed",
                S::DeliveryAttempted,
                B::RecipientUnavailable,
            ),
            ("A25", "", "Refused by recipient", S::Exception, B::Refused),
            ("", "", "Incorrect address", S::Exception, B::AddressIssue),
            (
                "",
                "",
                "Business closed",
                S::DeliveryAttempted,
                B::BusinessClosed,
            ),
            (
                "",
                "",
                "No access to delivery location",
                S::DeliveryAttempted,
                B::AccessIssue,
            ),
            ("", "", "Package damaged", S::Exception, B::Damaged),
            ("A52", "", "", S::DeliveryAttempted, B::None),
        ];
        for &(code, reason, text, status, sub) in cases {
            assert_eq!(
                classify("DE", &d(code, reason, text)),
                (status, sub),
                "{code}/{reason}/{text}"
            );
        }
        assert_eq!(
            classify("SE", &d("", "", "Weather delay")),
            (S::Exception, B::DelayWeather)
        );
        assert_eq!(classify("SE", &d("", "", "")), (S::Exception, B::None));
    }

    #[test]
    fn delays_split_on_delay_type() {
        let d = |t| Detail {
            delay_type: t,
            description: "Delay",
            ..Detail::default()
        };
        assert_eq!(
            classify("DY", &d("WEATHER")),
            (S::Exception, B::DelayWeather)
        );
        assert_eq!(
            classify("DD", &d("OPERATIONAL")),
            (S::Exception, B::DelayCarrier)
        );
        assert_eq!(
            classify("PD", &d("CLEARANCE")),
            (S::Exception, B::CustomsHold)
        );
        assert_eq!(classify("DY", &d("LOCAL")), (S::Exception, B::DelayOther));
    }
}
