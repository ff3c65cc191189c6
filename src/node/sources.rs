//! The node's implementations of what the HTTP edge asks for: Prometheus
//! text from the engine, ingest and delivery registries, the dashboard's
//! snapshot, and the drop-mode switch.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dropline_adapters::delivery::DeliveryMetrics;
use dropline_adapters::delivery::scheduler::Class;
use dropline_adapters::http::{
    AdminActions, AdminError, ChannelBacklog, CriticalLatency, Freshness, MetricsSource,
    PartitionLag, ReadinessSource, StatsSnapshot, StatsSource, ViewStore, WorkerRate,
};
use dropline_adapters::ingest::IngestMetrics;
use dropline_engine::{InputKind, Metrics, request_drop_mode};
use dropline_log::Log;
use dropline_operators::model::{Channel, Priority};

/// A shipment with no update for this long counts as stale on the dashboard.
const STALE_AFTER_MS: u64 = 3_600_000;
/// The critical-notification objective when delivery does not run: 95%
/// within this, ms.
const CRITICAL_SLO_MS_DEFAULT: u64 = 60_000;
/// Millionths of a currency unit per unit (costs are kept in millionths).
const MICRO_PER_UNIT: f64 = 1_000_000.0;

/// The delivery worker's registry as the HTTP edge sees it. The node
/// creates it before the HTTP server starts; it reads as "no delivery"
/// (no series on `/metrics`, empty dashboard panels) until a worker runs,
/// so a node without `[delivery]` does not show a backlog of zero that is
/// really unknown.
pub(crate) struct DeliveryFigures {
    pub(crate) metrics: Arc<DeliveryMetrics>,
    running: AtomicBool,
    critical_slo_ms: AtomicU64,
}

impl DeliveryFigures {
    pub(crate) fn new() -> DeliveryFigures {
        DeliveryFigures {
            metrics: Arc::new(DeliveryMetrics::default()),
            running: AtomicBool::new(false),
            critical_slo_ms: AtomicU64::new(CRITICAL_SLO_MS_DEFAULT),
        }
    }

    /// A worker now runs with this critical-latency objective.
    pub(crate) fn started(&self, critical_slo_ms: u64) {
        self.critical_slo_ms
            .store(critical_slo_ms, Ordering::Relaxed);
        self.running.store(true, Ordering::Release);
    }

    fn running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// Backlog per channel (all priorities), in `Channel::ALL` order.
    fn backlog(&self) -> Vec<ChannelBacklog> {
        Channel::ALL
            .into_iter()
            .map(|channel| ChannelBacklog {
                channel: channel.as_str().to_string(),
                backlog: Priority::ALL
                    .into_iter()
                    .map(|priority| self.metrics.backlog(Class { channel, priority }))
                    .sum(),
            })
            .collect()
    }

    fn critical_latency(&self) -> CriticalLatency {
        let slo_ms = self.critical_slo_ms.load(Ordering::Relaxed) as f64;
        let (mut within, mut delivered) = (0u64, 0u64);
        for channel in Channel::ALL {
            let c = self.metrics.channel(channel);
            within += c.critical_within_slo.load(Ordering::Relaxed);
            delivered += c.critical_delivered.load(Ordering::Relaxed);
        }
        CriticalLatency {
            p50_ms: self.metrics.critical_latency_quantile_ms(0.5) as f64,
            p95_ms: self.metrics.critical_latency_quantile_ms(0.95) as f64,
            slo_ms,
            // Nothing delivered yet is not a missed objective while a
            // worker runs (the panel would turn red on an idle node).
            within_slo_ratio: if delivered == 0 {
                if self.running() { 1.0 } else { 0.0 }
            } else {
                within as f64 / delivered as f64
            },
        }
    }

    /// Provider cost per delivered update, in currency units.
    fn cost_per_update(&self) -> f64 {
        let (mut cost_micro, mut updates) = (0u64, 0u64);
        for channel in Channel::ALL {
            let c = self.metrics.channel(channel);
            cost_micro += c.cost_micro.load(Ordering::Relaxed);
            updates += c.updates_delivered.load(Ordering::Relaxed);
        }
        if updates == 0 {
            0.0
        } else {
            cost_micro as f64 / updates as f64 / MICRO_PER_UNIT
        }
    }

    fn dead_lettered(&self) -> u64 {
        Channel::ALL
            .into_iter()
            .map(|c| {
                self.metrics
                    .channel(c)
                    .dead_lettered
                    .load(Ordering::Relaxed)
            })
            .sum()
    }
}

impl MetricsSource for DeliveryFigures {
    fn render_prometheus(&self, out: &mut String) {
        if self.running() {
            self.metrics.render_prometheus(out);
        }
    }
}

/// The engine's registry as a metrics source.
pub(crate) struct EngineMetrics(pub(crate) Arc<Metrics>);

impl MetricsSource for EngineMetrics {
    fn render_prometheus(&self, out: &mut String) {
        self.0.render_prometheus(out);
    }
}

/// Not ready while an engine worker's outputs wait for disk space (the
/// worker reads no input meanwhile; it resumes by itself).
impl ReadinessSource for EngineMetrics {
    fn not_ready(&self) -> Option<String> {
        let blocked = self.0.workers_blocked_on_storage_full();
        (blocked > 0).then(|| {
            format!(
                "the disk is full; the engine's outputs wait for space ({blocked} of {} workers) \
                 and resume by themselves",
                self.0.workers().len()
            )
        })
    }
}

/// The ingest server's counters as a metrics source.
pub(crate) struct IngestMetricsText(pub(crate) Arc<IngestMetrics>);

impl MetricsSource for IngestMetricsText {
    fn render_prometheus(&self, out: &mut String) {
        let s = self.0.snapshot();
        let counters = [
            (
                "dropline_ingest_connections_accepted_total",
                s.connections_accepted,
            ),
            (
                "dropline_ingest_connections_refused_total",
                s.connections_refused,
            ),
            ("dropline_ingest_batches_acked_total", s.batches_acked),
            ("dropline_ingest_events_acked_total", s.events_acked),
            (
                "dropline_ingest_duplicate_batches_total",
                s.duplicate_batches,
            ),
            ("dropline_ingest_bytes_received_total", s.bytes_received),
            ("dropline_ingest_dead_letters_total", s.dead_letters),
            (
                "dropline_ingest_follow_streams_opened_total",
                s.follow_streams_opened,
            ),
            (
                "dropline_ingest_follow_entries_sent_total",
                s.follow_entries_sent,
            ),
            (
                "dropline_ingest_follow_orders_skipped_total",
                s.follow_orders_skipped,
            ),
        ];
        for (name, value) in counters {
            let _ = writeln!(out, "# TYPE {name} counter\n{name} {value}");
        }
        let _ = writeln!(
            out,
            "# TYPE dropline_ingest_connections_open gauge\ndropline_ingest_connections_open {}",
            s.connections_open
        );
        let _ = writeln!(
            out,
            "# TYPE dropline_ingest_follow_streams_open gauge\ndropline_ingest_follow_streams_open {}",
            s.follow_streams_open
        );
        let _ = writeln!(out, "# TYPE dropline_ingest_errors_total counter");
        for (code, count) in &s.errors {
            let _ = writeln!(
                out,
                "dropline_ingest_errors_total{{code=\"{}\"}} {count}",
                code.name()
            );
        }
    }
}

/// Previous sample, for rates.
struct Sample {
    at: Instant,
    ingest_events: u64,
    worker_events: Vec<u64>,
}

/// Dashboard figures computed from the node's registries.
pub(crate) struct NodeStats {
    pub(crate) engine: Arc<Metrics>,
    pub(crate) ingest: Arc<IngestMetrics>,
    pub(crate) views: Option<Arc<ViewStore>>,
    pub(crate) admin: Arc<NodeAdmin>,
    pub(crate) delivery: Arc<DeliveryFigures>,
    previous: Mutex<Option<Sample>>,
}

impl NodeStats {
    pub(crate) fn new(
        engine: Arc<Metrics>,
        ingest: Arc<IngestMetrics>,
        views: Option<Arc<ViewStore>>,
        admin: Arc<NodeAdmin>,
        delivery: Arc<DeliveryFigures>,
    ) -> NodeStats {
        NodeStats {
            engine,
            ingest,
            views,
            admin,
            delivery,
            previous: Mutex::new(None),
        }
    }
}

impl StatsSource for NodeStats {
    fn snapshot(&self) -> StatsSnapshot {
        let ingest = self.ingest.snapshot();
        let worker_events: Vec<u64> = self
            .engine
            .workers()
            .iter()
            .map(|w| w.events_total.load(Ordering::Relaxed))
            .collect();
        let now = Instant::now();
        let mut previous = self.previous.lock().unwrap_or_else(|e| e.into_inner());
        let (ingest_rate, worker_rates) = match previous.as_ref() {
            Some(p) => {
                let secs = now.duration_since(p.at).as_secs_f64().max(1e-3);
                let ingest_rate = ingest.events_acked.saturating_sub(p.ingest_events) as f64 / secs;
                let rates = worker_events
                    .iter()
                    .enumerate()
                    .map(|(i, e)| WorkerRate {
                        worker: u32::try_from(i).unwrap_or(u32::MAX),
                        events_per_s: e.saturating_sub(p.worker_events.get(i).copied().unwrap_or(0))
                            as f64
                            / secs,
                    })
                    .collect();
                (ingest_rate, rates)
            }
            None => (0.0, Vec::new()),
        };
        *previous = Some(Sample {
            at: now,
            ingest_events: ingest.events_acked,
            worker_events,
        });
        drop(previous);
        let partition_lag = self
            .engine
            .partitions()
            .iter()
            .enumerate()
            .map(|(p, m)| PartitionLag {
                partition: u32::try_from(p).unwrap_or(u32::MAX),
                lag_records: m.lag(InputKind::CarrierEvents) + m.lag(InputKind::Orders),
            })
            .collect();
        let freshness = match &self.views {
            Some(views) => {
                let (active, stale) = views.freshness(super::wall_clock_ms(), STALE_AFTER_MS);
                Freshness {
                    active_shipments: active,
                    stale_over_1h: stale,
                    stale_ratio: if active == 0 {
                        0.0
                    } else {
                        stale as f64 / active as f64
                    },
                }
            }
            None => Freshness {
                active_shipments: 0,
                stale_over_1h: 0,
                stale_ratio: 0.0,
            },
        };
        let delivery = &self.delivery;
        let running = delivery.running();
        StatsSnapshot {
            time_ms: super::wall_clock_ms(),
            ingest_events_per_s: ingest_rate,
            partition_lag,
            worker_rates,
            notification_backlog: if running {
                delivery.backlog()
            } else {
                Vec::new()
            },
            critical_latency: delivery.critical_latency(),
            freshness,
            carrier_errors: Vec::new(),
            cost_per_update: delivery.cost_per_update(),
            dead_letters_total: ingest.dead_letters + delivery.dead_lettered(),
            drop_mode: self.admin.drop_mode().unwrap_or(false),
        }
    }
}

/// Drop-mode switch: appends a control record the engine applies (and
/// replays see).
pub(crate) struct NodeAdmin {
    pub(crate) log: Arc<Log>,
    /// 0 unknown, 1 off, 2 on: the last switch made through this node.
    state: AtomicU8,
}

impl NodeAdmin {
    pub(crate) fn new(log: Arc<Log>) -> NodeAdmin {
        NodeAdmin {
            log,
            state: AtomicU8::new(0),
        }
    }
}

impl AdminActions for NodeAdmin {
    fn set_drop_mode(&self, on: bool) -> Result<u64, AdminError> {
        let offset = request_drop_mode(&self.log, on, None)?;
        self.state.store(if on { 2 } else { 1 }, Ordering::Release);
        Ok(offset)
    }

    fn drop_mode(&self) -> Option<bool> {
        match self.state.load(Ordering::Acquire) {
            1 => Some(false),
            2 => Some(true),
            _ => None,
        }
    }
}
