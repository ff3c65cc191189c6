//! Configuration of the ingest client, every limit with its unit.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use super::tls::ServerTrust;

/// Default time a partial batch waits for more events, in µs.
pub const LINGER_US_DEFAULT: u64 = 2_000;
/// Default most records per batch.
pub const BATCH_RECORDS_MAX_DEFAULT: u32 = 4_096;
/// Default most bytes per batch body.
pub const BATCH_BYTES_MAX_DEFAULT: u32 = 1024 * 1024;
/// Default batch streams per connection.
pub const STREAMS_DEFAULT: u32 = 4;
/// Default and largest number of unacknowledged batches per partition. The
/// log remembers the last 5 batches of each producer, so a resend of any
/// of 4 in flight is answered with its original offsets.
pub const INFLIGHT_BATCHES_PER_PARTITION_MAX: u32 = 4;
/// Default bytes of events held until acknowledged (memory and spool).
pub const BUFFERED_BYTES_MAX_DEFAULT: u64 = 64 * 1024 * 1024;
/// Default first reconnection delay, in ms.
pub const BACKOFF_INITIAL_MS_DEFAULT: u64 = 50;
/// Default largest reconnection delay, in ms.
pub const BACKOFF_MAX_MS_DEFAULT: u64 = 5_000;
/// Default time a connection attempt (handshake and Hello) may take, in ms.
pub const CONNECT_TIMEOUT_MS_DEFAULT: u64 = 5_000;
/// Default idle timeout of the QUIC connection, in ms.
pub const IDLE_TIMEOUT_MS_DEFAULT: u64 = 10_000;

/// A batch acknowledged by the node, as reported to
/// [`IngestClientConfig::ack_observer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchAcked {
    /// Partition.
    pub partition: u32,
    /// Sequence.
    pub sequence: u64,
    /// Records in the batch.
    pub records: u32,
    /// Offset of the first record (0 with `offsets_known` false).
    pub base_offset: u64,
    /// Offset of the last record.
    pub last_offset: u64,
    /// A retry answered with the original offsets.
    pub duplicate: bool,
    /// False when the node acknowledged an old retry without offsets
    /// (`stale_sequence`).
    pub offsets_known: bool,
    /// Microseconds from the batch being sealed to its ack.
    pub ack_latency_us: u64,
}

/// Callback for every acknowledged batch (benchmarks, tests, metrics).
pub type AckObserver = Arc<dyn Fn(&BatchAcked) + Send + Sync>;

/// The on-disk spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    /// Directory of the spool (a Dropline log of its own).
    pub dir: PathBuf,
}

/// Configuration of [`crate::client::IngestClient`].
#[derive(Clone)]
pub struct IngestClientConfig {
    /// The node's ingest address (in a cluster: the first node tried).
    pub server_addr: SocketAddr,
    /// The other nodes of a replicated cluster. Partitions are sent to
    /// their leaders: a node answering `not_leader` names the leader, and a
    /// node that cannot be reached hands its partitions to the next address.
    pub other_addrs: Vec<SocketAddr>,
    /// Name sent in TLS SNI and checked with `ServerTrust::CaCertPem`.
    pub server_name: String,
    /// How to trust the node's certificate.
    pub trust: ServerTrust,
    /// This adapter's name.
    pub adapter: String,
    /// This adapter's token.
    pub token: Vec<u8>,
    /// Time a partial batch waits for more events before it is sent, in µs.
    pub linger_us: u64,
    /// Most records per batch.
    pub batch_records_max: u32,
    /// Most bytes per batch body (at most the node's announced limit).
    pub batch_bytes_max: u32,
    /// Batch streams per connection; partition p uses stream p % streams.
    pub streams: u32,
    /// Unacknowledged batches per partition (1..=4).
    pub inflight_batches_per_partition: u32,
    /// Bytes of events held until acknowledged; beyond it `try_send`
    /// refuses with `SpoolFull` and `send` waits.
    pub buffered_bytes_max: u64,
    /// First reconnection delay, in ms.
    pub backoff_initial_ms: u64,
    /// Largest reconnection delay, in ms.
    pub backoff_max_ms: u64,
    /// Time a connection attempt may take, in ms.
    pub connect_timeout_ms: u64,
    /// QUIC idle timeout, in ms.
    pub idle_timeout_ms: u64,
    /// Largest UDP payload MTU discovery may probe, in bytes.
    pub udp_payload_bytes_max: u16,
    /// The node's partition count when known in advance (lets the client
    /// accept events before its first connection).
    pub partitions: Option<u32>,
    /// Keep accepted events in a durable spool until acknowledged.
    pub spool: Option<SpoolConfig>,
    /// Called for every acknowledged batch.
    pub ack_observer: Option<AckObserver>,
}

impl std::fmt::Debug for IngestClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestClientConfig")
            .field("server_addr", &self.server_addr)
            .field("other_addrs", &self.other_addrs)
            .field("adapter", &self.adapter)
            .field("linger_us", &self.linger_us)
            .field("batch_records_max", &self.batch_records_max)
            .field("batch_bytes_max", &self.batch_bytes_max)
            .field("streams", &self.streams)
            .field("spool", &self.spool)
            .finish_non_exhaustive()
    }
}

impl IngestClientConfig {
    /// Defaults for connecting to `server_addr` as `adapter` with `token`.
    pub fn new(
        server_addr: SocketAddr,
        trust: ServerTrust,
        adapter: impl Into<String>,
        token: impl Into<Vec<u8>>,
    ) -> Self {
        IngestClientConfig {
            server_addr,
            other_addrs: Vec::new(),
            server_name: "dropline-node".into(),
            trust,
            adapter: adapter.into(),
            token: token.into(),
            linger_us: LINGER_US_DEFAULT,
            batch_records_max: BATCH_RECORDS_MAX_DEFAULT,
            batch_bytes_max: BATCH_BYTES_MAX_DEFAULT,
            streams: STREAMS_DEFAULT,
            inflight_batches_per_partition: INFLIGHT_BATCHES_PER_PARTITION_MAX,
            buffered_bytes_max: BUFFERED_BYTES_MAX_DEFAULT,
            backoff_initial_ms: BACKOFF_INITIAL_MS_DEFAULT,
            backoff_max_ms: BACKOFF_MAX_MS_DEFAULT,
            connect_timeout_ms: CONNECT_TIMEOUT_MS_DEFAULT,
            idle_timeout_ms: IDLE_TIMEOUT_MS_DEFAULT,
            udp_payload_bytes_max: 1452,
            partitions: None,
            spool: None,
            ack_observer: None,
        }
    }

    /// Defaults for a replicated cluster reached at `addrs` (the first one
    /// is tried first); `None` when `addrs` is empty.
    pub fn new_cluster(
        addrs: &[SocketAddr],
        trust: ServerTrust,
        adapter: impl Into<String>,
        token: impl Into<Vec<u8>>,
    ) -> Option<Self> {
        let (first, others) = addrs.split_first()?;
        let mut config = IngestClientConfig::new(*first, trust, adapter, token);
        config.other_addrs = others.to_vec();
        Some(config)
    }

    /// Every configured node address, `server_addr` first, without repeats.
    pub fn node_addrs(&self) -> Vec<SocketAddr> {
        let mut addrs = vec![self.server_addr];
        for a in &self.other_addrs {
            if !addrs.contains(a) {
                addrs.push(*a);
            }
        }
        addrs
    }
}
