//! The node under load: how to reach one ([`NodeTarget`]: its QUIC address
//! and an adapter's credentials, as `dropline adapter` is configured), or
//! one started in-process over a fresh data directory ([`EmbeddedNode`]).
//!
//! Why an embedded node: a load run that owns its node can read the log
//! back afterwards and prove that every acknowledged event is there and
//! was processed, which a run against a remote node cannot. The embedded
//! node is the real log, the real engine with the full operator chain and
//! the real QUIC ingest endpoint with TLS; it has no HTTP side (tracking
//! pages are not what a load run measures) and takes orders straight into
//! its `orders` topic, as the shipment API would append them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use dropline_adapters::client::ServerTrust;
use dropline_adapters::ingest::{
    AdapterCredential, IngestServerConfig, LogSink, ServerHandle, serve,
};
use dropline_engine::{ChainFactory, Engine, EngineConfig, InputKind, ensure_topics};
use dropline_log::{Log, LogConfig, LogError};

use crate::error::LoadgenError;

/// The adapter name the embedded node accepts.
pub const EMBEDDED_ADAPTER: &str = "loadgen";
/// Name in the node's certificate.
pub const NODE_SERVER_NAME: &str = "dropline-node";

/// How to reach a node's QUIC ingest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeTarget {
    /// QUIC ingest address.
    pub addr: SocketAddr,
    /// Name checked in the node's certificate.
    pub server_name: String,
    /// How the node's certificate is trusted (pinned fingerprint or CA).
    pub trust: ServerTrust,
    /// Adapter name at the node.
    pub adapter: String,
    /// The adapter's token.
    pub token: String,
    /// The node's partition count, if known.
    pub partitions: Option<u32>,
}

/// Settings of an [`EmbeddedNode`].
#[derive(Clone, Debug)]
pub struct EmbeddedConfig {
    /// Data directory (must not hold another node's log); `None`: a
    /// temporary directory removed when the node is dropped.
    pub dir: Option<PathBuf>,
    /// Partitions of the input topics.
    pub partitions: u32,
    /// Engine workers.
    pub workers: u32,
    /// Pin engine workers to cores.
    pub pin_cores: bool,
    /// Largest UDP payload of the QUIC endpoint, bytes.
    pub udp_payload_bytes_max: u16,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            dir: None,
            partitions: 8,
            workers: 2,
            pin_cores: true,
            udp_payload_bytes_max: 1452,
        }
    }
}

enum DataDir {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl DataDir {
    fn path(&self) -> &Path {
        match self {
            DataDir::Temp(t) => t.path(),
            DataDir::Kept(p) => p,
        }
    }
}

/// A node running in this process: log, engine and QUIC ingest.
pub struct EmbeddedNode {
    log: Arc<Log>,
    engine: Option<Engine>,
    ingest: Option<ServerHandle>,
    target: NodeTarget,
    partitions: u32,
    // Dropped last: the log and engine above must be closed first.
    dir: DataDir,
}

impl std::fmt::Debug for EmbeddedNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedNode")
            .field("dir", &self.dir.path())
            .field("addr", &self.target.addr)
            .finish_non_exhaustive()
    }
}

/// A token nobody else knows: the process id and the clock's nanoseconds.
fn fresh_token() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("loadgen-{}-{nanos:x}", std::process::id())
}

impl EmbeddedNode {
    /// Opens the log, creates the topics, starts the engine and the QUIC
    /// endpoint on a free loopback port. Must run inside a tokio runtime.
    pub async fn start(config: EmbeddedConfig) -> Result<EmbeddedNode, LoadgenError> {
        let dir = match &config.dir {
            Some(p) => {
                std::fs::create_dir_all(p).map_err(LoadgenError::io(p))?;
                DataDir::Kept(p.clone())
            }
            None => DataDir::Temp(
                tempfile::Builder::new()
                    .prefix("dropline-loadgen-")
                    .tempdir()
                    .map_err(LoadgenError::io(std::env::temp_dir()))?,
            ),
        };
        let path = dir.path().to_path_buf();
        let log = Arc::new(Log::open(LogConfig::new(path.join("log")))?);
        ensure_topics(&log, config.partitions)?;
        let mut engine_config = EngineConfig::new(config.workers, path.join("checkpoints"));
        engine_config.pin_cores = config.pin_cores;
        let engine = Engine::start(&log, engine_config, Arc::new(ChainFactory::with_defaults()))?;
        let token = fresh_token();
        let loopback: SocketAddr = ([127, 0, 0, 1], 0).into();
        let mut ingest_config = IngestServerConfig::new(loopback, &path);
        ingest_config.adapters = vec![AdapterCredential::from_token(
            EMBEDDED_ADAPTER,
            token.as_bytes(),
        )];
        ingest_config.udp_payload_bytes_max = config.udp_payload_bytes_max;
        let sink = LogSink::open(log.clone(), config.partitions)?;
        let ingest = serve(ingest_config, sink).await?;
        let target = NodeTarget {
            addr: ingest.local_addr(),
            server_name: NODE_SERVER_NAME.into(),
            trust: ServerTrust::PinnedSha256(ingest.fingerprint_sha256().to_string()),
            adapter: EMBEDDED_ADAPTER.into(),
            token,
            partitions: Some(config.partitions),
        };
        Ok(EmbeddedNode {
            log,
            engine: Some(engine),
            ingest: Some(ingest),
            target,
            partitions: config.partitions,
            dir,
        })
    }

    /// How to reach it.
    pub fn target(&self) -> &NodeTarget {
        &self.target
    }

    /// The log.
    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Partitions of the input topics.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// The engine's metrics (processed offsets, batch latency).
    pub fn engine_metrics(&self) -> Option<&Arc<dropline_engine::Metrics>> {
        self.engine.as_ref().map(Engine::metrics)
    }

    /// Blocks until the engine has processed (outputs durable) every order
    /// and carrier event in the log now, or `timeout` passed. Returns
    /// whether it did. Call from a blocking context.
    pub fn wait_processed(&self, timeout: Duration) -> Result<bool, LoadgenError> {
        let Some(engine) = &self.engine else {
            return Ok(false);
        };
        let targets = (0..self.partitions)
            .map(|p| {
                let end = |input: InputKind| {
                    self.log
                        .partition(input.topic(), input.topic_partition(p))
                        .map(|part| part.next_offset())
                };
                Ok([0, end(InputKind::Orders)?, end(InputKind::CarrierEvents)?])
            })
            .collect::<Result<Vec<_>, LogError>>()?;
        Ok(engine.wait_processed(&targets, timeout))
    }

    /// Stops ingest (waiting for in-flight acks), then the engine (which
    /// checkpoints), then closes the log.
    pub async fn shutdown(mut self) -> Result<(), LoadgenError> {
        if let Some(ingest) = self.ingest.take() {
            ingest.shutdown().await;
        }
        if let Some(engine) = self.engine.take() {
            engine.stop()?;
        }
        Ok(())
    }
}
