//! Zero-copy batches handed to readers.
//!
//! Why an `Arc` of the mapping: a consumer may hold a batch while retention
//! unlinks its segment or the writer seals it; the mapping (and so the
//! bytes) stays valid as long as any view of it lives.

use std::sync::Arc;

use crate::batch::decode::BatchHeader;
use crate::batch::{BatchRef, ProducerSeq, RecordIter};
use crate::mmap::Mapping;

/// A validated batch inside a mapped segment.
#[derive(Debug, Clone)]
pub struct BatchView {
    map: Arc<Mapping>,
    start: usize,
    header: BatchHeader,
}

impl BatchView {
    pub(crate) fn new(map: Arc<Mapping>, start: usize, header: BatchHeader) -> BatchView {
        BatchView { map, start, header }
    }

    /// The batch, borrowing this view.
    pub fn batch(&self) -> BatchRef<'_> {
        let end = self.start + self.header.batch_bytes as usize;
        let bytes = self
            .map
            .bytes(end as u64)
            .get(self.start..end)
            .unwrap_or(&[]);
        BatchRef::trusted(bytes, self.header)
    }
    /// The encoded bytes (header and records), e.g. for shipping to a peer.
    pub fn as_bytes(&self) -> &[u8] {
        self.batch().as_bytes()
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
    /// Producer id and sequence, if any.
    pub fn producer(&self) -> Option<ProducerSeq> {
        self.batch().producer()
    }
    /// Whether this is a control batch (ticks).
    pub fn is_control(&self) -> bool {
        self.batch().is_control()
    }
    /// The records in offset order. The first batch of a read may start
    /// before the requested offset; skip records with smaller offsets.
    pub fn records(&self) -> RecordIter<'_> {
        self.batch().records()
    }
}
