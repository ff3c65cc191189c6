//! The simulator's state: shipments with their journeys, the rate-limit
//! buckets, the faults in force and the counters.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use dropline_operators::model::{Carrier, Status, SubStatus};
use serde::{Deserialize, Serialize};

use super::clock::SimClock;
use super::config::{CarrierSimConfig, Faults, PerCarrier};
use super::journey::invent;
use super::limits::CarrierLimiter;
use crate::carrier_format::{Journey, tracking_number};

/// Counters of one carrier.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarrierCounters {
    /// Polling requests received (every one, whatever the answer).
    pub requests: u64,
    /// Tracking numbers asked for, summed over requests.
    pub numbers_requested: u64,
    /// Requests answered 200 with tracking data.
    pub served: u64,
    /// Requests that arrived while a rate limit was exhausted: must stay 0
    /// for a well-behaved poller.
    pub violations: u64,
    /// 429s sent because of a rate limit.
    pub rate_limited: u64,
    /// 429s sent by a 429-storm fault (not violations).
    pub storm_429: u64,
    /// 503s sent by an outage fault.
    pub outage_503: u64,
    /// Requests for numbers with no scans yet (or unknown).
    pub not_found: u64,
    /// Requests refused as malformed (400).
    pub bad_requests: u64,
    /// Polling answers deliberately truncated (fault).
    pub malformed_responses: u64,
    /// Webhook delivery attempts.
    pub webhooks_sent: u64,
    /// Webhooks answered 2xx.
    pub webhooks_delivered: u64,
    /// Webhook attempts answered with a 4xx (not retried).
    pub webhooks_rejected: u64,
    /// Webhook attempts that failed (5xx, 429, connection) and were retried.
    pub webhooks_retried: u64,
    /// Webhooks given up after the retry window.
    pub webhooks_abandoned: u64,
    /// Scans not pushed because of a webhook-silence fault.
    pub webhooks_suppressed: u64,
    /// Extra copies pushed by the duplicate-webhooks fault.
    pub webhooks_duplicated: u64,
    /// Webhooks deliberately truncated (fault).
    pub webhooks_malformed: u64,
}

/// What `GET /admin/stats` answers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarrierSimStats {
    /// Counters per carrier.
    pub carriers: PerCarrier<CarrierCounters>,
    /// Shipments held.
    pub shipments: u64,
    /// Scans invented in total (visible or still in the future).
    pub scans_total: u64,
    /// Scans that have happened by the simulated time now.
    pub scans_visible: u64,
    /// The simulated time now, ms since the Unix epoch.
    pub sim_now_ms: i64,
}

/// One invented scan, as the ground truth the log is compared with.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroundTruthScan {
    /// Carrier.
    pub carrier: Carrier,
    /// Tracking number.
    pub tracking_number: String,
    /// Canonical status.
    pub status: Status,
    /// Canonical sub-status.
    pub sub_status: SubStatus,
    /// When it happened, ms since the Unix epoch (whole seconds).
    pub occurred_at_ms: i64,
}

/// Why a registration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The simulator holds its maximum of shipments.
    #[error("the simulator holds its maximum of {shipments_max} shipments")]
    Full {
        /// The limit.
        shipments_max: usize,
    },
    /// The number is empty or too long.
    #[error("invalid tracking number of {bytes} bytes")]
    InvalidNumber {
        /// Its length.
        bytes: usize,
    },
}

/// Longest tracking number accepted, in bytes.
pub const TRACKING_NUMBER_BYTES_MAX: usize = 64;

pub(crate) struct Shipment {
    pub(crate) carrier: Carrier,
    pub(crate) journey: Journey,
    /// Scans already handed to the webhook pusher.
    pub(crate) pushed: usize,
}

impl Shipment {
    /// The scans that have happened by `now_ms`.
    pub(crate) fn visible(&self, now_ms: i64) -> Journey {
        Journey {
            tracking_number: self.journey.tracking_number.clone(),
            scans: self
                .journey
                .scans
                .iter()
                .take_while(|s| s.occurred_at_ms <= now_ms)
                .cloned()
                .collect(),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) shipments: Vec<Shipment>,
    pub(crate) index: HashMap<String, usize>,
    pub(crate) limiters: PerCarrier<CarrierLimiter>,
    pub(crate) stats: CarrierSimStats,
    pub(crate) faults: Faults,
    /// Shipments by the time their next unpushed scan happens.
    pub(crate) push_queue: BinaryHeap<Reverse<(i64, usize)>>,
    /// Answers and webhooks counted for the malformed fault.
    pub(crate) malformed_tick: u64,
    next_seq: PerCarrier<u64>,
}

impl Inner {
    /// Whether the next answer or webhook is to be truncated.
    pub(crate) fn malformed_now(&mut self) -> bool {
        let every = u64::from(self.faults.malformed_every);
        if every == 0 {
            return false;
        }
        self.malformed_tick += 1;
        self.malformed_tick.is_multiple_of(every)
    }
}

pub(crate) struct SimState {
    pub(crate) config: CarrierSimConfig,
    pub(crate) clock: SimClock,
    inner: Mutex<Inner>,
}

impl SimState {
    pub(crate) fn new(config: CarrierSimConfig) -> SimState {
        let clock = SimClock::new(config.start_ms, config.speedup);
        let limiters = PerCarrier {
            ups: CarrierLimiter::new(&config.limits.ups),
            fedex: CarrierLimiter::new(&config.limits.fedex),
            usps: CarrierLimiter::new(&config.limits.usps),
            dhl: CarrierLimiter::new(&config.limits.dhl),
        };
        let state = SimState {
            inner: Mutex::new(Inner {
                shipments: Vec::new(),
                index: HashMap::new(),
                limiters,
                stats: CarrierSimStats::default(),
                faults: config.faults.clone(),
                push_queue: BinaryHeap::new(),
                malformed_tick: 0,
                next_seq: PerCarrier::default(),
            }),
            clock,
            config,
        };
        for carrier in Carrier::ALL {
            let _ = state.register_generated(carrier, state.config.shipments_per_carrier as usize);
        }
        state
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `numbers` (already known numbers are kept as they are).
    pub(crate) fn register(
        &self,
        carrier: Carrier,
        numbers: &[String],
    ) -> Result<usize, RegisterError> {
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        let mut added = 0;
        for n in numbers {
            if n.is_empty() || n.len() > TRACKING_NUMBER_BYTES_MAX {
                return Err(RegisterError::InvalidNumber { bytes: n.len() });
            }
            if inner.index.contains_key(n) {
                continue;
            }
            if inner.shipments.len() >= self.config.shipments_max {
                return Err(RegisterError::Full {
                    shipments_max: self.config.shipments_max,
                });
            }
            let journey = invent(carrier, n, self.config.seed, now, &self.config.journey);
            let i = inner.shipments.len();
            if let Some(first) = journey.scans.first() {
                inner.push_queue.push(Reverse((first.occurred_at_ms, i)));
            }
            inner.stats.scans_total += journey.scans.len() as u64;
            inner.stats.shipments += 1;
            inner.index.insert(n.clone(), i);
            inner.shipments.push(Shipment {
                carrier,
                journey,
                pushed: 0,
            });
            added += 1;
        }
        Ok(added)
    }

    /// Generates and registers `count` new real-looking numbers.
    pub(crate) fn register_generated(
        &self,
        carrier: Carrier,
        count: usize,
    ) -> Result<Vec<String>, RegisterError> {
        let numbers: Vec<String> = {
            let mut inner = self.lock();
            let seq = inner.next_seq.get_mut(carrier);
            let base = self.config.seed.wrapping_mul(1_000_003).wrapping_add(*seq);
            *seq += count as u64;
            (0..count as u64)
                .map(|i| tracking_number(carrier, base.wrapping_add(i)))
                .collect()
        };
        self.register(carrier, &numbers)?;
        Ok(numbers)
    }

    pub(crate) fn stats(&self) -> CarrierSimStats {
        let now = self.clock.now_ms();
        let inner = self.lock();
        let mut stats = inner.stats.clone();
        stats.sim_now_ms = now;
        stats.scans_visible = inner
            .shipments
            .iter()
            .map(|s| {
                s.journey
                    .scans
                    .iter()
                    .take_while(|x| x.occurred_at_ms <= now)
                    .count() as u64
            })
            .sum();
        stats
    }

    pub(crate) fn ground_truth(&self, visible_only: bool) -> Vec<GroundTruthScan> {
        let now = self.clock.now_ms();
        let inner = self.lock();
        let mut out = Vec::new();
        for s in &inner.shipments {
            for scan in &s.journey.scans {
                if visible_only && scan.occurred_at_ms > now {
                    break;
                }
                out.push(GroundTruthScan {
                    carrier: s.carrier,
                    tracking_number: s.journey.tracking_number.clone(),
                    status: scan.status,
                    sub_status: scan.sub_status,
                    occurred_at_ms: scan.occurred_at_ms,
                });
            }
        }
        out
    }

    /// The simulated time of the last scan of any journey.
    pub(crate) fn last_scan_ms(&self) -> Option<i64> {
        self.lock()
            .shipments
            .iter()
            .filter_map(|s| s.journey.scans.last().map(|x| x.occurred_at_ms))
            .max()
    }
}
