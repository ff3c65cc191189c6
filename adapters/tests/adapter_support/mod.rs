//! Shared pieces of the adapter tests: an in-memory event sink that can
//! be told to refuse, and simulator/adapter configurations that agree.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use dropline_adapters::carrier::{
    AdapterConfig, CarrierConfig, EventSink, RateLimit, ScaledClock, SinkRefusal,
};
use dropline_loadgen::carrier_sim::{
    CarrierSimConfig, GroundTruthScan, JourneyShape, PerCarrier, RateWindow,
};
use dropline_operators::model::{Carrier, CarrierEvent};
use tokio::sync::Notify;

/// Events kept in memory; `full` makes it refuse like a full spool, and
/// `no_room` makes it say so before a webhook is parsed.
#[derive(Default)]
pub struct TestSink {
    pub events: Mutex<Vec<CarrierEvent>>,
    pub full: AtomicBool,
    pub no_room: AtomicBool,
    notify: Notify,
}

impl EventSink for TestSink {
    async fn accept(&self, events: &[CarrierEvent]) -> Vec<Result<(), SinkRefusal>> {
        if self.full.load(Ordering::SeqCst) {
            return events.iter().map(|_| Err(SinkRefusal::Full)).collect();
        }
        self.events.lock().unwrap().extend(events.iter().cloned());
        self.notify.notify_waiters();
        events.iter().map(|_| Ok(())).collect()
    }

    fn has_room(&self) -> bool {
        !self.no_room.load(Ordering::SeqCst)
    }
}

impl TestSink {
    /// Waits until `cond` holds over the events received.
    pub async fn wait_until(&self, mut cond: impl FnMut(&[CarrierEvent]) -> bool) {
        loop {
            let notified = self.notify.notified();
            if cond(&self.events.lock().unwrap()) {
                return;
            }
            notified.await;
        }
    }
}

/// A sink whose `accept` can be held open, and told to refuse the next
/// call once released: for races between requests carrying the same scan.
#[derive(Default)]
pub struct GatedSink {
    pub events: Mutex<Vec<CarrierEvent>>,
    gate: Mutex<Gate>,
    changed: Notify,
}

#[derive(Default)]
struct Gate {
    held: bool,
    refuse_next: bool,
    entered: usize,
}

impl EventSink for GatedSink {
    async fn accept(&self, events: &[CarrierEvent]) -> Vec<Result<(), SinkRefusal>> {
        let mut counted = false;
        let refuse = loop {
            let changed = self.changed.notified();
            {
                let mut g = self.gate.lock().unwrap();
                if !counted {
                    counted = true;
                    g.entered += 1;
                    self.changed.notify_waiters();
                }
                if !g.held {
                    break std::mem::take(&mut g.refuse_next);
                }
            }
            changed.await;
        };
        if refuse {
            return events.iter().map(|_| Err(SinkRefusal::Full)).collect();
        }
        self.events.lock().unwrap().extend(events.iter().cloned());
        events.iter().map(|_| Ok(())).collect()
    }
}

impl GatedSink {
    /// Holds every `accept` until [`GatedSink::release`].
    pub fn hold(&self) {
        self.gate.lock().unwrap().held = true;
    }

    /// Lets held and later calls through; the first one to pass refuses
    /// its events as a full spool would when `refuse_first` is set.
    pub fn release(&self, refuse_first: bool) {
        let mut g = self.gate.lock().unwrap();
        g.held = false;
        g.refuse_next = refuse_first;
        drop(g);
        self.changed.notify_waiters();
    }

    /// Waits until `accept` has been called `n` times in all.
    pub async fn wait_entered(&self, n: usize) {
        loop {
            let changed = self.changed.notified();
            if self.gate.lock().unwrap().entered >= n {
                return;
            }
            changed.await;
        }
    }
}

pub fn truth_key(e: &CarrierEvent) -> GroundTruthScan {
    GroundTruthScan {
        carrier: e.carrier,
        tracking_number: e.tracking_number.clone(),
        status: e.status,
        sub_status: e.sub_status,
        occurred_at_ms: e.occurred_at_ms,
    }
}

/// How often each ground-truth scan occurs in `events`.
pub fn counts(events: &[CarrierEvent]) -> HashMap<GroundTruthScan, usize> {
    let mut m = HashMap::new();
    for e in events {
        *m.entry(truth_key(e)).or_insert(0) += 1;
    }
    m
}

/// Whether every scan of `truth` is in `events`.
pub fn covers(events: &[CarrierEvent], truth: &[GroundTruthScan]) -> bool {
    let c = counts(events);
    truth.iter().all(|t| c.contains_key(t))
}

pub const START_MS: i64 = 1_732_000_000_000;

pub fn loopback() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Short journeys: 10 to 12 scans, 5 to 20 simulated minutes apart.
pub fn short_journeys() -> JourneyShape {
    JourneyShape {
        scans_min: 10,
        scans_max: 12,
        scan_gap_ms_min: 5 * 60_000,
        scan_gap_ms_max: 20 * 60_000,
        first_scan_delay_ms_max: 10 * 60_000,
    }
}

pub fn sim_config(speedup: f64, limits: &PerCarrier<Vec<RateWindow>>) -> CarrierSimConfig {
    let mut c = CarrierSimConfig::new(loopback());
    c.seed = 7;
    c.speedup = speedup;
    c.start_ms = START_MS;
    c.journey = short_journeys();
    c.limits = limits.clone();
    c
}

/// The adapter's view of the same limits.
pub fn adapter_limits(windows: &[RateWindow]) -> Vec<RateLimit> {
    windows
        .iter()
        .map(|w| RateLimit {
            requests: w.requests,
            window_ms: w.window_ms,
        })
        .collect()
}

pub fn adapter_config(
    state_dir: &std::path::Path,
    sim_url: &str,
    limits: &PerCarrier<Vec<RateWindow>>,
    sim: &CarrierSimConfig,
    webhooks: &[Carrier],
) -> AdapterConfig {
    let mut c = AdapterConfig::new(loopback(), state_dir);
    for carrier in Carrier::ALL {
        *c.carriers.get_mut(carrier) = Some(CarrierConfig {
            base_url: sim_url.to_string(),
            webhooks: webhooks.contains(&carrier),
            webhook_secret: sim.secrets.get(carrier).clone(),
            limits: adapter_limits(limits.get(carrier)),
            inflight_max: 2,
            api_key: String::new(),
        });
    }
    c.poller.delivered_grace_ms = 30 * 60_000;
    c.poller.first_poll_delay_ms_max = 60_000;
    c.poller.failure_retry_ms = 60_000;
    c
}

pub fn scaled_clock(speedup: f64) -> Arc<ScaledClock> {
    Arc::new(ScaledClock::new(START_MS, speedup))
}
