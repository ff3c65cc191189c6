//! Batch frames: built incrementally by the client straight into the frame
//! buffer, read in place by the node.
//!
//! Why in place: at hundreds of thousands of events per second the node
//! cannot afford an allocation per event, so [`BatchView`] validates the
//! whole body once and then yields key/value slices that point into the
//! received buffer; the log copies them exactly once, into its segment.

use super::error::WireError;
use super::header::{FrameType, seal_frame};
use super::{
    BATCH_BODY_FIXED_BYTES, BATCH_RECORDS_MAX, FRAME_BODY_BYTES_MAX, FRAME_HEADER_BYTES,
    KEY_BYTES_MAX, RECORD_HEADER_BYTES,
};

/// One record of a batch, borrowed from the frame buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// The key: the tracking number.
    pub key: &'a [u8],
    /// The value: an encoded canonical event.
    pub value: &'a [u8],
}

impl<'a> From<RecordRef<'a>> for dropline_log::Record<'a> {
    /// The same bytes as a log record (no copy).
    fn from(r: RecordRef<'a>) -> dropline_log::Record<'a> {
        dropline_log::Record {
            key: r.key,
            value: r.value,
        }
    }
}

/// Builds one Batch frame in a reusable buffer.
#[derive(Debug)]
pub struct BatchBuilder {
    buf: Vec<u8>,
    records: u32,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        BatchBuilder::new()
    }
}

impl BatchBuilder {
    /// An empty builder.
    pub fn new() -> BatchBuilder {
        BatchBuilder {
            buf: vec![0; FRAME_HEADER_BYTES + BATCH_BODY_FIXED_BYTES],
            records: 0,
        }
    }

    /// Number of records added so far.
    pub fn records(&self) -> u32 {
        self.records
    }

    /// Size of the frame so far (header included), in bytes.
    pub fn frame_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Whether a record with this key and value length still fits under
    /// `body_bytes_max` and [`BATCH_RECORDS_MAX`].
    pub fn fits(&self, key_bytes: usize, value_bytes: usize, body_bytes_max: usize) -> bool {
        let body =
            self.buf.len() - FRAME_HEADER_BYTES + RECORD_HEADER_BYTES + key_bytes + value_bytes;
        self.records < BATCH_RECORDS_MAX && body <= body_bytes_max.min(FRAME_BODY_BYTES_MAX)
    }

    /// Adds a record whose value is written by `write_value` directly into
    /// the frame (e.g. `CarrierEvent::encode_into`). Returns the value's
    /// length. The caller checks [`BatchBuilder::fits`] first; keys longer
    /// than [`KEY_BYTES_MAX`] are refused.
    pub fn push_with(
        &mut self,
        key: &[u8],
        write_value: impl FnOnce(&mut Vec<u8>),
    ) -> Result<usize, WireError> {
        let key_len = u16::try_from(key.len())
            .ok()
            .filter(|k| usize::from(*k) <= KEY_BYTES_MAX && *k > 0)
            .ok_or(WireError::InvalidRecord {
                index: self.records,
                reason: "key length must be 1..=1024 bytes",
            })?;
        let start = self.buf.len();
        self.buf.extend_from_slice(&key_len.to_le_bytes());
        self.buf.extend_from_slice(&[0u8; 4]);
        self.buf.extend_from_slice(key);
        let value_start = self.buf.len();
        write_value(&mut self.buf);
        let value_len = self.buf.len() - value_start;
        match u32::try_from(value_len) {
            Ok(v) => self.buf[start + 2..start + 6].copy_from_slice(&v.to_le_bytes()),
            Err(_) => {
                self.buf.truncate(start);
                return Err(WireError::InvalidRecord {
                    index: self.records,
                    reason: "value longer than 4 GiB",
                });
            }
        }
        self.records += 1;
        Ok(value_len)
    }

    /// Adds a record with a ready-made value.
    pub fn push(&mut self, key: &[u8], value: &[u8]) -> Result<(), WireError> {
        self.push_with(key, |buf| buf.extend_from_slice(value))
            .map(|_| ())
    }

    /// Completes the frame for `(producer_id, sequence, partition)` and
    /// returns its bytes, leaving the builder empty and ready for reuse
    /// (with a buffer of `capacity_hint_bytes`).
    pub fn finish(
        &mut self,
        producer_id: u64,
        sequence: u64,
        partition: u32,
        capacity_hint_bytes: usize,
    ) -> Vec<u8> {
        let h = FRAME_HEADER_BYTES;
        self.buf[h..h + 8].copy_from_slice(&producer_id.to_le_bytes());
        self.buf[h + 8..h + 16].copy_from_slice(&sequence.to_le_bytes());
        self.buf[h + 16..h + 20].copy_from_slice(&partition.to_le_bytes());
        self.buf[h + 20..h + 24].copy_from_slice(&self.records.to_le_bytes());
        seal_frame(&mut self.buf, FrameType::Batch);
        let mut next = Vec::with_capacity(capacity_hint_bytes.max(h + BATCH_BODY_FIXED_BYTES));
        next.resize(h + BATCH_BODY_FIXED_BYTES, 0);
        self.records = 0;
        std::mem::replace(&mut self.buf, next)
    }
}

/// A validated Batch body, read in place.
#[derive(Debug, Clone, Copy)]
pub struct BatchView<'a> {
    /// The producer that sent it.
    pub producer_id: u64,
    /// The batch's sequence number for this producer and partition.
    pub sequence: u64,
    /// Target partition.
    pub partition: u32,
    /// Number of records.
    pub record_count: u32,
    records: &'a [u8],
}

fn read_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn read_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn read_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

impl<'a> BatchView<'a> {
    /// Reads just the fixed part (producer, sequence, partition, count)
    /// without validating records: enough to address an error reply and a
    /// dead letter for a batch whose records are bad.
    pub fn peek(body: &[u8]) -> Option<(u64, u64, u32)> {
        Some((read_u64(body, 0)?, read_u64(body, 8)?, read_u32(body, 16)?))
    }

    /// Validates a batch body (already length- and CRC-checked by the
    /// header) and returns a view over it.
    pub fn parse(body: &'a [u8]) -> Result<BatchView<'a>, WireError> {
        let fixed = |needed: usize| WireError::Truncated {
            needed: needed as u64,
            available: body.len() as u64,
        };
        let producer_id = read_u64(body, 0).ok_or(fixed(BATCH_BODY_FIXED_BYTES))?;
        let sequence = read_u64(body, 8).ok_or(fixed(BATCH_BODY_FIXED_BYTES))?;
        let partition = read_u32(body, 16).ok_or(fixed(BATCH_BODY_FIXED_BYTES))?;
        let record_count = read_u32(body, 20).ok_or(fixed(BATCH_BODY_FIXED_BYTES))?;
        if record_count == 0 || record_count > BATCH_RECORDS_MAX {
            return Err(WireError::InvalidField {
                field: "record_count",
                value: u64::from(record_count),
            });
        }
        let records = &body[BATCH_BODY_FIXED_BYTES..];
        let mut at = 0usize;
        for index in 0..record_count {
            let key_len = read_u16(records, at).ok_or(WireError::InvalidRecord {
                index,
                reason: "record header runs past the body",
            })?;
            let value_len = read_u32(records, at + 2).ok_or(WireError::InvalidRecord {
                index,
                reason: "record header runs past the body",
            })?;
            if key_len == 0 || usize::from(key_len) > KEY_BYTES_MAX {
                return Err(WireError::InvalidRecord {
                    index,
                    reason: "key length must be 1..=1024 bytes",
                });
            }
            let len = RECORD_HEADER_BYTES + usize::from(key_len) + value_len as usize;
            if records.len() - at < len {
                return Err(WireError::InvalidRecord {
                    index,
                    reason: "record runs past the body",
                });
            }
            at += len;
        }
        if at != records.len() {
            return Err(WireError::TrailingBytes {
                frame_type: FrameType::Batch as u8,
                bytes: (records.len() - at) as u64,
            });
        }
        Ok(BatchView {
            producer_id,
            sequence,
            partition,
            record_count,
            records,
        })
    }

    /// The records, in order.
    pub fn records(&self) -> RecordIter<'a> {
        RecordIter {
            rest: self.records,
            left: self.record_count,
        }
    }
}

/// Iterator over the records of a validated batch.
#[derive(Debug, Clone)]
pub struct RecordIter<'a> {
    rest: &'a [u8],
    left: u32,
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = RecordRef<'a>;

    fn next(&mut self) -> Option<RecordRef<'a>> {
        if self.left == 0 {
            return None;
        }
        let key_len = usize::from(read_u16(self.rest, 0)?);
        let value_len = read_u32(self.rest, 2)? as usize;
        let key = self
            .rest
            .get(RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + key_len)?;
        let value_end = RECORD_HEADER_BYTES + key_len + value_len;
        let value = self.rest.get(RECORD_HEADER_BYTES + key_len..value_end)?;
        self.rest = self.rest.get(value_end..)?;
        self.left -= 1;
        Some(RecordRef { key, value })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

/// A copy of a sealed Batch frame with its sequence replaced (and the CRC
/// recomputed). Used when a rejected batch moves later sequences down.
pub fn with_sequence(frame: &[u8], sequence: u64) -> bytes::Bytes {
    let mut out = frame.to_vec();
    let at = FRAME_HEADER_BYTES + 8;
    if out.len() >= FRAME_HEADER_BYTES + BATCH_BODY_FIXED_BYTES {
        out[at..at + 8].copy_from_slice(&sequence.to_le_bytes());
        seal_frame(&mut out, FrameType::Batch);
    }
    bytes::Bytes::from(out)
}
