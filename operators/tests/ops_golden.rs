//! Golden digests of the chain's encoded outputs and snapshot over a fixed
//! workload. Intent ids, decisions and snapshots outlive a process (they are
//! idempotency keys and checkpoints), so a change that alters any byte of
//! them must be deliberate: it changes these digests, and needs a format
//! version and a note in docs/FORMAT.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ops_support;

use std::hash::Hasher;

use dropline_operators::model::{CarrierEvent, Status, SubStatus};
use dropline_operators::ops::{ChainConfig, EventInput, Outputs, Rules, SourceRef};
use ops_support::{HOUR, Harness, MIN, T0, event, order};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const PATH: [(Status, SubStatus); 9] = [
    (Status::LabelCreated, SubStatus::InfoReceived),
    (Status::PickedUp, SubStatus::Accepted),
    (Status::InTransit, SubStatus::ArrivalScan),
    (Status::InTransit, SubStatus::DepartureScan),
    (Status::InTransit, SubStatus::ArrivalScan),
    (Status::Exception, SubStatus::AddressIssue),
    (Status::InTransit, SubStatus::ProblemResolved),
    (Status::OutForDelivery, SubStatus::OnVehicle),
    (Status::Delivered, SubStatus::LeftSafePlace),
];
const PLACES: [(&str, &str); 4] = [
    ("Memphis", "38118"),
    ("MEMPHIS, TN", "38118-2201"),
    ("Louisville", "40213"),
    ("Dallas", ""),
];
const ZONES: [&str; 4] = ["UTC", "America/New_York", "Asia/Tokyo", "America/Chicago"];

enum Input {
    Order(Box<dropline_operators::model::ShipmentOrder>),
    Event(Box<CarrierEvent>),
    Tick,
}

/// About 6,000 records over 400 parcels and ten days of log time: shared
/// orders and buyers (consolidation, caps), pings at one place (debounce),
/// duplicates, late scans, exceptions left open (escalation), parcels that
/// go quiet (stale) and retirement.
fn workload() -> Vec<(u64, Input)> {
    let mut rng = Rng(7);
    let parcels = 400u64;
    let tn = |i: u64| format!("1ZGOLD{i:010}");
    let mut steps = Vec::new();
    let mut log = T0;
    for i in 0..parcels {
        if !i.is_multiple_of(9) {
            let o = order(
                &tn(i),
                &format!("ORD-{}", i / 2),
                &format!("buyer-{}", i % 150),
                ZONES[(i % 4) as usize],
            );
            steps.push((log, Input::Order(Box::new(o))));
            log += rng.below(2_000);
        }
    }
    let mut progress = vec![0usize; parcels as usize];
    let mut occurred = vec![T0; parcels as usize];
    let mut sent: Vec<CarrierEvent> = Vec::new();
    while log < T0 + 10 * 24 * HOUR {
        log += rng.below(3 * MIN);
        let roll = rng.below(100);
        if roll < 3 {
            steps.push((log, Input::Tick));
            continue;
        }
        if roll < 9 && !sent.is_empty() {
            let mut e = sent[rng.below(sent.len() as u64) as usize].clone();
            if rng.below(2) == 0 {
                e.location.city = e.location.city.map(|c| c.to_uppercase());
            }
            steps.push((log, Input::Event(Box::new(e))));
            continue;
        }
        // Parcels in the last fifth go quiet after a day (stale SLA); a
        // tenth of the exceptions are never resolved (escalation).
        let p = rng.below(parcels) as usize;
        if p as u64 >= parcels * 4 / 5 && log > T0 + 24 * HOUR {
            continue;
        }
        let stuck = PATH[progress[p]].0 == Status::Exception && p.is_multiple_of(10);
        if !stuck && rng.below(3) != 0 && progress[p] + 1 < PATH.len() {
            progress[p] += 1;
        }
        let (status, sub) = PATH[progress[p]];
        occurred[p] += 1000 + rng.below(30) * MIN;
        let at = if rng.below(10) == 0 {
            occurred[p] - 3 * HOUR
        } else {
            occurred[p]
        };
        let (city, postal) = PLACES[rng.below(PLACES.len() as u64) as usize];
        let e = event(&tn(p as u64), status, sub, at, city, postal);
        sent.push(e.clone());
        steps.push((log, Input::Event(Box::new(e))));
    }
    steps.push((log + 30 * 24 * HOUR, Input::Tick));
    steps
}

/// One digest per output type: each topic's records in order (a batch
/// call groups its outputs by type, so only the order within a type is
/// defined).
struct Digest {
    h: [std::hash::DefaultHasher; 5],
    buf: Vec<u8>,
    records: u64,
}

impl Digest {
    fn new() -> Digest {
        Digest {
            h: Default::default(),
            buf: Vec::new(),
            records: 0,
        }
    }

    fn add(&mut self, kind: usize) {
        self.h[kind].write(&self.buf);
        self.buf.clear();
        self.records += 1;
    }

    fn outputs(&mut self, out: &Outputs) {
        for v in &out.views {
            v.encode(&mut self.buf);
            self.add(0);
        }
        for i in &out.intents {
            i.encode(&mut self.buf);
            self.add(1);
        }
        for e in &out.escalations {
            e.encode(&mut self.buf);
            self.add(2);
        }
        for d in &out.decisions {
            d.encode(&mut self.buf);
            self.add(3);
        }
        for d in &out.dead_letters {
            d.encode(&mut self.buf);
            self.add(4);
        }
    }

    fn finish(&self) -> u64 {
        let mut h = std::hash::DefaultHasher::new();
        for d in &self.h {
            h.write_u64(d.finish());
        }
        h.finish()
    }
}

/// Runs the workload; `run_max` > 1 hands consecutive events to
/// `Chain::on_events` in runs of up to that many (the digest is then taken
/// per run, which covers the same records in the same order).
fn run(config: ChainConfig, run_max: usize) -> (u64, u64, u64, [u64; 5]) {
    let mut h = Harness::new(config, Rules::default_rules());
    let mut digest = Digest::new();
    let mut counts = [0u64; 5];
    let mut mid_snapshot = 0u64;
    let steps = workload();
    let snapshot_at = steps.len() / 2;
    let encoded: Vec<Option<Vec<u8>>> = steps
        .iter()
        .map(|(_, input)| match input {
            Input::Event(e) => Some(e.encode()),
            _ => None,
        })
        .collect();
    let mut i = 0;
    while i < steps.len() {
        let (log_ms, input) = &steps[i];
        match input {
            Input::Order(o) => {
                h.order(*log_ms, o);
            }
            Input::Event(_) if run_max > 1 => {
                let mut events = Vec::new();
                // Runs stop at the snapshot point.
                while events.len() < run_max
                    && i < steps.len()
                    && (events.is_empty() || i != snapshot_at + 1)
                    && let Some(bytes) = &encoded[i]
                {
                    events.push(EventInput {
                        source: SourceRef::event(0, h.next_offset, steps[i].0),
                        event: CarrierEvent::access(bytes).unwrap(),
                    });
                    h.next_offset += 1;
                    i += 1;
                }
                i -= 1;
                h.last.clear();
                h.chain.on_events(&events, &mut h.last);
            }
            Input::Event(e) => {
                h.event(*log_ms, e);
            }
            Input::Tick => {
                h.tick(*log_ms);
            }
        }
        digest.outputs(&h.last);
        counts[0] += h.last.views.len() as u64;
        counts[1] += h.last.intents.len() as u64;
        counts[2] += h.last.escalations.len() as u64;
        counts[3] += h.last.decisions.len() as u64;
        counts[4] += h.last.dead_letters.len() as u64;
        if i == snapshot_at {
            let mut snap = Vec::new();
            h.chain.snapshot(&mut snap);
            let mut sh = std::hash::DefaultHasher::new();
            sh.write(&snap);
            mid_snapshot = sh.finish();
        }
        i += 1;
    }
    (digest.finish(), digest.records, mid_snapshot, counts)
}

#[test]
fn outputs_and_snapshots_are_unchanged() {
    let (outputs, records, snapshot, counts) = run(ChainConfig::default(), 1);
    eprintln!("outputs {outputs:#018x} records {records} snapshot {snapshot:#018x} {counts:?}");
    assert!(counts[..4].iter().all(|c| *c > 0), "{counts:?}");
    assert_eq!(
        (outputs, records, snapshot),
        (GOLDEN_OUTPUTS, GOLDEN_RECORDS, GOLDEN_SNAPSHOT)
    );
}

#[test]
fn the_batch_entry_point_equals_one_event_at_a_time() {
    let one = run(ChainConfig::default(), 1);
    for run_max in [2, 7, 256] {
        assert_eq!(
            run(ChainConfig::default(), run_max),
            one,
            "runs of {run_max}"
        );
    }
}

const GOLDEN_OUTPUTS: u64 = 0xb561_98a5_4f1f_6323;
const GOLDEN_RECORDS: u64 = 30_154;
const GOLDEN_SNAPSHOT: u64 = 0xe888_cefd_bec3_33fd;
