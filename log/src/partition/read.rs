//! Reading a partition: by offset, by log time, by key, and from the
//! archive.
//!
//! Why readers only see the durable prefix: the engine derives state and
//! notifications from what it reads; if it could read a batch that a crash
//! then loses, a replay would make different decisions than the live run.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Partition;
use crate::error::LogError;
use crate::locking;
use crate::segment::index::key_hash;
use crate::segment::{
    SealedSegment, SegmentRef, decode_at, index_file_name, parse_file_name, peek_at,
};
use crate::view::BatchView;

/// A record copied out of the log (returned by key lookups, which gather
/// records from many segments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRecord {
    /// The record's offset.
    pub offset: u64,
    /// Its log time.
    pub log_time_ms: u64,
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
}

/// Collects whole batches from `segs`, starting with the batch holding
/// `from`, until `bytes_max` is reached (at least one batch is returned if
/// any is visible).
fn read_segments(
    segs: &[SegmentRef],
    from: u64,
    bytes_max: usize,
) -> Result<Vec<BatchView>, LogError> {
    let mut out = Vec::new();
    let mut total = 0usize;
    for (i, seg) in segs.iter().enumerate() {
        let (map, visible) = seg.bytes()?;
        let bytes = map.bytes(visible);
        let mut pos = if i == 0 { seg.seek_offset(from)? } else { 0 };
        while pos < visible {
            let (len, last, _) = peek_at(bytes, pos, seg.path())?;
            if last < from {
                pos += len;
                continue;
            }
            let b = decode_at(bytes, pos, seg.path())?;
            out.push(BatchView::new(map.clone(), pos as usize, *b.header()));
            total += b.encoded_len();
            pos += len;
            if total >= bytes_max {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

impl Partition {
    /// Reads whole batches starting with the one holding `from_offset`,
    /// up to about `bytes_max` bytes (at least one batch if any is durable).
    /// Views borrow the mapped segment; no bytes are copied. Returns an
    /// empty vector at the durable end; `OffsetOutOfRange` below the start
    /// offset or beyond the next offset.
    pub fn read(&self, from_offset: u64, bytes_max: usize) -> Result<Vec<BatchView>, LogError> {
        let durable = self.durable_offset();
        let start = self.start_offset();
        let next = self.next_offset();
        if from_offset < start || from_offset > next {
            return Err(LogError::OffsetOutOfRange {
                requested: from_offset,
                start,
                next,
            });
        }
        if from_offset >= durable {
            return Ok(Vec::new());
        }
        let segs = locking::read(&self.segments).starting_at(from_offset);
        if segs.first().is_some_and(|s| s.base_offset() > from_offset) {
            // Retention removed the segment between the checks above and now.
            return Err(LogError::OffsetOutOfRange {
                requested: from_offset,
                start: self.start_offset(),
                next,
            });
        }
        read_segments(&segs, from_offset, bytes_max)
    }

    /// Reads like [`Partition::read`] but through plain `pread` into owned
    /// buffers instead of the mapping: the reference path that tests compare
    /// the mmap path against, and a fallback for tools. Returns the encoded
    /// batches, each checked by `decode_batch`.
    pub fn read_pread(&self, from_offset: u64, bytes_max: usize) -> Result<Vec<Vec<u8>>, LogError> {
        use std::os::unix::fs::FileExt;
        let durable = self.durable_offset();
        let (start, next) = (self.start_offset(), self.next_offset());
        if from_offset < start || from_offset > next {
            return Err(LogError::OffsetOutOfRange {
                requested: from_offset,
                start,
                next,
            });
        }
        if from_offset >= durable {
            return Ok(Vec::new());
        }
        let segs = locking::read(&self.segments).starting_at(from_offset);
        let mut out = Vec::new();
        let mut total = 0usize;
        for (i, seg) in segs.iter().enumerate() {
            let visible = seg.visible_len();
            let file = std::fs::File::open(seg.path()).map_err(|e| LogError::io(seg.path(), e))?;
            let mut pos = if i == 0 {
                seg.seek_offset(from_offset)?
            } else {
                0
            };
            while pos < visible {
                let mut head =
                    vec![0u8; crate::batch::BATCH_HEADER_BYTES.min((visible - pos) as usize)];
                file.read_exact_at(&mut head, pos)
                    .map_err(|e| LogError::io(seg.path(), e))?;
                let h = crate::batch::parse_header(&head)
                    .map_err(|e| LogError::from_batch(seg.path().to_path_buf(), pos, e))?;
                let (len, last) = (u64::from(h.batch_bytes), h.last_offset());
                if last >= from_offset {
                    let mut buf = vec![0u8; len as usize];
                    file.read_exact_at(&mut buf, pos)
                        .map_err(|e| LogError::io(seg.path(), e))?;
                    crate::batch::decode_batch(&buf)
                        .map_err(|e| LogError::from_batch(seg.path().to_path_buf(), pos, e))?;
                    total += buf.len();
                    out.push(buf);
                    if total >= bytes_max {
                        return Ok(out);
                    }
                }
                pos += len;
            }
        }
        Ok(out)
    }

    /// Reads archived batches (segments retention moved to the archive
    /// directory), like [`Partition::read`]. Empty if there is no archive or
    /// nothing archived at or after `from_offset`.
    pub fn read_archive(
        &self,
        from_offset: u64,
        bytes_max: usize,
    ) -> Result<Vec<BatchView>, LogError> {
        let archived = self.archived_segments()?;
        let first = archived
            .range(..=from_offset)
            .next_back()
            .map_or(0, |(b, _)| *b);
        let segs: Vec<SegmentRef> = archived
            .range(first..)
            .map(|(_, s)| SegmentRef::Sealed(s.clone()))
            .collect();
        read_segments(&segs, from_offset, bytes_max)
    }

    /// The first offset whose log time is at or after `time_ms`, among
    /// durable records; `None` if there is none yet.
    pub fn offset_for_time(&self, time_ms: u64) -> Result<Option<u64>, LogError> {
        let segs = locking::read(&self.segments).starting_at(0);
        for seg in &segs {
            if let SegmentRef::Sealed(s) = seg
                && s.header.last_time_ms < time_ms
            {
                continue;
            }
            let (map, visible) = seg.bytes()?;
            let bytes = map.bytes(visible);
            let mut pos = seg.seek_time(time_ms)?;
            while pos < visible {
                let (len, _, last_time) = peek_at(bytes, pos, seg.path())?;
                if last_time >= time_ms {
                    let b = decode_at(bytes, pos, seg.path())?;
                    if let Some(r) = b.records().find(|r| r.log_time_ms >= time_ms) {
                        return Ok(Some(r.offset));
                    }
                }
                pos += len;
            }
        }
        Ok(None)
    }

    /// Every durable record with this key, archived ones included, in offset
    /// order. Uses each segment's key index (a binary search in the mapped
    /// index file; the active segment's index is in memory), then decodes
    /// only the batches the index points at.
    pub fn lookup_key(&self, key: &[u8]) -> Result<Vec<OwnedRecord>, LogError> {
        let hash = key_hash(key);
        let live = locking::read(&self.segments).starting_at(0);
        let live_start = live.first().map_or(0, SegmentRef::base_offset);
        let archived = self.archived_segments()?;
        let mut segs: Vec<SegmentRef> = archived
            .values()
            .filter(|s| s.header.next_offset <= live_start)
            .map(|s| SegmentRef::Sealed(s.clone()))
            .collect();
        segs.extend(live);
        let mut out = Vec::new();
        for seg in &segs {
            let positions = seg.key_positions(hash)?;
            if positions.is_empty() {
                continue;
            }
            let (map, visible) = seg.bytes()?;
            let bytes = map.bytes(visible);
            for pos in positions {
                let pos = u64::from(pos);
                if pos >= visible {
                    break;
                }
                let b = decode_at(bytes, pos, seg.path())?;
                out.extend(b.records().filter(|r| r.key == key).map(|r| OwnedRecord {
                    offset: r.offset,
                    log_time_ms: r.log_time_ms,
                    key: r.key.to_vec(),
                    value: r.value.to_vec(),
                }));
            }
        }
        Ok(out)
    }

    /// The archived segments of this partition, loaded on first use.
    pub(crate) fn archived_segments(&self) -> Result<Arc<super::ArchivedSegments>, LogError> {
        let mut g = locking::lock(&self.archived);
        if let Some(a) = g.as_ref() {
            return Ok(a.clone());
        }
        let mut map = BTreeMap::new();
        if let Some(dir) = &self.settings.archive_dir
            && dir.exists()
        {
            let entries = std::fs::read_dir(dir).map_err(|e| LogError::io(dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| LogError::io(dir, e))?;
                let name = entry.file_name();
                let Some(base) = name.to_str().and_then(|n| parse_file_name(n, "idx")) else {
                    continue;
                };
                debug_assert_eq!(index_file_name(base), name.to_string_lossy());
                map.insert(base, Arc::new(SealedSegment::open(dir, base)?));
            }
        }
        let a = Arc::new(map);
        *g = Some(a.clone());
        Ok(a)
    }
}
