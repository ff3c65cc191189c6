//! Exception classification and remediation.
//!
//! A buyer told "exception" can do nothing with it. Each exception scan is
//! classified from its canonical sub-status into the few classes that need
//! different help, and each class carries the remediation the buyer or
//! support needs: a link to verify the address, a link to upload customs
//! documents, an informational notice for weather, a claim path for damage
//! or loss. The delivery edge turns the remediation kind into a concrete
//! link; the operators only decide which one applies.

use serde::{Deserialize, Serialize};

use crate::model::{Status, SubStatus};

/// What kind of problem an exception is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum ExceptionClass {
    /// The address is wrong, incomplete or undeliverable.
    AddressIssue = 1,
    /// Held by customs, documents or duties needed.
    Customs = 2,
    /// Delayed by weather.
    Weather = 3,
    /// Delayed by the carrier or for another operational reason.
    Delay = 4,
    /// Damaged, lost, seized or destroyed.
    DamagedOrLost = 5,
    /// Refused by the recipient or rejected by the carrier.
    Refused = 6,
    /// Waiting at a facility or unclaimed.
    Held = 7,
    /// Anything else (security, unmapped exception reasons).
    Other = 8,
}

/// What the buyer or support should be offered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum Remediation {
    /// Nothing to offer.
    #[default]
    None = 0,
    /// A link where the buyer verifies or corrects the address.
    AddressVerificationLink = 1,
    /// A link where the buyer uploads customs documents or pays duties.
    CustomsDocumentsLink = 2,
    /// An informational notice (no action needed).
    InformationalNotice = 3,
    /// The claim path (damage or loss).
    ClaimPath = 4,
    /// Contact support (refusals, holds, unclassified).
    ContactSupport = 5,
}

impl ExceptionClass {
    /// Every class.
    pub const ALL: [ExceptionClass; 8] = [
        ExceptionClass::AddressIssue,
        ExceptionClass::Customs,
        ExceptionClass::Weather,
        ExceptionClass::Delay,
        ExceptionClass::DamagedOrLost,
        ExceptionClass::Refused,
        ExceptionClass::Held,
        ExceptionClass::Other,
    ];

    /// Classifies a scan; `None` when it is not an exception.
    pub fn classify(status: Status, sub_status: SubStatus) -> Option<ExceptionClass> {
        if status != Status::Exception {
            return None;
        }
        Some(match sub_status {
            SubStatus::AddressIssue | SubStatus::Undeliverable => ExceptionClass::AddressIssue,
            SubStatus::CustomsHold | SubStatus::CustomsDocs | SubStatus::DutiesUnpaid => {
                ExceptionClass::Customs
            }
            SubStatus::DelayWeather => ExceptionClass::Weather,
            SubStatus::DelayCarrier | SubStatus::DelayOther => ExceptionClass::Delay,
            SubStatus::Damaged | SubStatus::Lost | SubStatus::SeizedOrDestroyed => {
                ExceptionClass::DamagedOrLost
            }
            SubStatus::Refused | SubStatus::RejectedByCarrier => ExceptionClass::Refused,
            SubStatus::HeldAtFacility | SubStatus::Unclaimed => ExceptionClass::Held,
            _ => ExceptionClass::Other,
        })
    }

    /// The remediation offered for this class.
    pub fn remediation(self) -> Remediation {
        match self {
            ExceptionClass::AddressIssue => Remediation::AddressVerificationLink,
            ExceptionClass::Customs => Remediation::CustomsDocumentsLink,
            ExceptionClass::Weather | ExceptionClass::Delay => Remediation::InformationalNotice,
            ExceptionClass::DamagedOrLost => Remediation::ClaimPath,
            ExceptionClass::Refused | ExceptionClass::Held | ExceptionClass::Other => {
                Remediation::ContactSupport
            }
        }
    }

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ExceptionClass::AddressIssue => "address_issue",
            ExceptionClass::Customs => "customs",
            ExceptionClass::Weather => "weather",
            ExceptionClass::Delay => "delay",
            ExceptionClass::DamagedOrLost => "damaged_or_lost",
            ExceptionClass::Refused => "refused",
            ExceptionClass::Held => "held",
            ExceptionClass::Other => "other",
        }
    }

    pub(crate) fn from_code(v: u8) -> Option<ExceptionClass> {
        ExceptionClass::ALL.into_iter().find(|c| *c as u8 == v)
    }
}

impl Remediation {
    pub(crate) fn from_code(v: u8) -> Option<Remediation> {
        [
            Remediation::None,
            Remediation::AddressVerificationLink,
            Remediation::CustomsDocumentsLink,
            Remediation::InformationalNotice,
            Remediation::ClaimPath,
            Remediation::ContactSupport,
        ]
        .into_iter()
        .find(|r| *r as u8 == v)
    }
}

/// Whether a scan resolves an open exception: any later progress scan
/// (not another exception, not unknown or stale) does.
pub(crate) fn resolves_exception(status: Status) -> bool {
    !matches!(status, Status::Exception | Status::Unknown | Status::Stale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remediation_per_class() {
        let cases = [
            (
                SubStatus::AddressIssue,
                Remediation::AddressVerificationLink,
            ),
            (SubStatus::CustomsHold, Remediation::CustomsDocumentsLink),
            (SubStatus::CustomsDocs, Remediation::CustomsDocumentsLink),
            (SubStatus::DutiesUnpaid, Remediation::CustomsDocumentsLink),
            (SubStatus::DelayWeather, Remediation::InformationalNotice),
            (SubStatus::Damaged, Remediation::ClaimPath),
            (SubStatus::Lost, Remediation::ClaimPath),
            (SubStatus::Refused, Remediation::ContactSupport),
            (SubStatus::Security, Remediation::ContactSupport),
        ];
        for (sub, want) in cases {
            let class = ExceptionClass::classify(Status::Exception, sub).unwrap();
            assert_eq!(class.remediation(), want, "{sub}");
        }
        assert_eq!(
            ExceptionClass::classify(Status::InTransit, SubStatus::CustomsProcessing),
            None,
            "routine customs processing is not an exception"
        );
    }

    #[test]
    fn codes_round_trip() {
        for c in ExceptionClass::ALL {
            assert_eq!(ExceptionClass::from_code(c as u8), Some(c));
        }
        assert_eq!(Remediation::from_code(4), Some(Remediation::ClaimPath));
        assert_eq!(Remediation::from_code(9), None);
    }
}
