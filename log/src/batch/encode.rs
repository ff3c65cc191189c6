//! Encoding a batch in two steps: the records before the writer lock (the
//! expensive copy), the header and CRC under it (offsets and time are only
//! known there).

use super::{
    ATTR_CONTROL, ATTR_PRODUCER, AppendRequest, BATCH_HEADER_BYTES, BATCH_MAGIC,
    RECORD_HEADER_BYTES,
};
use crate::error::LogError;
use crate::limits::{BATCH_BYTES_MAX, BATCH_RECORDS_MAX, KEY_BYTES_MAX, RECORD_BYTES_MAX};

/// A batch whose records are encoded and whose header is still blank.
#[derive(Debug)]
pub(crate) struct EncodedBatch {
    pub(crate) bytes: Vec<u8>,
    pub(crate) record_count: u32,
    attributes: u16,
    /// CRC32C of the records section, computed outside the writer lock.
    records_crc: u32,
}

/// Validates the request against the limits and encodes its records.
pub(crate) fn encode_batch(
    req: &AppendRequest<'_>,
    control: bool,
) -> Result<EncodedBatch, LogError> {
    if req.records.is_empty() {
        return Err(LogError::EmptyBatch);
    }
    let mut total = BATCH_HEADER_BYTES;
    for r in req.records {
        if r.key.len() > KEY_BYTES_MAX {
            return Err(LogError::KeyTooLarge {
                bytes: r.key.len(),
                bytes_max: KEY_BYTES_MAX,
            });
        }
        let record_bytes = r.key.len() + r.value.len();
        if record_bytes > RECORD_BYTES_MAX {
            return Err(LogError::RecordTooLarge {
                bytes: record_bytes,
                bytes_max: RECORD_BYTES_MAX,
            });
        }
        total = total.saturating_add(RECORD_HEADER_BYTES + record_bytes);
    }
    if total > BATCH_BYTES_MAX || req.records.len() > BATCH_RECORDS_MAX {
        return Err(LogError::BatchTooLarge {
            bytes: total,
            records: req.records.len(),
            bytes_max: BATCH_BYTES_MAX,
            records_max: BATCH_RECORDS_MAX,
        });
    }
    let mut bytes = Vec::with_capacity(total);
    bytes.resize(BATCH_HEADER_BYTES, 0);
    for r in req.records {
        // Lengths were bounded above, so the narrowing casts cannot truncate.
        bytes.extend_from_slice(&(r.key.len() as u16).to_le_bytes());
        bytes.extend_from_slice(&0u16.to_le_bytes()); // record attributes
        bytes.extend_from_slice(&0u32.to_le_bytes()); // time delta (one time per append)
        bytes.extend_from_slice(&(r.value.len() as u32).to_le_bytes());
        bytes.extend_from_slice(r.key);
        bytes.extend_from_slice(r.value);
    }
    debug_assert_eq!(bytes.len(), total);
    let mut attributes = 0;
    if control {
        attributes |= ATTR_CONTROL;
    }
    if req.producer.is_some() {
        attributes |= ATTR_PRODUCER;
    }
    let records_crc = crc32c::crc32c(&bytes[BATCH_HEADER_BYTES..]);
    let mut batch = EncodedBatch {
        bytes,
        record_count: req.records.len() as u32,
        attributes,
        records_crc,
    };
    if let Some(p) = req.producer {
        batch.bytes[48..56].copy_from_slice(&p.producer_id.to_le_bytes());
        batch.bytes[56..64].copy_from_slice(&p.sequence.to_le_bytes());
    }
    Ok(batch)
}

impl EncodedBatch {
    /// Fills in the header and the CRC once the offset and time are known,
    /// recording no durable length (0 claims nothing; see
    /// [`EncodedBatch::seal_claiming_durable`]).
    pub(crate) fn seal(&mut self, base_offset: u64, log_time_ms: u64) {
        self.seal_claiming_durable(base_offset, log_time_ms, 0);
    }

    /// Fills in the header and the CRC once the offset, the time and the
    /// segment the batch goes into are known. `segment_durable_bytes`: how
    /// much of that segment is known fdatasynced now; it must not exceed
    /// the position the batch is written at. A length beyond `u32` is
    /// recorded as 0, which claims nothing.
    pub(crate) fn seal_claiming_durable(
        &mut self,
        base_offset: u64,
        log_time_ms: u64,
        segment_durable_bytes: u64,
    ) {
        let len = self.bytes.len() as u32;
        let durable = u32::try_from(segment_durable_bytes).unwrap_or(0);
        let h = &mut self.bytes[..BATCH_HEADER_BYTES];
        h[0..4].copy_from_slice(&BATCH_MAGIC);
        h[4..8].copy_from_slice(&len.to_le_bytes());
        h[12..14].copy_from_slice(&self.attributes.to_le_bytes());
        h[14..16].copy_from_slice(&0u16.to_le_bytes());
        h[16..24].copy_from_slice(&base_offset.to_le_bytes());
        h[24..28].copy_from_slice(&self.record_count.to_le_bytes());
        h[28..32].copy_from_slice(&durable.to_le_bytes());
        h[32..40].copy_from_slice(&log_time_ms.to_le_bytes());
        h[40..48].copy_from_slice(&log_time_ms.to_le_bytes());
        let header_crc = crc32c::crc32c_append(crc32c::crc32c(&h[0..8]), &h[12..]);
        let records_len = self.bytes.len() - BATCH_HEADER_BYTES;
        let crc = super::crc::combine(header_crc, self.records_crc, records_len);
        debug_assert_eq!(crc, super::decode::batch_crc(&self.bytes));
        self.bytes[8..12].copy_from_slice(&crc.to_le_bytes());
    }
}
