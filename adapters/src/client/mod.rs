//! The adapters' client library for the node's QUIC ingest.
//!
//! An adapter hands events to [`IngestClient::send`] (or `try_send`, which
//! refuses with [`ClientError::SpoolFull`] instead of waiting, so a webhook
//! receiver can answer 503 and let the carrier retry). Events are batched
//! per partition (linger time, record and byte limits), numbered per
//! partition with sequences, sent in order with a bounded window, and
//! resent with the same sequences after any connection loss; the node's
//! idempotent producer state makes resends harmless.
//!
//! With a spool ([`SpoolConfig`]), `send` returns only once the event's
//! batch is durable in a local Dropline log; unacknowledged batches are
//! reloaded from it after a restart and resent with the same producer id
//! and sequences (each spool batch stores them in its header), so a
//! SIGKILL loses nothing that was acknowledged to a carrier and duplicates
//! nothing. Without a spool, events are held in memory until acknowledged.

pub(crate) mod backoff;
mod batch;
mod batcher;
mod config;
mod error;
mod follow;
mod follow_cursor;
mod link;
mod metrics;
mod spool;
mod tls;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use dropline_operators::model::{CarrierEvent, partition_for};
use tokio::sync::{Notify, Semaphore, mpsc, watch};

pub use config::{
    AckObserver, BACKOFF_INITIAL_MS_DEFAULT, BACKOFF_MAX_MS_DEFAULT, BATCH_BYTES_MAX_DEFAULT,
    BATCH_RECORDS_MAX_DEFAULT, BUFFERED_BYTES_MAX_DEFAULT, BatchAcked, CONNECT_TIMEOUT_MS_DEFAULT,
    IDLE_TIMEOUT_MS_DEFAULT, INFLIGHT_BATCHES_PER_PARTITION_MAX, IngestClientConfig,
    LINGER_US_DEFAULT, STREAMS_DEFAULT, SpoolConfig,
};
pub use error::ClientError;
pub use follow::{OrdersStream, follow_orders};
pub use follow_cursor::{FOLLOW_CURSOR_FILE, FollowCursor};
pub use metrics::{ClientMetrics, ClientMetricsSnapshot};
pub use spool::{SPOOL_COMMIT_INTERVAL_MS, SPOOL_GROUP, SPOOL_SEGMENT_BYTES, SPOOL_TOPIC};
pub use tls::ServerTrust;

use batcher::{Batcher, Sealed, SpoolState, held_bytes_of};
use link::{Connected, Link};
use metrics::add;

use crate::ingest::transport_config;
use crate::splitmix::SplitMix64;
use crate::wire::{FRAME_BODY_BYTES_MAX, KEY_BYTES_MAX};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// State shared by the client handle, the spool writer and the link.
pub(crate) struct Inner {
    pub(crate) batcher: Mutex<Batcher>,
    pub(crate) metrics: Arc<ClientMetrics>,
    /// Bytes of room under `buffered_bytes_max` (1 permit = 1 byte).
    pub(crate) room: Semaphore,
    pub(crate) room_max: u64,
    pub(crate) partitions: u32,
    pub(crate) producer_id: u64,
    pub(crate) out: mpsc::UnboundedSender<Sealed>,
    pub(crate) linger_wake: Arc<Notify>,
    pub(crate) batch_bytes_max: usize,
}

impl Inner {
    /// Hands a sealed batch to the next stage (spool writer or link).
    pub(crate) fn forward(&self, sealed: Sealed) {
        let _ = self.out.send(sealed);
    }
}

/// A connection-managing client for the node's QUIC ingest.
pub struct IngestClient {
    inner: Arc<Inner>,
    resolved_rx: watch::Receiver<u64>,
    close_tx: watch::Sender<bool>,
    link: tokio::task::JoinHandle<()>,
    spool_writer: Option<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for IngestClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestClient")
            .field("partitions", &self.inner.partitions)
            .field("producer_id", &self.inner.producer_id)
            .finish_non_exhaustive()
    }
}

fn check_config(config: &IngestClientConfig) -> Result<(), ClientError> {
    let bad = |field, value: u64, reason| {
        Err(ClientError::InvalidConfig {
            field,
            value,
            reason,
        })
    };
    if config.batch_records_max == 0 {
        return bad("batch_records_max", 0, "must be positive");
    }
    if config.batch_bytes_max < 1024 || config.batch_bytes_max as usize > FRAME_BODY_BYTES_MAX {
        return bad(
            "batch_bytes_max",
            u64::from(config.batch_bytes_max),
            "must be within 1 KiB..=4 MiB",
        );
    }
    if config.streams == 0 || config.streams > 64 {
        return bad(
            "streams",
            u64::from(config.streams),
            "must be within 1..=64",
        );
    }
    if !(1..=INFLIGHT_BATCHES_PER_PARTITION_MAX).contains(&config.inflight_batches_per_partition) {
        return bad(
            "inflight_batches_per_partition",
            u64::from(config.inflight_batches_per_partition),
            "must be within 1..=4",
        );
    }
    if config.buffered_bytes_max < u64::from(config.batch_bytes_max) {
        return bad(
            "buffered_bytes_max",
            config.buffered_bytes_max,
            "must hold at least one batch",
        );
    }
    Ok(())
}

/// A quinn client configuration that trusts the node as `trust` says, with
/// the Dropline ALPN and transport settings (for tools and tests that
/// speak the wire format directly).
pub fn quic_client_config(
    trust: &ServerTrust,
    bidi_streams_max: u32,
    idle_timeout_ms: u64,
    udp_payload_bytes_max: u16,
) -> Result<quinn::ClientConfig, ClientError> {
    let crypto = tls::client_crypto(trust)?;
    let mut client_config = quinn::ClientConfig::new(Arc::new(crypto));
    client_config.transport_config(transport_config(
        bidi_streams_max,
        idle_timeout_ms,
        udp_payload_bytes_max,
    ));
    Ok(client_config)
}

impl IngestClient {
    /// Starts a client. It connects in the background and keeps
    /// reconnecting; this returns once the partition count is known (from
    /// the configuration, the spool, or a first successful Hello).
    pub async fn connect(config: IngestClientConfig) -> Result<IngestClient, ClientError> {
        check_config(&config)?;
        let client_config = quic_client_config(
            &config.trust,
            config.streams + 1,
            config.idle_timeout_ms,
            config.udp_payload_bytes_max,
        )?;
        let bind: std::net::SocketAddr = if config.server_addr.is_ipv6() {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let endpoint = quinn::Endpoint::client(bind).map_err(|source| ClientError::Io {
            path: "udp socket".into(),
            source,
        })?;

        let known = match &config.spool {
            Some(sc) => spool::Spool::peek_meta(sc)?,
            None => None,
        };
        let mut producer_id =
            known.map_or_else(|| SplitMix64::from_entropy().nonzero_id(), |(id, _)| id);
        let partitions = match known.map(|(_, p)| p).or(config.partitions) {
            Some(p) => p,
            None => {
                // Any node answers Hello with the partition count; try
                // each configured address once.
                let mut last = Err(ClientError::Closed);
                for addr in config.node_addrs() {
                    let limit = Duration::from_millis(config.connect_timeout_ms);
                    let attempt =
                        link::hello_at(&endpoint, &client_config, &config, addr, producer_id);
                    let outcome = tokio::time::timeout(limit, attempt)
                        .await
                        .unwrap_or_else(|_| Err(Connected::Failed("connect timed out".into())));
                    match outcome {
                        Ok((connection, ok)) => {
                            connection.close(0u32.into(), b"probe");
                            producer_id = ok.producer_id;
                            last = Ok(ok.partitions);
                            break;
                        }
                        Err(Connected::Refused(err)) => last = Err(err),
                        Err(Connected::Failed(reason)) => {
                            last = Err(ClientError::Unreachable { addr, reason });
                        }
                        Err(Connected::Up(_)) => last = Err(ClientError::Closed),
                    }
                }
                last?
            }
        };
        if partitions == 0 {
            return Err(ClientError::InvalidConfig {
                field: "partitions",
                value: 0,
                reason: "must be positive",
            });
        }

        let metrics = Arc::new(ClientMetrics::default());
        let room_max = config.buffered_bytes_max.min(Semaphore::MAX_PERMITS as u64);
        let (spool, recovered) = match &config.spool {
            Some(sc) => {
                let (spool, recovered) = spool::Spool::open(sc, producer_id, partitions, room_max)?;
                (Some(Arc::new(spool)), Some(recovered))
            }
            None => (None, None),
        };
        let (initial, next_sequence) = match recovered {
            Some(r) => (r.batches, r.next_sequence),
            None => (Vec::new(), vec![1u64; partitions as usize]),
        };
        let producer_id = spool.as_ref().map_or(producer_id, |s| s.producer_id());

        let held: u64 = initial.iter().map(|s| s.held_bytes).sum();
        let held_events: u64 = initial.iter().map(|s| u64::from(s.records)).sum();
        add(&metrics.held_bytes, held);
        add(&metrics.held_events, held_events);
        add(&metrics.events_accepted, held_events);
        let room = Semaphore::new(room_max.saturating_sub(held) as usize);

        let (link_tx, link_rx) = mpsc::unbounded_channel::<Sealed>();
        let (out, spool_rx) = match spool {
            Some(_) => {
                let (tx, rx) = mpsc::unbounded_channel();
                (tx, Some(rx))
            }
            None => (link_tx.clone(), None),
        };
        let batcher = Batcher::new(
            partitions,
            next_sequence,
            producer_id,
            config.batch_records_max,
            config.batch_bytes_max as usize,
            Duration::from_micros(config.linger_us),
            spool.is_some(),
        );
        let inner = Arc::new(Inner {
            batcher: Mutex::new(batcher),
            metrics,
            room,
            room_max,
            partitions,
            producer_id,
            out,
            linger_wake: Arc::new(Notify::new()),
            batch_bytes_max: config.batch_bytes_max as usize,
        });
        if let Some(s) = &spool {
            s.start_committer();
        }
        let spool_writer = match (&spool, spool_rx) {
            (Some(s), Some(rx)) => Some(tokio::spawn(spool::run_writer(
                s.clone(),
                inner.clone(),
                rx,
                link_tx,
            ))),
            _ => {
                drop(link_tx);
                None
            }
        };
        let (resolved_tx, resolved_rx) = watch::channel(0u64);
        let (close_tx, close_rx) = watch::channel(false);
        let link = Link {
            inner: inner.clone(),
            endpoint,
            client_config,
            config,
            resolved_tx,
            spool,
        };
        let link = tokio::spawn(link.run(initial, link_rx, close_rx));
        Ok(IngestClient {
            inner,
            resolved_rx,
            close_tx,
            link,
            spool_writer,
        })
    }

    /// Partition count of the node's `carrier-events`.
    pub fn partitions(&self) -> u32 {
        self.inner.partitions
    }

    /// This client's producer id.
    pub fn producer_id(&self) -> u64 {
        self.inner.producer_id
    }

    /// Bytes of room left under `buffered_bytes_max` (memory and spool):
    /// an event that does not fit is refused with `SpoolFull` by `try_send`.
    pub fn room_bytes(&self) -> u64 {
        self.inner.room.available_permits() as u64
    }

    /// A copy of the counters.
    pub fn metrics(&self) -> ClientMetricsSnapshot {
        self.inner.metrics.snapshot()
    }

    /// Takes one event, waiting while the buffer or spool is full. With a
    /// spool, returns once the event is durable in it.
    pub async fn send(&self, event: &CarrierEvent) -> Result<(), ClientError> {
        let value = event.encode();
        self.submit(event.tracking_number.as_bytes(), &value, true)
            .await
    }

    /// Takes one event, or refuses with [`ClientError::SpoolFull`] at once
    /// when the buffer or spool is full.
    pub async fn try_send(&self, event: &CarrierEvent) -> Result<(), ClientError> {
        let value = event.encode();
        self.submit(event.tracking_number.as_bytes(), &value, false)
            .await
    }

    /// [`IngestClient::send`] for an already encoded event (key = tracking
    /// number, value = `CarrierEvent::encode`).
    pub async fn send_encoded(&self, key: &[u8], value: &[u8]) -> Result<(), ClientError> {
        self.submit(key, value, true).await
    }

    /// [`IngestClient::try_send`] for an already encoded event.
    pub async fn try_send_encoded(&self, key: &[u8], value: &[u8]) -> Result<(), ClientError> {
        self.submit(key, value, false).await
    }

    async fn submit(&self, key: &[u8], value: &[u8], wait: bool) -> Result<(), ClientError> {
        if key.is_empty() || key.len() > KEY_BYTES_MAX {
            return Err(ClientError::InvalidKey { bytes: key.len() });
        }
        let held = held_bytes_of(key.len(), value.len());
        let batch_fixed = crate::wire::BATCH_BODY_FIXED_BYTES as u64;
        if held + batch_fixed > self.inner.batch_bytes_max as u64 {
            return Err(ClientError::EventTooLarge {
                bytes: held as usize,
                bytes_max: self.inner.batch_bytes_max - crate::wire::BATCH_BODY_FIXED_BYTES,
            });
        }
        let permits = u32::try_from(held).unwrap_or(u32::MAX);
        let permit = if wait {
            self.inner
                .room
                .acquire_many(permits)
                .await
                .map_err(|_| ClientError::Closed)?
        } else {
            match self.inner.room.try_acquire_many(permits) {
                Ok(p) => p,
                Err(tokio::sync::TryAcquireError::Closed) => return Err(ClientError::Closed),
                Err(tokio::sync::TryAcquireError::NoPermits) => {
                    add(&self.inner.metrics.spool_full_refusals, 1);
                    return Err(ClientError::SpoolFull {
                        bytes: self
                            .inner
                            .metrics
                            .held_bytes
                            .load(std::sync::atomic::Ordering::Relaxed),
                        bytes_max: self.inner.room_max,
                    });
                }
            }
        };
        permit.forget();
        let partition = partition_for(key, self.inner.partitions);
        let pushed = {
            let mut batcher = lock(&self.inner.batcher);
            let pushed = batcher.push(
                partition,
                key,
                value.len(),
                |buf| buf.extend_from_slice(value),
                Instant::now(),
            );
            add(&self.inner.metrics.held_bytes, held);
            add(&self.inner.metrics.held_events, 1);
            add(&self.inner.metrics.events_accepted, 1);
            pushed
        };
        for s in pushed.sealed {
            self.inner.forward(s);
        }
        if pushed.started {
            self.inner.linger_wake.notify_one();
        }
        if let Some(mut rx) = pushed.spooled {
            let state = rx
                .wait_for(|s| *s != SpoolState::Pending)
                .await
                .map(|s| *s)
                .unwrap_or(SpoolState::Failed);
            if state != SpoolState::Spooled {
                return Err(ClientError::Closed);
            }
        }
        Ok(())
    }

    /// Sends every open batch now and waits until every event taken so far
    /// is acknowledged by the node (or rejected by it for good).
    pub async fn flush(&self) -> Result<(), ClientError> {
        let target = self
            .inner
            .metrics
            .events_accepted
            .load(std::sync::atomic::Ordering::Relaxed);
        let sealed = lock(&self.inner.batcher).seal_due(Instant::now(), true, &|_| false);
        for s in sealed {
            self.inner.forward(s);
        }
        let mut rx = self.resolved_rx.clone();
        rx.wait_for(|r| *r >= target)
            .await
            .map_err(|_| ClientError::Closed)?;
        Ok(())
    }

    /// Flushes, then stops the client.
    pub async fn close(self) -> Result<(), ClientError> {
        self.flush().await?;
        self.abort().await;
        Ok(())
    }

    /// Stops at once. Unacknowledged events stay in the spool (if any)
    /// and are sent by the next client opened on it; without a spool they
    /// are dropped.
    pub async fn abort(self) {
        let _ = self.close_tx.send(true);
        let _ = self.link.await;
        if let Some(w) = self.spool_writer {
            w.abort();
            let _ = w.await;
        }
    }
}
