//! The QUIC endpoint and its accept loop, and the handle the node keeps.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::config::IngestServerConfig;
use super::error::IngestError;
use super::metrics::{IngestMetrics, IngestMetricsSnapshot, bump};
use super::session;
use super::sink::IngestSink;
use super::tls::{self, cert_fingerprint_sha256};
use super::transport::transport_config;
use crate::wire::{ErrorCode, FRAME_BODY_BYTES_MAX};

/// What every connection task shares.
pub(crate) struct Shared<S> {
    pub(crate) sink: Arc<S>,
    pub(crate) config: IngestServerConfig,
    pub(crate) metrics: Arc<IngestMetrics>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// A running ingest server.
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    fingerprint: String,
    metrics: Arc<IngestMetrics>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    endpoint: quinn::Endpoint,
}

impl ServerHandle {
    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// SHA-256 fingerprint of the served certificate (lowercase hex), for
    /// adapters to pin.
    pub fn fingerprint_sha256(&self) -> &str {
        &self.fingerprint
    }

    /// A copy of the counters.
    pub fn metrics(&self) -> IngestMetricsSnapshot {
        self.metrics.snapshot()
    }

    /// The live counters (for a /metrics endpoint).
    pub fn metrics_handle(&self) -> Arc<IngestMetrics> {
        self.metrics.clone()
    }

    /// Graceful shutdown: stops accepting connections and frames, waits up
    /// to `shutdown_grace_ms` for appended batches to be acknowledged,
    /// then closes every connection with `shutting_down` and the endpoint.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        self.endpoint.wait_idle().await;
    }

    /// Abrupt stop, as if the process died: closes every connection at
    /// once without waiting for acknowledgements.
    pub async fn abort(self) {
        self.task.abort();
        self.endpoint
            .close(ErrorCode::ShuttingDown.as_u16().into(), b"abort");
        let _ = self.task.await;
        self.endpoint.wait_idle().await;
    }
}

fn check_config(config: &IngestServerConfig) -> Result<(), IngestError> {
    let bad = |field, value: u64, reason| {
        Err(IngestError::InvalidConfig {
            field,
            value,
            reason,
        })
    };
    if config.frame_body_bytes_max == 0
        || config.frame_body_bytes_max as usize > FRAME_BODY_BYTES_MAX
    {
        return bad(
            "frame_body_bytes_max",
            u64::from(config.frame_body_bytes_max),
            "must be within 1..=4 MiB",
        );
    }
    if config.inflight_batches_max == 0 {
        return bad("inflight_batches_max", 0, "must be positive");
    }
    if config.streams_per_connection_max == 0 {
        return bad("streams_per_connection_max", 0, "must be positive");
    }
    if config.connections_max == 0 {
        return bad("connections_max", 0, "must be positive");
    }
    Ok(())
}

/// Starts the ingest server on `config.listen`, storing into `sink`. Must be
/// called within a tokio runtime. Creates the self-signed certificate on
/// first start when configured so.
pub async fn serve<S: IngestSink>(
    config: IngestServerConfig,
    sink: S,
) -> Result<ServerHandle, IngestError> {
    serve_shared(config, Arc::new(sink)).await
}

/// [`serve`] with a sink the caller keeps a reference to.
pub async fn serve_shared<S: IngestSink>(
    config: IngestServerConfig,
    sink: Arc<S>,
) -> Result<ServerHandle, IngestError> {
    check_config(&config)?;
    let identity = tls::load_or_create(&config.tls)?;
    let fingerprint = identity
        .chain
        .first()
        .map(|c| cert_fingerprint_sha256(c))
        .unwrap_or_default();
    let crypto = tls::server_crypto(identity)?;
    let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server_config.transport_config(transport_config(
        config.streams_per_connection_max + 1,
        config.idle_timeout_ms,
        config.udp_payload_bytes_max,
    ));
    let endpoint = quinn::Endpoint::server(server_config, config.listen).map_err(|source| {
        IngestError::Bind {
            addr: config.listen,
            source,
        }
    })?;
    let local_addr = endpoint.local_addr().map_err(|source| IngestError::Bind {
        addr: config.listen,
        source,
    })?;
    let metrics = Arc::new(IngestMetrics::default());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let shared = Arc::new(Shared {
        sink,
        config,
        metrics: metrics.clone(),
        shutdown: shutdown_rx,
    });
    let task = tokio::spawn(accept_loop(shared, endpoint.clone()));
    Ok(ServerHandle {
        local_addr,
        fingerprint,
        metrics,
        shutdown: shutdown_tx,
        task,
        endpoint,
    })
}

async fn accept_loop<S: IngestSink>(shared: Arc<Shared<S>>, endpoint: quinn::Endpoint) {
    let mut sessions = JoinSet::new();
    let mut shutdown = shared.shutdown.clone();
    loop {
        tokio::select! {
            incoming = endpoint.accept() => {
                let Some(incoming) = incoming else { break };
                if sessions.len() >= shared.config.connections_max as usize {
                    bump(&shared.metrics.connections_refused, 1);
                    incoming.refuse();
                    continue;
                }
                sessions.spawn(session::run(shared.clone(), incoming));
            }
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    endpoint.set_server_config(None);
    let grace = Duration::from_millis(shared.config.shutdown_grace_ms);
    let drained = tokio::time::timeout(grace, async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        sessions.abort_all();
        while sessions.join_next().await.is_some() {}
    }
    endpoint.close(ErrorCode::ShuttingDown.as_u16().into(), b"shutting down");
}
