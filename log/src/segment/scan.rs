//! Walking the batches of a segment from its start.
//!
//! Why one walker: recovery (verify the active tail), index rebuilding and
//! `verify` all need the same rule for "where does the valid data end":
//! the first batch that fails to decode or does not continue the offsets
//! ends it.

use crate::batch::{BatchRef, decode_batch};
use crate::error::BatchError;

/// Where a scan stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScanEnd {
    /// Bytes of valid batches from the start of the segment.
    pub(crate) valid_len: u64,
    /// Offset after the last valid batch.
    pub(crate) next_offset: u64,
    /// Log time of the last valid batch (0 if none).
    pub(crate) last_time_ms: u64,
    /// Why the scan stopped before the end of the bytes, if it did.
    pub(crate) error: Option<BatchError>,
}

/// Decodes every batch of `bytes`, which must start at a batch boundary and
/// whose first batch must have offset `base_offset`, calling `visit` with
/// each valid batch and its position.
pub(crate) fn scan_batches(
    bytes: &[u8],
    base_offset: u64,
    mut visit: impl FnMut(u64, &BatchRef<'_>),
) -> ScanEnd {
    let mut pos = 0usize;
    let mut next_offset = base_offset;
    let mut last_time_ms = 0;
    let mut error = None;
    while pos < bytes.len() {
        match decode_batch(&bytes[pos..]) {
            Ok(b) if b.base_offset() != next_offset => {
                error = Some(BatchError::InvalidHeader {
                    field: "base_offset",
                    value: b.base_offset(),
                });
                break;
            }
            Ok(b) if b.first_time_ms() < last_time_ms => {
                error = Some(BatchError::InvalidHeader {
                    field: "first_time_ms",
                    value: b.first_time_ms(),
                });
                break;
            }
            Ok(b) => {
                visit(pos as u64, &b);
                next_offset = b.last_offset() + 1;
                last_time_ms = b.last_time_ms();
                pos += b.encoded_len();
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    ScanEnd {
        valid_len: pos as u64,
        next_offset,
        last_time_ms,
        error,
    }
}
