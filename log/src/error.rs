//! Typed errors of the log.
//!
//! Why structured fields: an operator reading "checksum mismatch" needs the
//! segment file and the byte offset to act (verify, truncate, restore from
//! archive); tests need to match on the kind without parsing strings.

use std::path::PathBuf;

/// Why a byte slice is not a valid batch. Returned by [`crate::decode_batch`]
/// and wrapped with the segment path and file offset by the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Fewer bytes than the header or the declared batch length need.
    #[error("truncated batch: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes the batch needs.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// The first three magic bytes are not `DLB`.
    #[error("bad batch magic {found:02x?}")]
    BadMagic {
        /// The four bytes found where the magic belongs.
        found: [u8; 4],
    },
    /// The magic's last byte names a format version this build cannot read.
    #[error("unknown batch format version {version}")]
    UnknownVersion {
        /// The version byte found.
        version: u8,
    },
    /// The declared batch length is outside the format's bounds.
    #[error("invalid batch length {batch_bytes}")]
    InvalidLength {
        /// The declared length.
        batch_bytes: u64,
    },
    /// The CRC32C stored in the header does not match the bytes.
    #[error("batch checksum mismatch: stored {expected:#010x}, computed {got:#010x}")]
    ChecksumMismatch {
        /// CRC stored in the header.
        expected: u32,
        /// CRC computed over the bytes.
        got: u32,
    },
    /// A header field holds a value the format forbids.
    #[error("invalid batch header field {field}: {value}")]
    InvalidHeader {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// A record's framing is inconsistent with the batch.
    #[error("invalid record {index}: {reason}")]
    InvalidRecord {
        /// Index of the record inside the batch.
        index: u32,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Errors of the log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// An I/O operation failed.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// File or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Another process (or another `Log` in this one) holds the data directory.
    #[error("data directory {dir} is locked by another process")]
    Locked {
        /// The data directory.
        dir: PathBuf,
    },
    /// A batch's CRC32C does not match its bytes.
    #[error(
        "checksum mismatch in {segment} at byte {file_offset}: stored {expected:#010x}, computed {got:#010x}"
    )]
    ChecksumMismatch {
        /// Segment file.
        segment: PathBuf,
        /// Byte offset of the batch in the file.
        file_offset: u64,
        /// CRC stored in the header.
        expected: u32,
        /// CRC computed over the bytes.
        got: u32,
    },
    /// A batch or file carries a format version this build cannot read.
    #[error("unknown format version {version} in {segment} at byte {file_offset}")]
    UnknownVersion {
        /// The file.
        segment: PathBuf,
        /// Byte offset of the structure in the file.
        file_offset: u64,
        /// The version byte found.
        version: u8,
    },
    /// A batch in a segment is malformed in another way.
    #[error("corrupt batch in {segment} at byte {file_offset}: {source}")]
    CorruptBatch {
        /// Segment file.
        segment: PathBuf,
        /// Byte offset of the batch in the file.
        file_offset: u64,
        /// What is wrong.
        #[source]
        source: BatchError,
    },
    /// Recovery found a damaged batch in the active segment that was
    /// durable: a later valid batch records a durable length past it, so it
    /// was fdatasynced (and possibly acknowledged) before it was damaged,
    /// and is not a torn write. Recovery refuses to truncate it and the log
    /// does not open; nothing is modified (docs/FORMAT.md, "Torn tail or
    /// damaged durable data").
    #[error("{0}")]
    DamagedDurableBatch(Box<DamagedDurable>),
    /// A metadata, index or offset file is malformed.
    #[error("corrupt file {path}: {reason}")]
    CorruptFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// An earlier write or fdatasync failed; the partition refuses appends
    /// until the process restarts and recovery runs.
    #[error("partition {topic}/{partition} is poisoned: {cause}")]
    Poisoned {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
        /// The failure that poisoned it.
        cause: String,
    },
    /// The disk (or the quota) is full: a write or fdatasync failed with
    /// `ENOSPC`/`EDQUOT`. The batch is not acknowledged, and the partition
    /// refuses appends until space returns; an append then rewinds the
    /// writer to its last durable batch and carries on (docs/FORMAT.md,
    /// "Full disk").
    #[error(
        "partition {topic}/{partition} refuses appends, the disk is full: {cause}; appends resume once space returns"
    )]
    StorageFull {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
        /// The failure.
        cause: String,
    },
    /// The log was closed.
    #[error("the log is closed")]
    Closed,
    /// [`crate::Partition::truncate_to`] was refused; nothing changed.
    #[error("partition {topic}/{partition}: cannot truncate to offset {offset}: {reason}")]
    CannotTruncate {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
        /// The requested truncation offset.
        offset: u64,
        /// Why.
        reason: &'static str,
    },
    /// A record (key plus value) is larger than [`crate::RECORD_BYTES_MAX`].
    #[error("record of {bytes} bytes exceeds the maximum of {bytes_max}")]
    RecordTooLarge {
        /// Record size.
        bytes: usize,
        /// The limit.
        bytes_max: usize,
    },
    /// A key is larger than [`crate::KEY_BYTES_MAX`].
    #[error("key of {bytes} bytes exceeds the maximum of {bytes_max}")]
    KeyTooLarge {
        /// Key size.
        bytes: usize,
        /// The limit.
        bytes_max: usize,
    },
    /// An encoded batch would exceed [`crate::BATCH_BYTES_MAX`] or
    /// [`crate::BATCH_RECORDS_MAX`].
    #[error(
        "batch of {bytes} bytes / {records} records exceeds the maximum of {bytes_max} bytes / {records_max} records"
    )]
    BatchTooLarge {
        /// Encoded size.
        bytes: usize,
        /// Record count.
        records: usize,
        /// Byte limit.
        bytes_max: usize,
        /// Record limit.
        records_max: usize,
    },
    /// An append carried no records.
    #[error("an append must carry at least one record")]
    EmptyBatch,
    /// A producer skipped a sequence number.
    #[error("producer {producer_id}: expected sequence {expected}, got {got}")]
    OutOfOrderSequence {
        /// Producer.
        producer_id: u64,
        /// The sequence the partition expects next.
        expected: u64,
        /// The sequence received.
        got: u64,
    },
    /// A producer retried a batch older than the remembered window, so its
    /// original offsets are no longer known.
    #[error(
        "producer {producer_id}: sequence {got} is older than the remembered window (last {last})"
    )]
    StaleSequence {
        /// Producer.
        producer_id: u64,
        /// The last sequence appended.
        last: u64,
        /// The sequence received.
        got: u64,
    },
    /// The topic already exists with a different configuration.
    #[error("topic {topic} already exists with a different configuration")]
    TopicExists {
        /// Topic.
        topic: String,
    },
    /// No such topic.
    #[error("topic {topic} not found")]
    TopicNotFound {
        /// Topic.
        topic: String,
    },
    /// No such partition.
    #[error("topic {topic} has no partition {partition} (it has {partitions})")]
    PartitionNotFound {
        /// Topic.
        topic: String,
        /// Requested partition.
        partition: u32,
        /// Partitions of the topic.
        partitions: u32,
    },
    /// A topic or group name is empty, too long or has characters outside
    /// `[A-Za-z0-9._-]`.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// What is wrong.
        reason: &'static str,
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
    /// The requested offset is no longer (or not yet) in the log.
    #[error("offset {requested} out of range [{start}, {next}]")]
    OffsetOutOfRange {
        /// Requested offset.
        requested: u64,
        /// First retained offset.
        start: u64,
        /// Offset the next append gets.
        next: u64,
    },
}

/// Whether an I/O error says the disk or the quota is full.
pub fn is_storage_full(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

impl LogError {
    /// Whether this is a full disk: an append refused with `StorageFull`,
    /// or the write or roll that met `ENOSPC`/`EDQUOT` (which poisons the
    /// partition as waiting for space). Appends resume once space returns.
    pub fn is_storage_full(&self) -> bool {
        matches!(self, LogError::StorageFull { .. }) || self.is_storage_full_io()
    }

    /// Whether this is an I/O error saying the disk or the quota is full.
    pub(crate) fn is_storage_full_io(&self) -> bool {
        matches!(self, LogError::Io { source, .. } if is_storage_full(source))
    }

    /// Wraps an I/O error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LogError::Io {
            path: path.into(),
            source,
        }
    }

    /// Wraps a batch decoding error with its location.
    pub(crate) fn from_batch(segment: PathBuf, file_offset: u64, err: BatchError) -> Self {
        match err {
            BatchError::ChecksumMismatch { expected, got } => LogError::ChecksumMismatch {
                segment,
                file_offset,
                expected,
                got,
            },
            BatchError::UnknownVersion { version } => LogError::UnknownVersion {
                segment,
                file_offset,
                version,
            },
            source => LogError::CorruptBatch {
                segment,
                file_offset,
                source,
            },
        }
    }
}

/// Where and why recovery refused a damaged durable batch
/// ([`LogError::DamagedDurableBatch`]); boxed so that every `Result` over
/// [`LogError`] stays small.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "partition {topic}/{partition}: the batch at byte {file_offset} of {segment} is damaged ({reason}), \
     but it was durable: the batch at byte {witness_offset} records a durable length of {durable_bytes} bytes. \
     Refusing to truncate possibly acknowledged data; nothing was changed. Restore the segment from a copy, \
     or accept losing every record from byte {file_offset} on: keep a copy of the file, truncate it to \
     {file_offset} bytes, and open the log again"
)]
pub struct DamagedDurable {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// The active segment file.
    pub segment: PathBuf,
    /// Byte offset of the damaged batch in the file.
    pub file_offset: u64,
    /// Why the batch there does not decode.
    pub reason: BatchError,
    /// Byte offset of the later batch that proves the damage durable.
    pub witness_offset: u64,
    /// The segment's durable length that batch records (> `file_offset`).
    pub durable_bytes: u64,
}
