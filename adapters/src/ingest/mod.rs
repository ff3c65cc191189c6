//! The node's QUIC ingest endpoint: adapters connect, authenticate, and
//! stream batches of canonical events; the node acknowledges each batch
//! with its offsets once the log has made it durable.
//!
//! Session: the adapter opens a first bidirectional stream and sends Hello
//! (adapter name, token, producer id); the node answers HelloOk (node id,
//! partitions, limits) or an Error and closes. Then the adapter opens up
//! to `streams_per_connection_max` batch streams and pipelines Batch frames
//! on each; the node appends them in arrival order and answers Ack or
//! Error frames in the same order. An adapter sends all batches of one
//! partition on one stream, so they reach the log in sequence order.
//! Byte layout: docs/FORMAT.md, "Wire (QUIC ingest)".
//!
//! Why acks wait for durability: an ack is the node's promise that the
//! batch survives a crash; the adapter then drops the batch from its spool.
//! Why producer id + sequence: an adapter that lost a connection resends
//! every unacknowledged batch with the same sequence, and the log answers
//! a batch it already has with the original offsets instead of appending
//! it again.
//!
//! Why 0-RTT is refused: 0-RTT data can be captured and replayed by an
//! attacker, and the server cannot tell a replay from a retry. Batches are
//! idempotent per (producer, sequence), but a Hello or a batch replayed
//! into a fresh session could still be used to probe tokens or to re-inject
//! a batch after its producer state aged out of the log's window. A
//! handshake round trip per connection is cheap next to the connection's
//! lifetime, so the node sets `max_early_data_size = 0` and adapters never
//! send early data.
//!
//! Orders feed: on the same authenticated connection an adapter may open
//! a stream whose first frame is Follow (carriers, cursor); the node then
//! streams the orders of those carriers from `orders` as Orders frames,
//! with no contact or buyer data (see `follow` and `orders_feed`).
//!
//! Bad input never takes the node down: every malformed frame, wrong
//! token, oversized or truncated batch and unknown version gets a typed
//! Error reply with a numeric code, is counted in [`IngestMetrics`], and is
//! kept through [`IngestSink::dead_letter`] where there are bytes to keep;
//! only the offending stream (or, before authentication, the connection)
//! is closed.

mod auth;
mod config;
mod dead_letter;
mod error;
mod follow;
mod log_sink;
mod memory_sink;
mod metrics;
mod orders_feed;
mod server;
mod session;
mod sink;
mod stream;
mod tls;
mod transport;

pub use auth::{AdapterCredential, token_sha256};
pub use config::{
    CONNECTIONS_MAX_DEFAULT, DEAD_LETTER_PAYLOAD_BYTES_MAX, HELLO_TIMEOUT_MS_DEFAULT,
    IDLE_TIMEOUT_MS_DEFAULT, INFLIGHT_BATCHES_MAX_DEFAULT, IngestServerConfig,
    SHUTDOWN_GRACE_MS_DEFAULT, STREAMS_PER_CONNECTION_MAX_DEFAULT, TlsSource,
};
pub use dead_letter::{
    DEAD_LETTER_FORMAT_V1, DEAD_LETTER_KEY, DeadLetterRecord, encode_dead_letter,
};
pub use error::IngestError;
pub use follow::FOLLOW_PROGRESS_INTERVAL_MS;
pub use log_sink::{
    CARRIER_EVENTS_TOPIC, DEAD_LETTERS_PARTITIONS, DEAD_LETTERS_TOPIC, LogDurable, LogSink,
};
pub use memory_sink::{MEMORY_SINK_RECENT_BATCHES, MemorySink, StoredDeadLetter, StoredRecord};
pub use metrics::{IngestMetrics, IngestMetricsSnapshot};
pub use orders_feed::{FOLLOW_READ_BYTES_MAX, ORDERS_TOPIC, OrdersFeed};
pub use server::{ServerHandle, serve, serve_shared};
pub(crate) use session::now_ms;
pub use sink::{DeadLetter, IngestAck, IngestSink, ProducerSeq, SinkError};
pub(crate) use tls::https_server_config;
pub use tls::{
    SELF_SIGNED_CERT_FILE, SELF_SIGNED_KEY_FILE, SELF_SIGNED_NAMES, cert_fingerprint_sha256,
};
pub(crate) use transport::transport_config;
pub use transport::{
    CONNECTION_RECEIVE_WINDOW_BYTES, CONNECTION_SEND_WINDOW_BYTES, STREAM_RECEIVE_WINDOW_BYTES,
    UDP_PAYLOAD_BYTES_MIN,
};
