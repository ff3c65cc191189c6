//! Numeric error codes carried by Error frames.
//!
//! Why numbers: adapters built against an older or newer version still
//! understand "what went wrong" without parsing text, and a code is never
//! reused for another meaning, so old logs and dashboards stay readable.
//! A retired code stays in this list, marked retired.

use super::error::WireError;

/// Why the node refused a frame, a batch or a session. The discriminant is
/// the code on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum ErrorCode {
    /// The frame did not start with the `DLW` magic.
    BadMagic = 1,
    /// The frame's protocol version is not one the node speaks.
    UnknownVersion = 2,
    /// The frame's CRC32C did not match.
    ChecksumMismatch = 3,
    /// The frame declared a body larger than the node accepts.
    FrameTooLarge = 4,
    /// The stream ended in the middle of a frame.
    Truncated = 5,
    /// The frame type byte is unknown.
    UnknownFrameType = 6,
    /// The body's layout is invalid (bad lengths, reserved bits, trailing bytes).
    MalformedBody = 7,
    /// The adapter name or token was not accepted.
    Unauthenticated = 8,
    /// A frame arrived that is not allowed at this point (e.g. Batch before Hello).
    UnexpectedFrame = 9,
    /// The batch names a partition the node does not have.
    PartitionOutOfRange = 10,
    /// A record's key does not hash to the batch's partition.
    WrongPartition = 11,
    /// A record's value is not a valid canonical event.
    InvalidEvent = 12,
    /// The batch's sequence skips ahead of what the partition expects.
    OutOfOrderSequence = 13,
    /// The batch is an old retry whose offsets are no longer remembered; it
    /// was appended before. Adapters treat it as acknowledged.
    StaleSequence = 14,
    /// The log could not take the batch (poisoned partition, I/O error);
    /// retrying later may succeed.
    StorageUnavailable = 15,
    /// The node is shutting down; reconnect later.
    ShuttingDown = 16,
    /// The batch's producer id is not the session's.
    ProducerMismatch = 17,
    /// The batch carries no records.
    EmptyBatch = 18,
    /// A record (key plus value) is larger than the log accepts.
    RecordTooLarge = 19,
    /// No Hello arrived within the node's handshake time limit.
    HelloTimeout = 20,
    /// A Follow's cursor does not fit the node's `orders` topic (another
    /// partition count, or an offset beyond its end): the adapter drops
    /// its cursor and follows from the start (registration is idempotent).
    CursorMismatch = 21,
    /// The node does not serve the orders feed now (no `orders` topic, or
    /// its log cannot be read); retry later.
    OrdersUnavailable = 22,
    /// This node does not lead the batch's partition (a replicated
    /// cluster). The Error's message is the leader's QUIC ingest address
    /// (`host:port`), or empty while no leader is known; the adapter sends
    /// the batch there, with the same producer id and sequence.
    NotLeader = 23,
}

impl ErrorCode {
    /// Every code, in numeric order.
    pub const ALL: [ErrorCode; 23] = [
        ErrorCode::BadMagic,
        ErrorCode::UnknownVersion,
        ErrorCode::ChecksumMismatch,
        ErrorCode::FrameTooLarge,
        ErrorCode::Truncated,
        ErrorCode::UnknownFrameType,
        ErrorCode::MalformedBody,
        ErrorCode::Unauthenticated,
        ErrorCode::UnexpectedFrame,
        ErrorCode::PartitionOutOfRange,
        ErrorCode::WrongPartition,
        ErrorCode::InvalidEvent,
        ErrorCode::OutOfOrderSequence,
        ErrorCode::StaleSequence,
        ErrorCode::StorageUnavailable,
        ErrorCode::ShuttingDown,
        ErrorCode::ProducerMismatch,
        ErrorCode::EmptyBatch,
        ErrorCode::RecordTooLarge,
        ErrorCode::HelloTimeout,
        ErrorCode::CursorMismatch,
        ErrorCode::OrdersUnavailable,
        ErrorCode::NotLeader,
    ];

    /// The largest code in use (sizes per-code counters).
    pub const MAX: u16 = 23;

    /// The code on the wire.
    pub fn as_u16(self) -> u16 {
        self as u16
    }

    /// Parses a code; `None` for codes this build does not know.
    pub fn from_u16(code: u16) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_u16() == code)
    }

    /// A short snake_case name for metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::BadMagic => "bad_magic",
            ErrorCode::UnknownVersion => "unknown_version",
            ErrorCode::ChecksumMismatch => "checksum_mismatch",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::Truncated => "truncated",
            ErrorCode::UnknownFrameType => "unknown_frame_type",
            ErrorCode::MalformedBody => "malformed_body",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::UnexpectedFrame => "unexpected_frame",
            ErrorCode::PartitionOutOfRange => "partition_out_of_range",
            ErrorCode::WrongPartition => "wrong_partition",
            ErrorCode::InvalidEvent => "invalid_event",
            ErrorCode::OutOfOrderSequence => "out_of_order_sequence",
            ErrorCode::StaleSequence => "stale_sequence",
            ErrorCode::StorageUnavailable => "storage_unavailable",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::ProducerMismatch => "producer_mismatch",
            ErrorCode::EmptyBatch => "empty_batch",
            ErrorCode::RecordTooLarge => "record_too_large",
            ErrorCode::HelloTimeout => "hello_timeout",
            ErrorCode::CursorMismatch => "cursor_mismatch",
            ErrorCode::OrdersUnavailable => "orders_unavailable",
            ErrorCode::NotLeader => "not_leader",
        }
    }

    /// Whether the same request may succeed if sent again later (the
    /// client retries these with the same sequence; the others are final).
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorCode::StorageUnavailable
                | ErrorCode::ShuttingDown
                | ErrorCode::OutOfOrderSequence
                | ErrorCode::OrdersUnavailable
                | ErrorCode::NotLeader
        )
    }
}

impl From<&WireError> for ErrorCode {
    fn from(err: &WireError) -> ErrorCode {
        match err {
            WireError::Truncated { .. } => ErrorCode::Truncated,
            WireError::BadMagic { .. } => ErrorCode::BadMagic,
            WireError::UnknownVersion { .. } => ErrorCode::UnknownVersion,
            WireError::UnknownFrameType { .. } => ErrorCode::UnknownFrameType,
            WireError::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
            WireError::ChecksumMismatch { .. } => ErrorCode::ChecksumMismatch,
            WireError::ReservedNotZero { .. }
            | WireError::InvalidField { .. }
            | WireError::InvalidUtf8 { .. }
            | WireError::TrailingBytes { .. }
            | WireError::InvalidRecord { .. } => ErrorCode::MalformedBody,
            WireError::UnexpectedFrame { .. } => ErrorCode::UnexpectedFrame,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_dense_and_round_trip() {
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(usize::from(code.as_u16()), i + 1);
            assert_eq!(ErrorCode::from_u16(code.as_u16()), Some(*code));
        }
        assert_eq!(ErrorCode::ALL.len(), usize::from(ErrorCode::MAX));
        assert_eq!(ErrorCode::from_u16(0), None);
        assert_eq!(ErrorCode::from_u16(ErrorCode::MAX + 1), None);
    }
}
