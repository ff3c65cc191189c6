//! The client's connection task: keeps one QUIC connection to the node,
//! sends sealed batches in sequence order per partition with a bounded
//! window, matches acks, and on any failure reconnects with capped
//! jittered backoff and resends every unacknowledged batch with its
//! original sequence.
//!
//! Against a replicated cluster the client keeps one connection per node
//! that some partition is routed to, and follows `not_leader` answers to
//! the partition's leader (see [`Link::run`]); the producer id and the
//! sequences stay the same, so the new leader's copy of the producer state
//! (replicated with the log) answers resends of batches the old leader
//! committed with their original offsets.
//!
//! Why resend everything unacknowledged: the client cannot know which of
//! its in-flight batches the node appended before the connection died;
//! the node's idempotent producer state answers the ones it has with their
//! original offsets (or, for old ones, `stale_sequence`), so resending is
//! always safe and never duplicates.

use std::collections::VecDeque;
use std::net::SocketAddr;
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
        message: String,
    },
}

pub(crate) struct Connection {
    connection: quinn::Connection,
    writers: Vec<mpsc::UnboundedSender<Bytes>>,
    generation: u64,
    acked_any: bool,
}

struct PartitionQueue {
    batches: VecDeque<Sealed>,
    /// How many batches from the front are on the current connection.
    sent: usize,
    /// Index of the node the partition is sent to (its leader, as far as
    /// the client knows).
    node: usize,
    /// Redirects since the partition's last ack.
    redirects: u32,
    /// Backoff between repeated redirects.
    redirect_backoff: Backoff,
    /// Nothing is sent before this (after a repeated redirect).
    hold_until: Option<tokio::time::Instant>,
}

impl PartitionQueue {
    fn new(config: &IngestClientConfig) -> PartitionQueue {
        PartitionQueue {
            batches: VecDeque::new(),
            sent: 0,
            node: 0,
            redirects: 0,
            redirect_backoff: Backoff::new(
                config.backoff_initial_ms,
                config.backoff_max_ms,
                SplitMix64::from_entropy(),
            ),
            hold_until: None,
        }
    }
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

/// Connects to `config.server_addr` and completes the Hello handshake.
pub(crate) async fn hello(
    endpoint: &quinn::Endpoint,
    client_config: &quinn::ClientConfig,
    config: &IngestClientConfig,
    producer_id: u64,
) -> Result<(quinn::Connection, HelloOkFrame), Connected> {
    hello_at(
        endpoint,
        client_config,
        config,
        config.server_addr,
        producer_id,
    )
    .await
}

/// Connects to `addr` and completes the Hello handshake.
pub(crate) async fn hello_at(
    endpoint: &quinn::Endpoint,
    client_config: &quinn::ClientConfig,
    config: &IngestClientConfig,
    addr: SocketAddr,
    producer_id: u64,
) -> Result<(quinn::Connection, HelloOkFrame), Connected> {
    let connecting = endpoint
        .connect_with(client_config.clone(), addr, &config.server_name)
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
#[expect(
    clippy::too_many_arguments,
    reason = "the parts of one attempt, moved into its task"
)]
async fn connect(
    endpoint: quinn::Endpoint,
    client_config: quinn::ClientConfig,
    config: IngestClientConfig,
    addr: SocketAddr,
    producer_id: u64,
    partitions: u32,
    generation: u64,
    inbound: mpsc::UnboundedSender<Inbound>,
) -> Connected {
    let attempt = async {
        let (connection, ok) =
            hello_at(&endpoint, &client_config, &config, addr, producer_id).await?;
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

/// A finished connection attempt to node `node`.
struct ConnectDone {
    node: usize,
    outcome: Connected,
}

/// Most node addresses one client keeps (configured plus learned from
/// `not_leader` hints); a hint beyond it is treated as no hint.
pub(crate) const NODES_MAX: usize = 64;

/// The client's view of one node.
struct NodeLink {
    addr: SocketAddr,
    conn: Option<Connection>,
    connecting: Option<tokio::task::JoinHandle<()>>,
    retry_at: Option<tokio::time::Instant>,
    backoff: Backoff,
    /// Per partition: replies still due on this connection for batches
    /// sent before the partition moved to another node. Replies of one
    /// partition come back in order on its stream, so the first `stale[p]`
    /// are skipped.
    stale: Vec<u32>,
}

impl NodeLink {
    fn new(addr: SocketAddr, partitions: usize, config: &IngestClientConfig) -> NodeLink {
        NodeLink {
            addr,
            conn: None,
            connecting: None,
            retry_at: None,
            backoff: Backoff::new(
                config.backoff_initial_ms,
                config.backoff_max_ms,
                SplitMix64::from_entropy(),
            ),
            stale: vec![0; partitions],
        }
    }
}

/// What the connection task does after a reply.
enum AfterReply {
    Keep,
    DropConnection,
}

impl Link {
    fn metrics(&self) -> &ClientMetrics {
        &self.inner.metrics
    }

    /// Runs until the client is closed and (for a graceful close) every
    /// batch is resolved.
    ///
    /// Each partition is routed to one node (at first the first address).
    /// A connection is kept to every node some partition is routed to.
    /// `not_leader` moves the partition to the hinted leader (or, with no
    /// hint, to the next known node) and resends its unacknowledged batches
    /// there with the same producer id and sequences; a node that cannot be
    /// reached hands its partitions to the next node. Repeated redirects of
    /// a partition wait a capped jittered backoff, reset by its next ack.
    pub(crate) async fn run(
        self,
        initial: Vec<Sealed>,
        mut sealed_rx: mpsc::UnboundedReceiver<Sealed>,
        mut close_rx: watch::Receiver<bool>,
    ) {
        let partitions = self.inner.partitions as usize;
        let linger_wake = self.inner.linger_wake.clone();
        let mut shifts = vec![0u64; partitions];
        let mut queues: Vec<PartitionQueue> = (0..partitions)
            .map(|_| PartitionQueue::new(&self.config))
            .collect();
        for s in initial {
            queues[s.partition as usize].batches.push_back(s);
        }
        let mut nodes: Vec<NodeLink> = self
            .config
            .node_addrs()
            .into_iter()
            .take(NODES_MAX)
            .map(|a| NodeLink::new(a, partitions, &self.config))
            .collect();
        let (inbound_tx, mut inbound_rx) = mpsc::unbounded_channel::<Inbound>();
        let (connect_tx, mut connect_rx) = mpsc::unbounded_channel::<ConnectDone>();
        let mut generation = 0u64;
        let inflight_max = self.config.inflight_batches_per_partition.max(1) as usize;
        let mut resolved = 0u64;
        let mut closing = false;
        loop {
            if closing && queues.iter().all(|q| q.batches.is_empty()) && sealed_rx.is_empty() {
                break;
            }
            let now = tokio::time::Instant::now();
            for (i, n) in nodes.iter_mut().enumerate() {
                let wanted = queues.iter().any(|q| q.node == i);
                if wanted
                    && n.conn.is_none()
                    && n.connecting.is_none()
                    && n.retry_at.is_none_or(|t| now >= t)
                {
                    generation += 1;
                    let attempt = connect(
                        self.endpoint.clone(),
                        self.client_config.clone(),
                        self.config.clone(),
                        n.addr,
                        self.inner.producer_id,
                        self.inner.partitions,
                        generation,
                        inbound_tx.clone(),
                    );
                    let done = connect_tx.clone();
                    n.connecting = Some(tokio::spawn(async move {
                        let outcome = attempt.await;
                        let _ = done.send(ConnectDone { node: i, outcome });
                    }));
                }
            }
            for (p, q) in queues.iter_mut().enumerate() {
                if q.hold_until.is_some_and(|t| now < t) {
                    continue;
                }
                q.hold_until = None;
                let Some(c) = nodes.get(q.node).and_then(|n| n.conn.as_ref()) else {
                    continue;
                };
                while q.sent < q.batches.len() && q.sent < inflight_max {
                    let frame = q.batches[q.sent].frame.clone();
                    let _ = c.writers[p % c.writers.len()].send(frame);
                    q.sent += 1;
                    add(&self.metrics().batches_sent, 1);
                }
            }
            // Partitions whose window is full keep their open batch open
            // past its linger (batcher.rs, without a spool).
            let window_full: Vec<bool> = queues
                .iter()
                .map(|q| q.batches.len() >= inflight_max)
                .collect();
            let full = |p: u32| window_full.get(p as usize).copied().unwrap_or(false);
            let deadline = super::lock(&self.inner.batcher).next_deadline(&full);
            let linger_sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d.into()).await,
                    None => std::future::pending().await,
                }
            };
            // The next retry of a connection or end of a partition's hold.
            let wake_at = nodes
                .iter()
                .filter(|n| n.conn.is_none() && n.connecting.is_none())
                .filter_map(|n| n.retry_at)
                .chain(queues.iter().filter_map(|q| q.hold_until))
                .min();
            let retry_sleep = async {
                match wake_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
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
                    let Some(i) = nodes
                        .iter()
                        .position(|n| n.conn.as_ref().is_some_and(|c| c.generation == gen_of))
                    else {
                        continue;
                    };
                    let after = match reply {
                        None => AfterReply::DropConnection,
                        Some(reply) => self.on_reply(reply, i, &mut nodes, &mut queues, &mut shifts, &mut resolved),
                    };
                    let n = &mut nodes[i];
                    if n.conn.as_ref().is_some_and(|c| c.acked_any) {
                        n.backoff.reset();
                    }
                    if matches!(after, AfterReply::DropConnection) {
                        add(&self.metrics().connections_lost, 1);
                        if let Some(c) = n.conn.take() {
                            c.connection.close(0u32.into(), b"reconnecting");
                        }
                        n.stale.fill(0);
                        n.retry_at = Some(tokio::time::Instant::now() + Duration::from_millis(n.backoff.next_delay_ms()));
                    }
                }
                Some(done) = connect_rx.recv() => {
                    let i = done.node;
                    nodes[i].connecting = None;
                    match done.outcome {
                        Connected::Up(c) => {
                            add(&self.metrics().connects, 1);
                            for q in queues.iter_mut().filter(|q| q.node == i) {
                                add(&self.metrics().batches_resent, q.sent as u64);
                                q.sent = 0;
                            }
                            let n = &mut nodes[i];
                            n.stale.fill(0);
                            n.conn = Some(c);
                            n.retry_at = None;
                        }
                        Connected::Failed(reason) => {
                            add(&self.metrics().connect_failures, 1);
                            tracing::debug!(%reason, addr = %nodes[i].addr, "ingest connect failed");
                            self.unreachable(i, &mut nodes, &mut queues);
                        }
                        Connected::Refused(err) => {
                            add(&self.metrics().connect_failures, 1);
                            tracing::warn!(%err, addr = %nodes[i].addr, "node refused the ingest session");
                            self.unreachable(i, &mut nodes, &mut queues);
                        }
                    }
                }
                _ = linger_sleep => {
                    self.seal(&full);
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
        for n in nodes {
            if let Some(c) = n.conn {
                c.connection.close(0u32.into(), b"client closed");
            }
            if let Some(handle) = n.connecting {
                handle.abort();
            }
        }
        if let Some(spool) = &self.spool {
            spool.stop();
        }
    }

    /// Node `i` could not be reached: wait before trying it again, and hand
    /// its partitions to the next node (which leads them or names the
    /// leader).
    fn unreachable(&self, i: usize, nodes: &mut [NodeLink], queues: &mut [PartitionQueue]) {
        let n = &mut nodes[i];
        n.retry_at =
            Some(tokio::time::Instant::now() + Duration::from_millis(n.backoff.next_delay_ms()));
        if nodes.len() < 2 {
            return;
        }
        let next = (i + 1) % nodes.len();
        for q in queues.iter_mut().filter(|q| q.node == i) {
            add(&self.metrics().batches_resent, q.sent as u64);
            q.sent = 0;
            q.node = next;
        }
    }

    /// Moves partition `p` (whose oldest batch node `i` answered with
    /// `not_leader`) to the node `hint` names, or to the next node.
    fn redirect(
        &self,
        p: usize,
        i: usize,
        hint: &str,
        nodes: &mut Vec<NodeLink>,
        queues: &mut [PartitionQueue],
    ) {
        add(&self.metrics().leader_redirects, 1);
        let hinted = hint.trim().parse::<SocketAddr>().ok();
        let target = match hinted {
            Some(addr) => match nodes.iter().position(|n| n.addr == addr) {
                Some(t) => Some(t),
                None if nodes.len() < NODES_MAX => {
                    nodes.push(NodeLink::new(addr, queues.len(), &self.config));
                    Some(nodes.len() - 1)
                }
                None => None,
            },
            None => None,
        };
        let target = target.unwrap_or((i + 1) % nodes.len());
        self.move_partition(p, i, target, nodes, queues);
    }

    /// Resends partition `p`'s unacknowledged batches (answered by node
    /// `i`, oldest first) to node `target`, after a backoff unless it is a
    /// first move to another node.
    fn move_partition(
        &self,
        p: usize,
        i: usize,
        target: usize,
        nodes: &mut [NodeLink],
        queues: &mut [PartitionQueue],
    ) {
        let q = &mut queues[p];
        // The reply consumed one of the batches on node i; the rest of what
        // was sent there will be answered there and must be skipped.
        let still_due = q.sent.saturating_sub(1) as u32;
        if nodes[i].conn.is_some() {
            nodes[i].stale[p] += still_due;
        }
        add(&self.metrics().batches_resent, q.sent as u64);
        q.sent = 0;
        // A hint to another node is followed at once; a second redirect in
        // a row (an election under way, a stale hint) waits a backoff.
        let delay_ms = q.redirect_backoff.next_delay_ms();
        if q.redirects > 0 || target == i {
            q.hold_until = Some(tokio::time::Instant::now() + Duration::from_millis(delay_ms));
        }
        q.redirects += 1;
        q.node = target;
    }

    /// Seals due batches (not those held for a full window) and hands
    /// them to the pipeline.
    fn seal(&self, window_full: &dyn Fn(u32) -> bool) {
        let sealed = super::lock(&self.inner.batcher).seal_due(Instant::now(), false, window_full);
        for s in sealed {
            self.inner.forward(s);
        }
    }

    /// Handles one reply from node `i`.
    fn on_reply(
        &self,
        reply: Reply,
        i: usize,
        nodes: &mut Vec<NodeLink>,
        queues: &mut [PartitionQueue],
        shifts: &mut [u64],
        resolved: &mut u64,
    ) -> AfterReply {
        let partition = match &reply {
            Reply::Ack { partition, .. } => *partition,
            Reply::Error {
                batch: Some((partition, _)),
                ..
            } => *partition,
            Reply::Error { batch: None, .. } => return AfterReply::DropConnection,
        };
        let p = partition as usize;
        if p >= queues.len() {
            return AfterReply::DropConnection;
        }
        if nodes[i].stale[p] > 0 {
            nodes[i].stale[p] -= 1;
            return AfterReply::Keep;
        }
        if queues[p].node != i {
            // Sent before the partition moved and already counted; nothing
            // of this partition is in flight here.
            return AfterReply::Keep;
        }
        let (sequence, outcome) = match reply {
            Reply::Ack {
                sequence,
                duplicate,
                base_offset,
                last_offset,
                ..
            } => (sequence, Ok((duplicate, Some((base_offset, last_offset))))),
            Reply::Error {
                code,
                batch,
                message,
            } => {
                let sequence = batch.map_or(0, |(_, s)| s);
                match ErrorCode::from_u16(code) {
                    Some(ErrorCode::StaleSequence) => (sequence, Ok((true, None))),
                    Some(ErrorCode::NotLeader) => {
                        if queues[p].sent == 0 {
                            return AfterReply::Keep;
                        }
                        self.redirect(p, i, &message, nodes, queues);
                        return AfterReply::Keep;
                    }
                    // The node is shutting down: reconnect (elsewhere
                    // if it stays away).
                    Some(ErrorCode::ShuttingDown) => return AfterReply::DropConnection,
                    // Refused for now (replication backpressure, storage,
                    // a sequence gap behind that refusal): resend the
                    // partition's batches to the same node after a backoff,
                    // skipping the answers still due for the rest.
                    Some(code) if code.is_retryable() => {
                        if queues[p].sent > 0 {
                            self.move_partition(p, i, i, nodes, queues);
                        }
                        return AfterReply::Keep;
                    }
                    _ => (sequence, Err(code)),
                }
            }
        };
        let q = &mut queues[p];
        if q.sent == 0 || q.batches.front().is_none_or(|b| b.sequence != sequence) {
            // A reply that does not match the oldest batch in flight: the
            // stream is out of step; start over on a fresh connection.
            return AfterReply::DropConnection;
        }
        let Some(batch) = q.batches.pop_front() else {
            return AfterReply::DropConnection;
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
                q.redirects = 0;
                q.redirect_backoff.reset();
                if let Some(c) = nodes[i].conn.as_mut() {
                    c.acked_any = true;
                }
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
                AfterReply::Keep
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
                shifts[p] += 1;
                let _ = self.resolved_tx.send(*resolved);
                AfterReply::DropConnection
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
                    message: e.message,
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
