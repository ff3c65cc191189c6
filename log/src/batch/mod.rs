//! The batch: the unit the log writes, checksums, indexes and reads.
//!
//! Why batches and not records: one header, one CRC and one index entry per
//! batch amortise the per-record cost, and the engine moves batches between
//! threads anyway. The byte layout is specified in docs/FORMAT.md ("Log").

mod crc;
pub(crate) mod decode;
mod encode;

pub use decode::{BatchPeek, BatchRef, RecordIter, RecordView, decode_batch};
pub(crate) use decode::{crc_with_records, decode_batch_records_crc, parse_header, peek_header};
pub(crate) use encode::encode_batch;

/// Magic bytes of a batch this build writes; the last byte is the format
/// version.
pub const BATCH_MAGIC: [u8; 4] = [b'D', b'L', b'B', BATCH_FORMAT_VERSION];
/// The batch format version this build writes (and the newest it reads).
/// Version 2 records, in the header, the segment's durable length when the
/// batch was written, so that recovery can tell a torn tail from damaged
/// durable data (docs/FORMAT.md, "Torn tail or damaged durable data").
pub const BATCH_FORMAT_VERSION: u8 = 2;
/// The oldest batch format version this build reads. Version 1 differs from
/// version 2 only in that the header's u32 at offset 28 is reserved (0).
pub const BATCH_FORMAT_VERSION_MIN: u8 = 1;
/// Size of the batch header in bytes.
pub const BATCH_HEADER_BYTES: usize = 64;
/// Size of a record header in bytes.
pub const RECORD_HEADER_BYTES: usize = 12;

/// Batch attribute bit: the batch holds control records (e.g. ticks the node
/// appends to idle partitions), not data.
pub const ATTR_CONTROL: u16 = 1;
/// Batch attribute bit: the producer id and sequence fields are meaningful.
pub const ATTR_PRODUCER: u16 = 2;
const ATTR_KNOWN: u16 = ATTR_CONTROL | ATTR_PRODUCER;

/// One record to append: a key (a tracking number) and an opaque value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The key; at most [`crate::KEY_BYTES_MAX`] bytes.
    pub key: &'a [u8],
    /// The value; key plus value at most [`crate::RECORD_BYTES_MAX`] bytes.
    pub value: &'a [u8],
}

/// A producer's identity and the sequence number of one batch. Sequences of
/// one producer on one partition go up by one per batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProducerSeq {
    /// The producer.
    pub producer_id: u64,
    /// The batch's sequence number.
    pub sequence: u64,
}

/// One append: the records of one batch, optionally tagged by a producer for
/// idempotence.
#[derive(Debug, Clone, Copy)]
pub struct AppendRequest<'a> {
    /// The records, in order.
    pub records: &'a [Record<'a>],
    /// Producer id and sequence; a retry with the same pair returns the
    /// original offsets instead of appending again.
    pub producer: Option<ProducerSeq>,
}

/// The outcome of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendAck {
    /// Offset of the first record.
    pub base_offset: u64,
    /// Offset of the last record.
    pub last_offset: u64,
    /// Log time stamped on the batch.
    pub log_time_ms: u64,
    /// True when this was a retry of a batch already appended.
    pub duplicate: bool,
}
