//! Configuration of the ingest server, every limit with its unit.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::auth::AdapterCredential;
use crate::wire::FRAME_BODY_BYTES_MAX;

/// Default most unacknowledged batches per connection.
pub const INFLIGHT_BATCHES_MAX_DEFAULT: u32 = 64;
/// Default most concurrent batch streams per connection.
pub const STREAMS_PER_CONNECTION_MAX_DEFAULT: u32 = 16;
/// Default most open connections.
pub const CONNECTIONS_MAX_DEFAULT: u32 = 1024;
/// Default time a connection has to send Hello.
pub const HELLO_TIMEOUT_MS_DEFAULT: u64 = 5_000;
/// Default idle time after which a connection is dropped.
pub const IDLE_TIMEOUT_MS_DEFAULT: u64 = 30_000;
/// Default time shutdown waits for in-flight batches to be acknowledged.
pub const SHUTDOWN_GRACE_MS_DEFAULT: u64 = 5_000;
/// Largest dead-letter payload kept, in bytes: the log's record limit
/// (1 MiB) minus room for the dead-letter header and key.
pub const DEAD_LETTER_PAYLOAD_BYTES_MAX: usize = 1024 * 1024 - 4096;

/// Where the node's TLS certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// A self-signed certificate kept in this directory (`node-cert.pem`,
    /// `node-key.pem`), created on first start.
    SelfSigned {
        /// Directory holding the certificate and key (the node's data dir).
        dir: PathBuf,
    },
    /// A configured certificate chain and private key (PEM files).
    Files {
        /// PEM certificate chain, end-entity first.
        cert_pem: PathBuf,
        /// PEM private key (PKCS#8, PKCS#1 or SEC1).
        key_pem: PathBuf,
    },
}

/// Configuration of [`crate::ingest::serve`].
#[derive(Debug, Clone)]
pub struct IngestServerConfig {
    /// UDP address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The node's id, reported in HelloOk.
    pub node_id: u64,
    /// Certificate source.
    pub tls: TlsSource,
    /// Adapters allowed to connect.
    pub adapters: Vec<AdapterCredential>,
    /// Largest frame body accepted, in bytes (at most 4 MiB).
    pub frame_body_bytes_max: u32,
    /// Most batches appended but not yet acknowledged, per connection.
    pub inflight_batches_max: u32,
    /// Most concurrent batch streams per connection.
    pub streams_per_connection_max: u32,
    /// Most open connections; further attempts are refused.
    pub connections_max: u32,
    /// Time a new connection has to send its Hello, in ms.
    pub hello_timeout_ms: u64,
    /// Idle time after which a silent connection is closed, in ms.
    pub idle_timeout_ms: u64,
    /// Time a graceful shutdown waits for in-flight acks, in ms.
    pub shutdown_grace_ms: u64,
    /// Validate every record value as a canonical event (and its key as
    /// its tracking number) before appending.
    pub validate_events: bool,
    /// Largest UDP payload MTU discovery may probe up to, in bytes
    /// (1200..=65527; 1452 suits Ethernet, loopback allows far more).
    pub udp_payload_bytes_max: u16,
}

impl IngestServerConfig {
    /// A configuration with the defaults, listening on `listen`, with a
    /// self-signed certificate kept in `data_dir`.
    pub fn new(listen: SocketAddr, data_dir: impl Into<PathBuf>) -> IngestServerConfig {
        IngestServerConfig {
            listen,
            node_id: 1,
            tls: TlsSource::SelfSigned {
                dir: data_dir.into(),
            },
            adapters: Vec::new(),
            frame_body_bytes_max: FRAME_BODY_BYTES_MAX as u32,
            inflight_batches_max: INFLIGHT_BATCHES_MAX_DEFAULT,
            streams_per_connection_max: STREAMS_PER_CONNECTION_MAX_DEFAULT,
            connections_max: CONNECTIONS_MAX_DEFAULT,
            hello_timeout_ms: HELLO_TIMEOUT_MS_DEFAULT,
            idle_timeout_ms: IDLE_TIMEOUT_MS_DEFAULT,
            shutdown_grace_ms: SHUTDOWN_GRACE_MS_DEFAULT,
            validate_events: true,
            udp_payload_bytes_max: 1452,
        }
    }
}
