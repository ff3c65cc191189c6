//! The node's HTTP edge: shipment creation, the public tracking API with
//! ETags and SSE, the tracking page and widget, the ops dashboard,
//! `/metrics`, health checks, the admin API and forensics.
//!
//! Why one axum server with a route table: every route is registered
//! through [`router::build`], which also records it, so a test can hold the
//! OpenAPI document ([`openapi`]) to the routes actually served. Handlers
//! never block the runtime on the log's fsync (creation appends run on the
//! blocking pool) and never hold a lock across an await. The public
//! tracking routes sit behind a per-client rate limit; admin routes behind
//! a bearer token kept hashed.
//!
//! Not built: TLS on this listener. Run the node behind a TLS-terminating
//! proxy (or on a private network) until it is; the QUIC ingest has its
//! own TLS.

mod admin;
mod app;
mod config;
mod create;
mod dead_letter;
pub(crate) mod hex;
mod listener;
mod metrics;
pub mod openapi;
mod pages;
mod problem;
mod rate_limit;
mod router;
pub mod seal;
mod sources;
mod tracking;
pub mod views;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;

pub use admin::{
    DropModeRequest, DropModeResponse, NodeStatus, PartitionStatus, TopicStatus,
    refuse_unless_bearer, topics_status,
};
pub use app::HttpState;
pub use config::{
    ActionLinks, AdminToken, CACHE_MAX_AGE_S_DEFAULT, HttpConfig, REQUEST_BODY_BYTES_MAX,
    RateLimit, ShipmentKey,
};
pub use create::{
    ADDRESS_BYTES_MAX, CONTACTS_MAX, ContactInput, CreateShipment, PromisedWindow, SKUS_MAX,
    ShipmentCreated, TRACKING_NUMBER_BYTES_MAX, validate,
};
pub use dead_letter::{
    DEAD_LETTER_SEAL_CONTEXT, DEAD_LETTERS_TOPIC, FLAG_PAYLOAD_SEALED, HTTP_DEAD_LETTER_KEY,
    HttpDeadLetter, SOURCE_HTTP_API, keep_admin_refusal,
};
pub use metrics::HttpMetrics;
pub use problem::{Problem, ProblemKind};
pub use router::{RouteInfo, route_table};
pub use seal::{ContactSealer, KeyError, SealError};
pub use sources::{
    AdminActions, AdminError, CarrierErrors, ChannelBacklog, CriticalLatency, Freshness,
    MetricsSource, PartitionLag, ReadinessSource, StatsSnapshot, StatsSource, WorkerRate,
};
pub use tracking::{Access, Action, ExceptionInfo, Place, TimelineItem, TrackingResponse, Window};
pub use views::{NewShipment, ViewStore};

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// Binding the listen address failed.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The TLS certificate or key could not be loaded.
    #[error("https certificate: {0}")]
    Tls(#[source] Box<crate::ingest::IngestError>),
}

/// A running HTTP server. Dropping it stops accepting and ends live streams.
#[derive(Debug)]
pub struct HttpHandle {
    addr: SocketAddr,
    app: Arc<app::App>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
    tails: Vec<JoinHandle<Result<(), dropline_log::LogError>>>,
}

impl std::fmt::Debug for app::App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl HttpHandle {
    /// The address it listens on (the real port when `:0` was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The view store it serves from.
    pub fn views(&self) -> &Arc<ViewStore> {
        &self.app.views
    }

    /// Its counters.
    pub fn metrics(&self) -> &Arc<HttpMetrics> {
        &self.app.metrics
    }

    /// Completes when the view store has caught up with the log (`/readyz`).
    pub async fn ready(&self) {
        self.app.views.wait_caught_up().await;
    }

    fn signal(&mut self) {
        self.app.shutdown.send_replace(true);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        for t in &self.tails {
            t.abort();
        }
    }

    /// Stops accepting, ends live streams and waits for open requests.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        self.signal();
        match self.server.take() {
            Some(s) => s.await.unwrap_or(Ok(())),
            None => Ok(()),
        }
    }
}

impl Drop for HttpHandle {
    fn drop(&mut self) {
        self.signal();
    }
}

/// Starts the HTTP server. With `state.views` unset, it creates the view
/// store and tails `shipment-views` and `orders` from their start.
pub async fn serve_http(config: HttpConfig, state: HttpState) -> Result<HttpHandle, HttpError> {
    let mut tails = Vec::new();
    let views = match &state.views {
        Some(v) => v.clone(),
        None => {
            let v = Arc::new(ViewStore::new(
                config.views_max,
                config.timeline_entries_max,
            ));
            tails = v.start_tails(&state.log, config.tail_read_bytes_max);
            v
        }
    };
    let listen = config.listen;
    let tcp = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| HttpError::Bind {
            addr: listen,
            source,
        })?;
    let addr = tcp.local_addr().map_err(|source| HttpError::Bind {
        addr: listen,
        source,
    })?;
    let tls = match &config.tls {
        Some(source) => Some(tokio_rustls::TlsAcceptor::from(
            crate::ingest::https_server_config(source).map_err(|e| HttpError::Tls(Box::new(e)))?,
        )),
        None => None,
    };
    // `tap_io` also gives the listener axum's `ConnectInfo<SocketAddr>`.
    let listener = axum::serve::ListenerExt::tap_io(
        listener::BoundedListener::new(tcp, config.connections_max, tls),
        |s: &mut listener::BoundedStream| s.set_nodelay(),
    );
    let app = Arc::new(app::App::new(config, state, views));
    let (router, _) = router::build(app.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move {
        axum::serve(listener, service)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
    });
    Ok(HttpHandle {
        addr,
        app,
        shutdown: Some(tx),
        server: Some(server),
        tails,
    })
}
