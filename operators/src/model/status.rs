//! The canonical status taxonomy: a milestone (`Status`) and the reason or
//! manner behind it (`SubStatus`).
//!
//! Every carrier code is mapped onto this superset; the raw code and text
//! travel alongside because carriers reuse codes across meanings.

use serde::{Deserialize, Serialize};

/// Which milestone a shipment reached.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[rkyv(compare(PartialEq), derive(Debug, Clone, Copy, PartialEq, Eq))]
#[repr(u8)]
pub enum Status {
    /// The label exists; the carrier has not touched the parcel yet.
    LabelCreated = 1,
    /// The carrier has the parcel.
    PickedUp = 2,
    /// Moving through the network (including routine customs).
    InTransit = 3,
    /// On the vehicle for delivery today.
    OutForDelivery = 4,
    /// Waiting at an access point, post office or locker.
    AvailableForPickup = 5,
    /// The carrier tried and failed to deliver.
    DeliveryAttempted = 6,
    /// Delivered (terminal for the buyer).
    Delivered = 7,
    /// Something is wrong and may need action.
    Exception = 8,
    /// On its way back to the sender.
    ReturningToSender = 9,
    /// Back with the sender (terminal).
    ReturnedToSender = 10,
    /// The label was voided (terminal).
    Cancelled = 11,
    /// No information yet, or tracking expired.
    Stale = 12,
    /// A carrier code we do not map; the raw code is kept and counted.
    Unknown = 13,
}

impl Status {
    /// Every status, in declaration order.
    pub const ALL: [Status; 13] = [
        Status::LabelCreated,
        Status::PickedUp,
        Status::InTransit,
        Status::OutForDelivery,
        Status::AvailableForPickup,
        Status::DeliveryAttempted,
        Status::Delivered,
        Status::Exception,
        Status::ReturningToSender,
        Status::ReturnedToSender,
        Status::Cancelled,
        Status::Stale,
        Status::Unknown,
    ];

    /// The snake_case name used in JSON and rules files.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::LabelCreated => "label_created",
            Status::PickedUp => "picked_up",
            Status::InTransit => "in_transit",
            Status::OutForDelivery => "out_for_delivery",
            Status::AvailableForPickup => "available_for_pickup",
            Status::DeliveryAttempted => "delivery_attempted",
            Status::Delivered => "delivered",
            Status::Exception => "exception",
            Status::ReturningToSender => "returning_to_sender",
            Status::ReturnedToSender => "returned_to_sender",
            Status::Cancelled => "cancelled",
            Status::Stale => "stale",
            Status::Unknown => "unknown",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Statuses that are never held back by debounce or digests, and that
    /// notify at critical priority by default.
    pub fn is_critical(self) -> bool {
        matches!(
            self,
            Status::Exception
                | Status::DeliveryAttempted
                | Status::OutForDelivery
                | Status::AvailableForPickup
                | Status::Delivered
                | Status::ReturningToSender
        )
    }

    /// Statuses after which nothing more is expected.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Delivered | Status::ReturnedToSender | Status::Cancelled
        )
    }

    /// Progress rank used to tell whether a status *advances* a shipment
    /// (debounce releases on an advance). Exceptions and unknowns rank 0:
    /// they are never an advance by rank, they are critical or ignored.
    pub fn progress_rank(self) -> u8 {
        match self {
            Status::Stale | Status::Unknown | Status::Exception | Status::Cancelled => 0,
            Status::LabelCreated => 1,
            Status::PickedUp => 2,
            Status::InTransit => 3,
            Status::OutForDelivery => 4,
            Status::DeliveryAttempted | Status::AvailableForPickup => 5,
            Status::ReturningToSender => 6,
            Status::Delivered | Status::ReturnedToSender => 7,
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! sub_statuses {
    ($( $variant:ident = $n:literal => $name:literal ),+ $(,)?) => {
        /// Why or how a milestone happened (the taxonomy's sub-status).
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord,
            Serialize, Deserialize,
            rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
        )]
        #[serde(rename_all = "snake_case")]
        #[rkyv(compare(PartialEq), derive(Debug, Clone, Copy, PartialEq, Eq))]
        #[repr(u8)]
        pub enum SubStatus {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant = $n,
            )+
        }

        impl SubStatus {
            /// Every sub-status, in declaration order.
            pub const ALL: &'static [SubStatus] = &[$(SubStatus::$variant),+];

            /// The snake_case name used in JSON and rules files.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(SubStatus::$variant => $name,)+
                }
            }

            /// Parses the snake_case name.
            pub fn parse(name: &str) -> Option<SubStatus> {
                match name {
                    $($name => Some(SubStatus::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

sub_statuses! {
    None = 0 => "none",
    // label_created
    InfoReceived = 1 => "info_received",
    AwaitingDropoff = 2 => "awaiting_dropoff",
    // picked_up
    Accepted = 3 => "accepted",
    DroppedOff = 4 => "dropped_off",
    // in_transit
    ArrivalScan = 5 => "arrival_scan",
    DepartureScan = 6 => "departure_scan",
    CustomsProcessing = 7 => "customs_processing",
    CustomsCleared = 8 => "customs_cleared",
    Forwarded = 9 => "forwarded",
    ArrivedDestinationCountry = 10 => "arrived_destination_country",
    ProblemResolved = 11 => "problem_resolved",
    // out_for_delivery
    OnVehicle = 12 => "on_vehicle",
    AppointmentScheduled = 13 => "appointment_scheduled",
    CustomerContacted = 14 => "customer_contacted",
    // available_for_pickup
    AccessPoint = 15 => "access_point",
    PostOffice = 16 => "post_office",
    Locker = 17 => "locker",
    // delivery_attempted
    RecipientUnavailable = 18 => "recipient_unavailable",
    BusinessClosed = 19 => "business_closed",
    NoSecureLocation = 20 => "no_secure_location",
    AccessIssue = 21 => "access_issue",
    SignatureRequired = 22 => "signature_required",
    PaymentRequired = 23 => "payment_required",
    // delivered
    Signed = 24 => "signed",
    LeftSafePlace = 25 => "left_safe_place",
    Neighbor = 26 => "neighbor",
    PickedUpByCustomer = 27 => "picked_up_by_customer",
    Agent = 28 => "agent",
    CodCollected = 29 => "cod_collected",
    // exception
    AddressIssue = 30 => "address_issue",
    CustomsHold = 31 => "customs_hold",
    CustomsDocs = 32 => "customs_docs",
    DutiesUnpaid = 33 => "duties_unpaid",
    DelayWeather = 34 => "delay_weather",
    DelayCarrier = 35 => "delay_carrier",
    DelayOther = 36 => "delay_other",
    HeldAtFacility = 37 => "held_at_facility",
    Damaged = 38 => "damaged",
    Lost = 39 => "lost",
    Refused = 40 => "refused",
    Unclaimed = 41 => "unclaimed",
    RejectedByCarrier = 42 => "rejected_by_carrier",
    SeizedOrDestroyed = 43 => "seized_or_destroyed",
    Security = 44 => "security",
    Undeliverable = 45 => "undeliverable",
    // returning_to_sender
    SenderRequested = 46 => "sender_requested",
    // cancelled
    LabelVoided = 47 => "label_voided",
    // stale
    NoInfoYet = 48 => "no_info_yet",
    Expired = 49 => "expired",
    // unknown
    UnmappedCode = 50 => "unmapped_code",
}

impl std::fmt::Display for SubStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        for s in SubStatus::ALL {
            assert_eq!(SubStatus::parse(s.as_str()), Some(*s));
        }
        assert_eq!(Status::parse("shipped"), None);
    }

    #[test]
    fn serde_names_match_as_str() {
        for s in Status::ALL {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        for s in SubStatus::ALL {
            let json = serde_json::to_string(s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
    }
}
