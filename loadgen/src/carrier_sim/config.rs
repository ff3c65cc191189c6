//! Configuration of the carrier simulator, every limit with its unit.
//!
//! Times on the simulated schedule (scan gaps, rate-limit windows,
//! `Retry-After`) are simulated milliseconds; the simulator runs them
//! `speedup` times faster than real time. Times that pace the simulator's
//! own work (webhook tick, retries, slow answers) are real milliseconds.

use std::net::SocketAddr;

use dropline_operators::model::Carrier;
use serde::{Deserialize, Serialize};

/// A value per carrier.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerCarrier<T> {
    /// UPS.
    pub ups: T,
    /// FedEx.
    pub fedex: T,
    /// USPS.
    pub usps: T,
    /// DHL.
    pub dhl: T,
}

impl<T> PerCarrier<T> {
    /// The value for `carrier`.
    pub fn get(&self, carrier: Carrier) -> &T {
        match carrier {
            Carrier::Ups => &self.ups,
            Carrier::Fedex => &self.fedex,
            Carrier::Usps => &self.usps,
            Carrier::Dhl => &self.dhl,
        }
    }

    /// The value for `carrier`, mutably.
    pub fn get_mut(&mut self, carrier: Carrier) -> &mut T {
        match carrier {
            Carrier::Ups => &mut self.ups,
            Carrier::Fedex => &mut self.fedex,
            Carrier::Usps => &mut self.usps,
            Carrier::Dhl => &mut self.dhl,
        }
    }

    /// The same value for every carrier.
    pub fn all(value: T) -> PerCarrier<T>
    where
        T: Clone,
    {
        PerCarrier {
            ups: value.clone(),
            fedex: value.clone(),
            usps: value.clone(),
            dhl: value,
        }
    }
}

/// At most `requests` requests in any window of `window_ms` simulated ms
/// (enforced as a token bucket of capacity `requests` refilled at
/// `requests / window_ms`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateWindow {
    /// Requests allowed per window.
    pub requests: u32,
    /// The window, in simulated ms.
    pub window_ms: u64,
}

/// UPS publishes no numeric Track limit (it answers 429 and asks users to
/// email for an evaluation). The simulator assumes 100 requests per 10 s,
/// a conservative figure of our own, documented in docs/CARRIERS.md.
pub const UPS_LIMITS: &[RateWindow] = &[RateWindow {
    requests: 100,
    window_ms: 10_000,
}];
/// FedEx: 1,400 transactions per 10 s per project.
pub const FEDEX_LIMITS: &[RateWindow] = &[RateWindow {
    requests: 1_400,
    window_ms: 10_000,
}];
/// USPS v3: about 60 requests per hour per app.
pub const USPS_LIMITS: &[RateWindow] = &[RateWindow {
    requests: 60,
    window_ms: 3_600_000,
}];
/// DHL Unified free tier: 1 call per 5 s and 250 per day.
pub const DHL_LIMITS: &[RateWindow] = &[
    RateWindow {
        requests: 1,
        window_ms: 5_000,
    },
    RateWindow {
        requests: 250,
        window_ms: 86_400_000,
    },
];

/// The carriers' published (or, for UPS, assumed) limits.
pub fn real_limits() -> PerCarrier<Vec<RateWindow>> {
    PerCarrier {
        ups: UPS_LIMITS.to_vec(),
        fedex: FEDEX_LIMITS.to_vec(),
        usps: USPS_LIMITS.to_vec(),
        dhl: DHL_LIMITS.to_vec(),
    }
}

/// Faults injected on command (config or `POST /admin/faults`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Faults {
    /// Polling endpoints of these carriers answer 503.
    pub outage: Vec<Carrier>,
    /// Every polling answer is delayed by this much, in real ms.
    pub slow_ms: u64,
    /// Every webhook is delivered twice.
    pub duplicate_webhooks: bool,
    /// These carriers push no webhooks; scans that become visible during
    /// the silence are never pushed (only polling finds them).
    pub webhook_silence: Vec<Carrier>,
    /// When several scans of one shipment are pushed in one tick, they are
    /// pushed newest first.
    pub out_of_order: bool,
    /// Every n-th webhook and polling answer (0: none) is truncated JSON.
    /// A malformed webhook is not retried, as carriers do not retry a 4xx.
    pub malformed_every: u32,
    /// Polling endpoints of these carriers answer 429 to everything
    /// (with `Retry-After`); these do not count as violations.
    pub storm_429: Vec<Carrier>,
    /// `Retry-After` of those 429s, in simulated seconds (0: the default
    /// [`crate::carrier_sim::STORM_RETRY_AFTER_S`]). A long one shows
    /// whether a poller honours it.
    pub storm_retry_after_s: u64,
}

/// Shape of invented journeys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JourneyShape {
    /// Fewest scans per journey.
    pub scans_min: u32,
    /// Most scans per journey.
    pub scans_max: u32,
    /// Shortest gap between two scans, in simulated ms.
    pub scan_gap_ms_min: u64,
    /// Longest gap between two scans, in simulated ms.
    pub scan_gap_ms_max: u64,
    /// Most delay between registration and the first scan, in simulated ms.
    pub first_scan_delay_ms_max: u64,
}

/// Default journeys: 10 to 20 scans, 1 to 10 hours apart (a domestic
/// parcel over two to five days).
pub const JOURNEY_SHAPE_DEFAULT: JourneyShape = JourneyShape {
    scans_min: 10,
    scans_max: 20,
    scan_gap_ms_min: 3_600_000,
    scan_gap_ms_max: 36_000_000,
    first_scan_delay_ms_max: 3_600_000,
};

/// Where and how webhooks are pushed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookTarget {
    /// The adapter's base URL; webhooks go to `{base_url}/webhooks/{carrier}`.
    pub base_url: String,
    /// Carriers that push webhooks (the others are polling-only).
    pub carriers: Vec<Carrier>,
    /// Interval at which newly visible scans are pushed, in real ms.
    pub tick_ms: u64,
    /// First retry delay after a failed delivery, in real ms (doubling).
    pub retry_initial_ms: u64,
    /// Largest retry delay, in real ms.
    pub retry_max_ms: u64,
    /// A delivery is abandoned after failing for this long, in real ms.
    pub retry_window_ms: u64,
    /// Most deliveries in flight at once.
    pub inflight_max: u32,
    /// Time a delivery attempt may take, in real ms.
    pub timeout_ms: u64,
}

impl WebhookTarget {
    /// Defaults for pushing every carrier's webhooks to `base_url`.
    pub fn new(base_url: impl Into<String>) -> WebhookTarget {
        WebhookTarget {
            base_url: base_url.into(),
            carriers: Carrier::ALL.to_vec(),
            tick_ms: 50,
            retry_initial_ms: 50,
            retry_max_ms: 2_000,
            retry_window_ms: 3_600_000,
            inflight_max: 32,
            timeout_ms: 10_000,
        }
    }
}

/// Default most shipments the simulator holds.
pub const SHIPMENTS_MAX_DEFAULT: usize = 1_000_000;

/// Configuration of [`crate::carrier_sim::run_carrier_sim`].
#[derive(Clone, Debug, PartialEq)]
pub struct CarrierSimConfig {
    /// Address to listen on (port 0 picks a free port).
    pub bind: SocketAddr,
    /// Seed of every random choice (journeys, numbers): same seed, same
    /// journeys.
    pub seed: u64,
    /// Shipments generated per carrier at start (0: only registered ones).
    pub shipments_per_carrier: u32,
    /// Simulated time runs this many times faster than real time (1.0:
    /// real time). Scales journeys and rate-limit windows alike.
    pub speedup: f64,
    /// Simulated time at start, ms since the Unix epoch (the journeys'
    /// dates).
    pub start_ms: i64,
    /// Shape of invented journeys.
    pub journey: JourneyShape,
    /// Rate limits per carrier, in simulated time.
    pub limits: PerCarrier<Vec<RateWindow>>,
    /// Answer requests over the limit with 429 (true, as carriers do), or
    /// serve them and only count the violation (false).
    pub enforce_limits: bool,
    /// Webhook pushing, if any.
    pub webhook: Option<WebhookTarget>,
    /// HMAC-SHA256 secret each carrier signs its webhooks with.
    pub secrets: PerCarrier<String>,
    /// Faults active from the start.
    pub faults: Faults,
    /// Most shipments held; registrations beyond it are refused.
    pub shipments_max: usize,
}

impl CarrierSimConfig {
    /// Defaults: real limits, real time, no webhooks, no generated
    /// shipments, listening on `bind`.
    pub fn new(bind: SocketAddr) -> CarrierSimConfig {
        CarrierSimConfig {
            bind,
            seed: 1,
            shipments_per_carrier: 0,
            speedup: 1.0,
            start_ms: chrono::Utc::now().timestamp_millis(),
            journey: JOURNEY_SHAPE_DEFAULT,
            limits: real_limits(),
            enforce_limits: true,
            webhook: None,
            secrets: PerCarrier {
                ups: "ups-webhook-secret".into(),
                fedex: "fedex-webhook-secret".into(),
                usps: "usps-webhook-secret".into(),
                dhl: "dhl-webhook-secret".into(),
            },
            faults: Faults::default(),
            shipments_max: SHIPMENTS_MAX_DEFAULT,
        }
    }
}
