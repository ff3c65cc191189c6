//! Errors of the ingest client.

use std::path::PathBuf;

/// Why the client refused an event or could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The spool (or, without a spool, the in-memory buffer) is full: the
    /// caller should push back (a webhook receiver answers 503).
    #[error("spool full: {bytes} of {bytes_max} bytes held")]
    SpoolFull {
        /// Bytes held now.
        bytes: u64,
        /// The limit.
        bytes_max: u64,
    },
    /// An event is larger than a batch may be.
    #[error("event of {bytes} bytes exceeds the batch limit of {bytes_max}")]
    EventTooLarge {
        /// Record size (key plus value plus record header).
        bytes: usize,
        /// The limit.
        bytes_max: usize,
    },
    /// The key is empty or longer than the wire allows.
    #[error("invalid key of {bytes} bytes (must be 1..=1024)")]
    InvalidKey {
        /// Key length.
        bytes: usize,
    },
    /// The client was closed.
    #[error("the ingest client is closed")]
    Closed,
    /// The first connection failed and the partition count is unknown.
    #[error("cannot reach the node at {addr} and the partition count is not configured: {reason}")]
    Unreachable {
        /// The node address.
        addr: std::net::SocketAddr,
        /// The last failure.
        reason: String,
    },
    /// The node refused the session.
    #[error("the node refused the session: code {code} ({message})")]
    Refused {
        /// The wire error code.
        code: u16,
        /// The node's message.
        message: String,
    },
    /// The node's partition count differs from the spool's or the
    /// configured one.
    #[error("the node has {node} partitions, the client expects {expected}")]
    PartitionMismatch {
        /// The node's count.
        node: u32,
        /// The expected count.
        expected: u32,
    },
    /// The pinned fingerprint is not 64 hex digits.
    #[error("invalid pinned fingerprint {fingerprint:?}")]
    BadFingerprint {
        /// As configured.
        fingerprint: String,
    },
    /// The CA file holds no PEM certificate.
    #[error("no usable CA certificate in {path}")]
    BadCaCert {
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(rustls::Error),
    /// The TLS provider lacks the QUIC initial cipher suite.
    #[error("TLS provider lacks the QUIC initial cipher suite")]
    NoInitialCipherSuite,
    /// A file operation failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The spool's log failed.
    #[error("spool: {0}")]
    Spool(#[from] dropline_log::LogError),
    /// The spool directory holds data this build cannot use.
    #[error("spool {path}: {reason}")]
    BadSpool {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// The orders feed's stream or connection failed.
    #[error("the orders feed stream was lost")]
    FeedLost,
    /// The node sent bytes that are not a valid frame.
    #[error("invalid frame from the node: {0}")]
    Wire(#[from] crate::wire::WireError),
    /// The node sent a frame of a type not expected here.
    #[error("unexpected frame type {frame_type} from the node")]
    UnexpectedFrame {
        /// The type byte.
        frame_type: u8,
    },
    /// A configuration value is out of range.
    #[error("invalid configuration {field} = {value}: {reason}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
        /// The allowed range.
        reason: &'static str,
    },
}
