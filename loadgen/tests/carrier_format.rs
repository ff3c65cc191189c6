//! Round trip: canonical journeys rendered in each carrier's dialect and
//! normalized back give the same status, sub-status (where the carrier can
//! express it), instant, offset and location.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dropline_loadgen::carrier_format::{
    Journey, JourneyScan, render_poll, render_webhook, render_webhook_batch, representable,
    representable_pairs, supports, tracking_number,
};
use dropline_operators::model::{Carrier, CarrierEvent, EventSource, Location, Status, SubStatus};
use dropline_operators::normalize::normalize;
use proptest::prelude::*;

/// Offsets real zones use, in minutes (all whole quarter hours).
const OFFSETS: &[i16] = &[
    -600, -540, -480, -420, -360, -300, -240, 0, 60, 120, 330, 345, 480, 600,
];

fn place(
    city: &str,
    region: Option<&str>,
    postal: Option<&str>,
    country: Option<&str>,
) -> Location {
    Location {
        city: Some(city.to_owned()),
        region: region.map(str::to_owned),
        postal_code: postal.map(str::to_owned),
        country: country.map(str::to_owned),
    }
}

fn places() -> Vec<Location> {
    vec![
        place("ATLANTA", Some("GA"), Some("30303"), Some("US")),
        place("HONOLULU", Some("HI"), Some("96813"), Some("US")),
        place("PHOENIX", Some("AZ"), Some("85004"), Some("US")),
        place("QUEENS NY DISTRIBUTION CENTER", None, None, Some("US")),
        place("TORONTO", Some("ON"), Some("M5V 2T6"), Some("CA")),
        place("BERLIN", None, Some("10115"), Some("DE")),
        Location::default(),
    ]
}

fn carrier() -> impl Strategy<Value = Carrier> {
    prop::sample::select(Carrier::ALL.to_vec())
}

/// (status, sub-status) drawn mostly from what the carrier can express,
/// sometimes from the whole taxonomy.
fn pair(carrier: Carrier) -> impl Strategy<Value = (Status, SubStatus)> {
    let exact = prop::sample::select(representable_pairs(carrier));
    let any = (
        prop::sample::select(Status::ALL.to_vec()),
        prop::sample::select(SubStatus::ALL.to_vec()),
    );
    prop_oneof![4 => exact, 1 => any]
}

fn scans(carrier: Carrier) -> impl Strategy<Value = Vec<JourneyScan>> {
    let start_s = 1_577_836_800i64..1_893_456_000i64; // 2020..2030
    (
        start_s,
        prop::collection::vec(
            (
                pair(carrier),
                1i64..200_000,
                prop::sample::select(OFFSETS.to_vec()),
                prop::sample::select(places()),
            ),
            1..10,
        ),
    )
        .prop_map(|(start, steps)| {
            let mut t = start;
            steps
                .into_iter()
                .map(|((status, sub_status), step, offset, location)| {
                    t += step;
                    JourneyScan {
                        status,
                        sub_status,
                        occurred_at_ms: t * 1000,
                        utc_offset_minutes: offset,
                        location,
                    }
                })
                .collect()
        })
}

fn journeys() -> impl Strategy<Value = (Carrier, Vec<Journey>)> {
    carrier().prop_flat_map(|c| {
        (Just(c), prop::collection::vec(scans(c), 1..4), any::<u32>()).prop_map(|(c, all, seq)| {
            let journeys = all
                .into_iter()
                .enumerate()
                .map(|(i, scans)| Journey {
                    tracking_number: tracking_number(c, u64::from(seq) + i as u64),
                    scans,
                })
                .collect();
            (c, journeys)
        })
    })
}

fn check(
    carrier: Carrier,
    journey: &Journey,
    events: &[&CarrierEvent],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(events.len(), journey.scans.len());
    for (scan, event) in journey.scans.iter().zip(events) {
        let (status, sub) = (scan.status, scan.sub_status);
        if representable(carrier, status, sub) {
            prop_assert_eq!(
                (event.status, event.sub_status),
                (status, sub),
                "{}",
                event.raw_text
            );
        } else if supports(carrier, status) {
            prop_assert_eq!(event.status, status, "{}", event.raw_text);
        } else {
            prop_assert_eq!(
                (event.status, event.sub_status),
                (Status::Unknown, SubStatus::UnmappedCode)
            );
        }
        prop_assert_eq!(event.occurred_at_ms, scan.occurred_at_ms);
        prop_assert_eq!(event.utc_offset_minutes, Some(scan.utc_offset_minutes));
        prop_assert_eq!(&event.location, &scan.location);
        prop_assert_eq!(&event.tracking_number, &journey.tracking_number);
        prop_assert_eq!(event.carrier, carrier);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn poll_bodies_round_trip((carrier, journeys) in journeys()) {
        let body = render_poll(carrier, &journeys);
        let out = normalize(carrier, &body, 0, EventSource::Poll).unwrap();
        for journey in &journeys {
            let events: Vec<_> = out.events.iter().filter(|e| e.tracking_number == journey.tracking_number).collect();
            check(carrier, journey, &events)?;
        }
        prop_assert_eq!(out.events.len(), journeys.iter().map(|j| j.scans.len()).sum::<usize>());
    }

    #[test]
    fn batched_webhook_bodies_round_trip((carrier, journeys) in journeys()) {
        let body = render_webhook_batch(carrier, &journeys);
        let out = normalize(carrier, &body, 0, EventSource::Webhook).unwrap();
        for journey in &journeys {
            let events: Vec<_> = out.events.iter().filter(|e| e.tracking_number == journey.tracking_number).collect();
            check(carrier, journey, &events)?;
        }
        prop_assert_eq!(out.events.len(), journeys.iter().map(|j| j.scans.len()).sum::<usize>());
    }

    #[test]
    fn webhook_bodies_round_trip((carrier, journeys) in journeys()) {
        for journey in &journeys {
            let body = render_webhook(carrier, journey);
            let out = normalize(carrier, &body, 0, EventSource::Webhook).unwrap();
            let events: Vec<_> = out.events.iter().collect();
            check(carrier, journey, &events)?;
        }
    }
}

#[test]
fn every_representable_pair_round_trips_in_both_shapes() {
    let at = places();
    for carrier in Carrier::ALL {
        for (i, (status, sub_status)) in representable_pairs(carrier).into_iter().enumerate() {
            let journey = Journey {
                tracking_number: tracking_number(carrier, i as u64),
                scans: vec![JourneyScan {
                    status,
                    sub_status,
                    occurred_at_ms: 1_732_301_880_000,
                    utc_offset_minutes: -300,
                    location: at[0].clone(),
                }],
            };
            for (body, source) in [
                (
                    render_poll(carrier, std::slice::from_ref(&journey)),
                    EventSource::Poll,
                ),
                (render_webhook(carrier, &journey), EventSource::Webhook),
            ] {
                let out = normalize(carrier, &body, 0, source).unwrap();
                assert_eq!(out.events.len(), 1, "{carrier} {status}/{sub_status}");
                let e = &out.events[0];
                assert_eq!(
                    (e.status, e.sub_status),
                    (status, sub_status),
                    "{carrier} {source:?} {}",
                    e.raw_text
                );
            }
        }
    }
}

#[test]
fn unsupported_statuses_are_the_ones_the_carrier_has_no_code_for() {
    let expected: [(Carrier, &[Status]); 4] = [
        (Carrier::Ups, &[]),
        (Carrier::Fedex, &[Status::ReturnedToSender, Status::Stale]),
        (Carrier::Usps, &[Status::Cancelled]),
        (Carrier::Dhl, &[Status::Cancelled, Status::Stale]),
    ];
    for (carrier, missing) in expected {
        let unsupported: Vec<Status> = Status::ALL
            .into_iter()
            .filter(|s| !supports(carrier, *s))
            .collect();
        assert_eq!(unsupported, missing, "{carrier}");
    }
}

#[test]
fn fedex_poll_holds_several_numbers() {
    let journeys: Vec<Journey> = (0..3)
        .map(|i| Journey {
            tracking_number: tracking_number(Carrier::Fedex, i),
            scans: vec![JourneyScan {
                status: Status::PickedUp,
                sub_status: SubStatus::Accepted,
                occurred_at_ms: 1_723_000_000_000,
                utc_offset_minutes: -300,
                location: places()[0].clone(),
            }],
        })
        .collect();
    let body: serde_json::Value =
        serde_json::from_slice(&render_poll(Carrier::Fedex, &journeys)).unwrap();
    assert_eq!(
        body["output"]["completeTrackResults"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}
