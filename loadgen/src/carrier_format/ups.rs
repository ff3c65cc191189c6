//! UPS Track API responses and Track Alert webhook bodies.
//!
//! Activities carry the local `date`/`time`, the GMT date and time and
//! `gmtOffset`; Track Alert events carry the local and GMT fields and an
//! `activityStatus` with the type, the two-letter code and the 3-digit
//! status code.

use dropline_operators::model::{Status, SubStatus};
use serde::Serialize;

use super::{
    Journey, JourneyScan, Row, hms, local_time, newest_first, offset_text, opt, pick, utc_time, ymd,
};

use Status as S;
use SubStatus as B;

/// One reverse-table row.
pub(crate) struct Code {
    pub(crate) status: Status,
    pub(crate) sub: SubStatus,
    kind: &'static str,
    code: &'static str,
    status_code: &'static str,
    text: &'static str,
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
    kind: &'static str,
    code: &'static str,
    status_code: &'static str,
    text: &'static str,
) -> Code {
    Code {
        status,
        sub,
        kind,
        code,
        status_code,
        text,
    }
}

/// The reverse table; the first row of a status is its default.
pub(crate) const CODES: &[Code] = &[
    c(
        S::LabelCreated,
        B::InfoReceived,
        "M",
        "MP",
        "003",
        "Shipper created a label, UPS has not received the package yet.",
    ),
    c(
        S::PickedUp,
        B::Accepted,
        "P",
        "PU",
        "038",
        "Picked up by UPS",
    ),
    c(
        S::PickedUp,
        B::DroppedOff,
        "I",
        "AP",
        "044",
        "Dropped off at a UPS Access Point, on the way to UPS",
    ),
    c(S::InTransit, B::None, "I", "OR", "005", "Origin Scan"),
    c(
        S::InTransit,
        B::ArrivalScan,
        "I",
        "AR",
        "005",
        "Arrived at Facility",
    ),
    c(
        S::InTransit,
        B::DepartureScan,
        "I",
        "DP",
        "005",
        "Departed from Facility",
    ),
    c(
        S::InTransit,
        B::Forwarded,
        "I",
        "FW",
        "005",
        "Package forwarded to a new facility",
    ),
    c(
        S::InTransit,
        B::CustomsProcessing,
        "I",
        "IP",
        "012",
        "Import Scan",
    ),
    c(
        S::InTransit,
        B::CustomsCleared,
        "I",
        "CR",
        "014",
        "Your package has cleared customs",
    ),
    c(
        S::OutForDelivery,
        B::OnVehicle,
        "I",
        "OT",
        "072",
        "Out For Delivery Today",
    ),
    c(
        S::AvailableForPickup,
        B::AccessPoint,
        "D",
        "2Q",
        "161",
        "Delivered to UPS Access Point and awaiting customer pickup",
    ),
    c(
        S::DeliveryAttempted,
        B::RecipientUnavailable,
        "X",
        "48",
        "022",
        "The receiver was not available for delivery.",
    ),
    c(
        S::DeliveryAttempted,
        B::None,
        "X",
        "DA",
        "060",
        "A delivery attempt was made.",
    ),
    c(
        S::DeliveryAttempted,
        B::SignatureRequired,
        "X",
        "AS",
        "061",
        "An adult signature is required for delivery.",
    ),
    c(
        S::DeliveryAttempted,
        B::PaymentRequired,
        "X",
        "CF",
        "062",
        "Payment is required before delivery.",
    ),
    c(S::Delivered, B::None, "D", "FS", "011", "DELIVERED"),
    c(
        S::Delivered,
        B::LeftSafePlace,
        "D",
        "FS",
        "011",
        "DELIVERED, Front Door",
    ),
    c(
        S::Delivered,
        B::Signed,
        "D",
        "FS",
        "011",
        "DELIVERED, Signed by receiver",
    ),
    c(
        S::Delivered,
        B::Neighbor,
        "D",
        "FS",
        "011",
        "DELIVERED, Left with neighbor",
    ),
    c(
        S::Delivered,
        B::Locker,
        "D",
        "FS",
        "011",
        "DELIVERED, Parcel Locker",
    ),
    c(
        S::Delivered,
        B::PickedUpByCustomer,
        "D",
        "KB",
        "011",
        "DELIVERED, Picked up by customer",
    ),
    c(
        S::Delivered,
        B::CodCollected,
        "D",
        "FS",
        "011",
        "DELIVERED, COD collected",
    ),
    c(
        S::Delivered,
        B::Agent,
        "D",
        "KM",
        "143",
        "Delivered to agent",
    ),
    c(
        S::Exception,
        B::AddressIssue,
        "X",
        "AA",
        "029",
        "Exception: Action Required. The address is incomplete.",
    ),
    c(
        S::Exception,
        B::CustomsDocs,
        "X",
        "CD",
        "058",
        "Additional documentation is required for customs clearance.",
    ),
    c(
        S::Exception,
        B::CustomsHold,
        "X",
        "G1",
        "126",
        "Pending Government Agency Release",
    ),
    c(
        S::Exception,
        B::DelayWeather,
        "X",
        "7W",
        "052",
        "Severe weather conditions have delayed delivery.",
    ),
    c(
        S::Exception,
        B::DelayOther,
        "X",
        "D1",
        "046",
        "A delay has occurred.",
    ),
    c(
        S::Exception,
        B::Damaged,
        "X",
        "DM",
        "059",
        "The package was damaged.",
    ),
    c(
        S::Exception,
        B::Lost,
        "X",
        "LF",
        "068",
        "Sent to Lost and Found",
    ),
    c(
        S::Exception,
        B::Refused,
        "X",
        "RF",
        "064",
        "The receiver refused the delivery.",
    ),
    c(
        S::Exception,
        B::Undeliverable,
        "X",
        "UD",
        "069",
        "The package is undeliverable.",
    ),
    c(
        S::Exception,
        B::SeizedOrDestroyed,
        "X",
        "SZ",
        "147",
        "The package was seized by a government agency.",
    ),
    c(
        S::ReturningToSender,
        B::None,
        "RS",
        "RS",
        "033",
        "Returning to shipper",
    ),
    c(
        S::ReturningToSender,
        B::Refused,
        "RS",
        "RS",
        "033",
        "Returning to shipper: refused by receiver",
    ),
    c(
        S::ReturningToSender,
        B::Unclaimed,
        "RS",
        "RS",
        "033",
        "Returning to shipper: unclaimed",
    ),
    c(
        S::ReturningToSender,
        B::SenderRequested,
        "RS",
        "RS",
        "033",
        "Returning to shipper at shipper request",
    ),
    c(
        S::ReturningToSender,
        B::Undeliverable,
        "RS",
        "RS",
        "033",
        "Returning to shipper: undeliverable",
    ),
    c(
        S::ReturnedToSender,
        B::None,
        "D",
        "RS",
        "034",
        "Returned to Sender",
    ),
    c(
        S::Cancelled,
        B::LabelVoided,
        "MV",
        "VP",
        "007",
        "Shipment information voided",
    ),
    c(S::Stale, B::NoInfoYet, "NA", "NA", "", "Not available"),
    c(
        S::Unknown,
        B::UnmappedCode,
        "Q",
        "ZZ",
        "999",
        "Status unavailable",
    ),
];

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Address<'a> {
    city: Option<&'a str>,
    state_province: Option<&'a str>,
    postal_code: Option<&'a str>,
    country: Option<&'a str>,
    country_code: Option<&'a str>,
}

#[derive(Serialize)]
pub(crate) struct ActivityLocation<'a> {
    address: Address<'a>,
    slic: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ActivityStatus {
    #[serde(rename = "type")]
    kind: &'static str,
    code: &'static str,
    status_code: &'static str,
    description: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Activity<'a> {
    location: ActivityLocation<'a>,
    status: ActivityStatus,
    date: String,
    time: String,
    gmt_date: String,
    gmt_time: String,
    gmt_offset: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Package<'a> {
    tracking_number: &'a str,
    activity: Vec<Activity<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Shipment<'a> {
    inquiry_number: &'a str,
    package: [Package<'a>; 1],
}

#[derive(Serialize)]
pub(crate) struct TrackResponse<'a> {
    shipment: Vec<Shipment<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PollBody<'a> {
    track_response: TrackResponse<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AlertLocation<'a> {
    city: Option<&'a str>,
    state_province: Option<&'a str>,
    postal_code: Option<&'a str>,
    country: Option<&'a str>,
}

/// One Track Alert event.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Alert<'a> {
    tracking_number: &'a str,
    local_activity_date: String,
    local_activity_time: String,
    gmt_activity_date: String,
    gmt_activity_time: String,
    activity_location: AlertLocation<'a>,
    activity_status: ActivityStatus,
    scheduled_delivery_date: &'static str,
    actual_delivery_date: &'static str,
    actual_delivery_time: &'static str,
}

fn status(scan: &JourneyScan) -> ActivityStatus {
    let code = pick(CODES, scan.status, scan.sub_status);
    ActivityStatus {
        kind: code.kind,
        code: code.code,
        status_code: code.status_code,
        description: code.text,
    }
}

fn activity(scan: &JourneyScan) -> Activity<'_> {
    let local = local_time(scan);
    let utc = utc_time(scan);
    let l = &scan.location;
    Activity {
        location: ActivityLocation {
            address: Address {
                city: opt(&l.city),
                state_province: opt(&l.region),
                postal_code: opt(&l.postal_code),
                country: opt(&l.country),
                country_code: opt(&l.country),
            },
            slic: "0000",
        },
        status: status(scan),
        date: ymd(local),
        time: hms(local, ""),
        gmt_date: ymd(utc),
        gmt_time: hms(utc, ":"),
        gmt_offset: offset_text(scan.utc_offset_minutes),
    }
}

pub(crate) fn poll(journeys: &[Journey]) -> PollBody<'_> {
    PollBody {
        track_response: TrackResponse {
            shipment: journeys
                .iter()
                .map(|j| Shipment {
                    inquiry_number: &j.tracking_number,
                    package: [Package {
                        tracking_number: &j.tracking_number,
                        activity: newest_first(j).map(activity).collect(),
                    }],
                })
                .collect(),
        },
    }
}

/// Track Alert events for every scan of `journeys`, journey by journey.
pub(crate) fn alerts(journeys: &[Journey]) -> Vec<Alert<'_>> {
    journeys
        .iter()
        .flat_map(|journey| {
            journey.scans.iter().map(move |scan| {
                let local = local_time(scan);
                let utc = utc_time(scan);
                let l = &scan.location;
                Alert {
                    tracking_number: &journey.tracking_number,
                    local_activity_date: ymd(local),
                    local_activity_time: hms(local, ""),
                    gmt_activity_date: ymd(utc),
                    gmt_activity_time: hms(utc, ""),
                    activity_location: AlertLocation {
                        city: opt(&l.city),
                        state_province: opt(&l.region),
                        postal_code: opt(&l.postal_code),
                        country: opt(&l.country),
                    },
                    activity_status: status(scan),
                    scheduled_delivery_date: "",
                    actual_delivery_date: "",
                    actual_delivery_time: "",
                }
            })
        })
        .collect()
}
