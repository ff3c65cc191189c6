//! The adapter's configuration (`adapter.toml`), every limit with its
//! unit. docs/adapter.example.toml is a commented example.

use std::net::SocketAddr;
use std::path::PathBuf;

use dropline_operators::model::Carrier;
use serde::{Deserialize, Serialize};

use super::error::AdapterError;
use super::rate_window::RateLimit;

/// Default poll interval of shipments that matter now (out for delivery,
/// open exception, drop orders): 5 to 15 minutes.
pub const URGENT_INTERVAL_MS_MIN_DEFAULT: u64 = 5 * 60_000;
/// See [`URGENT_INTERVAL_MS_MIN_DEFAULT`].
pub const URGENT_INTERVAL_MS_MAX_DEFAULT: u64 = 15 * 60_000;
/// Default poll interval of quiet shipments: 6 to 12 hours.
pub const QUIET_INTERVAL_MS_MIN_DEFAULT: u64 = 6 * 3_600_000;
/// See [`QUIET_INTERVAL_MS_MIN_DEFAULT`].
pub const QUIET_INTERVAL_MS_MAX_DEFAULT: u64 = 12 * 3_600_000;
/// Default time a delivered (or otherwise finished) shipment is still
/// polled, quietly, for late corrections: 24 hours.
pub const DELIVERED_GRACE_MS_DEFAULT: u64 = 24 * 3_600_000;
/// Default most delay of a new shipment's first poll: 1 minute.
pub const FIRST_POLL_DELAY_MS_MAX_DEFAULT: u64 = 60_000;
/// Default delay before polling again after a failed request: 1 minute.
pub const FAILURE_RETRY_MS_DEFAULT: u64 = 60_000;
/// Default `Retry-After` assumed when a 429 carries none: 60 s.
pub const RETRY_AFTER_MS_DEFAULT: u64 = 60_000;
/// Default time a carrier request may take, in real ms.
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Default share of each limit kept in reserve (windows are widened by it).
pub const LIMIT_HEADROOM_PERCENT_DEFAULT: u8 = 10;
/// Default most shipments tracked.
pub const SHIPMENTS_MAX_DEFAULT: usize = 1_000_000;
/// Default consecutive failures that open a carrier's breaker.
pub const BREAKER_FAILURES_MAX_DEFAULT: u32 = 5;
/// Default time an open breaker waits before a probe: 1 minute.
pub const BREAKER_COOLDOWN_MS_DEFAULT: u64 = 60_000;
/// Default webhook silence that promotes a carrier's shipments to
/// polling: 30 minutes.
pub const SILENCE_THRESHOLD_MS_DEFAULT: u64 = 30 * 60_000;
/// Default largest webhook body accepted, in bytes.
pub const WEBHOOK_BODY_BYTES_MAX_DEFAULT: usize = 4 * 1024 * 1024;
/// Default retention of the adapter's state log (registrations, seen
/// scans, dead letters): 45 days.
pub const STATE_RETENTION_MS_DEFAULT: u64 = 45 * 86_400_000;

/// Default most entries per Orders frame asked of the node.
pub const ORDERS_ENTRIES_MAX_DEFAULT: u32 = 1_024;
/// Default longest time a moved orders cursor waits before it is saved.
pub const ORDERS_CURSOR_SAVE_INTERVAL_MS_DEFAULT: u64 = 1_000;
/// Default first delay before following the orders feed again.
pub const ORDERS_BACKOFF_INITIAL_MS_DEFAULT: u64 = 100;
/// Default longest delay before following the orders feed again.
pub const ORDERS_BACKOFF_MAX_MS_DEFAULT: u64 = 5_000;

/// How to reach one carrier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarrierConfig {
    /// Base URL of the carrier's API (the simulator's URL in tests).
    pub base_url: String,
    /// Whether the carrier pushes webhooks to us (then polling is only a
    /// backstop, until the webhooks fall silent).
    #[serde(default)]
    pub webhooks: bool,
    /// Secret the carrier signs webhooks with.
    #[serde(default)]
    pub webhook_secret: String,
    /// The carrier's rate limits (every one applies).
    pub limits: Vec<RateLimit>,
    /// Most requests in flight at once.
    #[serde(default = "inflight_default")]
    pub inflight_max: u32,
    /// API key sent as `DHL-API-Key` (DHL) or ignored.
    #[serde(default)]
    pub api_key: String,
}

fn inflight_default() -> u32 {
    1
}

/// The carriers this adapter talks to (absent: not used).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CarriersConfig {
    /// UPS.
    pub ups: Option<CarrierConfig>,
    /// FedEx.
    pub fedex: Option<CarrierConfig>,
    /// USPS.
    pub usps: Option<CarrierConfig>,
    /// DHL.
    pub dhl: Option<CarrierConfig>,
}

impl CarriersConfig {
    /// The configuration of `carrier`, if it is used.
    pub fn get(&self, carrier: Carrier) -> Option<&CarrierConfig> {
        match carrier {
            Carrier::Ups => self.ups.as_ref(),
            Carrier::Fedex => self.fedex.as_ref(),
            Carrier::Usps => self.usps.as_ref(),
            Carrier::Dhl => self.dhl.as_ref(),
        }
    }

    /// The configuration of `carrier`, mutably.
    pub fn get_mut(&mut self, carrier: Carrier) -> &mut Option<CarrierConfig> {
        match carrier {
            Carrier::Ups => &mut self.ups,
            Carrier::Fedex => &mut self.fedex,
            Carrier::Usps => &mut self.usps,
            Carrier::Dhl => &mut self.dhl,
        }
    }
}

/// Poll cadence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PollerConfig {
    /// Shortest interval of shipments that matter now, in ms.
    pub urgent_interval_ms_min: u64,
    /// Longest interval of shipments that matter now, in ms.
    pub urgent_interval_ms_max: u64,
    /// Shortest interval of quiet shipments, in ms.
    pub quiet_interval_ms_min: u64,
    /// Longest interval of quiet shipments, in ms.
    pub quiet_interval_ms_max: u64,
    /// Time a finished shipment is still polled, in ms.
    pub delivered_grace_ms: u64,
    /// Most delay of a new shipment's first poll, in ms.
    pub first_poll_delay_ms_max: u64,
    /// Delay before polling again after a failed request, in ms.
    pub failure_retry_ms: u64,
    /// `Retry-After` assumed when a 429 has none, in ms.
    pub retry_after_ms_default: u64,
    /// Time a carrier request may take, in real ms.
    pub request_timeout_ms: u64,
    /// Share of every rate limit kept in reserve, in percent (0..=90).
    pub limit_headroom_percent: u8,
    /// Most shipments tracked; registrations beyond it are refused.
    pub shipments_max: usize,
    /// Seed of the interval jitter.
    pub seed: u64,
}

impl Default for PollerConfig {
    fn default() -> Self {
        PollerConfig {
            urgent_interval_ms_min: URGENT_INTERVAL_MS_MIN_DEFAULT,
            urgent_interval_ms_max: URGENT_INTERVAL_MS_MAX_DEFAULT,
            quiet_interval_ms_min: QUIET_INTERVAL_MS_MIN_DEFAULT,
            quiet_interval_ms_max: QUIET_INTERVAL_MS_MAX_DEFAULT,
            delivered_grace_ms: DELIVERED_GRACE_MS_DEFAULT,
            first_poll_delay_ms_max: FIRST_POLL_DELAY_MS_MAX_DEFAULT,
            failure_retry_ms: FAILURE_RETRY_MS_DEFAULT,
            retry_after_ms_default: RETRY_AFTER_MS_DEFAULT,
            request_timeout_ms: REQUEST_TIMEOUT_MS_DEFAULT,
            limit_headroom_percent: LIMIT_HEADROOM_PERCENT_DEFAULT,
            shipments_max: SHIPMENTS_MAX_DEFAULT,
            seed: 1,
        }
    }
}

/// Circuit breaker per carrier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive failures that open it.
    pub failures_max: u32,
    /// Time it stays open before one probe, in ms.
    pub cooldown_ms: u64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures_max: BREAKER_FAILURES_MAX_DEFAULT,
            cooldown_ms: BREAKER_COOLDOWN_MS_DEFAULT,
        }
    }
}

/// Webhook silence detection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SilenceConfig {
    /// A webhook carrier with active shipments and no valid webhook for
    /// this long is considered silent, in ms.
    pub threshold_ms: u64,
}

impl Default for SilenceConfig {
    fn default() -> Self {
        SilenceConfig {
            threshold_ms: SILENCE_THRESHOLD_MS_DEFAULT,
        }
    }
}

/// Following the node's orders feed (`[orders]`): the tracking numbers
/// shipment creation appends to the node's `orders` topic, for the
/// configured carriers, over the same QUIC endpoint and token as `[node]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrdersConfig {
    /// Follow the orders feed (needs `[node]`).
    pub follow: bool,
    /// Most entries per Orders frame asked of the node (1..=4096).
    pub entries_max: u32,
    /// Longest time a moved cursor waits before it is saved (it is saved
    /// at shutdown too), in ms.
    pub cursor_save_interval_ms: u64,
    /// First delay before following again after a failure, in ms.
    pub backoff_initial_ms: u64,
    /// Longest delay before following again, in ms.
    pub backoff_max_ms: u64,
}

impl Default for OrdersConfig {
    fn default() -> Self {
        OrdersConfig {
            follow: true,
            entries_max: ORDERS_ENTRIES_MAX_DEFAULT,
            cursor_save_interval_ms: ORDERS_CURSOR_SAVE_INTERVAL_MS_DEFAULT,
            backoff_initial_ms: ORDERS_BACKOFF_INITIAL_MS_DEFAULT,
            backoff_max_ms: ORDERS_BACKOFF_MAX_MS_DEFAULT,
        }
    }
}

/// The node and the ingest client (used by [`crate::carrier::ClientSink`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's QUIC ingest address.
    pub addr: SocketAddr,
    /// Name checked in the node's certificate.
    #[serde(default = "server_name_default")]
    pub server_name: String,
    /// SHA-256 fingerprint of the node's certificate (64 hex digits), as
    /// printed by `dropline serve` on first start.
    pub fingerprint_sha256: String,
    /// This adapter's name at the node.
    pub adapter: String,
    /// This adapter's token.
    pub token: String,
    /// The durable spool directory (events taken from carriers are
    /// acknowledged to them only once they are in it).
    pub spool_dir: PathBuf,
    /// The node's partition count, if known (lets the adapter start while
    /// the node is unreachable).
    #[serde(default)]
    pub partitions: Option<u32>,
}

fn server_name_default() -> String {
    "dropline-node".to_string()
}

/// Configuration of [`crate::carrier::run_adapter`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdapterConfig {
    /// HTTP address of the webhook receivers and `/metrics`.
    pub listen: SocketAddr,
    /// Directory of the adapter's state log.
    pub state_dir: PathBuf,
    /// Retention of the state log, in ms.
    #[serde(default = "state_retention_default")]
    pub state_retention_ms: u64,
    /// Largest webhook body accepted, in bytes.
    #[serde(default = "webhook_body_default")]
    pub webhook_body_bytes_max: usize,
    /// The node (absent when the caller supplies its own event sink).
    #[serde(default)]
    pub node: Option<NodeConfig>,
    /// Carriers.
    #[serde(default)]
    pub carriers: CarriersConfig,
    /// Poll cadence.
    #[serde(default)]
    pub poller: PollerConfig,
    /// Circuit breaker.
    #[serde(default)]
    pub breaker: BreakerConfig,
    /// Silence detection.
    #[serde(default)]
    pub silence: SilenceConfig,
    /// Following the node's orders feed.
    #[serde(default)]
    pub orders: OrdersConfig,
}

fn state_retention_default() -> u64 {
    STATE_RETENTION_MS_DEFAULT
}

fn webhook_body_default() -> usize {
    WEBHOOK_BODY_BYTES_MAX_DEFAULT
}

impl AdapterConfig {
    /// Defaults with no carriers, listening on `listen`, state in `state_dir`.
    pub fn new(listen: SocketAddr, state_dir: impl Into<PathBuf>) -> AdapterConfig {
        AdapterConfig {
            listen,
            state_dir: state_dir.into(),
            state_retention_ms: STATE_RETENTION_MS_DEFAULT,
            webhook_body_bytes_max: WEBHOOK_BODY_BYTES_MAX_DEFAULT,
            node: None,
            carriers: CarriersConfig::default(),
            poller: PollerConfig::default(),
            breaker: BreakerConfig::default(),
            silence: SilenceConfig::default(),
            orders: OrdersConfig::default(),
        }
    }

    /// Parses `adapter.toml` text and checks it.
    pub fn from_toml(text: &str) -> Result<AdapterConfig, AdapterError> {
        let config: AdapterConfig =
            toml::from_str(text).map_err(|e| AdapterError::ConfigParse {
                reason: e.to_string(),
            })?;
        config.check()?;
        Ok(config)
    }

    /// Checks ranges.
    pub fn check(&self) -> Result<(), AdapterError> {
        let bad = |field: &'static str, reason: &'static str| {
            Err(AdapterError::InvalidConfig { field, reason })
        };
        let p = &self.poller;
        if p.urgent_interval_ms_min == 0 || p.urgent_interval_ms_min > p.urgent_interval_ms_max {
            return bad(
                "poller.urgent_interval_ms_min",
                "must be positive and at most the max",
            );
        }
        if p.quiet_interval_ms_min == 0 || p.quiet_interval_ms_min > p.quiet_interval_ms_max {
            return bad(
                "poller.quiet_interval_ms_min",
                "must be positive and at most the max",
            );
        }
        let o = &self.orders;
        if o.entries_max == 0 || o.entries_max > crate::wire::ORDER_ENTRIES_MAX {
            return bad("orders.entries_max", "must be within 1..=4096");
        }
        if o.backoff_initial_ms == 0 || o.backoff_initial_ms > o.backoff_max_ms {
            return bad(
                "orders.backoff_initial_ms",
                "must be positive and at most backoff_max_ms",
            );
        }
        if p.limit_headroom_percent > 90 {
            return bad("poller.limit_headroom_percent", "must be within 0..=90");
        }
        for c in Carrier::ALL {
            if let Some(cc) = self.carriers.get(c) {
                if cc
                    .limits
                    .iter()
                    .any(|l| l.requests == 0 || l.window_ms == 0)
                {
                    return bad(
                        "carriers.*.limits",
                        "requests and window_ms must be positive",
                    );
                }
                if cc.inflight_max == 0 {
                    return bad("carriers.*.inflight_max", "must be positive");
                }
                if cc.webhooks && cc.webhook_secret.is_empty() {
                    return bad("carriers.*.webhook_secret", "required when webhooks = true");
                }
            }
        }
        Ok(())
    }
}

/// The carriers' published limits (UPS publishes none; 100 per 10 s is our
/// own conservative figure), for configurations and tests.
pub fn published_limits(carrier: Carrier) -> Vec<RateLimit> {
    let l = |requests, window_ms| RateLimit {
        requests,
        window_ms,
    };
    match carrier {
        Carrier::Ups => vec![l(100, 10_000)],
        Carrier::Fedex => vec![l(1_400, 10_000)],
        Carrier::Usps => vec![l(60, 3_600_000)],
        Carrier::Dhl => vec![l(1, 5_000), l(250, 86_400_000)],
    }
}
