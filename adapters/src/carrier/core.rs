//! The adapter's shared state and the decisions on it: registration,
//! cadence, silence promotion, and the hand-off of new scans to the sink.
//!
//! Everything here runs under one std mutex that is never held across an
//! `.await`; the webhook handlers and the poller tasks only await the
//! sink and the carriers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use dropline_operators::model::{Carrier, CarrierEvent, EventSource};
use tokio::sync::Notify;

use super::clock::Clock;
use super::config::AdapterConfig;
use super::error::AdapterError;
use super::metrics::{AdapterMetrics, add};
use super::registry::{Registry, Shipment, TRACKING_NUMBER_BYTES_MAX, event_fingerprint};
use super::schedule::CarrierQueue;
use super::silence::Silence;
use super::sink::{EventSink, SinkRefusal};
use super::state_log::{StateLog, StateRecord};
use crate::splitmix::SplitMix64;

/// Numbers per FedEx Track request.
pub const FEDEX_NUMBERS_PER_REQUEST_MAX: usize = 30;

pub(crate) struct Core {
    pub(crate) registry: Registry,
    /// Fingerprints reserved by hand-offs still waiting for the sink, with
    /// how many hold each. A scan reserved here is marked seen but not yet
    /// durable: a copy of it in another request waits for the outcome
    /// instead of being answered as a duplicate.
    in_flight: HashMap<u64, u32>,
    pub(crate) queues: [Option<CarrierQueue>; 4],
    pub(crate) silence: [Silence; 4],
    rng: SplitMix64,
}

pub(crate) fn slot(carrier: Carrier) -> usize {
    carrier as usize - 1
}

/// Everything the handlers and pollers share.
pub(crate) struct Shared<S> {
    pub(crate) config: AdapterConfig,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) sink: Arc<S>,
    pub(crate) metrics: AdapterMetrics,
    pub(crate) state_log: StateLog,
    pub(crate) core: Mutex<Core>,
    /// Wakes each carrier's poller (new registrations, promotions).
    pub(crate) wake: [Notify; 4],
    /// Signalled whenever a hand-off's reservations are settled (its
    /// scans durable or released).
    pub(crate) settled: Notify,
}

/// What a hand-off did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HandOff {
    pub(crate) accepted: usize,
    pub(crate) duplicates: usize,
}

impl Core {
    pub(crate) fn new(config: &AdapterConfig, now_ms: i64) -> Core {
        let queues = Carrier::ALL.map(|c| {
            config.carriers.get(c).map(|cc| {
                CarrierQueue::new(
                    &cc.limits,
                    config.poller.limit_headroom_percent,
                    super::breaker::Breaker::new(
                        config.breaker.failures_max,
                        config.breaker.cooldown_ms,
                    ),
                    cc.inflight_max,
                    if c == Carrier::Fedex {
                        FEDEX_NUMBERS_PER_REQUEST_MAX
                    } else {
                        1
                    },
                    config.poller.urgent_interval_ms_min,
                )
            })
        });
        Core {
            registry: Registry::default(),
            in_flight: HashMap::new(),
            queues,
            silence: Carrier::ALL.map(|_| Silence::new(now_ms)),
            rng: SplitMix64::new(config.poller.seed),
        }
    }

    /// Ends one hold of `fp` taken by a hand-off.
    fn release(&mut self, fp: u64) {
        if let Some(n) = self.in_flight.get_mut(&fp) {
            *n -= 1;
            if *n == 0 {
                self.in_flight.remove(&fp);
            }
        }
    }

    fn jitter(&mut self, lo: u64, hi: u64) -> i64 {
        if hi <= lo {
            return lo as i64;
        }
        (lo + self.rng.next_u64() % (hi - lo + 1)) as i64
    }
}

/// The scans a hand-off reserved while it waits for the sink. Dropped
/// with scans still held (the hand-off was cancelled), it releases them
/// as not durable and wakes the copies waiting on them.
struct Reservation<'a, S: EventSink> {
    shared: &'a Shared<S>,
    held: Vec<(&'a str, u64)>,
}

impl<S: EventSink> Drop for Reservation<'_, S> {
    fn drop(&mut self) {
        if self.held.is_empty() {
            return;
        }
        {
            let mut core = self.shared.lock();
            for (tracking_number, fp) in self.held.drain(..) {
                core.release(fp);
                if let Some(s) = core.registry.shipments.get_mut(tracking_number) {
                    s.unmark(fp);
                }
            }
        }
        self.shared.settled.notify_waiters();
    }
}

impl<S: EventSink> Shared<S> {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether polling is only a backstop for `carrier` now (it pushes
    /// webhooks and they are not silent).
    fn backstop(&self, core: &Core, carrier: Carrier) -> bool {
        self.config
            .carriers
            .get(carrier)
            .is_some_and(|c| c.webhooks)
            && !core.silence[slot(carrier)].is_silent()
    }

    /// Puts `tracking_number` back in its carrier's queue at the cadence
    /// its state asks for, or retires it. `at_least_ms` delays the poll
    /// (failures, `Retry-After`).
    pub(crate) fn reschedule(
        &self,
        core: &mut Core,
        tracking_number: &str,
        now_ms: i64,
        at_least_ms: i64,
    ) {
        let p = &self.config.poller;
        let Some(s) = core.registry.shipments.get(tracking_number) else {
            return;
        };
        let carrier = s.carrier;
        let next = if s.retired {
            None
        } else if let Some(finished) = s.finished_at_ms {
            let end = finished.saturating_add(p.delivered_grace_ms as i64);
            (now_ms < end).then_some(end)
        } else {
            let (lo, hi) = if !self.backstop(core, carrier) && s.urgent() {
                (p.urgent_interval_ms_min, p.urgent_interval_ms_max)
            } else {
                (p.quiet_interval_ms_min, p.quiet_interval_ms_max)
            };
            Some(now_ms + core.jitter(lo, hi))
        };
        let Some(s) = core.registry.shipments.get_mut(tracking_number) else {
            return;
        };
        s.generation += 1;
        let generation = s.generation;
        match next {
            Some(at) => {
                if let Some(q) = core.queues[slot(carrier)].as_mut() {
                    q.schedule(tracking_number.to_string(), at.max(at_least_ms), generation);
                }
            }
            None => {
                if !s.retired {
                    s.retired = true;
                    self.state_log.append(&[StateRecord::Retired {
                        tracking_number: tracking_number.to_string(),
                        carrier,
                    }]);
                }
            }
        }
    }

    /// Schedules a poll soon (within the first-poll delay).
    fn schedule_soon(&self, core: &mut Core, tracking_number: &str, now_ms: i64) {
        let delay = core.jitter(0, self.config.poller.first_poll_delay_ms_max);
        let Some(s) = core.registry.shipments.get_mut(tracking_number) else {
            return;
        };
        s.generation += 1;
        let (carrier, generation) = (s.carrier, s.generation);
        if let Some(q) = core.queues[slot(carrier)].as_mut() {
            q.schedule(tracking_number.to_string(), now_ms + delay, generation);
        }
    }

    /// Starts tracking a shipment (or updates its drop flag). True if new.
    pub(crate) fn register(
        &self,
        tracking_number: &str,
        carrier: Carrier,
        drop: bool,
    ) -> Result<bool, AdapterError> {
        self.register_durable(tracking_number, carrier, drop)
            .map(|(new, _)| new)
    }

    /// [`Shared::register`], also returning what completes once the
    /// registration is durable in the state log. Registering a number
    /// again with the same (or no new) drop flag changes nothing and
    /// writes nothing, so a replayed orders feed costs no state.
    pub(crate) fn register_durable(
        &self,
        tracking_number: &str,
        carrier: Carrier,
        drop: bool,
    ) -> Result<(bool, Option<dropline_log::Durable>), AdapterError> {
        if tracking_number.is_empty() || tracking_number.len() > TRACKING_NUMBER_BYTES_MAX {
            return Err(AdapterError::InvalidTrackingNumber {
                bytes: tracking_number.len(),
            });
        }
        if self.config.carriers.get(carrier).is_none() {
            return Err(AdapterError::CarrierNotConfigured { carrier });
        }
        let now = self.clock.now_ms();
        let mut core = self.lock();
        let new = match core.registry.shipments.get_mut(tracking_number) {
            Some(s) if s.drop || !drop => return Ok((false, None)),
            Some(s) => {
                let promote = s.active();
                s.drop = true;
                if promote {
                    self.schedule_soon(&mut core, tracking_number, now);
                }
                false
            }
            None => {
                if core.registry.shipments.len() >= self.config.poller.shipments_max {
                    return Err(AdapterError::Full {
                        shipments_max: self.config.poller.shipments_max,
                    });
                }
                core.registry
                    .shipments
                    .insert(tracking_number.to_string(), Shipment::new(carrier, drop));
                self.schedule_soon(&mut core, tracking_number, now);
                true
            }
        };
        drop_guard(core);
        let durable = self.state_log.append_durable(&[StateRecord::Register {
            tracking_number: tracking_number.to_string(),
            carrier,
            drop,
        }])?;
        self.wake[slot(carrier)].notify_one();
        Ok((new, durable))
    }

    /// Rebuilds the registry from the state log and the sink's recovered
    /// events, then schedules every active shipment.
    pub(crate) fn restore(&self, records: Vec<StateRecord>, recovered: Vec<CarrierEvent>) {
        let now = self.clock.now_ms();
        let mut core = self.lock();
        for r in records {
            match r {
                StateRecord::Register {
                    tracking_number,
                    carrier,
                    drop,
                } => {
                    core.registry
                        .shipments
                        .entry(tracking_number)
                        .or_insert_with(|| Shipment::new(carrier, drop))
                        .drop |= drop;
                }
                StateRecord::Seen {
                    tracking_number,
                    carrier,
                    fingerprint,
                    status,
                    occurred_at_ms,
                } => {
                    let s = core
                        .registry
                        .shipments
                        .entry(tracking_number)
                        .or_insert_with(|| Shipment::new(carrier, false));
                    s.mark_seen(fingerprint);
                    s.observe(occurred_at_ms, status, now);
                }
                StateRecord::Retired {
                    tracking_number, ..
                } => {
                    if let Some(s) = core.registry.shipments.get_mut(&tracking_number) {
                        s.retired = true;
                    }
                }
            }
        }
        for e in recovered {
            let s = core
                .registry
                .shipments
                .entry(e.tracking_number.clone())
                .or_insert_with(|| Shipment::new(e.carrier, false));
            s.mark_seen(event_fingerprint(&e));
            s.observe(e.occurred_at_ms, e.status, now);
        }
        let numbers: Vec<String> = core
            .registry
            .shipments
            .iter()
            .filter(|(_, s)| !s.retired && self.config.carriers.get(s.carrier).is_some())
            .map(|(n, _)| n.clone())
            .collect();
        for n in numbers {
            self.schedule_soon(&mut core, &n, now);
        }
    }

    /// Hands the scans not seen before to the sink; answers once every one
    /// of them is durable, or with the first refusal (refused scans stay
    /// unseen, so the carrier's retry or the next poll brings them again).
    /// `learn`: start tracking unknown numbers (webhooks).
    ///
    /// A scan that another request is handing off at the same moment is
    /// not answered as a duplicate until that copy is durable: this one
    /// waits for it, and hands the scan off itself if that copy was
    /// refused. So an answer of success always covers durable scans only.
    pub(crate) async fn hand_off(
        &self,
        carrier: Carrier,
        events: Vec<CarrierEvent>,
        source: EventSource,
        learn: bool,
    ) -> Result<HandOff, SinkRefusal> {
        let mut total = HandOff::default();
        let mut events = events;
        loop {
            let (done, waiting) = self.hand_off_once(carrier, events, source, learn).await?;
            total.accepted += done.accepted;
            total.duplicates += done.duplicates;
            if waiting.is_empty() {
                return Ok(total);
            }
            add(&self.metrics.carrier(carrier).copy_waits, 1);
            let fps: Vec<u64> = waiting.iter().map(event_fingerprint).collect();
            loop {
                // Created before the check, so a settlement in between is
                // not missed.
                let settled = self.settled.notified();
                let settled_all = {
                    let core = self.lock();
                    fps.iter().all(|fp| !core.in_flight.contains_key(fp))
                };
                if settled_all {
                    break;
                }
                settled.await;
            }
            events = waiting;
        }
    }

    /// One pass of [`Self::hand_off`]: returns what it did and the scans
    /// whose copies were in flight elsewhere.
    async fn hand_off_once(
        &self,
        carrier: Carrier,
        events: Vec<CarrierEvent>,
        source: EventSource,
        learn: bool,
    ) -> Result<(HandOff, Vec<CarrierEvent>), SinkRefusal> {
        let now = self.clock.now_ms();
        let m = self.metrics.carrier(carrier);
        let mut fresh = Vec::with_capacity(events.len());
        let mut fps = Vec::with_capacity(events.len());
        let mut waiting = Vec::new();
        let mut duplicates = 0usize;
        let mut learned = Vec::new();
        {
            let mut guard = self.lock();
            let core = &mut *guard;
            let full = core.registry.shipments.len() >= self.config.poller.shipments_max;
            for e in events {
                if !core.registry.shipments.contains_key(&e.tracking_number) {
                    if !learn || full || e.tracking_number.len() > TRACKING_NUMBER_BYTES_MAX {
                        continue;
                    }
                    core.registry
                        .shipments
                        .insert(e.tracking_number.clone(), Shipment::new(carrier, false));
                    learned.push(e.tracking_number.clone());
                }
                let fp = event_fingerprint(&e);
                let Some(s) = core.registry.shipments.get_mut(&e.tracking_number) else {
                    continue;
                };
                if s.has_seen(fp) {
                    if core.in_flight.contains_key(&fp) {
                        waiting.push(e);
                    } else {
                        duplicates += 1;
                    }
                    continue;
                }
                // Reserve: a concurrent copy of this scan waits for us.
                s.mark_seen(fp);
                *core.in_flight.entry(fp).or_insert(0) += 1;
                fps.push(fp);
                fresh.push(e);
            }
            for n in &learned {
                self.schedule_soon(core, n, now);
            }
        }
        add(&m.duplicates, duplicates as u64);
        if !learned.is_empty() {
            let recs: Vec<StateRecord> = learned
                .iter()
                .map(|n| StateRecord::Register {
                    tracking_number: n.clone(),
                    carrier,
                    drop: false,
                })
                .collect();
            self.state_log.append(&recs);
            self.wake[slot(carrier)].notify_one();
        }
        if fresh.is_empty() {
            return Ok((
                HandOff {
                    accepted: 0,
                    duplicates,
                },
                waiting,
            ));
        }
        // Released as not durable if this future is dropped mid-way (the
        // request was cancelled): a later copy hands the scans off again.
        let mut reservation = Reservation {
            shared: self,
            held: fresh
                .iter()
                .map(|e| e.tracking_number.as_str())
                .zip(fps.iter().copied())
                .collect(),
        };
        let outcomes = self.sink.accept(&fresh).await;
        reservation.held.clear();
        drop(reservation);
        let mut refusal = None;
        let mut seen = Vec::new();
        let mut accepted = 0usize;
        {
            let mut guard = self.lock();
            let core = &mut *guard;
            for ((e, fp), outcome) in
                fresh
                    .iter()
                    .zip(&fps)
                    .zip(
                        outcomes
                            .iter()
                            .chain(std::iter::repeat(&Err(SinkRefusal::Failed {
                                reason: "no outcome".into(),
                            }))),
                    )
            {
                core.release(*fp);
                let Some(s) = core.registry.shipments.get_mut(&e.tracking_number) else {
                    continue;
                };
                match outcome {
                    Ok(()) => {
                        accepted += 1;
                        s.observe(e.occurred_at_ms, e.status, now);
                        seen.push(StateRecord::Seen {
                            tracking_number: e.tracking_number.clone(),
                            carrier,
                            fingerprint: *fp,
                            status: e.status,
                            occurred_at_ms: e.occurred_at_ms,
                        });
                    }
                    Err(r) => {
                        s.unmark(*fp);
                        refusal.get_or_insert_with(|| r.clone());
                    }
                }
            }
        }
        self.settled.notify_waiters();
        self.state_log.append(&seen);
        add(&self.metrics.events_in, accepted as u64);
        match source {
            EventSource::Webhook => add(&m.webhook_events, accepted as u64),
            _ => add(&m.poll_events, accepted as u64),
        }
        match refusal {
            Some(r) => Err(r),
            None => Ok((
                HandOff {
                    accepted,
                    duplicates,
                },
                waiting,
            )),
        }
    }

    /// A valid webhook from `carrier` arrived.
    pub(crate) fn on_webhook(&self, carrier: Carrier) {
        let now = self.clock.now_ms();
        let mut core = self.lock();
        if core.silence[slot(carrier)].on_webhook(now) {
            self.metrics
                .carrier(carrier)
                .silent
                .store(0, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(%carrier, "webhooks are back; polling returns to backstop cadence");
        }
    }

    /// Checks `carrier` for webhook silence; on a new silence promotes its
    /// active shipments to polling now. Returns the next check time.
    pub(crate) fn check_silence(&self, carrier: Carrier, now_ms: i64) -> Option<i64> {
        if !self
            .config
            .carriers
            .get(carrier)
            .is_some_and(|c| c.webhooks)
        {
            return None;
        }
        let threshold = self.config.silence.threshold_ms;
        let mut core = self.lock();
        let deadline = core.silence[slot(carrier)].deadline(threshold)?;
        if now_ms < deadline {
            return Some(deadline);
        }
        let active: Vec<String> = core
            .registry
            .shipments
            .iter()
            .filter(|(_, s)| s.carrier == carrier && s.active())
            .map(|(n, _)| n.clone())
            .collect();
        if core.silence[slot(carrier)].check(now_ms, threshold, !active.is_empty()) {
            let m = self.metrics.carrier(carrier);
            add(&m.silence_promotions, 1);
            m.silent.store(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(%carrier, shipments = active.len(), "webhooks silent; promoting shipments to polling");
            for n in &active {
                self.schedule_soon(&mut core, n, now_ms);
            }
        }
        core.silence[slot(carrier)].deadline(threshold)
    }
}

fn drop_guard<T>(guard: MutexGuard<'_, T>) {
    drop(guard);
}
