//! Typed decode errors of the wire format.

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer bytes than the header or the declared body need.
    #[error("truncated frame: need {needed} bytes, have {available}")]
    Truncated {
        /// Bytes needed.
        needed: u64,
        /// Bytes available.
        available: u64,
    },
    /// The first three bytes are not `DLW`.
    #[error("bad frame magic {found:02x?}")]
    BadMagic {
        /// The four bytes found where the magic belongs.
        found: [u8; 4],
    },
    /// The magic's last byte names a protocol version this build cannot speak.
    #[error("unknown wire protocol version {version}")]
    UnknownVersion {
        /// The version byte found.
        version: u8,
    },
    /// The type byte names no known frame.
    #[error("unknown frame type {frame_type}")]
    UnknownFrameType {
        /// The type byte found.
        frame_type: u8,
    },
    /// A reserved field is not zero.
    #[error("reserved field {field} is {value}, must be 0")]
    ReservedNotZero {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// The declared body is larger than the receiver accepts.
    #[error("frame body of {body_bytes} bytes exceeds the maximum of {body_bytes_max}")]
    FrameTooLarge {
        /// Declared body length.
        body_bytes: u32,
        /// The receiver's limit.
        body_bytes_max: u32,
    },
    /// The CRC32C in the header does not match the bytes.
    #[error("frame checksum mismatch: stored {expected:#010x}, computed {got:#010x}")]
    ChecksumMismatch {
        /// CRC stored in the header.
        expected: u32,
        /// CRC computed over the bytes.
        got: u32,
    },
    /// A body field holds a value the format forbids.
    #[error("invalid field {field}: {value}")]
    InvalidField {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// A text field is not UTF-8.
    #[error("field {field} is not valid UTF-8")]
    InvalidUtf8 {
        /// Which field.
        field: &'static str,
    },
    /// A body has bytes after its last field.
    #[error("{bytes} unexpected bytes after the body of a {frame_type:?} frame")]
    TrailingBytes {
        /// The frame type byte.
        frame_type: u8,
        /// How many bytes are left over.
        bytes: u64,
    },
    /// A record inside a batch is malformed.
    #[error("invalid record {index}: {reason}")]
    InvalidRecord {
        /// Index of the record in the batch.
        index: u32,
        /// What is wrong.
        reason: &'static str,
    },
    /// A frame of this type is not expected here (e.g. a Batch before Hello).
    #[error("unexpected frame type {frame_type}")]
    UnexpectedFrame {
        /// The type byte found.
        frame_type: u8,
    },
}
