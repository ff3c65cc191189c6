//! Where the adapter hands canonical events: the node, through the ingest
//! client and its durable spool ([`ClientSink`]), or anything else that
//! implements [`EventSink`] (tests, tools).
//!
//! The contract that makes "answer 200 to the carrier" safe: `Ok` for an
//! event means it is durable (in the spool) or acknowledged by the node.

use std::future::Future;
use std::path::Path;

use dropline_log::{Log, LogConfig};
use dropline_operators::model::CarrierEvent;

use super::config::NodeConfig;
use super::error::AdapterError;
use crate::client::{
    ClientError, IngestClient, IngestClientConfig, SPOOL_TOPIC, ServerTrust, SpoolConfig,
};

/// Why the sink did not take an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkRefusal {
    /// No room now (the spool is full); the carrier should retry later.
    #[error("the spool is full")]
    Full,
    /// The sink failed or is closed.
    #[error("the sink failed: {reason}")]
    Failed {
        /// What went wrong.
        reason: String,
    },
}

/// A destination for canonical events.
pub trait EventSink: Send + Sync + 'static {
    /// Takes `events` in order; one outcome per event. `Ok` means durable.
    fn accept<'a>(
        &'a self,
        events: &'a [CarrierEvent],
    ) -> impl Future<Output = Vec<Result<(), SinkRefusal>>> + Send + 'a;

    /// Events held and not yet acknowledged by the node (spool depth).
    fn depth_events(&self) -> u64 {
        0
    }

    /// Whether the sink has room for another event now. A webhook is
    /// answered 503 before its body is parsed while it has none, so a
    /// carrier's retries under overload cost a signature check, not a
    /// parse and a normalization of every scan.
    fn has_room(&self) -> bool {
        true
    }

    /// Events this sink already held durably when it started (the spool's
    /// retained contents), so that their scans count as seen.
    fn recovered(&self) -> Vec<CarrierEvent> {
        Vec::new()
    }
}

/// Most events read back from the spool at start (the spool's retention
/// bounds it far below this).
pub const RECOVERED_EVENTS_MAX: usize = 10_000_000;

/// Below this much room (about one encoded canonical event with its record
/// header) the client sink counts as full for [`EventSink::has_room`].
pub const ROOM_FOR_AN_EVENT_BYTES: u64 = 512;

/// The ingest client with a durable spool, as an [`EventSink`].
#[derive(Debug)]
pub struct ClientSink {
    client: IngestClient,
    recovered: std::sync::Mutex<Vec<CarrierEvent>>,
}

/// Every event still retained in a spool directory (none if there is no
/// spool yet). Must run before the client opens the spool.
pub fn read_spool_events(spool_dir: &Path) -> Result<Vec<CarrierEvent>, AdapterError> {
    let log_dir = spool_dir.join("log");
    if !log_dir.exists() {
        return Ok(Vec::new());
    }
    let log = Log::open(LogConfig::new(&log_dir))?;
    let mut out = Vec::new();
    let partitions = log
        .topics()
        .into_iter()
        .find(|t| t.name == SPOOL_TOPIC)
        .map_or(0, |t| t.config.partitions);
    for p in 0..partitions {
        let part = log.partition(SPOOL_TOPIC, p)?;
        let mut from = part.start_offset();
        loop {
            let views = part.read(from, 4 * 1024 * 1024)?;
            let Some(last) = views.last() else { break };
            from = last.batch().last_offset() + 1;
            for v in &views {
                for r in v.batch().records() {
                    if out.len() < RECOVERED_EVENTS_MAX
                        && let Ok(e) = CarrierEvent::decode(r.value)
                    {
                        out.push(e);
                    }
                }
            }
        }
    }
    log.close()?;
    Ok(out)
}

impl ClientSink {
    /// Reads back the spool's retained events, then starts the client.
    pub async fn connect(config: IngestClientConfig) -> Result<ClientSink, AdapterError> {
        let recovered = match &config.spool {
            Some(s) => read_spool_events(&s.dir)?,
            None => Vec::new(),
        };
        let client = IngestClient::connect(config).await?;
        Ok(ClientSink {
            client,
            recovered: std::sync::Mutex::new(recovered),
        })
    }

    /// A client configuration from the `[node]` section.
    pub fn client_config(node: &NodeConfig) -> IngestClientConfig {
        let mut c = IngestClientConfig::new(
            node.addr,
            ServerTrust::PinnedSha256(node.fingerprint_sha256.clone()),
            node.adapter.clone(),
            node.token.as_bytes().to_vec(),
        );
        c.server_name = node.server_name.clone();
        c.partitions = node.partitions;
        c.spool = Some(SpoolConfig {
            dir: node.spool_dir.clone(),
        });
        c
    }

    /// The client.
    pub fn client(&self) -> &IngestClient {
        &self.client
    }

    /// Stops the client (unacknowledged events stay in the spool).
    pub async fn abort(self) {
        self.client.abort().await;
    }
}

impl EventSink for ClientSink {
    async fn accept(&self, events: &[CarrierEvent]) -> Vec<Result<(), SinkRefusal>> {
        // One call for the whole body: the events take their places in
        // order under one lock, and the wait is once per spool batch.
        self.client
            .try_send_batch(events)
            .await
            .into_iter()
            .map(|r| match r {
                Ok(()) => Ok(()),
                Err(ClientError::SpoolFull { .. }) => Err(SinkRefusal::Full),
                Err(e) => Err(SinkRefusal::Failed {
                    reason: e.to_string(),
                }),
            })
            .collect()
    }

    fn depth_events(&self) -> u64 {
        self.client.metrics().spool_depth_events
    }

    fn has_room(&self) -> bool {
        self.client.room_bytes() >= ROOM_FOR_AN_EVENT_BYTES
    }

    fn recovered(&self) -> Vec<CarrierEvent> {
        std::mem::take(
            &mut *self
                .recovered
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}
