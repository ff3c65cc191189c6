//! The shared state of the HTTP edge: what the node hands in
//! ([`HttpState`]) and what the server builds around it ([`App`]).

use std::sync::Arc;
use std::time::Instant;

use dropline_log::Log;
use tokio::sync::Semaphore;

use super::config::HttpConfig;
use super::create::InFlight;
use super::metrics::HttpMetrics;
use super::rate_limit::RateLimiter;
use super::seal::ContactSealer;
use super::sources::{AdminActions, MetricsSource, ReadinessSource, StatsSource};
use super::views::ViewStore;

/// What the node gives the HTTP edge.
#[derive(Clone)]
pub struct HttpState {
    /// The node's log.
    pub log: Arc<Log>,
    /// Seals contact addresses (load it with
    /// [`ContactSealer::load_or_create`] from the data directory; give the
    /// same one to the delivery edge as its `ContactOpener`).
    pub sealer: ContactSealer,
    /// The view store; `None`: the server creates one and tails the log.
    pub views: Option<Arc<ViewStore>>,
    /// Metrics of the node's other parts (engine, delivery, ingest).
    pub metrics: Vec<Arc<dyn MetricsSource>>,
    /// Dashboard figures; `None`: `/v1/admin/stats` answers 503.
    pub stats: Option<Arc<dyn StatsSource>>,
    /// Admin actions (drop mode); `None`: the switch answers 503.
    pub admin: Option<Arc<dyn AdminActions>>,
    /// Parts of the node `/readyz` asks whether they can make progress
    /// (the engine waiting out a full disk, say).
    pub readiness: Vec<Arc<dyn ReadinessSource>>,
}

impl std::fmt::Debug for HttpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpState")
            .field("log", &self.log.dir())
            .field("metrics_sources", &self.metrics.len())
            .field("stats", &self.stats.is_some())
            .field("admin", &self.admin.is_some())
            .finish_non_exhaustive()
    }
}

impl HttpState {
    /// State with only the log and the sealer.
    pub fn new(log: Arc<Log>, sealer: ContactSealer) -> HttpState {
        HttpState {
            log,
            sealer,
            views: None,
            metrics: Vec::new(),
            stats: None,
            admin: None,
            readiness: Vec::new(),
        }
    }
}

/// Everything a handler needs.
pub(crate) struct App {
    pub(crate) config: HttpConfig,
    pub(crate) state: HttpState,
    pub(crate) views: Arc<ViewStore>,
    pub(crate) metrics: Arc<HttpMetrics>,
    pub(crate) rate_limiter: Option<RateLimiter>,
    pub(crate) in_flight: Arc<InFlight>,
    pub(crate) creations: Arc<Semaphore>,
    pub(crate) sse_streams: Arc<Semaphore>,
    pub(crate) started: Instant,
    /// `Cache-Control` of public tracking responses (built once).
    pub(crate) cache_control_public: axum::http::HeaderValue,
    /// `Cache-Control` of full tracking responses (built once).
    pub(crate) cache_control_private: axum::http::HeaderValue,
    /// Set to true when the server shuts down (ends SSE streams).
    pub(crate) shutdown: tokio::sync::watch::Sender<bool>,
}

fn cache_control(scope: &str, max_age_s: u32) -> axum::http::HeaderValue {
    axum::http::HeaderValue::from_str(&format!("{scope}, max-age={max_age_s}"))
        .unwrap_or(axum::http::HeaderValue::from_static("no-cache"))
}

impl App {
    pub(crate) fn new(config: HttpConfig, state: HttpState, views: Arc<ViewStore>) -> App {
        App {
            rate_limiter: config.rate_limit.map(RateLimiter::new),
            creations: Arc::new(Semaphore::new(config.creations_in_flight_max.max(1))),
            sse_streams: Arc::new(Semaphore::new(config.sse_streams_max.max(1))),
            in_flight: Arc::new(InFlight::default()),
            metrics: Arc::new(HttpMetrics::default()),
            started: Instant::now(),
            shutdown: tokio::sync::watch::channel(false).0,
            cache_control_public: cache_control("public", config.cache_max_age_s),
            cache_control_private: cache_control("private", config.cache_max_age_s),
            config,
            state,
            views,
        }
    }

    /// Wall-clock time from the log's clock, ms since the epoch.
    pub(crate) fn now_ms(&self) -> u64 {
        self.state.log.config().clock.now_ms()
    }
}
