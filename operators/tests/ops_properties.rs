//! Property tests of the chain: replaying input notifies nothing new;
//! debounce never delays a critical status; a run split anywhere,
//! snapshotted, restored and resumed gives the same outputs.
//!
//! Inputs come from a small seeded generator (a few parcels, orders, scans
//! with duplicates, reformatted locations, out-of-order and late scans,
//! ping storms, exceptions, ticks and drop-mode switches). The seed is in
//! the proptest failure message.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ops_support;

use std::sync::Arc;

use dropline_operators::model::{CarrierEvent, ShipmentOrder, Status, SubStatus};
use dropline_operators::ops::{Chain, ChainConfig, DecisionKind, Outputs, Rules, SourceRef};
use ops_support::{MIN, T0, event, order};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Input {
    Order(ShipmentOrder),
    Event(CarrierEvent),
    Tick,
    DropMode(bool),
}

#[derive(Clone, Debug)]
struct Step {
    log_ms: u64,
    input: Input,
}

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

const PATH: [(Status, SubStatus); 8] = [
    (Status::LabelCreated, SubStatus::InfoReceived),
    (Status::PickedUp, SubStatus::Accepted),
    (Status::InTransit, SubStatus::ArrivalScan),
    (Status::InTransit, SubStatus::DepartureScan),
    (Status::Exception, SubStatus::AddressIssue),
    (Status::InTransit, SubStatus::ProblemResolved),
    (Status::OutForDelivery, SubStatus::OnVehicle),
    (Status::Delivered, SubStatus::LeftSafePlace),
];
const PLACES: [(&str, &str); 3] = [
    ("Memphis", "38118"),
    ("MEMPHIS, TN", "38118"),
    ("Dallas", "75201"),
];

/// A scenario spanning at most about ten hours of log time.
fn scenario(seed: u64) -> Vec<Step> {
    let mut rng = Rng(seed);
    let parcels = 1 + rng.below(3) as usize;
    let tns: Vec<String> = (0..parcels)
        .map(|i| format!("1ZPROP{seed:010}{i:02}"))
        .collect();
    let mut steps = Vec::new();
    let mut log = T0 + rng.below(24) * 60 * MIN;
    let mut occurred = vec![log; parcels];
    let mut progress = vec![0usize; parcels];
    let mut sent: Vec<CarrierEvent> = Vec::new();
    for (i, tn) in tns.iter().enumerate() {
        if rng.below(5) != 0 {
            let o = order(
                tn,
                &format!("ORD-{}", i % 2),
                "buyer-1",
                ["UTC", "America/New_York", "Asia/Tokyo"][i % 3],
            );
            steps.push(Step {
                log_ms: log,
                input: Input::Order(o),
            });
        }
    }
    let n = 4 + rng.below(24);
    for _ in 0..n {
        log += rng.below(40) * MIN + rng.below(60_000);
        let roll = rng.below(100);
        let input = if roll < 8 {
            Input::Tick
        } else if roll < 11 {
            Input::DropMode(rng.below(2) == 0)
        } else if roll < 24 && !sent.is_empty() {
            // A duplicate, sometimes with its location reformatted.
            let mut e = sent[rng.below(sent.len() as u64) as usize].clone();
            if rng.below(2) == 0 {
                e.location.city = e.location.city.map(|c| c.to_uppercase());
                e.location.postal_code = None;
            }
            Input::Event(e)
        } else {
            let p = rng.below(parcels as u64) as usize;
            if rng.below(3) != 0 && progress[p] + 1 < PATH.len() {
                progress[p] += 1;
            }
            let (status, sub) = PATH[progress[p]];
            occurred[p] += 1000 + rng.below(20) * MIN;
            // Sometimes a scan that happened earlier arrives now.
            let at = if rng.below(8) == 0 {
                occurred[p] - 90 * MIN
            } else {
                occurred[p]
            };
            let (city, postal) = PLACES[rng.below(PLACES.len() as u64) as usize];
            let e = event(&tns[p], status, sub, at, city, postal);
            sent.push(e.clone());
            Input::Event(e)
        };
        steps.push(Step { log_ms: log, input });
    }
    steps
}

fn feed(
    chain: &mut Chain,
    steps: &[Step],
    first_offset: u64,
    out: &mut Outputs,
    all: &mut Outputs,
) {
    for (i, s) in steps.iter().enumerate() {
        out.clear();
        let offset = first_offset + i as u64;
        match &s.input {
            Input::Order(o) => chain.on_order(SourceRef::order(0, offset, s.log_ms), o, out),
            Input::Event(e) => {
                let bytes = e.encode();
                let archived = CarrierEvent::access(&bytes).unwrap();
                chain.on_event(SourceRef::event(0, offset, s.log_ms), archived, out);
            }
            Input::Tick => chain.on_tick(s.log_ms, out),
            Input::DropMode(on) => chain.set_drop_mode(*on, s.log_ms, out),
        }
        all.extend_from(out);
    }
}

fn new_chain() -> Chain {
    Chain::new(ChainConfig::default(), Arc::new(Rules::default_rules()))
}

fn run(steps: &[Step]) -> Outputs {
    let mut chain = new_chain();
    let (mut out, mut all) = (Outputs::new(), Outputs::new());
    feed(&mut chain, steps, 0, &mut out, &mut all);
    all
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn feeding_input_twice_notifies_nothing_new(seed in any::<u64>()) {
        let steps = scenario(seed);
        let end = steps.last().map_or(T0, |s| s.log_ms);
        // The same records again, right after (new offsets, later log times)...
        let again: Vec<Step> = steps
            .iter()
            .map(|s| Step { log_ms: s.log_ms - steps[0].log_ms + end + MIN, input: s.input.clone() })
            .collect();
        // ...against the same span of time with nothing in it but ticks.
        let quiet: Vec<Step> = again.iter().map(|s| Step { log_ms: s.log_ms, input: match s.input {
            Input::DropMode(on) => Input::DropMode(on),
            _ => Input::Tick,
        }}).collect();
        let mut twice = new_chain();
        let mut once = new_chain();
        let (mut out, mut a, mut b) = (Outputs::new(), Outputs::new(), Outputs::new());
        feed(&mut twice, &steps, 0, &mut out, &mut a);
        feed(&mut once, &steps, 0, &mut out, &mut b);
        let (mut a2, mut b2) = (Outputs::new(), Outputs::new());
        feed(&mut twice, &again, 1000, &mut out, &mut a2);
        feed(&mut once, &quiet, 1000, &mut out, &mut b2);
        // The replayed order record is newer, so intents released from the
        // first pass point at it; their ids (what providers dedupe on) match.
        let ids = |o: &Outputs| o.intents.iter().map(|i| i.id).collect::<Vec<_>>();
        prop_assert_eq!(ids(&a2), ids(&b2), "seed {}", seed);
        prop_assert_eq!(&a2.escalations, &b2.escalations, "seed {}", seed);
    }

    #[test]
    fn debounce_never_delays_a_critical_status(seed in any::<u64>()) {
        let steps = scenario(seed);
        let mut chain = new_chain();
        let mut out = Outputs::new();
        for (i, s) in steps.iter().enumerate() {
            out.clear();
            if let Input::Event(e) = &s.input {
                let bytes = e.encode();
                chain.on_event(SourceRef::event(0, i as u64, s.log_ms), CarrierEvent::access(&bytes).unwrap(), &mut out);
                if e.status.is_critical() {
                    let mine: Vec<DecisionKind> = out.decisions.iter()
                        .filter(|d| d.source.offset == i as u64)
                        .map(|d| d.kind)
                        .collect();
                    prop_assert!(!mine.contains(&DecisionKind::Debounced), "seed {} step {}", seed, i);
                    let dropped = mine.contains(&DecisionKind::Deduplicated) || mine.contains(&DecisionKind::Late);
                    if !dropped {
                        prop_assert!(
                            out.views.iter().any(|v| v.last_event.is_some_and(|l| l.offset == i as u64) && v.status == Some(e.status)),
                            "seed {} step {}: critical scan not applied at once", seed, i
                        );
                    }
                }
            } else if let Input::Order(o) = &s.input {
                chain.on_order(SourceRef::order(0, i as u64, s.log_ms), o, &mut out);
            } else if let Input::Tick = s.input {
                chain.on_tick(s.log_ms, &mut out);
            }
        }
    }

    #[test]
    fn split_snapshot_restore_resume_equals_one_run(seed in any::<u64>(), split in any::<prop::sample::Index>()) {
        let steps = scenario(seed);
        let whole = run(&steps);
        let at = split.index(steps.len() + 1);
        let mut first = new_chain();
        let (mut out, mut all) = (Outputs::new(), Outputs::new());
        feed(&mut first, &steps[..at], 0, &mut out, &mut all);
        let mut snap = Vec::new();
        first.snapshot(&mut snap);
        drop(first);
        let mut second = Chain::restore(ChainConfig::default(), Arc::new(Rules::default_rules()), &snap).unwrap();
        feed(&mut second, &steps[at..], at as u64, &mut out, &mut all);
        prop_assert_eq!(&whole.intents, &all.intents, "seed {} split {}", seed, at);
        prop_assert_eq!(&whole.views, &all.views, "seed {} split {}", seed, at);
        prop_assert_eq!(&whole.decisions, &all.decisions, "seed {} split {}", seed, at);
        prop_assert_eq!(&whole.escalations, &all.escalations, "seed {} split {}", seed, at);
        prop_assert_eq!(&whole.dead_letters, &all.dead_letters, "seed {} split {}", seed, at);
    }
}
