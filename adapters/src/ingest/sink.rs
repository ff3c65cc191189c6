//! The narrow boundary between the ingest server and storage.
//!
//! Why a trait and not the log directly: the server's job (framing,
//! authentication, windows, acks) is independent of how batches are stored,
//! and tests of every bad-input path run against an in-memory sink with
//! the same idempotence rules as the log. [`crate::ingest::LogSink`] is the
//! production implementation.
//!
//! Contract: `append` assigns offsets synchronously, in call order, and
//! returns a future that completes once the batch is durable. The server
//! calls `append` for one stream's batches in arrival order, so per
//! partition the sequences of one producer reach the sink in order.

use std::future::Future;

use crate::wire::{ErrorCode, RecordRef};

/// A producer's id and a batch's sequence for one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProducerSeq {
    /// The producer (one per adapter spool).
    pub producer_id: u64,
    /// The batch's sequence; +1 per batch per partition.
    pub sequence: u64,
}

impl From<ProducerSeq> for dropline_log::ProducerSeq {
    fn from(p: ProducerSeq) -> dropline_log::ProducerSeq {
        dropline_log::ProducerSeq {
            producer_id: p.producer_id,
            sequence: p.sequence,
        }
    }
}

/// A durable append's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestAck {
    /// Offset of the first record.
    pub base_offset: u64,
    /// Offset of the last record.
    pub last_offset: u64,
    /// Log time stamped on the batch, ms since the Unix epoch.
    pub log_time_ms: u64,
    /// The batch was a retry; these are the original offsets.
    pub duplicate: bool,
}

/// Why a sink refused or failed an append.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The partition does not exist.
    #[error("partition {partition} out of range (the topic has {partitions})")]
    PartitionOutOfRange {
        /// Requested partition.
        partition: u32,
        /// Partitions of the topic.
        partitions: u32,
    },
    /// The producer skipped a sequence.
    #[error("producer {producer_id}: expected sequence {expected}, got {got}")]
    OutOfOrderSequence {
        /// Producer.
        producer_id: u64,
        /// Sequence the partition expects.
        expected: u64,
        /// Sequence received.
        got: u64,
    },
    /// An old retry whose offsets are no longer remembered (it was appended).
    #[error(
        "producer {producer_id}: sequence {got} is older than the remembered window (last {last})"
    )]
    StaleSequence {
        /// Producer.
        producer_id: u64,
        /// Last sequence appended.
        last: u64,
        /// Sequence received.
        got: u64,
    },
    /// A record is larger than the storage accepts.
    #[error("record of {bytes} bytes exceeds the maximum of {bytes_max}")]
    RecordTooLarge {
        /// Record size.
        bytes: usize,
        /// The limit.
        bytes_max: usize,
    },
    /// The batch carried no records.
    #[error("empty batch")]
    EmptyBatch,
    /// The storage failed or refuses writes (I/O error, poisoned
    /// partition, closed log). Retrying later may succeed.
    #[error("storage unavailable for partition {partition}: {source}")]
    Unavailable {
        /// The partition concerned.
        partition: u32,
        /// The underlying failure.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// This node holds a replica of the partition but does not lead it
    /// (a replicated cluster). The display text is exactly the leader's
    /// QUIC ingest address, or empty while no leader is known: it becomes
    /// the wire Error's message, which the adapter follows.
    #[error("{}", leader_addr.as_deref().unwrap_or(""))]
    NotLeader {
        /// The leader's ingest address (`host:port`), when known.
        leader_addr: Option<String>,
    },
}

impl SinkError {
    /// The wire code reported to the adapter.
    pub fn code(&self) -> ErrorCode {
        match self {
            SinkError::PartitionOutOfRange { .. } => ErrorCode::PartitionOutOfRange,
            SinkError::OutOfOrderSequence { .. } => ErrorCode::OutOfOrderSequence,
            SinkError::StaleSequence { .. } => ErrorCode::StaleSequence,
            SinkError::RecordTooLarge { .. } => ErrorCode::RecordTooLarge,
            SinkError::EmptyBatch => ErrorCode::EmptyBatch,
            SinkError::Unavailable { .. } => ErrorCode::StorageUnavailable,
            SinkError::NotLeader { .. } => ErrorCode::NotLeader,
        }
    }
}

/// A rejected input kept for inspection and replay.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetter<'a> {
    /// Why it was rejected.
    pub code: ErrorCode,
    /// The adapter that sent it (empty before authentication).
    pub adapter: &'a str,
    /// When the node received it, ms since the Unix epoch.
    pub received_at_ms: u64,
    /// Length of the rejected input as received, in bytes (may exceed
    /// `payload.len()` when the payload was cut to the dead-letter limit).
    pub input_bytes: u64,
    /// The rejected bytes (a whole frame, or as much of it as arrived).
    pub payload: &'a [u8],
}

/// Where the ingest server puts batches and dead letters.
pub trait IngestSink: Send + Sync + 'static {
    /// Completes when an appended batch is durable.
    type Durable: Future<Output = Result<IngestAck, SinkError>> + Send + 'static;

    /// Partition count of the events topic (≥ 1).
    fn partitions(&self) -> u32;

    /// Appends one batch to `partition` as `producer`'s batch. Offsets are
    /// assigned before this returns; the future completes when durable. A
    /// retry of a remembered batch returns its original offsets with
    /// `duplicate` set.
    fn append(
        &self,
        partition: u32,
        producer: ProducerSeq,
        records: &[RecordRef<'_>],
    ) -> Result<Self::Durable, SinkError>;

    /// Keeps a rejected input. Best effort: a failure is counted by the
    /// server, never fatal to it.
    fn dead_letter(&self, letter: &DeadLetter<'_>) -> Result<(), SinkError>;

    /// The orders feed adapters may follow; `None` (the default): this
    /// sink serves none and a Follow is answered `orders_unavailable`.
    fn orders_feed(&self) -> Option<super::OrdersFeed> {
        None
    }
}
