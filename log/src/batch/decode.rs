//! Decoding batches from untrusted bytes.
//!
//! Why so defensive: the decoder reads whatever is on disk after a crash or
//! a bit flip, and anything fed to it by a fuzzer. It must return an error
//! for every malformed input and never panic, index out of bounds or loop.
//! A successfully decoded batch has had its CRC and its record framing
//! checked, so iterating its records cannot fail.

use super::{
    ATTR_CONTROL, ATTR_KNOWN, ATTR_PRODUCER, BATCH_FORMAT_VERSION, BATCH_FORMAT_VERSION_MIN,
    BATCH_HEADER_BYTES, ProducerSeq, RECORD_HEADER_BYTES,
};
use crate::error::BatchError;
use crate::limits::{BATCH_BYTES_MAX, BATCH_RECORDS_MAX, KEY_BYTES_MAX};

/// The fixed fields of a batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchHeader {
    pub(crate) version: u8,
    pub(crate) batch_bytes: u32,
    pub(crate) crc: u32,
    pub(crate) attributes: u16,
    pub(crate) base_offset: u64,
    pub(crate) record_count: u32,
    /// Version 2: the segment's durable length (bytes fdatasynced) when
    /// the batch was written. 0 in version 1, where the field is reserved.
    pub(crate) segment_durable_bytes: u32,
    pub(crate) first_time_ms: u64,
    pub(crate) last_time_ms: u64,
    pub(crate) producer_id: u64,
    pub(crate) producer_sequence: u64,
}

impl BatchHeader {
    pub(crate) fn last_offset(&self) -> u64 {
        self.base_offset
            .saturating_add(u64::from(self.record_count))
            .saturating_sub(1)
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[at..at + 2]);
    u16::from_le_bytes(a)
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// CRC32C over the batch minus its CRC field: bytes `0..8` then `12..len`.
pub(crate) fn batch_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&batch[0..8]), &batch[12..])
}

/// Parses and bounds-checks the header without checking the CRC: enough to
/// skip over a batch while seeking. `bytes` starts at the batch and must
/// hold all of it.
pub(crate) fn peek_header(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    let h = parse_header(bytes)?;
    let len = h.batch_bytes as usize;
    if bytes.len() < len {
        return Err(BatchError::Truncated {
            needed: len as u64,
            available: bytes.len() as u64,
        });
    }
    Ok(h)
}

/// Parses the 64-byte header alone (magic, version, length bounds).
pub(crate) fn parse_header(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    if bytes.len() < BATCH_HEADER_BYTES {
        return Err(BatchError::Truncated {
            needed: BATCH_HEADER_BYTES as u64,
            available: bytes.len() as u64,
        });
    }
    if bytes[0..3] != *b"DLB" {
        let mut found = [0u8; 4];
        found.copy_from_slice(&bytes[0..4]);
        return Err(BatchError::BadMagic { found });
    }
    let version = bytes[3];
    if !(BATCH_FORMAT_VERSION_MIN..=BATCH_FORMAT_VERSION).contains(&version) {
        return Err(BatchError::UnknownVersion { version });
    }
    let h = BatchHeader {
        version,
        batch_bytes: u32_at(bytes, 4),
        crc: u32_at(bytes, 8),
        attributes: u16_at(bytes, 12),
        base_offset: u64_at(bytes, 16),
        record_count: u32_at(bytes, 24),
        segment_durable_bytes: if version >= 2 { u32_at(bytes, 28) } else { 0 },
        first_time_ms: u64_at(bytes, 32),
        last_time_ms: u64_at(bytes, 40),
        producer_id: u64_at(bytes, 48),
        producer_sequence: u64_at(bytes, 56),
    };
    let len = h.batch_bytes as usize;
    if !(BATCH_HEADER_BYTES + RECORD_HEADER_BYTES..=BATCH_BYTES_MAX).contains(&len) {
        return Err(BatchError::InvalidLength {
            batch_bytes: u64::from(h.batch_bytes),
        });
    }
    Ok(h)
}

/// The header of a batch, bounds-checked but with neither its CRC nor its
/// records verified: for asking which producer wrote a batch, or whether
/// it is a control batch, when the bytes were validated before (a batch
/// this process encoded or already decoded). Anything that trusts the
/// records must use [`decode_batch`].
#[derive(Debug, Clone, Copy)]
pub struct BatchPeek {
    header: BatchHeader,
}

impl BatchPeek {
    /// Reads the header at the start of `bytes`, which must hold the whole
    /// batch.
    pub fn of(bytes: &[u8]) -> Result<BatchPeek, BatchError> {
        Ok(BatchPeek {
            header: peek_header(bytes)?,
        })
    }
    /// The producer id and sequence, if the batch carries them.
    pub fn producer(&self) -> Option<ProducerSeq> {
        (self.header.attributes & ATTR_PRODUCER != 0).then_some(ProducerSeq {
            producer_id: self.header.producer_id,
            sequence: self.header.producer_sequence,
        })
    }
    /// Whether the batch holds control records.
    pub fn is_control(&self) -> bool {
        self.header.attributes & ATTR_CONTROL != 0
    }
}

/// Decodes and fully validates the batch at the start of `bytes` (trailing
/// bytes after the batch are ignored; see [`BatchRef::encoded_len`]).
///
/// Checks, in order: magic, version, length bounds, CRC32C, header fields,
/// and the framing of every record. Never panics.
pub fn decode_batch(bytes: &[u8]) -> Result<BatchRef<'_>, BatchError> {
    let h = peek_header(bytes)?;
    let batch = &bytes[..h.batch_bytes as usize];
    let got = batch_crc(batch);
    if got != h.crc {
        return Err(BatchError::ChecksumMismatch {
            expected: h.crc,
            got,
        });
    }
    validate(h, batch)
}

/// [`decode_batch`], also returning the CRC32C of the records alone (bytes
/// after the header), so that a caller that re-stamps the header can
/// compute the new CRC without another pass over the records.
pub(crate) fn decode_batch_records_crc(bytes: &[u8]) -> Result<(BatchRef<'_>, u32), BatchError> {
    let h = peek_header(bytes)?;
    let batch = &bytes[..h.batch_bytes as usize];
    let records_crc = crc32c::crc32c(&batch[BATCH_HEADER_BYTES..]);
    let got = crc_with_records(batch, records_crc);
    if got != h.crc {
        return Err(BatchError::ChecksumMismatch {
            expected: h.crc,
            got,
        });
    }
    Ok((validate(h, batch)?, records_crc))
}

/// The batch CRC from its header bytes and the records' CRC: the same value
/// as [`batch_crc`], with one pass over the 60 header bytes only.
pub(crate) fn crc_with_records(batch: &[u8], records_crc: u32) -> u32 {
    let header =
        crc32c::crc32c_append(crc32c::crc32c(&batch[0..8]), &batch[12..BATCH_HEADER_BYTES]);
    super::crc::combine(header, records_crc, batch.len() - BATCH_HEADER_BYTES)
}

/// The checks of [`decode_batch`] after the CRC.
fn validate(h: BatchHeader, batch: &[u8]) -> Result<BatchRef<'_>, BatchError> {
    if h.attributes & !ATTR_KNOWN != 0 {
        return Err(BatchError::InvalidHeader {
            field: "attributes",
            value: u64::from(h.attributes),
        });
    }
    if u16_at(batch, 14) != 0 {
        return Err(BatchError::InvalidHeader {
            field: "reserved16",
            value: u64::from(u16_at(batch, 14)),
        });
    }
    // Version 1 reserved the u32 at 28; version 2 keeps the segment's
    // durable length there, which only the segment scan can check (it must
    // not exceed the batch's own position).
    if h.version == 1 && u32_at(batch, 28) != 0 {
        return Err(BatchError::InvalidHeader {
            field: "reserved32",
            value: u64::from(u32_at(batch, 28)),
        });
    }
    if h.record_count == 0 || h.record_count as usize > BATCH_RECORDS_MAX {
        return Err(BatchError::InvalidHeader {
            field: "record_count",
            value: u64::from(h.record_count),
        });
    }
    if h.base_offset
        .checked_add(u64::from(h.record_count))
        .is_none()
    {
        return Err(BatchError::InvalidHeader {
            field: "base_offset",
            value: h.base_offset,
        });
    }
    if h.last_time_ms < h.first_time_ms {
        return Err(BatchError::InvalidHeader {
            field: "last_time_ms",
            value: h.last_time_ms,
        });
    }
    if h.attributes & ATTR_PRODUCER == 0 && (h.producer_id != 0 || h.producer_sequence != 0) {
        return Err(BatchError::InvalidHeader {
            field: "producer_id",
            value: h.producer_id,
        });
    }
    let span = h.last_time_ms - h.first_time_ms;
    let mut at = BATCH_HEADER_BYTES;
    for index in 0..h.record_count {
        let Some(rh) = batch.get(at..at + RECORD_HEADER_BYTES) else {
            return Err(BatchError::InvalidRecord {
                index,
                reason: "record header past batch end",
            });
        };
        let key_len = usize::from(u16_at(rh, 0));
        if key_len > KEY_BYTES_MAX {
            return Err(BatchError::InvalidRecord {
                index,
                reason: "key too large",
            });
        }
        if u16_at(rh, 2) != 0 {
            return Err(BatchError::InvalidRecord {
                index,
                reason: "unknown record attributes",
            });
        }
        if u64::from(u32_at(rh, 4)) > span {
            return Err(BatchError::InvalidRecord {
                index,
                reason: "time delta outside batch times",
            });
        }
        let value_len = u32_at(rh, 8) as usize;
        let end = (at + RECORD_HEADER_BYTES)
            .checked_add(key_len)
            .and_then(|e| e.checked_add(value_len));
        match end {
            Some(end) if end <= batch.len() => at = end,
            _ => {
                return Err(BatchError::InvalidRecord {
                    index,
                    reason: "record past batch end",
                });
            }
        }
    }
    if at != batch.len() {
        return Err(BatchError::InvalidRecord {
            index: h.record_count,
            reason: "bytes after last record",
        });
    }
    Ok(BatchRef {
        bytes: batch,
        header: h,
    })
}

/// A validated batch borrowed from a byte slice.
#[derive(Debug, Clone, Copy)]
pub struct BatchRef<'a> {
    bytes: &'a [u8],
    header: BatchHeader,
}

impl<'a> BatchRef<'a> {
    /// A batch already validated by `decode_batch` (used by views).
    pub(crate) fn trusted(bytes: &'a [u8], header: BatchHeader) -> BatchRef<'a> {
        BatchRef { bytes, header }
    }
    pub(crate) fn header(&self) -> &BatchHeader {
        &self.header
    }
    /// The encoded bytes of the batch (header and records).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
    /// The batch format version it was written in (1 or 2).
    pub fn format_version(&self) -> u8 {
        self.header.version
    }
    /// Version 2: the segment's durable length in bytes (what had been
    /// fdatasynced) when this batch was written; `None` for version 1. A
    /// damaged batch below this length was durable, not torn.
    pub fn segment_durable_bytes(&self) -> Option<u32> {
        (self.header.version >= 2).then_some(self.header.segment_durable_bytes)
    }
    /// Length of the encoded batch in bytes.
    pub fn encoded_len(&self) -> usize {
        self.bytes.len()
    }
    /// Offset of the first record.
    pub fn base_offset(&self) -> u64 {
        self.header.base_offset
    }
    /// Offset of the last record.
    pub fn last_offset(&self) -> u64 {
        self.header.last_offset()
    }
    /// Number of records.
    pub fn record_count(&self) -> u32 {
        self.header.record_count
    }
    /// Log time of the first record.
    pub fn first_time_ms(&self) -> u64 {
        self.header.first_time_ms
    }
    /// Log time of the last record.
    pub fn last_time_ms(&self) -> u64 {
        self.header.last_time_ms
    }
    /// Whether the batch holds control records (ticks) rather than data.
    pub fn is_control(&self) -> bool {
        self.header.attributes & ATTR_CONTROL != 0
    }
    /// The producer id and sequence, if the batch was appended with one.
    pub fn producer(&self) -> Option<ProducerSeq> {
        (self.header.attributes & ATTR_PRODUCER != 0).then_some(ProducerSeq {
            producer_id: self.header.producer_id,
            sequence: self.header.producer_sequence,
        })
    }
    /// The records, in offset order.
    pub fn records(&self) -> RecordIter<'a> {
        RecordIter {
            bytes: self.bytes,
            at: BATCH_HEADER_BYTES,
            next_offset: self.header.base_offset,
            remaining: self.header.record_count,
            first_time_ms: self.header.first_time_ms,
        }
    }
}

/// One record of a batch, borrowing the batch's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// The record's offset.
    pub offset: u64,
    /// The record's log time.
    pub log_time_ms: u64,
    /// The key.
    pub key: &'a [u8],
    /// The value.
    pub value: &'a [u8],
}

/// Iterator over the records of a validated batch.
#[derive(Debug, Clone)]
pub struct RecordIter<'a> {
    bytes: &'a [u8],
    at: usize,
    next_offset: u64,
    remaining: u32,
    first_time_ms: u64,
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = RecordView<'a>;

    fn next(&mut self) -> Option<RecordView<'a>> {
        if self.remaining == 0 {
            return None;
        }
        // The framing was validated by `decode_batch`; `get` keeps this
        // panic-free even so.
        let rh = self.bytes.get(self.at..self.at + RECORD_HEADER_BYTES)?;
        let key_len = usize::from(u16_at(rh, 0));
        let delta = u64::from(u32_at(rh, 4));
        let value_len = u32_at(rh, 8) as usize;
        let key_at = self.at + RECORD_HEADER_BYTES;
        let key = self.bytes.get(key_at..key_at + key_len)?;
        let value = self
            .bytes
            .get(key_at + key_len..key_at + key_len + value_len)?;
        let view = RecordView {
            offset: self.next_offset,
            log_time_ms: self.first_time_ms + delta,
            key,
            value,
        };
        self.at = key_at + key_len + value_len;
        self.next_offset += 1;
        self.remaining -= 1;
        Some(view)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining as usize, Some(self.remaining as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{AppendRequest, Record, encode_batch};

    #[test]
    fn the_records_crc_path_agrees_with_the_plain_decoder() {
        let records: Vec<Record<'_>> = (0..50)
            .map(|_| Record {
                key: b"1Z999",
                value: b"a scan, encoded",
            })
            .collect();
        let mut batch = encode_batch(
            &AppendRequest {
                records: &records,
                producer: None,
            },
            false,
        )
        .unwrap();
        batch.seal(7, 1_000);
        let mut bytes = batch.bytes;
        let original = bytes.clone();
        let (b, records_crc) = decode_batch_records_crc(&bytes).unwrap();
        assert_eq!(b.record_count(), 50);
        assert_eq!(crc_with_records(&bytes, records_crc), batch_crc(&bytes));
        // A re-stamped header: the combined CRC is the full pass's.
        bytes[16..24].copy_from_slice(&99u64.to_le_bytes());
        assert_eq!(crc_with_records(&bytes, records_crc), batch_crc(&bytes));
        // Damage anywhere is caught, in the header or in the records.
        for at in [20, original.len() / 2, original.len() - 1] {
            let mut bad = original.clone();
            bad[at] ^= 1;
            assert!(matches!(
                decode_batch_records_crc(&bad),
                Err(BatchError::ChecksumMismatch { .. })
            ));
        }
    }
}
