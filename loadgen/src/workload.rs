//! A seeded, deterministic generator of superdrop-shaped canonical input:
//! the orders of a drop placed within half an hour, then each parcel's 10 to
//! 20 scans over the following days, with the noise real carriers produce:
//! duplicates (webhook then poll, sometimes with the location reformatted),
//! in-transit ping storms at one facility, exceptions (some resolved, some
//! not), scans that arrive out of order or hours late, and a mix of
//! carriers.
//!
//! Items come out in log-time order, lazily: each parcel keeps a few bytes
//! of cursor and its own random stream, so a million parcels cost tens of
//! megabytes, not the whole materialized timeline. The same seed always
//! gives the same items. Uses its own SplitMix64 stream, no `rand`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use dropline_operators::model::{
    Carrier, CarrierEvent, Channel, Contact, EventSource, Location, ShipmentOrder, Status,
    SubStatus,
};

const SECOND_MS: u64 = 1000;
const MINUTE_MS: u64 = 60 * SECOND_MS;
const HOUR_MS: u64 = 60 * MINUTE_MS;

/// Shape of the generated workload. Rates are per mille.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Parcels (one order record each).
    pub shipments: u64,
    /// Stop after this many carrier events (0: run every timeline to its end).
    pub events_max: u64,
    /// Log time of the drop's start, ms since the epoch.
    pub start_ms: u64,
    /// The orders arrive within this window, ms (default 30 min).
    pub order_window_ms: u64,
    /// Scans re-sent as duplicates (default 50 = 5 %).
    pub duplicate_per_mille: u32,
    /// Parcels with an exception (default 35 = 3.5 %).
    pub exception_per_mille: u32,
    /// Scans that arrive hours late (default 15).
    pub late_per_mille: u32,
    /// In-transit stops that produce a ping storm (default 120).
    pub storm_per_mille: u32,
    /// Scans reported by polling (minutes of delay) rather than webhooks
    /// (default 300).
    pub poll_per_mille: u32,
    /// Parcels sharing an order with the previous parcel (default 30).
    pub multi_parcel_per_mille: u32,
    /// Emit a tick when this much log time passes between items (0: none;
    /// default 1000 ms, like the node's idle ticks).
    pub tick_interval_ms: u64,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            seed: 0x5eed_d309,
            shipments: 200_000,
            events_max: 0,
            start_ms: 1_719_835_200_000,
            order_window_ms: 30 * MINUTE_MS,
            duplicate_per_mille: 50,
            exception_per_mille: 35,
            late_per_mille: 15,
            storm_per_mille: 120,
            poll_per_mille: 300,
            multi_parcel_per_mille: 30,
            tick_interval_ms: 1000,
        }
    }
}

/// One input record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WorkItem {
    /// An order for the `orders` topic.
    Order(ShipmentOrder),
    /// A carrier event for the `carrier-events` topic.
    Event(CarrierEvent),
    /// An idle tick.
    Tick,
}

/// SplitMix64: a tiny, well-mixed, seedable stream.
#[derive(Clone, Copy, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }
    /// Uniform in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo).max(1))
    }
    /// True with probability `per_mille`/1000.
    pub fn chance(&mut self, per_mille: u32) -> bool {
        self.below(1000) < u64::from(per_mille)
    }
}

struct Place {
    city: &'static str,
    region: &'static str,
    postal: &'static str,
    country: &'static str,
    utc_offset_min: i16,
}

const fn place(
    city: &'static str,
    region: &'static str,
    postal: &'static str,
    utc_offset_min: i16,
) -> Place {
    Place {
        city,
        region,
        postal,
        country: "US",
        utc_offset_min,
    }
}

static PLACES: [Place; 20] = [
    place("Memphis", "TN", "38118", -300),
    place("Louisville", "KY", "40209", -240),
    place("Indianapolis", "IN", "46241", -240),
    place("Dallas", "TX", "75261", -300),
    place("Atlanta", "GA", "30320", -240),
    place("Chicago", "IL", "60666", -300),
    place("Newark", "NJ", "07114", -240),
    place("Queens", "NY", "11430", -240),
    place("Ontario", "CA", "91761", -420),
    place("Oakland", "CA", "94621", -420),
    place("Phoenix", "AZ", "85034", -420),
    place("Denver", "CO", "80249", -360),
    place("Seattle", "WA", "98158", -420),
    place("Miami", "FL", "33126", -240),
    place("Salt Lake City", "UT", "84116", -360),
    place("Kansas City", "MO", "64153", -300),
    place("Columbus", "OH", "43217", -240),
    place("Philadelphia", "PA", "19153", -240),
    place("Honolulu", "HI", "96819", -600),
    place("Charlotte", "NC", "28214", -240),
];

const ZONES: [&str; 8] = [
    "America/New_York",
    "America/New_York",
    "America/Chicago",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "Pacific/Honolulu",
];

const MARKETPLACES: [&str; 3] = ["dropshop", "kicksmarket", "cardvault"];

const EXCEPTIONS: [SubStatus; 8] = [
    SubStatus::AddressIssue,
    SubStatus::CustomsHold,
    SubStatus::DelayWeather,
    SubStatus::DelayWeather,
    SubStatus::DelayCarrier,
    SubStatus::Damaged,
    SubStatus::Lost,
    SubStatus::HeldAtFacility,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Label,
    PickedUp,
    Transit,
    Exception,
    OutForDelivery,
    Delivery,
    Done,
}

/// A parcel's cursor through its timeline.
#[derive(Clone, Copy, Debug)]
struct Parcel {
    rng: SplitMix64,
    occurred_ms: u64,
    carrier: Carrier,
    phase: Phase,
    /// In-transit stops left (an arrival and a departure each).
    stops_left: u8,
    /// Stop index at which the exception happens (`u8::MAX`: none).
    exception_at: u8,
    stop: u8,
    departed: bool,
    storm_left: u8,
    place: u8,
    attempts: u8,
}

/// Where an item waiting for its log time is kept: the heap orders small
/// keys, the items themselves stay put in a slab, so sifting moves 24 bytes
/// instead of a whole order or event.
#[derive(Debug, Default)]
struct Slab {
    items: Vec<Option<WorkItem>>,
    free: Vec<u32>,
}

impl Slab {
    fn insert(&mut self, item: WorkItem) -> u32 {
        match self.free.pop() {
            Some(slot) => {
                self.items[slot as usize] = Some(item);
                slot
            }
            None => {
                self.items.push(Some(item));
                (self.items.len() - 1) as u32
            }
        }
    }

    fn take(&mut self, slot: u32) -> Option<WorkItem> {
        let item = self.items.get_mut(slot as usize)?.take();
        self.free.push(slot);
        item
    }
}

/// The generator: an iterator of `(log time ms, item)` in log-time order.
pub struct Workload {
    config: WorkloadConfig,
    parcels: Vec<Parcel>,
    /// Parcels by the carrier time of their next scan.
    next_scan: BinaryHeap<Reverse<(u64, u32)>>,
    /// Materialized items by (log time, sequence), pointing into `slab`.
    pending: BinaryHeap<Reverse<(u64, u64, u32)>>,
    slab: Slab,
    seq: u64,
    events: u64,
    last_log_ms: u64,
}

/// The tracking number of parcel `i` in the carrier's format.
pub fn tracking_number(carrier: Carrier, i: u64) -> String {
    match carrier {
        Carrier::Ups => format!("1Z{:06X}03{:08}", (i * 7919) & 0xff_ffff, i),
        Carrier::Fedex => format!("{:012}", 700_000_000_000 + i),
        Carrier::Usps => format!("9400{:018}", 111_000_000_000_000 + i),
        Carrier::Dhl => format!("{:010}", 3_000_000_000 + i),
    }
}

fn carrier_for(rng: &mut SplitMix64) -> Carrier {
    match rng.below(100) {
        0..35 => Carrier::Ups,
        35..60 => Carrier::Fedex,
        60..90 => Carrier::Usps,
        _ => Carrier::Dhl,
    }
}

fn raw_code(carrier: Carrier, status: Status) -> &'static str {
    match (carrier, status) {
        (Carrier::Ups, Status::LabelCreated) => "MP",
        (Carrier::Ups, Status::PickedUp) => "OR",
        (Carrier::Ups, Status::InTransit) => "AR",
        (Carrier::Ups, Status::OutForDelivery) => "OT",
        (Carrier::Ups, Status::Delivered) => "KB",
        (Carrier::Ups, Status::DeliveryAttempted) => "NA",
        (Carrier::Ups, _) => "X",
        (Carrier::Fedex, Status::LabelCreated) => "OC",
        (Carrier::Fedex, Status::PickedUp) => "PU",
        (Carrier::Fedex, Status::InTransit) => "IT",
        (Carrier::Fedex, Status::OutForDelivery) => "OD",
        (Carrier::Fedex, Status::Delivered) => "DL",
        (Carrier::Fedex, Status::DeliveryAttempted) => "DE",
        (Carrier::Fedex, _) => "SE",
        (Carrier::Usps, Status::LabelCreated) => "GX",
        (Carrier::Usps, Status::PickedUp) => "03",
        (Carrier::Usps, Status::InTransit) => "10",
        (Carrier::Usps, Status::OutForDelivery) => "OF",
        (Carrier::Usps, Status::Delivered) => "01",
        (Carrier::Usps, Status::DeliveryAttempted) => "02",
        (Carrier::Usps, _) => "07",
        (Carrier::Dhl, Status::LabelCreated) => "pre-transit",
        (Carrier::Dhl, Status::Delivered) => "delivered",
        (Carrier::Dhl, Status::Exception | Status::DeliveryAttempted) => "failure",
        (Carrier::Dhl, _) => "transit",
    }
}

/// `YYYY-MM-DDTHH:MM:SS` for a Unix time in seconds (proleptic Gregorian).
fn civil(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

impl Workload {
    /// A generator for `config`.
    pub fn new(config: WorkloadConfig) -> Workload {
        let mut root = SplitMix64(config.seed);
        let n = config.shipments.min(u64::from(u32::MAX));
        let mut parcels = Vec::with_capacity(n as usize);
        let mut pending = BinaryHeap::with_capacity(n as usize);
        let mut slab = Slab::default();
        let mut next_scan = BinaryHeap::with_capacity(n as usize);
        let mut seq = 0u64;
        let mut order_no = 0u64;
        for i in 0..n {
            let mut rng = SplitMix64(root.next_u64());
            let carrier = carrier_for(&mut rng);
            let ordered_ms = config.start_ms + rng.below(config.order_window_ms.max(1));
            if i == 0 || !rng.chance(config.multi_parcel_per_mille) {
                order_no += 1;
            }
            let order = make_order(&mut rng, carrier, i, order_no, ordered_ms, config.shipments);
            let slot = slab.insert(WorkItem::Order(order));
            pending.push(Reverse((ordered_ms, seq, slot)));
            seq += 1;
            let stops = rng.range(3, 8) as u8;
            let exception_at = if rng.chance(config.exception_per_mille) {
                rng.below(u64::from(stops)) as u8
            } else {
                u8::MAX
            };
            let first_scan = ordered_ms + rng.range(2 * MINUTE_MS, 6 * HOUR_MS);
            parcels.push(Parcel {
                rng,
                occurred_ms: first_scan,
                carrier,
                phase: Phase::Label,
                stops_left: stops,
                exception_at,
                stop: 0,
                departed: false,
                storm_left: 0,
                place: rng.below(PLACES.len() as u64) as u8,
                attempts: 0,
            });
            next_scan.push(Reverse((first_scan, i as u32)));
        }
        Workload {
            last_log_ms: config.start_ms,
            config,
            parcels,
            next_scan,
            pending,
            slab,
            seq,
            events: 0,
        }
    }

    /// Carrier events emitted so far.
    pub fn events_emitted(&self) -> u64 {
        self.events
    }

    fn push(&mut self, log_ms: u64, item: WorkItem) {
        let slot = self.slab.insert(item);
        self.pending.push(Reverse((log_ms, self.seq, slot)));
        self.seq += 1;
    }

    /// Generates parcel `i`'s next scan (and its noise) into `pending`.
    fn step(&mut self, i: u32) {
        let cfg = &self.config;
        let (dup_pm, late_pm, poll_pm, storm_pm) = (
            cfg.duplicate_per_mille,
            cfg.late_per_mille,
            cfg.poll_per_mille,
            cfg.storm_per_mille,
        );
        let p = &mut self.parcels[i as usize];
        let mut moves = false;
        let rng = &mut p.rng;
        let (status, sub, next_gap_ms) = match p.phase {
            Phase::Label => {
                p.phase = Phase::PickedUp;
                (
                    Status::LabelCreated,
                    SubStatus::InfoReceived,
                    rng.range(4 * HOUR_MS, 30 * HOUR_MS),
                )
            }
            Phase::PickedUp => {
                p.phase = Phase::Transit;
                (
                    Status::PickedUp,
                    SubStatus::Accepted,
                    rng.range(HOUR_MS, 6 * HOUR_MS),
                )
            }
            Phase::Transit if p.storm_left > 0 => {
                p.storm_left -= 1;
                let sub = if p.storm_left.is_multiple_of(2) {
                    SubStatus::ArrivalScan
                } else {
                    SubStatus::Forwarded
                };
                (Status::InTransit, sub, rng.range(MINUTE_MS, 6 * MINUTE_MS))
            }
            Phase::Transit => {
                if p.exception_at == p.stop && p.departed {
                    p.phase = Phase::Exception;
                    p.exception_at = u8::MAX;
                    let sub = EXCEPTIONS[rng.below(EXCEPTIONS.len() as u64) as usize];
                    let gap = rng.range(HOUR_MS, 40 * HOUR_MS);
                    (Status::Exception, sub, gap)
                } else if !p.departed {
                    p.departed = true;
                    if rng.chance(storm_pm) {
                        p.storm_left = rng.range(3, 7) as u8;
                    }
                    (
                        Status::InTransit,
                        SubStatus::ArrivalScan,
                        rng.range(20 * MINUTE_MS, 3 * HOUR_MS),
                    )
                } else {
                    p.departed = false;
                    p.stop += 1;
                    p.stops_left = p.stops_left.saturating_sub(1);
                    if p.stops_left == 0 {
                        p.phase = Phase::OutForDelivery;
                    }
                    moves = true;
                    (
                        Status::InTransit,
                        SubStatus::DepartureScan,
                        rng.range(2 * HOUR_MS, 12 * HOUR_MS),
                    )
                }
            }
            Phase::Exception => {
                // Lost and damaged parcels never recover in this workload.
                p.phase = Phase::Transit;
                (
                    Status::InTransit,
                    SubStatus::ProblemResolved,
                    rng.range(HOUR_MS, 8 * HOUR_MS),
                )
            }
            Phase::OutForDelivery => {
                p.phase = Phase::Delivery;
                (
                    Status::OutForDelivery,
                    SubStatus::OnVehicle,
                    rng.range(HOUR_MS, 8 * HOUR_MS),
                )
            }
            Phase::Delivery => {
                if p.attempts == 0 && rng.chance(60) {
                    p.attempts += 1;
                    p.phase = Phase::OutForDelivery;
                    (
                        Status::DeliveryAttempted,
                        SubStatus::RecipientUnavailable,
                        rng.range(16 * HOUR_MS, 26 * HOUR_MS),
                    )
                } else {
                    p.phase = Phase::Done;
                    (Status::Delivered, SubStatus::LeftSafePlace, 0)
                }
            }
            Phase::Done => return,
        };
        let lost =
            status == Status::Exception && matches!(sub, SubStatus::Lost | SubStatus::Damaged);
        if lost {
            p.phase = Phase::Done;
        }
        let occurred = p.occurred_ms;
        let carrier = p.carrier;
        let place = &PLACES[usize::from(p.place)];
        let polled = rng.chance(poll_pm);
        let mut log_ms = occurred
            + if polled {
                rng.range(MINUTE_MS, 120 * MINUTE_MS)
            } else {
                rng.range(SECOND_MS, 90 * SECOND_MS)
            };
        if rng.chance(late_pm) {
            log_ms += rng.range(2 * HOUR_MS, 12 * HOUR_MS);
        }
        if moves {
            // The next arrival is somewhere else.
            let n = PLACES.len() as u64;
            p.place = ((u64::from(p.place) + 1 + rng.below(n - 1)) % n) as u8;
        }
        let duplicate = rng.chance(dup_pm).then(|| {
            let reformat = rng.chance(400);
            (log_ms + rng.range(10 * SECOND_MS, 3 * HOUR_MS), reformat)
        });
        let next = (p.phase != Phase::Done).then(|| occurred + next_gap_ms.max(SECOND_MS));
        if let Some(t) = next {
            p.occurred_ms = t;
        }
        let event = CarrierEvent {
            tracking_number: tracking_number(carrier, u64::from(i)),
            carrier,
            status,
            sub_status: sub,
            raw_code: raw_code(carrier, status).to_string(),
            raw_text: status.as_str().to_string(),
            occurred_at_ms: occurred as i64,
            local_time: civil(occurred as i64 / 1000 + i64::from(place.utc_offset_min) * 60),
            utc_offset_minutes: Some(place.utc_offset_min),
            location: Location {
                city: Some(place.city.to_string()),
                region: Some(place.region.to_string()),
                postal_code: Some(place.postal.to_string()),
                country: Some(place.country.to_string()),
            },
            source: if polled {
                EventSource::Poll
            } else {
                EventSource::Webhook
            },
            received_at_ms: log_ms as i64,
        };
        if let Some((dup_log_ms, reformat)) = duplicate {
            let mut copy = event.clone();
            copy.source = EventSource::Poll;
            copy.received_at_ms = dup_log_ms as i64;
            if reformat {
                copy.location.city =
                    Some(format!("{}, {}", place.city.to_uppercase(), place.region));
                copy.location.postal_code = None;
            }
            self.push(dup_log_ms, WorkItem::Event(copy));
        }
        self.push(log_ms, WorkItem::Event(event));
        if let Some(t) = next {
            self.next_scan.push(Reverse((t, i)));
        }
    }
}

fn make_order(
    rng: &mut SplitMix64,
    carrier: Carrier,
    i: u64,
    order_no: u64,
    ordered_ms: u64,
    shipments: u64,
) -> ShipmentOrder {
    let marketplace = MARKETPLACES[rng.below(MARKETPLACES.len() as u64) as usize];
    let buyer = (order_no.wrapping_mul(0x9e37_79b9) ^ 0x5bd1) % (shipments * 9 / 10 + 1);
    let promised_from = ordered_ms + rng.range(72, 120) * HOUR_MS;
    let contacts = Channel::ALL
        .into_iter()
        .map(|channel| {
            let consent = match channel {
                Channel::Webhook => true,
                Channel::Email => rng.chance(920),
                Channel::Sms => rng.chance(600),
                Channel::Push => rng.chance(450),
            };
            Contact {
                channel,
                address: format!("sealed:{}:{i}", channel.as_str()),
                consent,
            }
        })
        .collect();
    ShipmentOrder {
        tracking_number: tracking_number(carrier, i),
        carrier,
        marketplace: marketplace.to_string(),
        seller: format!("seller-{}", rng.below(200)),
        order_id: format!("ORD-{order_no:09}"),
        skus: vec![format!("SKU-{}", rng.below(40))],
        buyer_id: format!("B{buyer:09}"),
        promised_from_ms: promised_from as i64,
        promised_to_ms: (promised_from + 72 * HOUR_MS) as i64,
        buyer_locale: "en-US".to_string(),
        buyer_time_zone: ZONES[rng.below(ZONES.len() as u64) as usize].to_string(),
        destination_postal_code: PLACES[rng.below(PLACES.len() as u64) as usize]
            .postal
            .to_string(),
        drop: true,
        contacts,
    }
}

impl Iterator for Workload {
    type Item = (u64, WorkItem);

    fn next(&mut self) -> Option<(u64, WorkItem)> {
        loop {
            if self.config.events_max != 0 && self.events >= self.config.events_max {
                return None;
            }
            let pending_at = self.pending.peek().map(|Reverse((t, _, _))| *t);
            let scan_at = self.next_scan.peek().map(|Reverse((t, _))| *t);
            // Anything pending at or before the next scan's carrier time is
            // final: later scans get later log times.
            match (pending_at, scan_at) {
                (None, None) => return None,
                (Some(p), s) if s.is_none_or(|s| p <= s) => {
                    let interval = self.config.tick_interval_ms;
                    if interval > 0 && p >= self.last_log_ms + 2 * interval {
                        // An idle gap: the node would have ticked.
                        self.last_log_ms = p - p % interval;
                        return Some((self.last_log_ms, WorkItem::Tick));
                    }
                    let Reverse((log_ms, _, slot)) = self.pending.pop()?;
                    let item = self.slab.take(slot)?;
                    if matches!(item, WorkItem::Event(_)) {
                        self.events += 1;
                    }
                    self.last_log_ms = log_ms.max(self.last_log_ms);
                    return Some((self.last_log_ms, item));
                }
                _ => {
                    let Reverse((_, i)) = self.next_scan.pop()?;
                    self.step(i);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn small() -> WorkloadConfig {
        WorkloadConfig {
            shipments: 2000,
            ..WorkloadConfig::default()
        }
    }

    #[test]
    fn same_seed_same_items() {
        let a: Vec<_> = Workload::new(small()).take(5000).collect();
        let b: Vec<_> = Workload::new(small()).take(5000).collect();
        assert_eq!(a, b);
        let c: Vec<_> = Workload::new(WorkloadConfig { seed: 7, ..small() })
            .take(5000)
            .collect();
        assert_ne!(a, c);
    }

    #[test]
    fn superdrop_shape() {
        let items: Vec<_> = Workload::new(small()).collect();
        let mut last = 0;
        let mut orders = 0u64;
        let mut per_parcel: HashMap<String, u64> = HashMap::new();
        let mut seen: HashSet<(String, i64, Status, SubStatus)> = HashSet::new();
        let (mut dups, mut exceptions, mut out_of_order, mut reformatted) =
            (0u64, 0u64, 0u64, 0u64);
        let mut newest: HashMap<String, i64> = HashMap::new();
        let mut carriers = HashSet::new();
        for (log, item) in &items {
            assert!(*log >= last, "log time never decreases");
            last = *log;
            match item {
                WorkItem::Order(o) => {
                    orders += 1;
                    assert!(*log < small().start_ms + small().order_window_ms);
                    assert!(o.contacts.iter().any(|c| c.channel == Channel::Webhook));
                }
                WorkItem::Event(e) => {
                    carriers.insert(e.carrier);
                    *per_parcel.entry(e.tracking_number.clone()).or_default() += 1;
                    let key = (
                        e.tracking_number.clone(),
                        e.occurred_at_ms,
                        e.status,
                        e.sub_status,
                    );
                    if !seen.insert(key) {
                        dups += 1;
                        if e.location.postal_code.is_none() {
                            reformatted += 1;
                        }
                    }
                    if e.status == Status::Exception {
                        exceptions += 1;
                    }
                    let n = newest.entry(e.tracking_number.clone()).or_insert(i64::MIN);
                    if e.occurred_at_ms < *n {
                        out_of_order += 1;
                    }
                    *n = (*n).max(e.occurred_at_ms);
                }
                WorkItem::Tick => {}
            }
        }
        let events: u64 = per_parcel.values().sum();
        assert_eq!(orders, 2000);
        assert_eq!(per_parcel.len(), 2000);
        let avg = events as f64 / 2000.0;
        assert!((10.0..=20.0).contains(&avg), "scans per parcel {avg}");
        let dup_rate = dups as f64 / events as f64;
        assert!((0.03..0.08).contains(&dup_rate), "duplicates {dup_rate}");
        assert!(reformatted > 0);
        let exc_rate = exceptions as f64 / 2000.0;
        assert!((0.02..0.06).contains(&exc_rate), "exceptions {exc_rate}");
        assert!(out_of_order > 0);
        assert_eq!(carriers.len(), 4);
    }

    #[test]
    fn events_max_bounds_the_stream() {
        let cfg = WorkloadConfig {
            events_max: 1234,
            ..small()
        };
        let mut w = Workload::new(cfg);
        let n = w
            .by_ref()
            .filter(|(_, i)| matches!(i, WorkItem::Event(_)))
            .count();
        assert_eq!(n, 1234);
        assert_eq!(w.events_emitted(), 1234);
    }

    #[test]
    fn civil_time() {
        assert_eq!(civil(1_719_835_200), "2024-07-01T12:00:00");
        assert_eq!(civil(0), "1970-01-01T00:00:00");
    }
}
