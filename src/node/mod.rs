//! Assembly of a node: opens the log, creates the topics, starts the
//! engine, the QUIC ingest endpoint, the HTTP edge and (with `[delivery]`)
//! notification delivery, and stops them in order. Nothing here decides
//! anything about shipments; it only wires the crates.

pub(crate) mod cluster;
pub(crate) mod config;
pub(crate) mod delivery;
mod sources;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use dropline_adapters::http::{
    AdminToken, ContactSealer, HttpConfig, HttpHandle, HttpState, MetricsSource, ShipmentKey,
    ViewStore, serve_http,
};
use dropline_adapters::ingest::{
    AdapterCredential, IngestServerConfig, LogSink, ServerHandle, TlsSource, serve,
};
use dropline_engine::{ChainFactory, Engine, EngineConfig, ensure_topics};
use dropline_log::{Log, LogConfig};

pub(crate) use config::{DeliverySection, NodeConfig};
use config::{parse_sha256_hex, to_hex};

/// Name of the adapter credential the node creates when none is configured.
pub(crate) const DEFAULT_ADAPTER: &str = "default";
/// File (in the data dir) holding the default adapter's token.
pub(crate) const DEFAULT_TOKEN_FILE: &str = "adapter.token";
/// File (in the data dir) holding the admin API's bearer token.
pub(crate) const ADMIN_TOKEN_FILE: &str = "admin.token";

/// A running node.
pub(crate) struct Node {
    log: Arc<Log>,
    data_dir: PathBuf,
    engine: Option<Engine>,
    ingest: Option<ServerHandle>,
    http: Option<HttpHandle>,
    tails: Vec<tokio::task::JoinHandle<Result<(), dropline_log::LogError>>>,
    retention: tokio::task::JoinHandle<()>,
    delivery_figures: Arc<sources::DeliveryFigures>,
    delivery: Option<delivery::NodeDelivery>,
}

impl Node {
    /// Starts every part of the node. Must run inside a tokio runtime.
    pub(crate) async fn start(config: &NodeConfig) -> anyhow::Result<Node> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating {}", config.data_dir.display()))?;
        let log = Arc::new(Log::open(log_config(config)?).context("opening the log")?);
        let recovery = log.recovery_report();
        for t in recovery.truncations() {
            tracing::warn!(
                segment = %t.segment.display(),
                file_offset = t.file_offset,
                bytes_removed = t.bytes_removed,
                reason = %t.reason,
                "recovery truncated a torn tail"
            );
        }
        tracing::info!(backend = ?log.io_backend(), "log open");
        ensure_topics(&log, config.partitions).context("creating topics")?;

        let workers = config.workers.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, |n| u32::try_from(n.get()).unwrap_or(1))
        });
        let mut engine_config = EngineConfig::new(workers, config.data_dir.join("checkpoints"));
        engine_config.pin_cores = config.pin_cores;
        engine_config.tick_interval_ms = Some(config.tick_interval_ms);
        let engine = Engine::start(&log, engine_config, Arc::new(ChainFactory::with_defaults()))
            .context("starting the engine")?;

        let mut ingest_config = IngestServerConfig::new(config.quic.listen, &config.data_dir);
        if let (Some(cert_pem), Some(key_pem)) = (&config.quic.cert_pem, &config.quic.key_pem) {
            ingest_config.tls = TlsSource::Files {
                cert_pem: cert_pem.clone(),
                key_pem: key_pem.clone(),
            };
        }
        let node_identity = ingest_config.tls.clone();
        ingest_config.adapters = credentials(config)?;
        let sink = LogSink::open(Arc::clone(&log), config.partitions).context("ingest sink")?;
        let ingest = serve(ingest_config, sink)
            .await
            .context("starting QUIC ingest")?;

        let sealer = ContactSealer::load_or_create(&config.data_dir)
            .context("loading the contact-sealing key")?;
        let admin = Arc::new(sources::NodeAdmin::new(Arc::clone(&log)));
        let mut http_config = HttpConfig::new(config.http.listen);
        if config.http.tls {
            http_config.tls = Some(node_identity);
        }
        http_config.admin_token = Some(AdminToken::from_plain(&read_or_create_token(
            &config.data_dir,
            ADMIN_TOKEN_FILE,
        )?));
        http_config.shipment_keys = shipment_keys(config)?;
        let views = Arc::new(ViewStore::new(
            http_config.views_max,
            http_config.timeline_entries_max,
        ));
        let tails = views.start_tails(&log, http_config.tail_read_bytes_max);
        let delivery_figures = Arc::new(sources::DeliveryFigures::new());
        let stats = Arc::new(sources::NodeStats::new(
            Arc::clone(engine.metrics()),
            ingest.metrics_handle(),
            Some(Arc::clone(&views)),
            Arc::clone(&admin),
            Arc::clone(&delivery_figures),
        ));
        let mut state = HttpState::new(Arc::clone(&log), sealer);
        state.views = Some(views);
        state.stats = Some(stats);
        let engine_figures = Arc::new(sources::EngineMetrics(Arc::clone(engine.metrics())));
        let engine_metrics: Arc<dyn MetricsSource> = Arc::clone(&engine_figures) as _;
        state.readiness = vec![engine_figures];
        let ingest_metrics: Arc<dyn MetricsSource> =
            Arc::new(sources::IngestMetricsText(ingest.metrics_handle()));
        let delivery_metrics: Arc<dyn MetricsSource> = Arc::clone(&delivery_figures) as _;
        state.metrics = vec![engine_metrics, ingest_metrics, delivery_metrics];
        state.admin = Some(admin.clone());
        let http = serve_http(http_config, state.clone())
            .await
            .context("starting HTTP")?;
        let retention = tokio::spawn(retention_loop(Arc::clone(&log)));
        let mut node = Node {
            retention,
            log,
            data_dir: config.data_dir.clone(),
            engine: Some(engine),
            ingest: Some(ingest),
            http: Some(http),
            tails,
            delivery_figures,
            delivery: None,
        };
        if let Some(section) = &config.delivery {
            let callbacks = delivery::CallbacksListener::bind(section.callbacks_listen).await?;
            node.start_delivery(section, callbacks).await?;
        }
        Ok(node)
    }

    /// Starts notification delivery (once) as `section` says, its callbacks
    /// served on `callbacks`. `Node::start` calls it for a `[delivery]`
    /// section; `up` calls it once its stand-in providers run.
    pub(crate) async fn start_delivery(
        &mut self,
        section: &DeliverySection,
        callbacks: delivery::CallbacksListener,
    ) -> anyhow::Result<()> {
        anyhow::ensure!(self.delivery.is_none(), "delivery already runs");
        let running = delivery::start(
            section,
            Arc::clone(&self.log),
            &self.data_dir,
            Arc::clone(&self.delivery_figures.metrics),
            callbacks,
        )
        .await?;
        self.delivery_figures.started(section.critical_slo_ms);
        self.delivery = Some(running);
        Ok(())
    }

    /// Running delivery, if any.
    pub(crate) fn delivery(&self) -> Option<&delivery::NodeDelivery> {
        self.delivery.as_ref()
    }

    /// The QUIC ingest address.
    pub(crate) fn quic_addr(&self) -> Option<std::net::SocketAddr> {
        self.ingest.as_ref().map(ServerHandle::local_addr)
    }

    /// SHA-256 fingerprint of the node's TLS certificate.
    pub(crate) fn fingerprint(&self) -> String {
        self.ingest
            .as_ref()
            .map(|i| i.fingerprint_sha256().to_string())
            .unwrap_or_default()
    }

    /// The HTTP address.
    pub(crate) fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.http.as_ref().map(HttpHandle::local_addr)
    }

    /// Stops delivery (it checkpoints), HTTP and ingest (waiting for
    /// in-flight acks), then the engine (which checkpoints), then closes
    /// the log.
    pub(crate) async fn shutdown(mut self) -> anyhow::Result<()> {
        self.retention.abort();
        if let Some(delivery) = self.delivery.take() {
            delivery.stop().await?;
        }
        if let Some(http) = self.http.take() {
            http.shutdown().await.context("stopping HTTP")?;
        }
        for tail in self.tails.drain(..) {
            tail.abort();
        }
        if let Some(ingest) = self.ingest.take() {
            ingest.shutdown().await;
        }
        if let Some(engine) = self.engine.take() {
            engine.stop().context("stopping the engine")?;
        }
        Ok(())
    }
}

/// How often the node applies the topics' age and size retention, ms.
pub(crate) const RETENTION_CHECK_INTERVAL_MS: u64 = 60_000;

/// Applies retention every [`RETENTION_CHECK_INTERVAL_MS`] (whole sealed
/// segments past their topic's age or size limit are deleted, after the
/// archive copy when one is configured), on a blocking thread so that file
/// copies and unlinks never stall the async edges. Each deletion is
/// logged; a failure is logged and retried at the next round.
async fn retention_loop(log: Arc<Log>) {
    let period = std::time::Duration::from_millis(RETENTION_CHECK_INTERVAL_MS);
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let log = Arc::clone(&log);
        let result =
            tokio::task::spawn_blocking(move || log.enforce_retention(wall_clock_ms())).await;
        match result {
            Ok(Ok(report)) => {
                for d in &report.deleted {
                    tracing::info!(
                        topic = %d.topic,
                        partition = d.partition,
                        base_offset = d.base_offset,
                        next_offset = d.next_offset,
                        bytes = d.bytes,
                        reason = ?d.reason,
                        archived_to = ?d.archived_to,
                        "retention deleted a segment"
                    );
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "retention failed; retrying next round"),
            Err(e) => tracing::warn!(error = %e, "retention task failed; retrying next round"),
        }
    }
}

/// The configured adapter credentials, or a default one whose token is
/// created on first start in the data directory (mode 0600).
fn credentials(config: &NodeConfig) -> anyhow::Result<Vec<AdapterCredential>> {
    if !config.quic.adapters.is_empty() {
        return config
            .quic
            .adapters
            .iter()
            .map(|a| {
                let token_sha256 = parse_sha256_hex(&a.token_sha256).with_context(|| {
                    format!("adapter {}: token_sha256 must be 64 hex digits", a.name)
                })?;
                Ok(AdapterCredential {
                    name: a.name.clone(),
                    token_sha256,
                })
            })
            .collect();
    }
    let token = read_or_create_token(&config.data_dir, DEFAULT_TOKEN_FILE)?;
    Ok(vec![AdapterCredential::from_token(
        DEFAULT_ADAPTER,
        token.as_bytes(),
    )])
}

/// The marketplaces' keys for `POST /v1/shipments`, or `None` (open,
/// said at start) when none is configured.
fn shipment_keys(config: &NodeConfig) -> anyhow::Result<Option<Vec<ShipmentKey>>> {
    if config.http.shipment_keys.is_empty() {
        tracing::warn!(
            "POST /v1/shipments is open to whoever reaches the HTTP port: no [[http.shipment_keys]] configured"
        );
        return Ok(None);
    }
    let keys = config
        .http
        .shipment_keys
        .iter()
        .map(|k| {
            let token = AdminToken::from_sha256_hex(&k.token_sha256).with_context(|| {
                format!(
                    "shipment key of marketplace {}: token_sha256 must be 64 hex digits",
                    k.marketplace
                )
            })?;
            Ok(ShipmentKey {
                marketplace: k.marketplace.clone(),
                token,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Some(keys))
}

/// Wall-clock milliseconds since the Unix epoch (the edges' clock; the
/// engine and operators run on log time instead).
pub(crate) fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Reads a token file in the data dir, or creates it (mode 0600) with 32
/// random bytes in hex.
/// The node's log configuration from its file.
pub(crate) fn log_config(config: &NodeConfig) -> anyhow::Result<LogConfig> {
    let mut log_config = LogConfig::new(config.data_dir.join("log"));
    log_config.durability = dropline_bench::log::parse_durability(&config.durability)
        .with_context(|| format!("unknown durability {:?}", config.durability))?;
    log_config.preallocate_segments = config.preallocate_segments;
    Ok(log_config)
}

pub(crate) fn read_or_create_token(data_dir: &Path, file: &str) -> anyhow::Result<String> {
    let path = data_dir.join(file);
    if let Ok(text) = std::fs::read_to_string(&path) {
        return Ok(text.trim().to_string());
    }
    let mut seed = [0u8; 32];
    getrandom_from_urandom(&mut seed)?;
    let token = to_hex(&seed);
    write_secret(&path, &token, true)?;
    Ok(token)
}

/// Writes `text` to `path`, readable by its owner only, and fsyncs it;
/// with `create_new`, fails if the file exists.
pub(crate) fn write_secret(path: &Path, text: &str, create_new: bool) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(0o600);
    if create_new {
        options.create_new(true);
    } else {
        options.create(true).truncate(true);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

pub(crate) fn getrandom_from_urandom(buf: &mut [u8]) -> anyhow::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .context("reading /dev/urandom")
}
