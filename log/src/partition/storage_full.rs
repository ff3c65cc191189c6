//! Resuming appends after the disk filled up.
//!
//! Why a full disk is not like other write failures: after a failed write
//! or fdatasync the page cache may hold bytes the disk never got, so the
//! writer is poisoned and nothing is retried (STYLE, "a failed fsync
//! poisons the writer"). Most such failures need an operator and a restart.
//! A full disk (`ENOSPC`, or `EDQUOT` for a quota) is different: it is
//! common during a drop, it clears when space is freed, and a node that
//! must be restarted for it loses the ingest it could take meanwhile.
//!
//! What makes it safe to carry on without a restart: everything below the
//! durable offset was fdatasynced before the failure and is untouched by
//! it; everything above was never acknowledged (its appenders got
//! `StorageFull`). So the writer is rewound exactly as recovery would after
//! a crash: the active segment is truncated to its durable length (the
//! length readers are allowed to see, so no mapped byte anyone reads goes
//! away), its indexes are rebuilt from those bytes, the producer table
//! forgets the cut-off batches, and a new generation of durable handles
//! begins (see progress.rs) so that a handle of a cut-off batch can never
//! complete on a later batch's fdatasync.
//!
//! When: an append that finds the writer poisoned by a full disk probes at
//! most every `storage_full_probe_interval_ms` by writing, fdatasyncing and
//! removing [`STORAGE_FULL_PROBE_BYTES`] in the partition directory; if the
//! probe succeeds the writer is rewound and the append proceeds. Appends in
//! between are refused at once with `LogError::StorageFull`.
//!
//! What is not resumed: a failure while writing a sealed segment's index
//! file stays a plain poisoning until the restart, whose recovery rebuilds
//! the index.

use std::fs::OpenOptions;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::producer::ProducerTable;
use super::recovery::index_bytes;
use super::{Partition, Writer};
use crate::atomic_file::TMP_SUFFIX;
use crate::error::LogError;
use crate::limits::STORAGE_FULL_PROBE_BYTES;
use crate::locking;
use crate::segment::{ActiveSegment, log_file_name, parse_file_name};

/// Name of the probe file (removed by recovery if a crash leaves it).
const PROBE_FILE_STEM: &str = "space-probe";

/// What a rewind cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rewind {
    /// The offset appends resume at (the durable offset).
    pub(crate) next_offset: u64,
    /// Offsets assigned to batches that were cut off.
    pub(crate) offsets_removed: u64,
    /// Bytes truncated from the active segment.
    pub(crate) bytes_removed: u64,
}

impl Partition {
    /// Called by an append that found the writer poisoned (under the
    /// writer lock): resumes the writer if it was poisoned by a full disk,
    /// a probe is due and it finds room. Otherwise returns the error the
    /// append must fail with.
    pub(crate) fn resume_if_room(&self, w: &mut Writer) -> Result<(), LogError> {
        let interval = Duration::from_millis(self.settings.storage_full_probe_interval_ms);
        if !self.progress.storage_probe_due(interval) {
            return Err(self.progress.poisoned_error());
        }
        if let Err(e) = self.probe_space() {
            tracing::debug!(topic = %self.settings.topic, partition = self.settings.partition, error = %e, "disk still full");
            return Err(self.progress.poisoned_error());
        }
        let r = self.rewind(w)?;
        tracing::warn!(
            topic = %self.settings.topic,
            partition = self.settings.partition,
            next_offset = r.next_offset,
            offsets_removed = r.offsets_removed,
            bytes_removed = r.bytes_removed,
            "disk has room again: partition resumes appends after removing batches that were never acknowledged"
        );
        Ok(())
    }

    /// Writes, fdatasyncs and removes a small file in the partition
    /// directory, through the same I/O path (and fault injector) as
    /// segment writes.
    fn probe_space(&self) -> std::io::Result<()> {
        let s = &self.settings;
        let path = s.dir.join(format!("{PROBE_FILE_STEM}{TMP_SUFFIX}"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        let bytes = vec![0u8; STORAGE_FULL_PROBE_BYTES];
        let res =
            s.io.write_all_at(&file, &path, &bytes, 0)
                .and_then(|()| s.io.sync(&file, &path));
        drop(file);
        let removed = std::fs::remove_file(&path);
        res.and(removed)
    }

    /// Rewinds a writer poisoned by a full disk to the durable prefix of
    /// its active segment and clears the poisoning. Holds the `written`
    /// lock throughout, so that an fdatasync the syncer started before
    /// cannot publish into the new generation (`sync_done` checks the
    /// segment under the same lock).
    pub(crate) fn rewind(&self, w: &mut Writer) -> Result<Rewind, LogError> {
        if !self.progress.is_storage_full() {
            return Err(self.progress.poisoned_error());
        }
        let s = &self.settings;
        let mut written = locking::lock(&self.written);
        let old = w.active.clone();
        let len = old.visible_len();
        let durable = self.progress.durable_offset();
        let path = &old.log_path;
        old.file.set_len(len).map_err(|e| LogError::io(path, e))?;
        old.file.sync_all().map_err(|e| LogError::io(path, e))?;
        self.remove_unborn_segments(old.base_offset)?;
        let (builder, end) = index_bytes(
            old.map.bytes(len),
            old.base_offset,
            s.index_interval_bytes,
            &mut ProducerTable::default(),
        );
        if let Some(reason) = end.error {
            return Err(LogError::from_batch(path.clone(), end.valid_len, reason));
        }
        if end.next_offset != durable {
            return Err(LogError::CorruptFile {
                path: path.clone(),
                reason: "the durable length of the active segment does not end at the durable offset",
            });
        }
        let file = old.file.try_clone().map_err(|e| LogError::io(path, e))?;
        let new = Arc::new(ActiveSegment {
            base_offset: old.base_offset,
            log_path: path.clone(),
            file,
            map: old.map.clone(),
            visible_len: AtomicU64::new(len),
            index: RwLock::new(builder),
        });
        let rewind = Rewind {
            next_offset: durable,
            offsets_removed: w.next_offset - durable,
            bytes_removed: w.write_pos - len,
        };
        w.active = new.clone();
        w.write_pos = len;
        w.next_offset = durable;
        w.producers.forget_from(durable);
        locking::write(&self.segments).active = new.clone();
        written.segment = new;
        written.write_pos = len;
        written.next_offset = durable;
        self.progress.rewound(durable);
        drop(written);
        Ok(rewind)
    }

    /// Removes segment files after the active one: a roll that failed
    /// after creating its new file leaves it empty and unused, and the next
    /// roll must be able to create it again.
    fn remove_unborn_segments(&self, active_base: u64) -> Result<(), LogError> {
        let dir = &self.settings.dir;
        for entry in std::fs::read_dir(dir).map_err(|e| LogError::io(dir, e))? {
            let entry = entry.map_err(|e| LogError::io(dir, e))?;
            let name = entry.file_name();
            if let Some(base) = name.to_str().and_then(|n| parse_file_name(n, "log"))
                && base > active_base
            {
                debug_assert_eq!(entry.path(), dir.join(log_file_name(base)));
                std::fs::remove_file(entry.path()).map_err(|e| LogError::io(entry.path(), e))?;
            }
        }
        Ok(())
    }

    /// Whether the partition refuses appends because the disk is full
    /// (they resume by themselves once space returns).
    pub fn is_storage_full(&self) -> bool {
        self.progress.is_storage_full()
    }
}
