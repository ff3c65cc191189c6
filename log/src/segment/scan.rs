//! Walking the batches of a segment from its start.
//!
//! Why one walker: recovery (verify the active tail), index rebuilding and
//! `verify` all need the same rule for "where does the valid data end":
//! the first batch that fails to decode or does not continue the offsets
//! ends it. And one rule for "was the damage durable": a later batch whose
//! recorded durable length reaches past it ([`find_durable_witness`]).

use crate::batch::{BatchRef, RECORD_HEADER_BYTES, decode_batch, peek_header};
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

/// A valid version-2 batch after a damaged one whose recorded durable
/// length reaches past the damage: proof that the damaged bytes had been
/// fdatasynced before it was written, so they are damaged durable data
/// (possibly acknowledged), not a torn write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DurableWitness {
    /// Position of the witnessing batch in the segment.
    pub(crate) file_offset: u64,
    /// The segment's durable length it records.
    pub(crate) durable_bytes: u64,
}

/// The magic of the first version that records the durable length.
const WITNESS_MAGIC: [u8; 4] = [b'D', b'L', b'B', 2];

/// Looks, after the damaged batch at `damaged_at`, for valid batches whose
/// recorded durable length is greater than `damaged_at`, and returns the
/// one that records the longest (the first such batch if several record
/// the same). `next_offset` and `last_time_ms` are where the valid data
/// before the damage ended.
///
/// The damaged batch's own length cannot be trusted, so candidates are
/// found by their magic at any byte position; a candidate counts only if
/// it decodes in full (CRC) and fits where it stands: it records a durable
/// length after the damage and not beyond its own position (a batch is
/// written at or past the durable length), its offsets follow the valid
/// prefix with no more records in between than the bytes in between can
/// hold, and its time does not go back. A valid batch is skipped over as a
/// whole. Cheap checks come first, so the CRC is computed only for
/// candidates that would prove something; in a genuine torn tail every
/// later batch records a durable length at or before the damage and none
/// is checksummed. Work is bounded by the bytes after the damage.
pub(crate) fn find_durable_witness(
    bytes: &[u8],
    damaged_at: u64,
    next_offset: u64,
    last_time_ms: u64,
) -> Option<DurableWitness> {
    let damaged_at = usize::try_from(damaged_at).ok()?;
    let mut best: Option<DurableWitness> = None;
    let mut at = damaged_at.checked_add(1)?;
    while let Some(found) = find_magic(bytes, at) {
        match witness_at(bytes, found, damaged_at, next_offset, last_time_ms) {
            Some((len, durable_bytes)) => {
                if best.is_none_or(|b| durable_bytes > b.durable_bytes) {
                    best = Some(DurableWitness {
                        file_offset: found as u64,
                        durable_bytes,
                    });
                }
                at = found + len;
            }
            None => at = found + 1,
        }
    }
    best
}

fn find_magic(bytes: &[u8], from: usize) -> Option<usize> {
    let rest = bytes.get(from..)?;
    rest.windows(WITNESS_MAGIC.len())
        .position(|w| w == WITNESS_MAGIC)
        .map(|i| from + i)
}

/// The encoded length and recorded durable length of the batch at `at`, if
/// it is a witness for damage at `damaged_at`.
fn witness_at(
    bytes: &[u8],
    at: usize,
    damaged_at: usize,
    next_offset: u64,
    last_time_ms: u64,
) -> Option<(usize, u64)> {
    let h = peek_header(bytes.get(at..)?).ok()?;
    let durable_bytes = u64::from(h.segment_durable_bytes);
    if h.version < 2 || durable_bytes <= damaged_at as u64 || durable_bytes > at as u64 {
        return None;
    }
    let records_between_max = ((at - damaged_at) / RECORD_HEADER_BYTES) as u64;
    if h.base_offset < next_offset
        || h.base_offset - next_offset > records_between_max
        || h.first_time_ms < last_time_ms
    {
        return None;
    }
    let b = decode_batch(&bytes[at..]).ok()?;
    Some((b.encoded_len(), durable_bytes))
}
