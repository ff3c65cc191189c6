//! What the node plugs into the HTTP edge: metrics text, dashboard
//! figures, and admin actions.
//!
//! Why traits: the engine's and the delivery's registries live in other
//! crates and processes evolve separately; the HTTP edge only needs to
//! render text, serialise a snapshot, and ask for a drop-mode switch. The
//! node implements these over its real parts; tests implement them with
//! fixed data.

use serde::{Deserialize, Serialize};

/// Appends Prometheus text exposition lines (`# HELP`, `# TYPE`, samples).
pub trait MetricsSource: Send + Sync {
    /// Appends this source's metrics to `out`.
    fn render_prometheus(&self, out: &mut String);
}

/// Lag of one input partition.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PartitionLag {
    /// Partition number.
    pub partition: u32,
    /// Records appended but not yet processed.
    pub lag_records: u64,
}

/// Throughput of one engine worker.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WorkerRate {
    /// Worker index.
    pub worker: u32,
    /// Events processed per second (recent).
    pub events_per_s: f64,
}

/// Notification backlog of one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelBacklog {
    /// `webhook`, `email`, `sms` or `push`.
    pub channel: String,
    /// Intents not yet delivered.
    pub backlog: u64,
}

/// Critical-notification latency against its objective.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CriticalLatency {
    /// Median, ms.
    pub p50_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// The objective: 95% within this, ms (60 000 by default).
    pub slo_ms: f64,
    /// Share of critical notifications delivered within the objective.
    pub within_slo_ratio: f64,
}

/// Freshness of active shipments.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Freshness {
    /// Shipments with a view and no terminal status.
    pub active_shipments: u64,
    /// Of those, how many had no update for over an hour.
    pub stale_over_1h: u64,
    /// `stale_over_1h / active_shipments` (0 when none are active).
    pub stale_ratio: f64,
}

/// Error rate of one carrier's API or webhooks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CarrierErrors {
    /// Carrier name.
    pub carrier: String,
    /// Failed calls / all calls (recent).
    pub error_rate: f64,
}

/// One second's figures for the ops dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Wall time of the snapshot, ms since the epoch.
    pub time_ms: u64,
    /// Carrier events appended per second.
    pub ingest_events_per_s: f64,
    /// Lag per input partition.
    pub partition_lag: Vec<PartitionLag>,
    /// Events per second per worker.
    pub worker_rates: Vec<WorkerRate>,
    /// Notification backlog per channel.
    pub notification_backlog: Vec<ChannelBacklog>,
    /// Critical-notification latency vs its SLO.
    pub critical_latency: CriticalLatency,
    /// Share of active shipments with no update for over an hour.
    pub freshness: Freshness,
    /// Carrier error rates.
    pub carrier_errors: Vec<CarrierErrors>,
    /// Provider cost per customer-visible update (currency units).
    pub cost_per_update: f64,
    /// Dead letters kept so far.
    pub dead_letters_total: u64,
    /// Whether drop mode is on.
    pub drop_mode: bool,
}

/// Produces dashboard snapshots.
pub trait StatsSource: Send + Sync {
    /// The figures now.
    fn snapshot(&self) -> StatsSnapshot;
}

/// Why an admin action failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Appending the control record failed.
    #[error("appending the control record: {0}")]
    Log(#[from] dropline_log::LogError),
    /// The node does not support this action.
    #[error("not supported by this node")]
    Unsupported,
}

/// A part of the node that can say it cannot make progress now, beyond
/// what the HTTP edge sees itself (poisoned log partitions, the view store
/// catching up). `/readyz` answers 503 with the first reason given.
pub trait ReadinessSource: Send + Sync {
    /// Why this part is not ready (one line, no trailing newline), or
    /// `None` when it is.
    fn not_ready(&self) -> Option<String>;
}

/// Admin actions the node performs.
pub trait AdminActions: Send + Sync {
    /// Switches drop mode (appends a control record); returns its offset
    /// in `control`.
    fn set_drop_mode(&self, on: bool) -> Result<u64, AdminError>;
    /// Whether drop mode is on, if known.
    fn drop_mode(&self) -> Option<bool>;
}
