//! The only place the log maps files into memory.
//!
//! Why mmap: replay and key lookups read sealed segments at memory speed
//! with no copy and no syscall per batch; `BatchView`s hand out slices of
//! the mapping to consumers.
//!
//! Soundness. Creating a `&[u8]` over a shared file mapping is sound only if
//! nothing changes or removes those bytes while the slice lives. The log
//! keeps these invariants (restated in docs/FORMAT.md, "Soundness of mmap"):
//!
//! 1. One process per data directory: `Log::open` takes an exclusive
//!    `flock` on `<dir>/LOCK` before mapping anything, so no other
//!    cooperating process writes or truncates these files.
//! 2. Append-only: a byte of a segment file, once written and made visible
//!    to readers, is never written again. Readers are only given slices
//!    below the segment's visible length (sealed: the file length; active:
//!    the durable length), and writers only write at or beyond the written
//!    length.
//! 3. Nothing mapped that readers may read is truncated: recovery
//!    truncates a torn tail *before* the segment is mapped; the full-disk
//!    rewind (partition/storage_full.rs) truncates the active segment only
//!    down to its visible length, under the lock that keeps the syncer from
//!    raising it; retention deletes whole files by `unlink`, which leaves
//!    existing mappings valid until they are dropped; a replica's
//!    `truncate_to` (partition/replica.rs) unlinks later segments and
//!    replaces the segment holding the cut by renaming a copy of the kept
//!    prefix over it, never shortening a mapped file.
//! 4. The active segment is mapped with a length larger than the file
//!    (`segment_bytes_max` plus one maximal batch); pages past end-of-file
//!    are never touched because of (2), so no SIGBUS can occur.
//!
//! What this cannot defend against: another program (or a person) writing
//! or truncating the files behind the log's back. That is outside the
//! contract, as for every mmap-based store.

use std::fs::File;
use std::path::Path;

use crate::error::LogError;

/// A read-only shared mapping of (a prefix of) a file.
#[derive(Debug)]
pub(crate) struct Mapping {
    map: Option<memmap2::Mmap>,
}

impl Mapping {
    /// Maps `len` bytes of `file` read-only. `len` may exceed the file's
    /// current length (for the active segment, see invariant 4); callers only
    /// read below the visible length.
    #[expect(unsafe_code, reason = "memory-mapping a segment or index file")]
    pub(crate) fn map(file: &File, path: &Path, len: u64) -> Result<Mapping, LogError> {
        if len == 0 {
            return Ok(Mapping { map: None });
        }
        let len = usize::try_from(len).map_err(|_| LogError::CorruptFile {
            path: path.to_path_buf(),
            reason: "file too large to map",
        })?;
        // SAFETY: the mapping is read-only and shared. Its bytes are only
        // exposed through `bytes(..)`, which callers bound by the visible
        // length; by invariants 1-3 in the module docs those bytes are never
        // modified or truncated while any mapping of the file lives, and by
        // invariant 4 no page beyond end-of-file is ever touched.
        let map = unsafe { memmap2::MmapOptions::new().len(len).map(file) }
            .map_err(|e| LogError::io(path, e))?;
        Ok(Mapping { map: Some(map) })
    }

    /// The mapped bytes `[0, len)`; `len` must not exceed what is visible
    /// (the caller's invariant), and is clamped to the mapping's length.
    pub(crate) fn bytes(&self, len: u64) -> &[u8] {
        match &self.map {
            Some(m) => {
                let len = usize::try_from(len).unwrap_or(usize::MAX).min(m.len());
                &m[..len]
            }
            None => &[],
        }
    }
}
