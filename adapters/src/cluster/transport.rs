//! Node-to-node traffic: one QUIC endpoint per node (mutual TLS, see
//! [`super::tls`]) that accepts peers' connections and keeps one outgoing
//! connection per peer, with one long-lived unidirectional stream on which
//! the driver's per-turn batches go as peer frames ([`super::frame`]).
//!
//! Why a unidirectional stream per direction: Raft messages need no
//! request/response pairing (responses are messages too), and one ordered
//! stream keeps raft-rs's assumption of ordered delivery between loss
//! reports. A link that fails loses what was queued for it; the driver is
//! told ([`Input::Unreachable`]) and calls `report_unreachable` on its
//! replicas, so Raft probes that follower again. The link reconnects with
//! exponential backoff (50 ms to 2 s).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use raft::eraftpb::Message;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::frame::{
    PEER_FRAME_HEADER_BYTES, PeerFrameError, decode_body, decode_header, encode_frame,
};
use super::runtime::Input;
use super::tls::{PeerTls, PeerTlsError, node_name};

/// Counters of the peer transport.
#[derive(Debug, Default)]
pub(crate) struct PeerMetrics {
    frames_sent: AtomicU64,
    messages_sent: AtomicU64,
    frames_received: AtomicU64,
    messages_received: AtomicU64,
    bad_frames: AtomicU64,
    handshakes_refused: AtomicU64,
    connects: AtomicU64,
    link_failures: AtomicU64,
    dropped_batches: AtomicU64,
}

/// A copy of the peer transport's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerMetricsSnapshot {
    /// Frames written to peers.
    pub frames_sent: u64,
    /// Raft messages in them.
    pub messages_sent: u64,
    /// Frames received and decoded.
    pub frames_received: u64,
    /// Raft messages in them.
    pub messages_received: u64,
    /// Frames refused (bad magic, version, checksum, length, body); each
    /// closed its connection.
    pub bad_frames: u64,
    /// Incoming connections whose handshake failed (e.g. a client
    /// certificate the cluster CA did not sign).
    pub handshakes_refused: u64,
    /// Outgoing connections established.
    pub connects: u64,
    /// Outgoing connection attempts or links that failed.
    pub link_failures: u64,
    /// Batches of messages dropped because their peer's link was down.
    pub dropped_batches: u64,
}

impl PeerMetrics {
    pub(crate) fn snapshot(&self) -> PeerMetricsSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PeerMetricsSnapshot {
            frames_sent: l(&self.frames_sent),
            messages_sent: l(&self.messages_sent),
            frames_received: l(&self.frames_received),
            messages_received: l(&self.messages_received),
            bad_frames: l(&self.bad_frames),
            handshakes_refused: l(&self.handshakes_refused),
            connects: l(&self.connects),
            link_failures: l(&self.link_failures),
            dropped_batches: l(&self.dropped_batches),
        }
    }
}

fn add(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

/// Why the transport could not start.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// TLS configuration.
    #[error(transparent)]
    Tls(#[from] PeerTlsError),
    /// The UDP socket could not be used.
    #[error("peer endpoint: {0}")]
    Io(#[from] std::io::Error),
}

/// The running transport of one node.
pub(crate) struct Transport {
    endpoint: quinn::Endpoint,
    links: HashMap<u64, mpsc::UnboundedSender<Vec<(u32, Message)>>>,
    tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    pub(crate) metrics: Arc<PeerMetrics>,
}

/// Sends to the driver; a closed driver means the node is stopping.
type ToDriver = std::sync::mpsc::Sender<Input>;

fn transport_config() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.keep_alive_interval(Some(Duration::from_millis(500)));
    t.max_idle_timeout(Some(quinn::IdleTimeout::from(quinn::VarInt::from_u32(
        3_000,
    ))));
    Arc::new(t)
}

impl Transport {
    /// Starts the endpoint on `socket` and one link per peer. Must run
    /// inside a tokio runtime.
    pub(crate) fn start(
        socket: std::net::UdpSocket,
        tls: &PeerTls,
        peers: &[(u64, SocketAddr)],
        to_driver: ToDriver,
    ) -> Result<Transport, TransportError> {
        let mut server = tls.server_config()?;
        server.transport_config(transport_config());
        let mut client = tls.client_config()?;
        client.transport_config(transport_config());
        let mut endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(server),
            socket,
            Arc::new(quinn::TokioRuntime),
        )?;
        endpoint.set_default_client_config(client);
        let metrics = Arc::new(PeerMetrics::default());
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(accept_loop(
            endpoint.clone(),
            to_driver.clone(),
            metrics.clone(),
        )));
        let mut links = HashMap::new();
        for &(id, addr) in peers {
            let (tx, rx) = mpsc::unbounded_channel();
            links.insert(id, tx);
            tasks.push(tokio::spawn(link(
                endpoint.clone(),
                id,
                addr,
                rx,
                to_driver.clone(),
                metrics.clone(),
                stop_rx.clone(),
            )));
        }
        Ok(Transport {
            endpoint,
            links,
            tasks,
            stop,
            metrics,
        })
    }

    /// A handle the driver thread sends through.
    pub(crate) fn sender(&self) -> PeerSender {
        PeerSender {
            links: self.links.clone(),
        }
    }

    /// The endpoint's local address.
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.endpoint.local_addr().ok()
    }

    /// Closes every connection and stops the tasks.
    pub(crate) async fn shutdown(self) {
        let _ = self.stop.send(true);
        drop(self.links);
        self.endpoint
            .close(quinn::VarInt::from_u32(0), b"node stopping");
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
    }
}

/// The driver's side of the links: one queue per peer.
#[derive(Clone)]
pub(crate) struct PeerSender {
    links: HashMap<u64, mpsc::UnboundedSender<Vec<(u32, Message)>>>,
}

impl PeerSender {
    /// Queues one turn's messages for `peer`; false if there is no such
    /// peer (the messages are lost and Raft must be told).
    pub(crate) fn send(&self, peer: u64, batch: Vec<(u32, Message)>) -> bool {
        match self.links.get(&peer) {
            Some(tx) => tx.send(batch).is_ok(),
            None => false,
        }
    }
}

async fn accept_loop(endpoint: quinn::Endpoint, to_driver: ToDriver, metrics: Arc<PeerMetrics>) {
    while let Some(incoming) = endpoint.accept().await {
        let to_driver = to_driver.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let conn = match incoming.await {
                Ok(c) => c,
                Err(err) => {
                    add(&metrics.handshakes_refused, 1);
                    tracing::warn!(%err, "peer connection refused");
                    return;
                }
            };
            while let Ok(stream) = conn.accept_uni().await {
                tokio::spawn(read_stream(
                    conn.clone(),
                    stream,
                    to_driver.clone(),
                    metrics.clone(),
                ));
            }
        });
    }
}

/// Reads one frame; `Ok(None)` at a clean end of stream.
async fn read_frame(
    stream: &mut quinn::RecvStream,
) -> Result<Option<Vec<(u32, Message)>>, Option<PeerFrameError>> {
    let mut header = [0u8; PEER_FRAME_HEADER_BYTES];
    match stream.read_exact(&mut header).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(0)) => return Ok(None),
        Err(quinn::ReadExactError::FinishedEarly(_)) => {
            return Err(Some(PeerFrameError::Truncated));
        }
        // The connection is gone: nothing to refuse.
        Err(quinn::ReadExactError::ReadError(_)) => return Err(None),
    }
    let (len, crc) = decode_header(&header).map_err(Some)?;
    let mut body = vec![0u8; len];
    match stream.read_exact(&mut body).await {
        Ok(()) => {}
        Err(quinn::ReadExactError::FinishedEarly(_)) => {
            return Err(Some(PeerFrameError::Truncated));
        }
        Err(quinn::ReadExactError::ReadError(_)) => return Err(None),
    }
    decode_body(&body, crc).map(Some).map_err(Some)
}

async fn read_stream(
    conn: quinn::Connection,
    mut stream: quinn::RecvStream,
    to_driver: ToDriver,
    metrics: Arc<PeerMetrics>,
) {
    loop {
        match read_frame(&mut stream).await {
            Ok(Some(messages)) => {
                add(&metrics.frames_received, 1);
                add(&metrics.messages_received, messages.len() as u64);
                if to_driver.send(Input::Messages(messages)).is_err() {
                    return;
                }
            }
            Ok(None) | Err(None) => return,
            Err(Some(err)) => {
                add(&metrics.bad_frames, 1);
                tracing::warn!(%err, peer = %conn.remote_address(), "bad peer frame; closing the connection");
                let reason = err.to_string();
                conn.close(quinn::VarInt::from_u32(err.close_code()), reason.as_bytes());
                return;
            }
        }
    }
}

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

async fn link(
    endpoint: quinn::Endpoint,
    peer: u64,
    addr: SocketAddr,
    mut rx: mpsc::UnboundedReceiver<Vec<(u32, Message)>>,
    to_driver: ToDriver,
    metrics: Arc<PeerMetrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = BACKOFF_MIN;
    let lost = |metrics: &PeerMetrics| {
        add(&metrics.dropped_batches, 1);
        to_driver.send(Input::Unreachable { peer }).is_ok()
    };
    loop {
        if *stop.borrow() {
            return;
        }
        let connected = async {
            let conn = endpoint
                .connect(addr, &node_name(peer))
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())?;
            let send = conn.open_uni().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((conn, send))
        }
        .await;
        let (conn, mut send) = match connected {
            Ok(c) => c,
            Err(err) => {
                add(&metrics.link_failures, 1);
                tracing::debug!(peer, %addr, %err, "peer link down");
                // Wait out the backoff; whatever the driver sends meanwhile
                // is lost, and Raft is told.
                let sleep = tokio::time::sleep(backoff);
                tokio::pin!(sleep);
                loop {
                    tokio::select! {
                        _ = &mut sleep => break,
                        _ = stop.changed() => return,
                        b = rx.recv() => match b {
                            Some(_) => if !lost(&metrics) { return },
                            None => return,
                        },
                    }
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        add(&metrics.connects, 1);
        backoff = BACKOFF_MIN;
        loop {
            tokio::select! {
                b = rx.recv() => {
                    let Some(mut batch) = b else {
                        let _ = send.finish();
                        return;
                    };
                    // Everything queued since: one frame.
                    while let Ok(more) = rx.try_recv() {
                        batch.extend(more);
                    }
                    let n = batch.len() as u64;
                    let frame = encode_frame(&batch);
                    if send.write_all(&frame).await.is_err() {
                        add(&metrics.link_failures, 1);
                        if !lost(&metrics) {
                            return;
                        }
                        break;
                    }
                    add(&metrics.frames_sent, 1);
                    add(&metrics.messages_sent, n);
                }
                _ = conn.closed() => {
                    add(&metrics.link_failures, 1);
                    if to_driver.send(Input::Unreachable { peer }).is_err() {
                        return;
                    }
                    break;
                }
                _ = stop.changed() => {
                    let _ = send.finish();
                    return;
                }
            }
        }
    }
}
