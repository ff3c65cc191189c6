//! Adapter counters: plain atomics, read as a snapshot or rendered in the
//! Prometheus text format at `GET /metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use dropline_operators::model::Carrier;
use serde::Serialize;

/// Counters of one carrier.
#[derive(Debug, Default)]
pub(crate) struct CarrierMetrics {
    /// Polling requests sent.
    pub(crate) requests: AtomicU64,
    /// Tracking numbers polled, summed over requests.
    pub(crate) numbers_polled: AtomicU64,
    /// Failed requests (5xx, timeouts, connection errors, unreadable).
    pub(crate) errors: AtomicU64,
    /// 429 answers.
    pub(crate) rate_limited: AtomicU64,
    /// Numbers the carrier did not know (yet).
    pub(crate) not_found: AtomicU64,
    /// Times the circuit breaker opened.
    pub(crate) breaker_opens: AtomicU64,
    /// Webhooks received (any outcome).
    pub(crate) webhooks: AtomicU64,
    /// Webhooks refused for their signature (401).
    pub(crate) signature_failures: AtomicU64,
    /// Webhooks refused as unreadable (400, dead-lettered).
    pub(crate) bad_payloads: AtomicU64,
    /// Webhooks answered 503 because the spool was full.
    pub(crate) refused_full: AtomicU64,
    /// Events from polling handed to the sink.
    pub(crate) poll_events: AtomicU64,
    /// Events from webhooks handed to the sink.
    pub(crate) webhook_events: AtomicU64,
    /// Scans dropped as already handed on.
    pub(crate) duplicates: AtomicU64,
    /// Hand-offs that waited for another request's copy of a scan to
    /// become durable (or to fail) before answering.
    pub(crate) copy_waits: AtomicU64,
    /// Scans with a code the normalizer does not map.
    pub(crate) unknown_codes: AtomicU64,
    /// Times webhook silence promoted the carrier's shipments to polling.
    pub(crate) silence_promotions: AtomicU64,
    /// 1 while the carrier's webhooks are considered silent.
    pub(crate) silent: AtomicU64,
}

/// Every counter of the adapter.
#[derive(Debug, Default)]
pub(crate) struct AdapterMetrics {
    /// Per carrier, in `Carrier::ALL` order.
    pub(crate) carriers: [CarrierMetrics; 4],
    /// Events handed to the sink and accepted.
    pub(crate) events_in: AtomicU64,
    /// Payloads kept as dead letters.
    pub(crate) dead_letters: AtomicU64,
    /// The orders feed.
    pub(crate) orders: OrdersMetrics,
}

/// Why an order from the feed was not registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OrderSkip {
    /// The carrier code is unknown to this build.
    UnknownCarrier = 0,
    /// The carrier has no section in this adapter's configuration.
    CarrierNotConfigured = 1,
    /// The tracking number is empty or too long.
    InvalidTrackingNumber = 2,
    /// The adapter tracks its maximum of shipments.
    Full = 3,
}

impl OrderSkip {
    const ALL: [OrderSkip; 4] = [
        OrderSkip::UnknownCarrier,
        OrderSkip::CarrierNotConfigured,
        OrderSkip::InvalidTrackingNumber,
        OrderSkip::Full,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            OrderSkip::UnknownCarrier => "unknown_carrier",
            OrderSkip::CarrierNotConfigured => "carrier_not_configured",
            OrderSkip::InvalidTrackingNumber => "invalid_tracking_number",
            OrderSkip::Full => "full",
        }
    }
}

/// Counters of the orders feed.
#[derive(Debug, Default)]
pub(crate) struct OrdersMetrics {
    /// Follow streams opened with the node.
    pub(crate) follows: AtomicU64,
    /// Failed follows (connect, refusals, lost streams).
    pub(crate) errors: AtomicU64,
    /// Entries received.
    pub(crate) entries: AtomicU64,
    /// Tracking numbers registered for the first time.
    pub(crate) learned: AtomicU64,
    /// Entries skipped, per [`OrderSkip`].
    pub(crate) skipped: [AtomicU64; 4],
    /// Times the cursor was dropped (`cursor_mismatch`, unreadable file).
    pub(crate) cursor_resets: AtomicU64,
    /// Records of `orders` the cursor is behind the node (as last told).
    pub(crate) cursor_lag: AtomicU64,
    /// 1 while a follow stream is open.
    pub(crate) following: AtomicU64,
}

pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

impl AdapterMetrics {
    /// The counters of `carrier`.
    pub(crate) fn carrier(&self, carrier: Carrier) -> &CarrierMetrics {
        &self.carriers[carrier as usize - 1]
    }

    /// A copy of every counter.
    pub(crate) fn snapshot(
        &self,
        spool_depth_events: u64,
        shipments: u64,
    ) -> AdapterMetricsSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let carriers = Carrier::ALL
            .iter()
            .map(|c| {
                let m = self.carrier(*c);
                CarrierMetricsSnapshot {
                    carrier: *c,
                    requests: get(&m.requests),
                    numbers_polled: get(&m.numbers_polled),
                    errors: get(&m.errors),
                    rate_limited: get(&m.rate_limited),
                    not_found: get(&m.not_found),
                    breaker_opens: get(&m.breaker_opens),
                    webhooks: get(&m.webhooks),
                    signature_failures: get(&m.signature_failures),
                    bad_payloads: get(&m.bad_payloads),
                    refused_full: get(&m.refused_full),
                    poll_events: get(&m.poll_events),
                    webhook_events: get(&m.webhook_events),
                    duplicates: get(&m.duplicates),
                    copy_waits: get(&m.copy_waits),
                    unknown_codes: get(&m.unknown_codes),
                    silence_promotions: get(&m.silence_promotions),
                    silent: get(&m.silent) != 0,
                }
            })
            .collect();
        let o = &self.orders;
        let orders = OrdersMetricsSnapshot {
            follows: get(&o.follows),
            errors: get(&o.errors),
            entries: get(&o.entries),
            learned: get(&o.learned),
            skipped: OrderSkip::ALL
                .iter()
                .map(|k| (k.as_str(), get(&o.skipped[*k as usize])))
                .collect(),
            cursor_resets: get(&o.cursor_resets),
            cursor_lag_records: get(&o.cursor_lag),
            following: get(&o.following) != 0,
        };
        AdapterMetricsSnapshot {
            orders,
            events_in: get(&self.events_in),
            dead_letters: get(&self.dead_letters),
            spool_depth_events,
            shipments,
            carriers,
        }
    }
}

/// Reads one counter of a carrier snapshot.
type Getter = fn(&CarrierMetricsSnapshot) -> u64;

/// Counters of one carrier, copied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[expect(missing_docs, reason = "fields mirror CarrierMetrics")]
pub struct CarrierMetricsSnapshot {
    pub carrier: Carrier,
    pub requests: u64,
    pub numbers_polled: u64,
    pub errors: u64,
    pub rate_limited: u64,
    pub not_found: u64,
    pub breaker_opens: u64,
    pub webhooks: u64,
    pub signature_failures: u64,
    pub bad_payloads: u64,
    pub refused_full: u64,
    pub poll_events: u64,
    pub webhook_events: u64,
    pub duplicates: u64,
    pub copy_waits: u64,
    pub unknown_codes: u64,
    pub silence_promotions: u64,
    pub silent: bool,
}

/// Counters of the orders feed, copied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrdersMetricsSnapshot {
    /// Follow streams opened with the node.
    pub follows: u64,
    /// Failed follows (connect, refusals, lost streams).
    pub errors: u64,
    /// Entries received.
    pub entries: u64,
    /// Tracking numbers registered for the first time.
    pub learned: u64,
    /// Entries skipped, per reason (`unknown_carrier`,
    /// `carrier_not_configured`, `invalid_tracking_number`, `full`).
    pub skipped: Vec<(&'static str, u64)>,
    /// Times the cursor was dropped and the feed followed from the start.
    pub cursor_resets: u64,
    /// Records of `orders` the cursor is behind the node, as last told.
    pub cursor_lag_records: u64,
    /// A follow stream is open.
    pub following: bool,
}

impl OrdersMetricsSnapshot {
    /// Entries skipped for `reason`.
    pub fn skipped_for(&self, reason: &str) -> u64 {
        self.skipped
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }
}

/// Every counter, copied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdapterMetricsSnapshot {
    /// The orders feed.
    pub orders: OrdersMetricsSnapshot,
    /// Events accepted by the sink.
    pub events_in: u64,
    /// Payloads kept as dead letters.
    pub dead_letters: u64,
    /// Events in the spool not yet acknowledged by the node.
    pub spool_depth_events: u64,
    /// Shipments tracked.
    pub shipments: u64,
    /// Per carrier, in `Carrier::ALL` order.
    pub carriers: Vec<CarrierMetricsSnapshot>,
}

impl AdapterMetricsSnapshot {
    /// The counters of `carrier`.
    pub fn carrier(&self, carrier: Carrier) -> &CarrierMetricsSnapshot {
        &self.carriers[carrier as usize - 1]
    }

    /// The Prometheus text exposition of these counters.
    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        let mut gauge = |name: &str, kind: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP dropline_adapter_{name} {help}");
            let _ = writeln!(out, "# TYPE dropline_adapter_{name} {kind}");
            let _ = writeln!(out, "dropline_adapter_{name} {v}");
        };
        gauge(
            "events_in_total",
            "counter",
            "Events accepted by the spool or node.",
            self.events_in,
        );
        gauge(
            "dead_letters_total",
            "counter",
            "Unreadable payloads kept.",
            self.dead_letters,
        );
        gauge(
            "spool_depth_events",
            "gauge",
            "Events spooled, not yet acknowledged.",
            self.spool_depth_events,
        );
        gauge("shipments", "gauge", "Shipments tracked.", self.shipments);
        let o = &self.orders;
        gauge(
            "orders_follows_total",
            "counter",
            "Orders feed follow streams opened.",
            o.follows,
        );
        gauge(
            "orders_errors_total",
            "counter",
            "Orders feed follows that failed or were lost.",
            o.errors,
        );
        gauge(
            "orders_entries_total",
            "counter",
            "Orders feed entries received.",
            o.entries,
        );
        gauge(
            "orders_learned_total",
            "counter",
            "Tracking numbers first learned from the orders feed.",
            o.learned,
        );
        gauge(
            "orders_cursor_resets_total",
            "counter",
            "Orders cursor dropped, feed followed from the start.",
            o.cursor_resets,
        );
        gauge(
            "orders_cursor_lag_records",
            "gauge",
            "Records of orders the cursor is behind the node.",
            o.cursor_lag_records,
        );
        gauge(
            "orders_following",
            "gauge",
            "1 while an orders feed stream is open.",
            u64::from(o.following),
        );
        let _ = writeln!(
            out,
            "# HELP dropline_adapter_orders_skipped_total Orders feed entries skipped, by reason."
        );
        let _ = writeln!(out, "# TYPE dropline_adapter_orders_skipped_total counter");
        for (reason, n) in &o.skipped {
            let _ = writeln!(
                out,
                "dropline_adapter_orders_skipped_total{{reason=\"{reason}\"}} {n}"
            );
        }
        let per: [(&str, &str, &str, Getter); 17] = [
            ("requests_total", "counter", "Polling requests sent.", |c| {
                c.requests
            }),
            (
                "numbers_polled_total",
                "counter",
                "Tracking numbers polled.",
                |c| c.numbers_polled,
            ),
            ("errors_total", "counter", "Failed polling requests.", |c| {
                c.errors
            }),
            (
                "rate_limited_total",
                "counter",
                "429 answers received.",
                |c| c.rate_limited,
            ),
            (
                "not_found_total",
                "counter",
                "Numbers the carrier did not know yet.",
                |c| c.not_found,
            ),
            (
                "breaker_opens_total",
                "counter",
                "Circuit breaker openings.",
                |c| c.breaker_opens,
            ),
            ("webhooks_total", "counter", "Webhooks received.", |c| {
                c.webhooks
            }),
            (
                "signature_failures_total",
                "counter",
                "Webhooks refused for their signature.",
                |c| c.signature_failures,
            ),
            (
                "bad_payloads_total",
                "counter",
                "Webhooks refused as unreadable.",
                |c| c.bad_payloads,
            ),
            (
                "refused_full_total",
                "counter",
                "Webhooks refused with 503, spool full.",
                |c| c.refused_full,
            ),
            (
                "poll_events_total",
                "counter",
                "Events from polling accepted.",
                |c| c.poll_events,
            ),
            (
                "webhook_events_total",
                "counter",
                "Events from webhooks accepted.",
                |c| c.webhook_events,
            ),
            (
                "duplicates_total",
                "counter",
                "Scans dropped as already handed on.",
                |c| c.duplicates,
            ),
            (
                "copy_waits_total",
                "counter",
                "Hand-offs that waited for a concurrent copy of a scan to be durable.",
                |c| c.copy_waits,
            ),
            (
                "unknown_codes_total",
                "counter",
                "Scans with unmapped carrier codes.",
                |c| c.unknown_codes,
            ),
            (
                "silence_promotions_total",
                "counter",
                "Promotions to polling after webhook silence.",
                |c| c.silence_promotions,
            ),
            (
                "webhooks_silent",
                "gauge",
                "1 while the carrier's webhooks are silent.",
                |c| u64::from(c.silent),
            ),
        ];
        for (name, kind, help, get) in per {
            let _ = writeln!(out, "# HELP dropline_adapter_{name} {help}");
            let _ = writeln!(out, "# TYPE dropline_adapter_{name} {kind}");
            for c in &self.carriers {
                let _ = writeln!(
                    out,
                    "dropline_adapter_{name}{{carrier=\"{}\"}} {}",
                    c.carrier,
                    get(c)
                );
            }
        }
        out
    }
}
