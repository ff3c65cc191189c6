//! The in-memory view store behind the tracking API: the latest view of
//! each shipment, a bounded timeline of its scans, and what unlocks its
//! full timeline (postal code, order id), kept by tailing the
//! `shipment-views` and `orders` topics.
//!
//! Why in memory and derived from the log: a tracking lookup during a drop
//! must cost a hash lookup, not a log read, yet nothing here is a source of
//! truth. At start the store replays both topics from their first retained
//! offset, so a restarted node serves the same answers (and the same
//! ETags: they hash the content, not a counter). Readers and the two tail
//! tasks share sharded `RwLock`s held for a map operation only, never
//! across an await. Live subscribers (SSE) watch a per-shipment version
//! channel created on first subscription, so a change wakes only the pages
//! open on that parcel.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use dropline_log::{Log, LogError, Partition};
use dropline_operators::model::{Carrier, ShipmentOrder, Status, SubStatus, key_hash};
use dropline_operators::ops::{LocationSummary, ShipmentView, ViewChange};
use tokio::sync::{Notify, broadcast, watch};

/// The topic of shipment view changes.
pub const SHIPMENT_VIEWS_TOPIC: &str = "shipment-views";
/// The topic of orders.
pub const ORDERS_TOPIC: &str = "orders";
/// Shards of the store (a power of two).
const SHARDS: usize = 64;
/// Capacity of the new-orders broadcast; a slower receiver misses entries
/// (and is told how many) rather than holding memory.
pub const NEW_ORDERS_CHANNEL_CAPACITY: usize = 16_384;

/// One scan on a shipment's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelineEntry {
    /// Offset of the scan in `carrier-events`.
    pub offset: u64,
    /// When it happened (carrier time), ms since the epoch.
    pub occurred_at_ms: i64,
    /// Milestone after the scan.
    pub status: Option<Status>,
    /// Its sub-status.
    pub sub_status: SubStatus,
    /// Where, when the change carried it.
    pub location: Option<LocationSummary>,
}

/// What the order tells the tracking API (no contact data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OrderAccess {
    pub(crate) order_id: String,
    pub(crate) postal_code_norm: String,
    pub(crate) carrier: Carrier,
    pub(crate) promised_from_ms: i64,
    pub(crate) promised_to_ms: i64,
}

/// A consistent copy of one shipment's entry.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The tracking number.
    pub tracking_number: String,
    /// The carrier, from the view or the order.
    pub carrier: Option<Carrier>,
    /// The latest view change, if the engine has produced one.
    pub view: Option<ShipmentView>,
    /// Scans, oldest first (bounded).
    pub timeline: Vec<TimelineEntry>,
    /// Content hash (ETag seed).
    pub content_hash: u64,
    pub(crate) order: Option<OrderAccess>,
}

#[derive(Debug, Default)]
struct Entry {
    view: Option<ShipmentView>,
    timeline: VecDeque<TimelineEntry>,
    order: Option<OrderAccess>,
    content_hash: u64,
    watch: Option<watch::Sender<u64>>,
}

impl Entry {
    fn carrier(&self) -> Option<Carrier> {
        self.view
            .and_then(|v| v.carrier)
            .or(self.order.as_ref().map(|o| o.carrier))
    }

    fn rehash(&mut self) {
        let mut buf = Vec::with_capacity(160);
        if let Some(v) = &self.view {
            v.encode(&mut buf);
        }
        buf.push(0xff);
        for t in &self.timeline {
            buf.extend_from_slice(&t.offset.to_le_bytes());
            if let Some(l) = &t.location {
                buf.extend_from_slice(l.city.as_bytes());
            }
        }
        if let Some(o) = &self.order {
            buf.push(1);
            buf.extend_from_slice(&o.promised_from_ms.to_le_bytes());
            buf.extend_from_slice(&o.promised_to_ms.to_le_bytes());
            buf.push(o.carrier as u8);
        }
        self.content_hash = key_hash(&buf);
        if let Some(w) = &self.watch {
            // Wakes subscribers; no receiver left is fine.
            w.send_replace(self.content_hash);
        }
    }
}

#[derive(Debug, Default)]
struct Shard {
    map: HashMap<Box<str>, Entry>,
    order: VecDeque<Box<str>>,
}

/// A new order seen on the `orders` topic (adapters start tracking it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewShipment {
    /// The tracking number.
    pub tracking_number: String,
    /// Its carrier.
    pub carrier: Carrier,
    /// Log time of the order record.
    pub log_time_ms: u64,
}

/// Counters of the store.
#[derive(Debug, Default)]
pub struct ViewStoreStats {
    /// View changes applied.
    pub views_applied: AtomicU64,
    /// Orders applied.
    pub orders_applied: AtomicU64,
    /// Records that did not decode.
    pub undecodable: AtomicU64,
    /// Shipments forgotten to stay within `views_max`.
    pub evicted: AtomicU64,
    /// Reads of `shipment-views` or `orders` that failed (a corrupt batch,
    /// a poisoned partition); each is logged and retried with back-off.
    pub tail_errors: AtomicU64,
}

/// Waits `retry_ms`, then doubles it up to [`TAIL_RETRY_MS_MAX`].
async fn back_off(retry_ms: &mut u64) {
    tokio::time::sleep(std::time::Duration::from_millis(*retry_ms)).await;
    *retry_ms = (*retry_ms * 2).min(TAIL_RETRY_MS_MAX);
}

/// First wait before a failed tail read is retried, ms (doubling).
pub const TAIL_RETRY_MS_MIN: u64 = 100;
/// Longest wait between retries of a failed tail read, ms.
pub const TAIL_RETRY_MS_MAX: u64 = 10_000;

/// The store. Share with `Arc`.
#[derive(Debug)]
pub struct ViewStore {
    shards: Box<[RwLock<Shard>]>,
    per_shard_max: usize,
    timeline_max: usize,
    new_orders: broadcast::Sender<NewShipment>,
    tails_pending: AtomicUsize,
    caught_up: Notify,
    changed: Notify,
    len: AtomicUsize,
    stats: ViewStoreStats,
}

fn read_shard(l: &RwLock<Shard>) -> RwLockReadGuard<'_, Shard> {
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write_shard(l: &RwLock<Shard>) -> RwLockWriteGuard<'_, Shard> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Normalises a postal code for comparison (case, spaces, dashes).
pub(crate) fn normalise_postal_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

impl ViewStore {
    /// An empty store holding at most `views_max` shipments, each with at
    /// most `timeline_max` timeline entries.
    pub fn new(views_max: usize, timeline_max: usize) -> ViewStore {
        let (new_orders, _) = broadcast::channel(NEW_ORDERS_CHANNEL_CAPACITY);
        ViewStore {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::default())).collect(),
            per_shard_max: views_max.div_ceil(SHARDS).max(1),
            timeline_max: timeline_max.max(1),
            new_orders,
            tails_pending: AtomicUsize::new(0),
            caught_up: Notify::new(),
            changed: Notify::new(),
            len: AtomicUsize::new(0),
            stats: ViewStoreStats::default(),
        }
    }

    fn shard(&self, tracking_number: &str) -> &RwLock<Shard> {
        let i = (key_hash(tracking_number.as_bytes()) as usize) & (SHARDS - 1);
        &self.shards[i]
    }

    /// Number of shipments held.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counters.
    pub fn stats(&self) -> &ViewStoreStats {
        &self.stats
    }

    fn with_entry(&self, tracking_number: &str, f: impl FnOnce(&mut Entry)) {
        let mut shard = write_shard(self.shard(tracking_number));
        if let Some(e) = shard.map.get_mut(tracking_number) {
            f(e);
            return;
        }
        let key: Box<str> = tracking_number.into();
        let mut e = Entry::default();
        f(&mut e);
        shard.map.insert(key.clone(), e);
        shard.order.push_back(key);
        self.len.fetch_add(1, Ordering::Relaxed);
        while shard.map.len() > self.per_shard_max {
            let Some(old) = shard.order.pop_front() else {
                break;
            };
            if shard.map.remove(&old).is_some() {
                self.len.fetch_sub(1, Ordering::Relaxed);
                self.stats.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Applies one view change (from `shipment-views`).
    pub fn apply_view(&self, view: &ShipmentView) {
        let timeline_max = self.timeline_max;
        self.with_entry(view.tracking_number.as_str(), |e| {
            if matches!(view.change, ViewChange::Scan | ViewChange::Released)
                && let Some(last) = view.last_event
                && !e.timeline.iter().any(|t| t.offset == last.offset)
            {
                e.timeline.push_back(TimelineEntry {
                    offset: last.offset,
                    occurred_at_ms: last.occurred_at_ms,
                    status: view.status,
                    sub_status: view.sub_status,
                    location: last.location,
                });
                // Scans arrive in log order; keep them in carrier time order.
                e.timeline
                    .make_contiguous()
                    .sort_by_key(|t| (t.occurred_at_ms, t.offset));
                while e.timeline.len() > timeline_max {
                    e.timeline.pop_front();
                }
            }
            let mut v = *view;
            // Timer-driven changes carry no location: keep the last one.
            if let (Some(new), Some(old)) =
                (v.last_event.as_mut(), e.view.and_then(|o| o.last_event))
                && new.location.is_none()
                && new.offset == old.offset
            {
                new.location = old.location;
            }
            e.view = Some(v);
            e.rehash();
        });
        self.stats.views_applied.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    /// Applies one order (from `orders`); returns whether it was new.
    pub(crate) fn apply_order(&self, tracking_number: &str, order: OrderAccess) -> bool {
        let mut new = false;
        self.with_entry(tracking_number, |e| {
            new = e.order.is_none();
            e.order = Some(order);
            e.rehash();
        });
        self.stats.orders_applied.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_waiters();
        new
    }

    /// Completes once `done(self)` holds, re-checking after every applied
    /// record and every new subscription (for tools and tests that wait
    /// for the store to reach a state, without polling).
    pub async fn wait_until(&self, mut done: impl FnMut(&ViewStore) -> bool) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if done(self) {
                return;
            }
            notified.await;
        }
    }

    /// A copy of one shipment's entry.
    pub fn get(&self, tracking_number: &str) -> Option<Snapshot> {
        let shard = read_shard(self.shard(tracking_number));
        let e = shard.map.get(tracking_number)?;
        Some(Snapshot {
            tracking_number: tracking_number.to_string(),
            carrier: e.carrier(),
            view: e.view,
            timeline: e.timeline.iter().copied().collect(),
            content_hash: e.content_hash,
            order: e.order.clone(),
        })
    }

    /// The content hash and carrier only (the ETag fast path).
    pub fn content_hash(&self, tracking_number: &str) -> Option<(u64, Option<Carrier>)> {
        let shard = read_shard(self.shard(tracking_number));
        shard
            .map
            .get(tracking_number)
            .map(|e| (e.content_hash, e.carrier()))
    }

    /// Watches one shipment's content hash; `None` if it is unknown.
    pub fn subscribe(&self, tracking_number: &str) -> Option<watch::Receiver<u64>> {
        let mut shard = write_shard(self.shard(tracking_number));
        let e = shard.map.get_mut(tracking_number)?;
        let hash = e.content_hash;
        let rx = e
            .watch
            .get_or_insert_with(|| watch::channel(hash).0)
            .subscribe();
        drop(shard);
        self.changed.notify_waiters();
        Some(rx)
    }

    /// Number of open live subscriptions on one shipment.
    pub fn subscribers(&self, tracking_number: &str) -> usize {
        let shard = read_shard(self.shard(tracking_number));
        shard
            .map
            .get(tracking_number)
            .and_then(|e| e.watch.as_ref())
            .map_or(0, watch::Sender::receiver_count)
    }

    /// New orders as they are read from the `orders` topic (for embedded
    /// adapters). The topic itself is the durable source: an adapter in
    /// another process reads `orders` (key = tracking number).
    pub fn new_orders(&self) -> broadcast::Receiver<NewShipment> {
        self.new_orders.subscribe()
    }

    /// Freshness over shipments with a view and no terminal status: how
    /// many there are, and how many had no change for `stale_after_ms` at
    /// log time `now_ms`. Walks the whole store (call it about once a
    /// second, not per request).
    pub fn freshness(&self, now_ms: u64, stale_after_ms: u64) -> (u64, u64) {
        let (mut active, mut stale) = (0u64, 0u64);
        for s in self.shards.iter() {
            let shard = read_shard(s);
            for e in shard.map.values() {
                let Some(v) = &e.view else { continue };
                if v.change == ViewChange::Removed || v.status.is_some_and(Status::is_terminal) {
                    continue;
                }
                active += 1;
                if now_ms.saturating_sub(v.updated_log_ms) > stale_after_ms {
                    stale += 1;
                }
            }
        }
        (active, stale)
    }

    /// Whether every tail has read what was durable when it started.
    pub fn is_caught_up(&self) -> bool {
        self.tails_pending.load(Ordering::Acquire) == 0
    }

    /// Completes once [`ViewStore::is_caught_up`].
    pub async fn wait_caught_up(&self) {
        loop {
            let notified = self.caught_up.notified();
            if self.is_caught_up() {
                return;
            }
            notified.await;
        }
    }

    fn tail_done(&self) {
        if self.tails_pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.caught_up.notify_waiters();
        }
    }

    /// Starts tail tasks on every partition of `shipment-views` and
    /// `orders` (those that exist), from their first retained offset.
    /// Returns the tasks; they end when the log closes.
    pub fn start_tails(
        self: &Arc<Self>,
        log: &Arc<Log>,
        read_bytes_max: usize,
    ) -> Vec<tokio::task::JoinHandle<Result<(), LogError>>> {
        let mut parts = Vec::new();
        for t in log.topics() {
            let kind = match t.name.as_str() {
                SHIPMENT_VIEWS_TOPIC => TailKind::Views,
                ORDERS_TOPIC => TailKind::Orders,
                _ => continue,
            };
            for p in 0..t.config.partitions {
                if let Ok(part) = log.partition(&t.name, p) {
                    parts.push((kind, part));
                }
            }
        }
        self.tails_pending.fetch_add(parts.len(), Ordering::AcqRel);
        if parts.is_empty() {
            self.caught_up.notify_waiters();
        }
        parts
            .into_iter()
            .map(|(kind, part)| {
                let store = self.clone();
                tokio::spawn(async move { store.tail(kind, part, read_bytes_max).await })
            })
            .collect()
    }

    async fn tail(
        self: Arc<Self>,
        kind: TailKind,
        part: Arc<Partition>,
        read_bytes_max: usize,
    ) -> Result<(), LogError> {
        let initial_end = part.durable_offset();
        let mut pending = true;
        let mut next = part.start_offset();
        let mut retry_ms = TAIL_RETRY_MS_MIN;
        let result = loop {
            if pending && next >= initial_end {
                pending = false;
                self.tail_done();
            }
            let batches = match part.read(next, read_bytes_max) {
                Ok(b) => b,
                Err(LogError::OffsetOutOfRange { start, .. }) if next < start => {
                    next = start;
                    continue;
                }
                Err(LogError::Closed) => break Err(LogError::Closed),
                Err(e) => {
                    // Tracking pages of this partition stop changing until
                    // the read succeeds: say so, count it, and keep trying
                    // (a poisoned partition or a repaired segment recovers).
                    self.stats.tail_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        topic = %part.topic(),
                        partition = part.id(),
                        offset = next,
                        error = %e,
                        retry_ms,
                        "view store cannot read; tracking pages of this partition are stale"
                    );
                    back_off(&mut retry_ms).await;
                    continue;
                }
            };
            retry_ms = TAIL_RETRY_MS_MIN;
            if batches.is_empty() {
                match part.data_ready(next).await {
                    Ok(()) => {}
                    Err(LogError::Closed) => break Err(LogError::Closed),
                    Err(e) => {
                        // Poisoned: nothing new arrives until the partition
                        // is reopened; wait without spinning.
                        tracing::warn!(topic = %part.topic(), partition = part.id(), error = %e, "view store waiting on a failed partition");
                        back_off(&mut retry_ms).await;
                    }
                }
                continue;
            }
            for b in &batches {
                if !b.is_control() {
                    for r in b.records().filter(|r| r.offset >= next) {
                        match kind {
                            TailKind::Views => self.apply_view_value(r.value),
                            TailKind::Orders => self.apply_order_value(r.value, r.log_time_ms),
                        }
                    }
                }
                next = next.max(b.last_offset() + 1);
            }
        };
        if pending {
            self.tail_done();
        }
        match result {
            Err(LogError::Closed) => Ok(()),
            other => other,
        }
    }

    fn apply_view_value(&self, value: &[u8]) {
        match ShipmentView::decode(value) {
            Ok(v) => self.apply_view(&v),
            Err(_) => {
                self.stats.undecodable.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn apply_order_value(&self, value: &[u8], log_time_ms: u64) {
        let Some(o) = ShipmentOrder::decode(value) else {
            self.stats.undecodable.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let tn = o.tracking_number.as_str();
        let carrier = o.carrier;
        let access = OrderAccess {
            order_id: o.order_id.clone(),
            postal_code_norm: normalise_postal_code(&o.destination_postal_code),
            carrier,
            promised_from_ms: o.promised_from_ms,
            promised_to_ms: o.promised_to_ms,
        };
        if self.apply_order(tn, access) {
            let _ = self.new_orders.send(NewShipment {
                tracking_number: tn.to_string(),
                carrier,
                log_time_ms,
            });
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TailKind {
    Views,
    Orders,
}
