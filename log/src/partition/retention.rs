//! Retention: deleting whole sealed segments by age and by size, after
//! copying them to the archive directory if one is configured.
//!
//! Why whole sealed segments: deletion is then an `unlink` (readers holding
//! a mapping keep valid bytes, see mmap.rs), the active segment is never
//! touched, and retained data always starts at a segment boundary.
//! Order on disk: archive copy made durable first, then the segment file is
//! unlinked, then its index; a crash in between leaves either a full
//! segment (deleted again next run) or an orphan index (removed at open).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Partition;
use crate::error::LogError;
use crate::io::sync_dir;
use crate::locking;
use crate::segment::SealedSegment;

/// Why a segment was deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionReason {
    /// Its newest record is older than `retention_ms`.
    Age,
    /// The partition exceeded `retention_bytes`.
    Size,
}

/// One segment removed by retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedSegment {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// First offset of the segment.
    pub base_offset: u64,
    /// Offset after its last record.
    pub next_offset: u64,
    /// Segment size in bytes.
    pub bytes: u64,
    /// Where it was archived, if it was.
    pub archived_to: Option<PathBuf>,
    /// Why.
    pub reason: RetentionReason,
}

fn copy_durably(from: &Path, to: &Path) -> Result<(), LogError> {
    let tmp = crate::atomic_file::tmp_path(to);
    std::fs::copy(from, &tmp).map_err(|e| LogError::io(&tmp, e))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| LogError::io(&tmp, e))?;
    std::fs::rename(&tmp, to).map_err(|e| LogError::io(to, e))
}

impl Partition {
    /// Applies age and size retention at time `now_ms`.
    pub(crate) fn enforce_retention(
        &self,
        now_ms: u64,
        retention_ms: Option<u64>,
        retention_bytes: Option<u64>,
    ) -> Result<Vec<DeletedSegment>, LogError> {
        let (victims, _) = {
            let segs = locking::read(&self.segments);
            let active_bytes = segs.active.visible_len()
                + segs.sealing.values().map(|a| a.visible_len()).sum::<u64>();
            let mut total: u64 = segs
                .sealed
                .values()
                .map(|s| s.header.segment_bytes)
                .sum::<u64>()
                + active_bytes;
            let mut victims: Vec<(Arc<SealedSegment>, RetentionReason)> = Vec::new();
            for s in segs.sealed.values() {
                let old =
                    retention_ms.is_some_and(|r| s.header.last_time_ms.saturating_add(r) <= now_ms);
                let big = retention_bytes.is_some_and(|r| total > r);
                if !old && !big {
                    break;
                }
                total -= s.header.segment_bytes;
                victims.push((
                    s.clone(),
                    if old {
                        RetentionReason::Age
                    } else {
                        RetentionReason::Size
                    },
                ));
            }
            (victims, ())
        };
        let mut deleted = Vec::new();
        for (seg, reason) in victims {
            let archived_to = match &self.settings.archive_dir {
                Some(dir) => {
                    std::fs::create_dir_all(dir).map_err(|e| LogError::io(dir, e))?;
                    let log_to = dir.join(seg.log_path.file_name().unwrap_or_default());
                    let idx_to = dir.join(seg.idx_path.file_name().unwrap_or_default());
                    copy_durably(&seg.log_path, &log_to)?;
                    copy_durably(&seg.idx_path, &idx_to)?;
                    sync_dir(dir).map_err(|e| LogError::io(dir, e))?;
                    *locking::lock(&self.archived) = None;
                    Some(log_to)
                }
                None => None,
            };
            {
                let mut segs = locking::write(&self.segments);
                segs.sealed.remove(&seg.header.base_offset);
                self.progress
                    .start_offset
                    .store(segs.start_offset(), Ordering::Release);
            }
            std::fs::remove_file(&seg.log_path).map_err(|e| LogError::io(&seg.log_path, e))?;
            std::fs::remove_file(&seg.idx_path).map_err(|e| LogError::io(&seg.idx_path, e))?;
            deleted.push(DeletedSegment {
                topic: self.settings.topic.clone(),
                partition: self.settings.partition,
                base_offset: seg.header.base_offset,
                next_offset: seg.header.next_offset,
                bytes: seg.header.segment_bytes,
                archived_to,
                reason,
            });
        }
        if !deleted.is_empty() {
            sync_dir(&self.settings.dir).map_err(|e| LogError::io(&self.settings.dir, e))?;
        }
        Ok(deleted)
    }
}
