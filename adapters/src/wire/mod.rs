//! The versioned binary framing spoken over QUIC between adapters and the
//! node. Byte layout: docs/FORMAT.md, section "Wire (QUIC ingest)".
//!
//! Why a format of our own rather than a general serializer: the node must
//! reject bad input without trusting it, so every frame has a fixed 16-byte
//! header (magic whose last byte is the version, type, explicit
//! little-endian length, CRC32C) that is validated before a single body byte
//! is interpreted, and a hard size limit ([`FRAME_BODY_BYTES_MAX`]) that is
//! checked before the body is read. A batch body is laid out so that the
//! node can hand the record bytes to the log without copying them into
//! per-event structures.
//!
//! The decoder never panics on arbitrary bytes; every failure is a typed
//! [`WireError`], and each failure the node reports to an adapter carries a
//! numeric [`ErrorCode`] that is never reused.

mod batch;
mod codes;
mod error;
mod follow;
mod frame;
mod header;

pub use batch::{BatchBuilder, BatchView, RecordIter, RecordRef, with_sequence};
pub use codes::ErrorCode;
pub use error::WireError;
pub use follow::{
    CARRIER_MASK_KNOWN, FOLLOW_PARTITIONS_MAX, FollowFrame, ORDER_ENTRIES_MAX,
    ORDER_ENTRY_FIXED_BYTES, ORDERS_BODY_FIXED_BYTES, OrderEntry, OrdersFrame,
};
pub use frame::{AckFrame, ErrorFrame, Frame, HelloFrame, HelloOkFrame, encode_frame};
pub use header::{FrameHeader, FrameType};

/// The protocol version this build speaks: the last byte of [`WIRE_MAGIC`].
pub const WIRE_VERSION: u8 = 1;

/// Magic bytes at the start of every frame; the last byte is the version.
pub const WIRE_MAGIC: [u8; 4] = [b'D', b'L', b'W', WIRE_VERSION];

/// Size of the fixed frame header in bytes.
pub const FRAME_HEADER_BYTES: usize = 16;

/// Largest frame body either side accepts, in bytes (4 MiB). A batch of
/// 250-byte events fills it at about 16k events; the log's own batch limit
/// (8 MiB) leaves room for its per-record overhead.
pub const FRAME_BODY_BYTES_MAX: usize = 4 * 1024 * 1024;

/// ALPN protocol name of the ingest endpoint; a peer speaking anything else
/// fails the TLS handshake.
pub const ALPN: &[u8] = b"dropline/1";

/// Longest adapter name in a Hello, in bytes.
pub const ADAPTER_NAME_BYTES_MAX: usize = 64;

/// Longest token in a Hello, in bytes.
pub const TOKEN_BYTES_MAX: usize = 256;

/// Longest message in an Error frame, in bytes.
pub const ERROR_MESSAGE_BYTES_MAX: usize = 1024;

/// Longest record key (a tracking number) in a batch, in bytes. Matches the
/// log's key limit.
pub const KEY_BYTES_MAX: usize = 1024;

/// Longest tracking number in an Orders entry, in bytes (the adapters'
/// limit).
pub const TRACKING_NUMBER_BYTES_MAX: usize = 64;

/// Most records one batch frame may carry.
pub const BATCH_RECORDS_MAX: u32 = 100_000;

/// Size of a batch body's fixed part (producer id, sequence, partition,
/// record count).
pub const BATCH_BODY_FIXED_BYTES: usize = 24;

/// Size of a record's header inside a batch body (key length u16, value
/// length u32).
pub const RECORD_HEADER_BYTES: usize = 6;
