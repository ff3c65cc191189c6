//! The adapter process (`dropline adapter --config adapter.toml`): carrier
//! webhooks in, carrier polling out, canonical events to the node.
//!
//! Why a separate process: carriers are slow, rate-limited and flaky, and
//! their failures must not reach the node. The adapter absorbs them: it
//! verifies and normalizes webhooks, polls each carrier within its real
//! rate limits on an adaptive schedule, notices when a carrier's webhooks
//! fall silent and polls instead, and hands every new scan exactly once to
//! the node through the QUIC ingest client, whose durable spool makes a
//! 200 to a carrier a promise that survives SIGKILL.
//!
//! Pieces: [`config`](AdapterConfig) (serde + TOML), `webhook` (receivers
//! and `/metrics`), `poller` (one task per carrier) over `schedule` (the
//! heap of next poll times with `rate_window`, `breaker`), `silence`,
//! `registry` (shipments and seen scans), `state_log` (their durability,
//! and dead letters), [`EventSink`] / [`ClientSink`] (the hand-off).
//!
//! Where tracking numbers come from: the node's orders feed (`orders`,
//! followed over the QUIC connection's Follow stream from a cursor kept in
//! `state_dir`), [`AdapterHandle::register`] (in-process callers), and
//! webhooks for numbers not registered yet. All three take the same path;
//! registrations are kept in the state log across restarts.

mod breaker;
mod clock;
mod config;
mod core;
mod error;
mod metrics;
mod orders;
mod poller;
mod rate_window;
mod registry;
mod schedule;
mod signature;
mod silence;
mod sink;
mod state_log;
mod webhook;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use dropline_operators::model::Carrier;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

pub use clock::{Clock, SLEEP_REAL_MS_MAX, ScaledClock, SystemClock};
pub use config::{
    AdapterConfig, BREAKER_COOLDOWN_MS_DEFAULT, BREAKER_FAILURES_MAX_DEFAULT, BreakerConfig,
    CarrierConfig, CarriersConfig, DELIVERED_GRACE_MS_DEFAULT, FAILURE_RETRY_MS_DEFAULT,
    FIRST_POLL_DELAY_MS_MAX_DEFAULT, LIMIT_HEADROOM_PERCENT_DEFAULT, NodeConfig,
    ORDERS_BACKOFF_INITIAL_MS_DEFAULT, ORDERS_BACKOFF_MAX_MS_DEFAULT,
    ORDERS_CURSOR_SAVE_INTERVAL_MS_DEFAULT, ORDERS_ENTRIES_MAX_DEFAULT, OrdersConfig, PollerConfig,
    QUIET_INTERVAL_MS_MAX_DEFAULT, QUIET_INTERVAL_MS_MIN_DEFAULT, REQUEST_TIMEOUT_MS_DEFAULT,
    RETRY_AFTER_MS_DEFAULT, SHIPMENTS_MAX_DEFAULT, SILENCE_THRESHOLD_MS_DEFAULT,
    STATE_RETENTION_MS_DEFAULT, SilenceConfig, URGENT_INTERVAL_MS_MAX_DEFAULT,
    URGENT_INTERVAL_MS_MIN_DEFAULT, WEBHOOK_BODY_BYTES_MAX_DEFAULT, published_limits,
};
pub use core::FEDEX_NUMBERS_PER_REQUEST_MAX;
pub use error::AdapterError;
pub use metrics::{AdapterMetricsSnapshot, CarrierMetricsSnapshot, OrdersMetricsSnapshot};
pub use rate_window::RateLimit;
pub use registry::{
    SEEN_PER_SHIPMENT_MAX, TRACKING_NUMBER_BYTES_MAX, event_fingerprint, fingerprint,
};
pub use signature::{
    FEDEX_SIGNATURE_HEADER, HMAC_SIGNATURE_HEADER, SignatureError, signature_header, verify,
};
pub use sink::{
    ClientSink, EventSink, RECOVERED_EVENTS_MAX, ROOM_FOR_AN_EVENT_BYTES, SinkRefusal,
    read_spool_events,
};
pub use state_log::{
    DEAD_LETTER_PAYLOAD_BYTES_MAX, DEAD_LETTER_TOPIC, STATE_FORMAT_V1, STATE_TOPIC,
};
pub use webhook::SPOOL_FULL_RETRY_AFTER_S;

use self::core::{Core, Shared};
use state_log::StateLog;

impl<S: EventSink> Shared<S> {
    pub(crate) fn snapshot(&self) -> AdapterMetricsSnapshot {
        let shipments = self.lock().registry.shipments.len() as u64;
        self.metrics.snapshot(self.sink.depth_events(), shipments)
    }
}

/// A running adapter.
pub struct AdapterHandle<S: EventSink> {
    addr: SocketAddr,
    shared: Arc<Shared<S>>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl<S: EventSink> std::fmt::Debug for AdapterHandle<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdapterHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Starts the adapter on the wall clock, handing events to `sink`.
pub async fn run_adapter<S: EventSink>(
    config: AdapterConfig,
    sink: Arc<S>,
) -> Result<AdapterHandle<S>, AdapterError> {
    run_adapter_with_clock(config, sink, Arc::new(SystemClock)).await
}

/// The ingest client with its spool, from the configuration's `[node]`.
pub async fn connect_node(config: &AdapterConfig) -> Result<ClientSink, AdapterError> {
    let node = config.node.as_ref().ok_or(AdapterError::NoNode)?;
    ClientSink::connect(ClientSink::client_config(node)).await
}

/// Starts the adapter on `clock` (tests run it on simulated time).
pub async fn run_adapter_with_clock<S: EventSink>(
    config: AdapterConfig,
    sink: Arc<S>,
    clock: Arc<dyn Clock>,
) -> Result<AdapterHandle<S>, AdapterError> {
    config.check()?;
    let (state_log, records) = StateLog::open(&config.state_dir, config.state_retention_ms)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| AdapterError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| AdapterError::Bind {
        addr: config.listen,
        source,
    })?;
    let now = clock.now_ms();
    let shared = Arc::new(Shared {
        core: Mutex::new(Core::new(&config, now)),
        metrics: Default::default(),
        wake: [Notify::new(), Notify::new(), Notify::new(), Notify::new()],
        settled: Notify::new(),
        config,
        clock,
        state_log,
        sink,
    });
    let recovered = shared.sink.recovered();
    let (state_records, spooled) = (records.len(), recovered.len());
    shared.restore(records, recovered);
    if state_records > 0 || spooled > 0 {
        tracing::info!(
            state_records,
            spooled_events = spooled,
            shipments = shared.lock().registry.shipments.len(),
            "adapter restarted: state and spool restored, scans already handed on will not be sent again"
        );
    }

    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    let http = poller::http_client(shared.config.poller.request_timeout_ms);
    for carrier in Carrier::ALL {
        if shared.config.carriers.get(carrier).is_some() {
            tasks.push(tokio::spawn(poller::run(
                shared.clone(),
                carrier,
                http.clone(),
                stopped.clone(),
            )));
        }
    }
    if let (true, Some(node)) = (shared.config.orders.follow, &shared.config.node) {
        tasks.push(tokio::spawn(orders::run(
            shared.clone(),
            ClientSink::client_config(node),
            stopped.clone(),
        )));
    }
    let router = webhook::router(shared.clone());
    let mut server_stop = stopped;
    tasks.push(tokio::spawn(async move {
        let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
            let _ = server_stop.wait_for(|s| *s).await;
        });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "adapter HTTP server stopped");
        }
    }));
    Ok(AdapterHandle {
        addr,
        shared,
        stop,
        tasks: Mutex::new(tasks),
    })
}

impl<S: EventSink> AdapterHandle<S> {
    /// The HTTP address (webhooks, metrics).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, the base of the webhook URLs given to carriers.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Starts tracking `tracking_number` (or marks it part of a drop).
    /// Returns true if it was new.
    pub fn register(
        &self,
        tracking_number: &str,
        carrier: Carrier,
        drop: bool,
    ) -> Result<bool, AdapterError> {
        self.shared.register(tracking_number, carrier, drop)
    }

    /// A copy of the counters.
    pub fn metrics(&self) -> AdapterMetricsSnapshot {
        self.shared.snapshot()
    }

    /// The counters in the Prometheus text format.
    pub fn render_prometheus(&self) -> String {
        self.shared.snapshot().render_prometheus()
    }

    /// Whether `carrier`'s webhooks are considered silent now.
    pub fn is_silent(&self, carrier: Carrier) -> bool {
        self.shared.lock().silence[self::core::slot(carrier)].is_silent()
    }

    /// Active (not finished, not retired) shipments of `carrier`.
    pub fn active_shipments(&self, carrier: Carrier) -> usize {
        self.shared.lock().registry.active_count(carrier)
    }

    /// The event sink.
    pub fn sink(&self) -> &Arc<S> {
        &self.shared.sink
    }

    /// Stops the pollers and the HTTP server.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let tasks = std::mem::take(
            &mut *self
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl<S: EventSink> Drop for AdapterHandle<S> {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
