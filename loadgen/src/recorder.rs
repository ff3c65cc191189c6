//! What the load generator measures: latency from each item's intended
//! send time to its acknowledgement, in HDR histograms, and a timeline of
//! what was meant to be sent, what was sent and what was acknowledged.
//!
//! Why from the intended time: a sender that waits for a slow target and
//! then measures from when it actually sent hides the stall it suffered
//! (coordinated omission). Measured from the schedule, every item that
//! waited behind the stall carries the wait in its latency.
//!
//! Times come from tokio's clock, so a test that pauses tokio time drives
//! the recorder with a simulated clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use hdrhistogram::Histogram;
use tokio::time::Instant;

/// Longest latency the histograms hold, µs (longer ones are clamped).
pub const LATENCY_US_MAX: u64 = 3_600_000_000;
/// Width of a timeline bucket, µs.
pub const TIMELINE_BUCKET_US: u64 = 100_000;
/// Most timeline buckets kept (beyond it, later items share the last).
pub const TIMELINE_BUCKETS_MAX: usize = 100_000;

/// What an acknowledgement was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A carrier event (a scan in a webhook, or a raw event).
    Event,
    /// An order.
    Order,
}

/// One timeline bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Carrier events whose intended time falls in the bucket.
    pub intended: u64,
    /// Carrier events actually handed to the target in the bucket.
    pub sent: u64,
    /// Carrier events acknowledged in the bucket.
    pub acked: u64,
    /// Sum of their latencies, µs.
    pub latency_sum_us: u64,
    /// Largest of their latencies, µs.
    pub latency_max_us: u64,
}

impl Bucket {
    /// Mean latency of the events acknowledged in the bucket, µs.
    pub fn latency_mean_us(&self) -> u64 {
        self.latency_sum_us.checked_div(self.acked).unwrap_or(0)
    }
}

/// Histograms and timeline at one moment.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Event latency from intended time to ack, µs.
    pub event_latency_us: Histogram<u64>,
    /// Order latency from intended time to ack, µs.
    pub order_latency_us: Histogram<u64>,
    /// How late items were handed to the target, µs (the sender's own lag).
    pub send_lag_us: Histogram<u64>,
    /// The timeline, [`TIMELINE_BUCKET_US`] per bucket.
    pub timeline: Vec<Bucket>,
    /// Counters.
    pub counts: Counts,
}

/// Running totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Carrier events handed to the target.
    pub events_sent: u64,
    /// Carrier events acknowledged.
    pub events_acked: u64,
    /// Carrier events the target refused for good.
    pub events_failed: u64,
    /// Orders handed to the target.
    pub orders_sent: u64,
    /// Orders acknowledged.
    pub orders_acked: u64,
    /// Orders refused for good.
    pub orders_failed: u64,
    /// Requests retried (webhooks answered 503 or 429, timeouts).
    pub retries: u64,
}

struct Inner {
    event_latency_us: Histogram<u64>,
    order_latency_us: Histogram<u64>,
    send_lag_us: Histogram<u64>,
    timeline: Vec<Bucket>,
}

/// Collects measurements from the sender and from acknowledgements
/// (shared between tasks; one short lock per call).
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    inner: Mutex<Inner>,
    events_sent: AtomicU64,
    events_acked: AtomicU64,
    events_failed: AtomicU64,
    orders_sent: AtomicU64,
    orders_acked: AtomicU64,
    orders_failed: AtomicU64,
    retries: AtomicU64,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("buckets", &self.timeline.len())
            .finish_non_exhaustive()
    }
}

fn histogram() -> Result<Histogram<u64>, hdrhistogram::CreationError> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3)
}

fn bucket_of(us: u64) -> usize {
    ((us / TIMELINE_BUCKET_US) as usize).min(TIMELINE_BUCKETS_MAX - 1)
}

impl Recorder {
    /// A recorder whose time zero is now.
    pub fn new() -> Result<Recorder, hdrhistogram::CreationError> {
        Recorder::starting_at(Instant::now())
    }

    /// A recorder whose time zero is `start`.
    pub fn starting_at(start: Instant) -> Result<Recorder, hdrhistogram::CreationError> {
        Ok(Recorder {
            start,
            inner: Mutex::new(Inner {
                event_latency_us: histogram()?,
                order_latency_us: histogram()?,
                send_lag_us: histogram()?,
                timeline: Vec::new(),
            }),
            events_sent: AtomicU64::new(0),
            events_acked: AtomicU64::new(0),
            events_failed: AtomicU64::new(0),
            orders_sent: AtomicU64::new(0),
            orders_acked: AtomicU64::new(0),
            orders_failed: AtomicU64::new(0),
            retries: AtomicU64::new(0),
        })
    }

    /// Time zero.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// µs since time zero.
    pub fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An item meant for `intended_us` is handed to the target now.
    pub fn sent(&self, kind: Kind, intended_us: u64) {
        let now = self.now_us();
        let mut g = self.lock();
        let _ = g
            .send_lag_us
            .record(now.saturating_sub(intended_us).clamp(1, LATENCY_US_MAX));
        if kind == Kind::Event {
            let (a, b) = (bucket_of(intended_us), bucket_of(now));
            let need = a.max(b) + 1;
            if g.timeline.len() < need {
                g.timeline.resize(need, Bucket::default());
            }
            g.timeline[a].intended += 1;
            g.timeline[b].sent += 1;
        }
        drop(g);
        match kind {
            Kind::Event => self.events_sent.fetch_add(1, Ordering::Relaxed),
            Kind::Order => self.orders_sent.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Items meant for `intended_us` (one each) are acknowledged now.
    pub fn acked(&self, kind: Kind, intended_us: &[u64]) {
        if intended_us.is_empty() {
            return;
        }
        let now = self.now_us();
        let mut g = self.lock();
        let b = bucket_of(now);
        if kind == Kind::Event && g.timeline.len() <= b {
            g.timeline.resize(b + 1, Bucket::default());
        }
        for &t in intended_us {
            let latency = now.saturating_sub(t).clamp(1, LATENCY_US_MAX);
            match kind {
                Kind::Event => {
                    let _ = g.event_latency_us.record(latency);
                    let bucket = &mut g.timeline[b];
                    bucket.acked += 1;
                    bucket.latency_sum_us += latency;
                    bucket.latency_max_us = bucket.latency_max_us.max(latency);
                }
                Kind::Order => {
                    let _ = g.order_latency_us.record(latency);
                }
            }
        }
        drop(g);
        let n = intended_us.len() as u64;
        match kind {
            Kind::Event => self.events_acked.fetch_add(n, Ordering::Relaxed),
            Kind::Order => self.orders_acked.fetch_add(n, Ordering::Relaxed),
        };
    }

    /// `n` items were refused for good.
    pub fn failed(&self, kind: Kind, n: u64) {
        match kind {
            Kind::Event => self.events_failed.fetch_add(n, Ordering::Relaxed),
            Kind::Order => self.orders_failed.fetch_add(n, Ordering::Relaxed),
        };
    }

    /// A request is retried.
    pub fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// The counters alone (cheap).
    pub fn counts(&self) -> Counts {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counts {
            events_sent: g(&self.events_sent),
            events_acked: g(&self.events_acked),
            events_failed: g(&self.events_failed),
            orders_sent: g(&self.orders_sent),
            orders_acked: g(&self.orders_acked),
            orders_failed: g(&self.orders_failed),
            retries: g(&self.retries),
        }
    }

    /// The p99 event latency so far, µs (for the progress line).
    pub fn event_p99_us(&self) -> u64 {
        self.lock().event_latency_us.value_at_quantile(0.99)
    }

    /// A copy of everything.
    pub fn snapshot(&self) -> Snapshot {
        let g = self.lock();
        Snapshot {
            event_latency_us: g.event_latency_us.clone(),
            order_latency_us: g.order_latency_us.clone(),
            send_lag_us: g.send_lag_us.clone(),
            timeline: g.timeline.clone(),
            counts: self.counts(),
        }
    }
}
