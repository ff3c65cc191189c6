//! Segment files: naming, sealed (immutable, indexed by an `.idx` file) and
//! active (being appended to, indexed in memory) segments.
//!
//! Why two types: a sealed segment is fully described by its index file and
//! is mapped lazily, so opening a month of segments reads one small header
//! each; the active segment carries the writer's file handle and the
//! in-memory indexes that become its `.idx` at seal.

pub(crate) mod index;
pub(crate) mod prealloc;
pub(crate) mod scan;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::batch::{BatchRef, decode_batch, peek_header};
use crate::error::LogError;
use crate::locking;
use crate::mmap::Mapping;
use index::{INDEX_HEADER_BYTES, IndexBuilder, IndexHeader, decode_index_header, split_index_body};

/// File name of the segment with base offset `base`.
pub(crate) fn log_file_name(base: u64) -> String {
    format!("{base:020}.log")
}
/// File name of the index of the segment with base offset `base`.
pub(crate) fn index_file_name(base: u64) -> String {
    format!("{base:020}.idx")
}
/// Parses `<20 digits>.<ext>`.
pub(crate) fn parse_file_name(name: &str, ext: &str) -> Option<u64> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit())).then(|| stem.parse().ok())?
}

/// A sealed segment, trusted through its index file.
#[derive(Debug)]
pub(crate) struct SealedSegment {
    pub(crate) header: IndexHeader,
    pub(crate) log_path: PathBuf,
    pub(crate) idx_path: PathBuf,
    data: Mutex<Option<Arc<Mapping>>>,
    index: Mutex<Option<Arc<Mapping>>>,
}

impl SealedSegment {
    /// Opens a sealed segment by reading its index header and checking it
    /// against the segment file's length. Nothing is mapped yet.
    pub(crate) fn open(dir: &Path, base: u64) -> Result<SealedSegment, LogError> {
        let log_path = dir.join(log_file_name(base));
        let idx_path = dir.join(index_file_name(base));
        let mut head = [0u8; INDEX_HEADER_BYTES];
        let mut f = File::open(&idx_path).map_err(|e| LogError::io(&idx_path, e))?;
        f.read_exact(&mut head)
            .map_err(|e| LogError::io(&idx_path, e))?;
        let header = decode_index_header(&idx_path, &head)?;
        let len = std::fs::metadata(&log_path)
            .map_err(|e| LogError::io(&log_path, e))?
            .len();
        if header.segment_bytes != len || header.base_offset != base {
            return Err(LogError::CorruptFile {
                path: idx_path,
                reason: "index does not match its segment file",
            });
        }
        Ok(SealedSegment {
            header,
            log_path,
            idx_path,
            data: Mutex::new(None),
            index: Mutex::new(None),
        })
    }

    /// Builds a sealed segment from a just-written index (no re-read).
    pub(crate) fn from_parts(dir: &Path, header: IndexHeader, data: Arc<Mapping>) -> SealedSegment {
        SealedSegment {
            log_path: dir.join(log_file_name(header.base_offset)),
            idx_path: dir.join(index_file_name(header.base_offset)),
            header,
            data: Mutex::new(Some(data)),
            index: Mutex::new(None),
        }
    }

    pub(crate) fn data(&self) -> Result<Arc<Mapping>, LogError> {
        let mut g = locking::lock(&self.data);
        if let Some(m) = g.as_ref() {
            return Ok(m.clone());
        }
        let f = File::open(&self.log_path).map_err(|e| LogError::io(&self.log_path, e))?;
        let m = Arc::new(Mapping::map(&f, &self.log_path, self.header.segment_bytes)?);
        *g = Some(m.clone());
        Ok(m)
    }

    /// The mapped index file; its body CRC is checked on first use.
    pub(crate) fn index(&self) -> Result<Arc<Mapping>, LogError> {
        let mut g = locking::lock(&self.index);
        if let Some(m) = g.as_ref() {
            return Ok(m.clone());
        }
        let f = File::open(&self.idx_path).map_err(|e| LogError::io(&self.idx_path, e))?;
        let len = f
            .metadata()
            .map_err(|e| LogError::io(&self.idx_path, e))?
            .len();
        let m = Arc::new(Mapping::map(&f, &self.idx_path, len)?);
        split_index_body(&self.idx_path, &self.header, m.bytes(len), true)?;
        *g = Some(m.clone());
        Ok(m)
    }

    /// Runs `f` over the checked index body.
    pub(crate) fn with_index<T>(
        &self,
        f: impl FnOnce(&index::IndexBody<'_>) -> T,
    ) -> Result<T, LogError> {
        let m = self.index()?;
        // The CRC was checked when the index was first mapped.
        let body = split_index_body(&self.idx_path, &self.header, m.bytes(u64::MAX), false)?;
        Ok(f(&body))
    }
}

/// The segment being appended to.
#[derive(Debug)]
pub(crate) struct ActiveSegment {
    pub(crate) base_offset: u64,
    pub(crate) log_path: PathBuf,
    /// Read-write handle used by the writer and the syncer.
    pub(crate) file: File,
    /// Mapping of `segment_bytes_max + BATCH_BYTES_MAX` bytes (see mmap.rs).
    pub(crate) map: Arc<Mapping>,
    /// Bytes readers may see (durable, or written under `Durability::None`).
    pub(crate) visible_len: AtomicU64,
    /// Sparse and key indexes of the written batches.
    pub(crate) index: RwLock<IndexBuilder>,
}

impl ActiveSegment {
    pub(crate) fn visible_len(&self) -> u64 {
        self.visible_len.load(Ordering::Acquire)
    }
}

/// A segment as readers see it.
#[derive(Debug, Clone)]
pub(crate) enum SegmentRef {
    Sealed(Arc<SealedSegment>),
    Active(Arc<ActiveSegment>),
}

impl SegmentRef {
    pub(crate) fn base_offset(&self) -> u64 {
        match self {
            SegmentRef::Sealed(s) => s.header.base_offset,
            SegmentRef::Active(a) => a.base_offset,
        }
    }
    pub(crate) fn path(&self) -> &Path {
        match self {
            SegmentRef::Sealed(s) => &s.log_path,
            SegmentRef::Active(a) => &a.log_path,
        }
    }
    /// The number of bytes readers may see.
    pub(crate) fn visible_len(&self) -> u64 {
        match self {
            SegmentRef::Sealed(s) => s.header.segment_bytes,
            SegmentRef::Active(a) => a.visible_len(),
        }
    }
    /// The mapping and the number of bytes readers may see.
    pub(crate) fn bytes(&self) -> Result<(Arc<Mapping>, u64), LogError> {
        match self {
            SegmentRef::Sealed(s) => Ok((s.data()?, s.header.segment_bytes)),
            SegmentRef::Active(a) => Ok((a.map.clone(), a.visible_len())),
        }
    }
    fn rel(&self, offset: u64) -> u32 {
        u32::try_from(offset.saturating_sub(self.base_offset())).unwrap_or(u32::MAX)
    }
    pub(crate) fn seek_offset(&self, offset: u64) -> Result<u64, LogError> {
        let rel = self.rel(offset);
        Ok(u64::from(match self {
            SegmentRef::Sealed(s) => s.with_index(|b| b.seek_offset(rel))?,
            SegmentRef::Active(a) => locking::read(&a.index).seek_offset(rel),
        }))
    }
    pub(crate) fn seek_time(&self, time_ms: u64) -> Result<u64, LogError> {
        Ok(u64::from(match self {
            SegmentRef::Sealed(s) => s.with_index(|b| b.seek_time(time_ms))?,
            SegmentRef::Active(a) => locking::read(&a.index).seek_time(time_ms),
        }))
    }
    pub(crate) fn key_positions(&self, hash: u64) -> Result<Vec<u32>, LogError> {
        match self {
            SegmentRef::Sealed(s) => s.with_index(|b| b.key_positions(hash)),
            SegmentRef::Active(a) => Ok(locking::read(&a.index).key_positions(hash)),
        }
    }
}

/// Decodes the batch at `pos` of a segment's visible bytes, attaching the
/// segment path and position to any error.
pub(crate) fn decode_at<'a>(
    bytes: &'a [u8],
    pos: u64,
    path: &Path,
) -> Result<BatchRef<'a>, LogError> {
    let slice = usize::try_from(pos)
        .ok()
        .and_then(|p| bytes.get(p..))
        .unwrap_or(&[]);
    decode_batch(slice).map_err(|e| LogError::from_batch(path.to_path_buf(), pos, e))
}

/// Reads just the header at `pos` (for skipping); errors carry the location.
pub(crate) fn peek_at(bytes: &[u8], pos: u64, path: &Path) -> Result<(u64, u64, u64), LogError> {
    let slice = usize::try_from(pos)
        .ok()
        .and_then(|p| bytes.get(p..))
        .unwrap_or(&[]);
    let h = peek_header(slice).map_err(|e| LogError::from_batch(path.to_path_buf(), pos, e))?;
    Ok((u64::from(h.batch_bytes), h.last_offset(), h.last_time_ms))
}
