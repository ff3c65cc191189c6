//! The client's connection task: keeps one QUIC connection to the node,
//! sends sealed batches in sequence order per partition with a bounded
//! window, matches acks, and on any failure reconnects with capped
//! jittered backoff and resends every unacknowledged batch with its
//! original sequence.
//!
//! Why resend everything unacknowledged: the client cannot know which of
//! its in-flight batches the node appended before the connection died;
//! the node's idempotent producer state answers the ones it has with their
//! original offsets (or, for old ones, `stale_sequence`), so resending is
//! always safe and never duplicates.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use super::backoff::Backoff;
use super::config::{BatchAcked, IngestClientConfig};
use super::error::ClientError;
use super::metrics::{ClientMetrics, add, sub};
use super::spool::Spool;
use super::{Inner, batcher::Sealed};
use crate::frame_io::{ReadFailure, read_frame};
use crate::splitmix::SplitMix64;
use crate::wire::{ErrorCode, FRAME_HEADER_BYTES, Frame, HelloFrame, HelloOkFrame, encode_frame};

/// Largest reply frame body the client reads (acks and errors are small).
const REPLY_BODY_BYTES_MAX: usize = 64 * 1024;

/// What stream tasks tell the connection task.
enum Inbound {
    Reply { generation: u64, frame: Reply },
    Lost { generation: u64 },
}

enum Reply {
    Ack {
        partition: u32,
        sequence: u64,
        duplicate: bool,
        base_offset: u64,
        last_offset: u64,
    },
    Error {
        code: u16,
        batch: Option<(u32, u64)>,
    },
}

pub(crate) struct Connection {
    connection: quinn::Connection,
    writers: Vec<mpsc::UnboundedSender<Bytes>>,
    generation: u64,
    acked_any: bool,
}

#[derive(Default)]
struct PartitionQueue {
    batches: VecDeque<Sealed>,
    /// How many batches from the front are on the current connection.
    sent: usize,
}

/// Connection-task state.
pub(crate) struct Link {
    pub(crate) inner: Arc<Inner>,
    pub(crate) endpoint: quinn::Endpoint,
    pub(crate) client_config: quinn::ClientConfig,
    pub(crate) config: IngestClientConfig,
    pub(crate) resolved_tx: watch::Sender<u64>,
    pub(crate) spool: Option<Arc<Spool>>,
}

/// Connects and completes the Hello handshake.
pub(crate) async fn hello(
    endpoint: &quinn::Endpoint,
    client_config: &quinn::ClientConfig,
    config: &IngestClientConfig,
    producer_id: u64,
) -> Result<(quinn::Connection, HelloOkFrame), Connected> {
    let connecting = endpoint
        .connect_with(
            client_config.clone(),
            config.server_addr,
            &config.server_name,
        )
        .map_err(|e| Connected::Failed(e.to_string()))?;
    let connection = connecting
        .await
        .map_err(|e| Connected::Failed(e.to_string()))?;
    let (mut send, mut recv) = connection
        .open_bi()
        .await
        .map_err(|e| Connected::Failed(e.to_string()))?;
    let frame = encode_frame(&Frame::Hello(HelloFrame {
        producer_id,
        adapter: config.adapter.clone(),
        token: config.token.clone(),
    }));
    send.write_all(&frame)
        .await
        .map_err(|e| Connected::Failed(e.to_string()))?;
    let _ = send.finish();
    let mut header = [0u8; FRAME_HEADER_BYTES];
    let mut body = Vec::new();
    match read_frame(&mut recv, &mut header, &mut body, REPLY_BODY_BYTES_MAX).await {
        Ok(Some(h)) => match Frame::decode_body(h.frame_type, &body) {
            Ok(Frame::HelloOk(ok)) => {
                // Read to the end so the node's stream completes.
                let _ = recv.read_to_end(0).await;
                Ok((connection, ok))
            }
            Ok(Frame::Error(e)) => Err(Connected::Refused(ClientError::Refused {
                code: e.code,
                message: e.message,
            })),
            Ok(other) => Err(Connected::Failed(format!(
                "unexpected {:?}",
                other.frame_type()
            ))),
            Err(e) => Err(Connected::Failed(e.to_string())),
        },
        Ok(None) | Err(ReadFailure::Stream) => Err(Connected::Failed("hello stream closed".into())),
        Err(ReadFailure::Wire { err, .. }) => Err(Connected::Failed(err.to_string())),
    }
}

/// Connects, says Hello and opens the batch streams, with their reader
/// and writer tasks.
async fn connect(
    endpoint: quinn::Endpoint,
    client_config: quinn::ClientConfig,
    config: IngestClientConfig,
    producer_id: u64,
    partitions: u32,
    generation: u64,
    inbound: mpsc::UnboundedSender<Inbound>,
) -> Connected {
    let attempt = async {
        let (connection, ok) = hello(&endpoint, &client_config, &config, producer_id).await?;
        if ok.partitions != partitions {
            return Err(Connected::Refused(ClientError::PartitionMismatch {
                node: ok.partitions,
                expected: partitions,
            }));
        }
        let mut writers = Vec::new();
        for _ in 0..config.streams.max(1) {
            let (send, recv) = connection
                .open_bi()
                .await
                .map_err(|e| Connected::Failed(e.to_string()))?;
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(write_stream(send, rx, generation, inbound.clone()));
            tokio::spawn(read_stream(recv, generation, inbound.clone()));
            writers.push(tx);
        }
        Ok(Connection {
            connection,
            writers,
            generation,
            acked_any: false,
        })
    };
    let limit = Duration::from_millis(config.connect_timeout_ms);
    match tokio::time::timeout(limit, attempt).await {
        Ok(Ok(c)) => Connected::Up(c),
        Ok(Err(e)) => e,
        Err(_) => Connected::Failed("connect timed out".into()),
    }
}

/// Outcome of a connection attempt.
pub(crate) enum Connected {
    Up(Connection),
    Failed(String),
    Refused(ClientError),
}

impl Link {
    fn metrics(&self) -> &ClientMetrics {
        &self.inner.metrics
    }

    /// Runs until the client is closed and (for a graceful close) every
    /// batch is resolved.
    pub(crate) async fn run(
        self,
        initial: Vec<Sealed>,
        mut sealed_rx: mpsc::UnboundedReceiver<Sealed>,
        mut close_rx: watch::Receiver<bool>,
    ) {
        let partitions = self.inner.partitions as usize;
        let linger_wake = self.inner.linger_wake.clone();
        let mut shifts = vec![0u64; partitions];
        let mut queues: Vec<PartitionQueue> =
            (0..partitions).map(|_| PartitionQueue::default()).collect();
        for s in initial {
            queues[s.partition as usize].batches.push_back(s);
        }
        let (inbound_tx, mut inbound_rx) = mpsc::unbounded_channel::<Inbound>();
        let mut backoff = Backoff::new(
            self.config.backoff_initial_ms,
            self.config.backoff_max_ms,
            SplitMix64::from_entropy(),
        );
        let mut conn: Option<Connection> = None;
        let mut pending_connect: Option<tokio::task::JoinHandle<Connected>> = None;
        let mut generation = 0u64;
        let mut retry_at: Option<tokio::time::Instant> = None;
        let inflight_max = self.config.inflight_batches_per_partition.max(1) as usize;
        let mut resolved = 0u64;
        let mut closing = false;
        loop {
            if closing && queues.iter().all(|q| q.batches.is_empty()) && sealed_rx.is_empty() {
                break;
            }
            if conn.is_none()
                && pending_connect.is_none()
                && retry_at.is_none_or(|t| tokio::time::Instant::now() >= t)
            {
                generation += 1;
                pending_connect = Some(tokio::spawn(connect(
                    self.endpoint.clone(),
                    self.client_config.clone(),
                    self.config.clone(),
                    self.inner.producer_id,
                    self.inner.partitions,
                    generation,
                    inbound_tx.clone(),
                )));
            }
            if let Some(c) = &conn {
                for (p, q) in queues.iter_mut().enumerate() {
                    while q.sent < q.batches.len() && q.sent < inflight_max {
                        let frame = q.batches[q.sent].frame.clone();
                        let _ = c.writers[p % c.writers.len()].send(frame);
                        q.sent += 1;
                        add(&self.metrics().batches_sent, 1);
                    }
                }
            }
            let deadline = super::lock(&self.inner.batcher).next_deadline();
            let linger_sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            let retry_sleep = async {
                match retry_at {
                    Some(t) if conn.is_none() => tokio::time::sleep_until(t).await,
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                sealed = sealed_rx.recv() => match sealed {
                    Some(mut s) => {
                        let shift = shifts[s.partition as usize];
                        if shift > 0 {
                            s.sequence -= shift;
                            s.frame = crate::wire::with_sequence(&s.frame, s.sequence);
                        }
                        queues[s.partition as usize].batches.push_back(s);
                    }
                    None => closing = true,
                },
                Some(inbound) = inbound_rx.recv() => {
                    let (gen_of, reply) = match inbound {
                        Inbound::Reply { generation, frame } => (generation, Some(frame)),
                        Inbound::Lost { generation } => (generation, None),
                    };
                    let Some(c) = conn.as_mut().filter(|c| c.generation == gen_of) else { continue };
                    let drop_conn = match reply {
                        None => true,
                        Some(reply) => self.on_reply(reply, &mut queues, &mut shifts, &mut resolved, c),
                    };
                    if c.acked_any {
                        backoff.reset();
                    }
                    if drop_conn {
                        add(&self.metrics().connections_lost, 1);
                        c.connection.close(0u32.into(), b"reconnecting");
                        conn = None;
                        retry_at = Some(tokio::time::Instant::now() + Duration::from_millis(backoff.next_delay_ms()));
                    }
                }
                joined = async {
                    match pending_connect.as_mut() {
                        Some(handle) => handle.await,
                        None => std::future::pending().await,
                    }
                } => {
                    pending_connect = None;
                    let outcome = joined.unwrap_or_else(|_| Connected::Failed("connect task failed".into()));
                match outcome {
                    Connected::Up(c) => {
                        add(&self.metrics().connects, 1);
                        for q in &mut queues {
                            add(&self.metrics().batches_resent, q.sent as u64);
                            q.sent = 0;
                        }
                        conn = Some(c);
                        retry_at = None;
                    }
                    Connected::Failed(reason) => {
                        add(&self.metrics().connect_failures, 1);
                        tracing::debug!(%reason, "ingest connect failed");
                        retry_at = Some(
                            tokio::time::Instant::now()
                                + Duration::from_millis(backoff.next_delay_ms()),
                        );
                    }
                    Connected::Refused(err) => {
                        add(&self.metrics().connect_failures, 1);
                        tracing::warn!(%err, "node refused the ingest session");
                        retry_at = Some(
                            tokio::time::Instant::now()
                                + Duration::from_millis(backoff.next_delay_ms()),
                        );
                    }
                }
                }
                _ = linger_sleep => {
                    self.seal(false);
                }
                _ = linger_wake.notified() => {}
                _ = retry_sleep => {}
                changed = close_rx.changed() => {
                    if changed.is_err() || *close_rx.borrow() {
                        // Abrupt close: leave unacknowledged batches to the spool.
                        break;
                    }
                }
            }
        }
        if let Some(c) = conn {
            c.connection.close(0u32.into(), b"client closed");
        }
        if let Some(handle) = pending_connect {
            handle.abort();
        }
        if let Some(spool) = &self.spool {
            spool.stop();
        }
    }

    /// Seals due batches and hands them to the pipeline.
    fn seal(&self, force: bool) {
        let sealed = super::lock(&self.inner.batcher).seal_due(Instant::now(), force);
        for s in sealed {
            self.inner.forward(s);
        }
    }

    /// Handles one reply; returns whether to drop the connection.
    fn on_reply(
        &self,
        reply: Reply,
        queues: &mut [PartitionQueue],
        shifts: &mut [u64],
        resolved: &mut u64,
        c: &mut Connection,
    ) -> bool {
        let (partition, sequence, outcome) = match reply {
            Reply::Ack {
                partition,
                sequence,
                duplicate,
                base_offset,
                last_offset,
            } => (
                partition,
                sequence,
                Ok((duplicate, Some((base_offset, last_offset)))),
            ),
            Reply::Error { code, batch } => {
                let Some((partition, sequence)) = batch else {
                    return true;
                };
                match ErrorCode::from_u16(code) {
                    Some(ErrorCode::StaleSequence) => (partition, sequence, Ok((true, None))),
                    Some(code) if code.is_retryable() => return true,
                    _ => (partition, sequence, Err(code)),
                }
            }
        };
        let Some(q) = queues.get_mut(partition as usize) else {
            return true;
        };
        if q.sent == 0 || q.batches.front().is_none_or(|b| b.sequence != sequence) {
            // A reply that does not match the oldest batch in flight: the
            // stream is out of step; start over on a fresh connection.
            return true;
        }
        let Some(batch) = q.batches.pop_front() else {
            return true;
        };
        q.sent -= 1;
        let m = self.metrics();
        sub(&m.held_bytes, batch.held_bytes);
        sub(&m.held_events, u64::from(batch.records));
        self.inner.room.add_permits(batch.held_bytes as usize);
        *resolved += u64::from(batch.records);
        if let (Some(spool), Some(next)) = (&self.spool, batch.spool_next_offset) {
            spool.acked(partition, next);
        }
        match outcome {
            Ok((duplicate, offsets)) => {
                c.acked_any = true;
                add(&m.batches_acked, 1);
                add(&m.events_acked, u64::from(batch.records));
                if duplicate {
                    add(&m.batches_duplicate, 1);
                }
                if let Some(observer) = &self.config.ack_observer {
                    let (base_offset, last_offset) = offsets.unwrap_or((0, 0));
                    observer(&BatchAcked {
                        partition,
                        sequence,
                        records: batch.records,
                        base_offset,
                        last_offset,
                        duplicate,
                        offsets_known: offsets.is_some(),
                        ack_latency_us: batch.sealed_at.elapsed().as_micros() as u64,
                    });
                }
                // Counters first, so a flush that wakes on this sees them.
                let _ = self.resolved_tx.send(*resolved);
                false
            }
            Err(code) => {
                add(&m.batches_rejected, 1);
                add(&m.events_rejected, u64::from(batch.records));
                tracing::warn!(
                    partition,
                    sequence,
                    code,
                    "node rejected a batch; it is in the node's dead letters"
                );
                // The node did not take this sequence: later batches of the
                // partition move down by one, and the connection restarts so
                // that nothing sent with the old numbers is still in flight.
                let shift = self.spool.as_ref().map_or(Ok(()), |s| s.shift(partition));
                if let Err(err) = shift {
                    tracing::error!(%err, "could not record a sequence shift in the spool");
                }
                for b in q.batches.iter_mut() {
                    b.sequence -= 1;
                    b.frame = crate::wire::with_sequence(&b.frame, b.sequence);
                }
                shifts[partition as usize] += 1;
                let _ = self.resolved_tx.send(*resolved);
                true
            }
        }
    }
}

async fn write_stream(
    mut send: quinn::SendStream,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    generation: u64,
    inbound: mpsc::UnboundedSender<Inbound>,
) {
    while let Some(frame) = rx.recv().await {
        if send.write_chunk(frame).await.is_err() {
            let _ = inbound.send(Inbound::Lost { generation });
            return;
        }
    }
    let _ = send.finish();
}

async fn read_stream(
    mut recv: quinn::RecvStream,
    generation: u64,
    inbound: mpsc::UnboundedSender<Inbound>,
) {
    let mut header = [0u8; FRAME_HEADER_BYTES];
    let mut body = Vec::new();
    loop {
        let reply = match read_frame(&mut recv, &mut header, &mut body, REPLY_BODY_BYTES_MAX).await
        {
            Ok(Some(h)) => match Frame::decode_body(h.frame_type, &body) {
                Ok(Frame::Ack(a)) => Reply::Ack {
                    partition: a.partition,
                    sequence: a.sequence,
                    duplicate: a.duplicate,
                    base_offset: a.base_offset,
                    last_offset: a.last_offset,
                },
                Ok(Frame::Error(e)) => Reply::Error {
                    code: e.code,
                    batch: e.batch,
                },
                _ => break,
            },
            _ => break,
        };
        if inbound
            .send(Inbound::Reply {
                generation,
                frame: reply,
            })
            .is_err()
        {
            return;
        }
    }
    let _ = inbound.send(Inbound::Lost { generation });
}
