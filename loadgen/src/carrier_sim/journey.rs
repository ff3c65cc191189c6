//! Invented journeys: a seeded, realistic sequence of scans per parcel.
//!
//! A domestic parcel goes label → pickup → a chain of hub arrivals and
//! departures → out for delivery → delivered, sometimes with a weather
//! delay on the way or a failed first attempt. Every scan is expressed as
//! a (status, sub-status) pair the carrier has a code for, so that what
//! the simulator says happened is exactly what a correct normalizer reads
//! back (the ground truth the end-to-end tests compare the log with).
//! Offsets come from the real zone of each city at that instant.

use chrono::{DateTime, Offset, TimeZone};
use dropline_operators::model::{Carrier, Location, Status, SubStatus};
use dropline_operators::normalize::zone::us_zone;

use super::config::JourneyShape;
use crate::carrier_format::{Journey, JourneyScan, representable, representable_pairs};

/// A small, deterministic PRNG (SplitMix64): journeys must repeat for a
/// seed on every platform.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix(u64);

impl SplitMix {
    pub(crate) fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `percent` / 100.
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

/// (city, state, ZIP) of origins, hubs and destinations.
const PLACES: &[(&str, &str, &str)] = &[
    ("NEW YORK", "NY", "10001"),
    ("NEWARK", "NJ", "07102"),
    ("PHILADELPHIA", "PA", "19104"),
    ("ATLANTA", "GA", "30303"),
    ("MIAMI", "FL", "33101"),
    ("CHICAGO", "IL", "60607"),
    ("LOUISVILLE", "KY", "40209"),
    ("MEMPHIS", "TN", "38118"),
    ("INDIANAPOLIS", "IN", "46241"),
    ("DALLAS", "TX", "75201"),
    ("HOUSTON", "TX", "77002"),
    ("DENVER", "CO", "80202"),
    ("PHOENIX", "AZ", "85004"),
    ("SALT LAKE CITY", "UT", "84101"),
    ("LOS ANGELES", "CA", "90001"),
    ("OAKLAND", "CA", "94607"),
    ("SEATTLE", "WA", "98101"),
    ("PORTLAND", "OR", "97201"),
    ("MINNEAPOLIS", "MN", "55401"),
    ("KANSAS CITY", "MO", "64101"),
];

fn location(place: (&str, &str, &str)) -> Location {
    Location {
        city: Some(place.0.to_string()),
        region: Some(place.1.to_string()),
        postal_code: Some(place.2.to_string()),
        country: Some("US".to_string()),
    }
}

/// The offset from UTC of `place` at `at_ms`, in minutes.
fn offset_minutes(place: (&str, &str, &str), at_ms: i64) -> i16 {
    let Some(tz) = us_zone(place.1, Some(place.2)) else {
        return 0;
    };
    let Some(utc) = DateTime::from_timestamp_millis(at_ms) else {
        return 0;
    };
    let seconds = tz
        .offset_from_utc_datetime(&utc.naive_utc())
        .fix()
        .local_minus_utc();
    (seconds / 60) as i16
}

/// The pair the carrier writes for the wanted one: the exact pair, else
/// the status with its first expressible sub-status, else in transit.
fn expressible(carrier: Carrier, status: Status, sub: SubStatus) -> (Status, SubStatus) {
    if representable(carrier, status, sub) {
        return (status, sub);
    }
    let pairs = representable_pairs(carrier);
    pairs
        .iter()
        .find(|(s, _)| *s == status)
        .or_else(|| pairs.iter().find(|(s, _)| *s == Status::InTransit))
        .copied()
        .unwrap_or((Status::InTransit, SubStatus::None))
}

/// Invents the journey of one parcel registered at `registered_at_ms`.
/// Deterministic in (`seed`, `tracking_number`).
pub(crate) fn invent(
    carrier: Carrier,
    tracking_number: &str,
    seed: u64,
    registered_at_ms: i64,
    shape: &JourneyShape,
) -> Journey {
    let mut h = seed ^ 0xD1B5_4A32_D192_ED03;
    for b in tracking_number.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
    }
    let mut rng = SplitMix::new(h);
    let total = rng.range(
        u64::from(shape.scans_min.max(4)),
        u64::from(shape.scans_max.max(shape.scans_min.max(4))),
    ) as usize;
    let pick = |rng: &mut SplitMix| PLACES[rng.range(0, PLACES.len() as u64 - 1) as usize];
    let origin = pick(&mut rng);
    let mut destination = pick(&mut rng);
    if destination == origin {
        destination =
            PLACES[(PLACES.iter().position(|p| *p == origin).unwrap_or(0) + 7) % PLACES.len()];
    }

    // The wanted milestones, with where they happen.
    let mut plan: Vec<(Status, SubStatus, (&str, &str, &str))> = vec![
        (Status::LabelCreated, SubStatus::InfoReceived, origin),
        (Status::PickedUp, SubStatus::Accepted, origin),
    ];
    let failed_attempt = total >= 8 && rng.chance(15);
    let weather = total >= 7 && rng.chance(15);
    let tail = if failed_attempt { 4 } else { 2 };
    let middle = total - plan.len() - tail - usize::from(weather);
    let mut at = origin;
    for i in 0..middle {
        let last = i + 1 == middle;
        let (sub, place) = if i % 2 == 0 {
            (SubStatus::DepartureScan, at)
        } else {
            at = if last { destination } else { pick(&mut rng) };
            (SubStatus::ArrivalScan, at)
        };
        plan.push((Status::InTransit, sub, place));
        if weather && i == middle / 2 {
            plan.push((Status::Exception, SubStatus::DelayWeather, place));
        }
    }
    if failed_attempt {
        plan.push((Status::OutForDelivery, SubStatus::OnVehicle, destination));
        plan.push((
            Status::DeliveryAttempted,
            SubStatus::RecipientUnavailable,
            destination,
        ));
    }
    plan.push((Status::OutForDelivery, SubStatus::OnVehicle, destination));
    let delivered = if rng.chance(50) {
        SubStatus::LeftSafePlace
    } else {
        SubStatus::Signed
    };
    plan.push((Status::Delivered, delivered, destination));

    let mut t_ms = registered_at_ms + rng.range(0, shape.first_scan_delay_ms_max) as i64;
    let mut scans = Vec::with_capacity(plan.len());
    for (status, sub, place) in plan {
        // Carriers print whole seconds; keep scans at least a second apart
        // so each has its own instant.
        t_ms = (t_ms / 1000) * 1000;
        let (status, sub_status) = expressible(carrier, status, sub);
        scans.push(JourneyScan {
            status,
            sub_status,
            occurred_at_ms: t_ms,
            utc_offset_minutes: offset_minutes(place, t_ms),
            location: location(place),
        });
        let gap = rng.range(
            shape.scan_gap_ms_min,
            shape.scan_gap_ms_max.max(shape.scan_gap_ms_min),
        );
        t_ms += gap.max(1000) as i64;
    }
    Journey {
        tracking_number: tracking_number.to_string(),
        scans,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::carrier_sim::config::JOURNEY_SHAPE_DEFAULT;

    #[test]
    fn journeys_repeat_for_a_seed_and_have_realistic_shape() {
        for carrier in Carrier::ALL {
            for seq in 0..50 {
                let tn = crate::carrier_format::tracking_number(carrier, seq);
                let a = invent(carrier, &tn, 7, 1_700_000_000_000, &JOURNEY_SHAPE_DEFAULT);
                let b = invent(carrier, &tn, 7, 1_700_000_000_000, &JOURNEY_SHAPE_DEFAULT);
                assert_eq!(a, b);
                assert!((10..=20).contains(&a.scans.len()), "{}", a.scans.len());
                assert_eq!(
                    a.scans.first().map(|s| s.status),
                    Some(Status::LabelCreated)
                );
                assert_eq!(a.scans.last().map(|s| s.status), Some(Status::Delivered));
                assert!(
                    a.scans
                        .windows(2)
                        .all(|w| w[0].occurred_at_ms < w[1].occurred_at_ms)
                );
                for s in &a.scans {
                    assert!(
                        representable(carrier, s.status, s.sub_status),
                        "{carrier} {:?}",
                        s.status
                    );
                }
            }
        }
    }
}
