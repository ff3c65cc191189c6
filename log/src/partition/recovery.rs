//! Opening a partition after a clean shutdown or a crash.
//!
//! Why recovery is cheap: sealed segments are trusted through their index
//! files (a checksummed header compared with the segment's length; the
//! index body's checksum is checked on first use), so only the active
//! segment, bounded by `segment_bytes_max`, is scanned batch by batch. A
//! torn or garbled tail is truncated (before the file is mapped for
//! readers, see mmap.rs) and reported.
//!
//! Why recovery sometimes refuses instead: a bad batch that a later batch
//! proves was durable (its recorded durable length reaches past it) is
//! damaged acknowledged data, not a torn write, and truncating there would
//! silently drop it and everything after it. The log then does not open
//! (`DamagedDurableBatch`) and nothing is modified, so the operator can
//! restore the segment or decide to cut it.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};

use super::producer::{ProducerTable, RecentBatch};
use super::progress::Progress;
use super::writer::{SyncSnapshot, create_active, open_active};
use super::{Partition, PartitionSettings, Segments, Writer};
use crate::atomic_file::TMP_SUFFIX;
use crate::batch::BATCH_FORMAT_VERSION;
use crate::error::{BatchError, LogError};
use crate::mmap::Mapping;
use crate::segment::index::{IndexBuilder, encode_index_file};
use crate::segment::prealloc::{self, Spare};
use crate::segment::scan::{DurableWitness, find_durable_witness, scan_batches};
use crate::segment::{SealedSegment, index_file_name, log_file_name, parse_file_name};

/// A torn or garbled tail that recovery cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncation {
    /// The segment file.
    pub segment: PathBuf,
    /// Where the valid data ended (the new file length).
    pub file_offset: u64,
    /// Bytes removed.
    pub bytes_removed: u64,
    /// Why the bytes at `file_offset` were rejected.
    pub reason: BatchError,
}

/// What recovery did to one partition.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartitionRecovery {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Sealed segments found.
    pub sealed_segments: usize,
    /// Bytes of the active segment scanned and checked.
    pub active_bytes_scanned: u64,
    /// The tail removed, if any.
    pub truncated: Option<Truncation>,
    /// Index files rebuilt from their segments (missing or corrupt).
    pub rebuilt_indexes: Vec<PathBuf>,
    /// Leftover files removed (temporary files, indexes without a segment).
    pub removed_files: Vec<PathBuf>,
}

/// What recovery did to the whole log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecoveryReport {
    /// One entry per partition opened.
    pub partitions: Vec<PartitionRecovery>,
}

impl RecoveryReport {
    /// All truncations performed.
    pub fn truncations(&self) -> impl Iterator<Item = &Truncation> {
        self.partitions.iter().filter_map(|p| p.truncated.as_ref())
    }
}

fn list(dir: &Path, report: &mut PartitionRecovery) -> Result<(Vec<u64>, Vec<u64>), LogError> {
    let mut logs = Vec::new();
    let mut idxs = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| LogError::io(dir, e))? {
        let entry = entry.map_err(|e| LogError::io(dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name == prealloc::SPARE_FILE_NAME {
            // Left to `open_partition`: unlinking a 128 MiB spare took
            // about 100 ms, so a preallocating partition's thread reuses
            // (truncates and refills) it instead.
            continue;
        }
        if name.ends_with(TMP_SUFFIX) {
            std::fs::remove_file(entry.path()).map_err(|e| LogError::io(entry.path(), e))?;
            report.removed_files.push(entry.path());
        } else if let Some(b) = parse_file_name(name, "log") {
            logs.push(b);
        } else if let Some(b) = parse_file_name(name, "idx") {
            idxs.push(b);
        }
    }
    logs.sort_unstable();
    idxs.sort_unstable();
    Ok((logs, idxs))
}

fn producer_snapshot(seg: &SealedSegment) -> Result<ProducerTable, LogError> {
    let count = seg.header.producer_count;
    seg.with_index(|b| ProducerTable::decode(b.producers, count))?
        .ok_or_else(|| LogError::CorruptFile {
            path: seg.idx_path.clone(),
            reason: "bad producer snapshot",
        })
}

/// Scans `bytes` into fresh indexes.
pub(crate) fn index_bytes(
    bytes: &[u8],
    base: u64,
    interval: u32,
    producers: &mut ProducerTable,
) -> (IndexBuilder, crate::segment::scan::ScanEnd) {
    let mut builder = IndexBuilder::new(interval);
    let end = scan_batches(bytes, base, |pos, b| {
        let rel = u32::try_from(b.base_offset() - base).unwrap_or(u32::MAX);
        let keys = (!b.is_control()).then(|| b.records().map(|r| r.key));
        builder.add_batch(pos as u32, rel, b.first_time_ms(), b.last_time_ms(), keys);
        if let Some(p) = b.producer() {
            producers.record(
                p,
                RecentBatch {
                    sequence: p.sequence,
                    base_offset: b.base_offset(),
                    last_offset: b.last_offset(),
                    log_time_ms: b.first_time_ms(),
                },
            );
        }
    });
    (builder, end)
}

/// Decides whether the bad batch at `at` of the active segment may be cut
/// off as a torn tail; returns the error that refuses it otherwise. Two
/// things are never torn writes (docs/FORMAT.md, "Torn tail or damaged
/// durable data"): damage that a later batch proves durable, and a batch of
/// a newer format version (a torn write leaves a prefix of what this build
/// wrote, or zeros, so a version byte above ours was written by a newer
/// build; truncating would silently drop its data after a downgrade).
fn refuse_durable_damage(
    s: &PartitionSettings,
    path: &Path,
    at: u64,
    reason: &BatchError,
    witness: Option<DurableWitness>,
) -> Result<(), LogError> {
    if let Some(w) = witness {
        let err = LogError::DamagedDurableBatch(Box::new(crate::error::DamagedDurable {
            topic: s.topic.clone(),
            partition: s.partition,
            segment: path.to_path_buf(),
            file_offset: at,
            reason: reason.clone(),
            witness_offset: w.file_offset,
            durable_bytes: w.durable_bytes,
        }));
        tracing::error!(%err, "refusing to open a partition whose durable data is damaged");
        return Err(err);
    }
    if let BatchError::UnknownVersion { version } = *reason
        && version > BATCH_FORMAT_VERSION
    {
        tracing::error!(segment = %path.display(), at, version, "refusing to truncate a batch of a newer format version");
        return Err(LogError::UnknownVersion {
            segment: path.to_path_buf(),
            file_offset: at,
            version,
        });
    }
    Ok(())
}

/// Whether `bytes` from `pos` on are all zeros: the free end of a
/// preallocated segment, not a torn tail.
fn is_zero_from(bytes: &[u8], pos: u64) -> bool {
    let rest = usize::try_from(pos).ok().and_then(|p| bytes.get(p..));
    rest.is_some_and(prealloc::is_zero)
}

/// Rebuilds the index file of a sealed segment that has none (or a bad one).
fn rebuild_sealed(
    s: &PartitionSettings,
    base: u64,
    mut producers: ProducerTable,
) -> Result<SealedSegment, LogError> {
    let path = s.dir.join(log_file_name(base));
    let file = std::fs::File::open(&path).map_err(|e| LogError::io(&path, e))?;
    let mut len = file.metadata().map_err(|e| LogError::io(&path, e))?.len();
    let (builder, end, zero_tail) = {
        let map = Mapping::map(&file, &path, len)?;
        let bytes = map.bytes(len);
        let (builder, end) = index_bytes(bytes, base, s.index_interval_bytes, &mut producers);
        let zero_tail = end.error.is_some() && is_zero_from(bytes, end.valid_len);
        (builder, end, zero_tail)
        // Unmapped here, before the zero tail is cut.
    };
    if zero_tail {
        // A preallocated segment rolled but not yet cut to its data when
        // the process stopped (segment/prealloc.rs): the rest is free space.
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| LogError::io(&path, e))?;
        file.set_len(end.valid_len)
            .map_err(|e| LogError::io(&path, e))?;
        file.sync_all().map_err(|e| LogError::io(&path, e))?;
        len = end.valid_len;
    } else if let Some(e) = end.error {
        return Err(LogError::from_batch(path, end.valid_len, e));
    }
    let idx = encode_index_file(len, base, end.next_offset, &builder, &producers);
    crate::atomic_file::write(&s.dir.join(index_file_name(base)), &idx, true)?;
    SealedSegment::open(&s.dir, base)
}

/// Opens (or creates) the partition in `s.dir`.
pub(crate) fn open_partition(
    s: PartitionSettings,
) -> Result<(Arc<Partition>, PartitionRecovery), LogError> {
    let mut report = PartitionRecovery {
        topic: s.topic.clone(),
        partition: s.partition,
        ..Default::default()
    };
    std::fs::create_dir_all(&s.dir).map_err(|e| LogError::io(&s.dir, e))?;
    let (logs, idxs) = list(&s.dir, &mut report)?;
    for b in idxs.iter().filter(|b| logs.binary_search(b).is_err()) {
        let p = s.dir.join(index_file_name(*b));
        std::fs::remove_file(&p).map_err(|e| LogError::io(&p, e))?;
        report.removed_files.push(p);
    }
    let mut sealed: BTreeMap<u64, Arc<SealedSegment>> = BTreeMap::new();
    let mut active_base = None;
    for (i, &base) in logs.iter().enumerate() {
        let is_last = i + 1 == logs.len();
        match SealedSegment::open(&s.dir, base) {
            Ok(seg) => {
                sealed.insert(base, Arc::new(seg));
            }
            Err(_) if is_last => active_base = Some(base),
            Err(_) => {
                let prev = match sealed.values().next_back() {
                    Some(p) => producer_snapshot(p)?,
                    None => ProducerTable::default(),
                };
                let seg = rebuild_sealed(&s, base, prev)?;
                report.rebuilt_indexes.push(seg.idx_path.clone());
                sealed.insert(base, Arc::new(seg));
            }
        }
    }
    let mut expected = None;
    for seg in sealed.values() {
        if expected.is_some_and(|e| e != seg.header.base_offset) {
            return Err(LogError::CorruptFile {
                path: seg.log_path.clone(),
                reason: "segment offsets are not contiguous",
            });
        }
        expected = Some(seg.header.next_offset);
    }
    // The newest sealed segment's snapshot is the freshest; if retention
    // deleted every sealed segment, the partition-level snapshot written at
    // the last seal stands in for it.
    let mut producers = match sealed.values().next_back() {
        Some(last) => producer_snapshot(last)?,
        None => {
            let path = s.dir.join(super::producer::SNAPSHOT_FILE);
            let active_start = active_base.unwrap_or(0);
            match std::fs::read(&path) {
                Ok(b) => match super::producer::decode_snapshot_file(&b) {
                    Some((offset, table)) if offset == active_start => table,
                    Some(_) => ProducerTable::default(),
                    None => {
                        return Err(LogError::CorruptFile {
                            path,
                            reason: "bad producer snapshot",
                        });
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => ProducerTable::default(),
                Err(e) => return Err(LogError::io(&path, e)),
            }
        }
    };
    let mut last_time_ms = sealed
        .values()
        .next_back()
        .map_or(0, |l| l.header.last_time_ms);
    let sealed_next = sealed.values().next_back().map(|l| l.header.next_offset);
    let (active, write_pos, next_offset) = match active_base {
        None => {
            let base = sealed_next.unwrap_or(0);
            (create_active(&s, base, s.preallocate_segments)?, 0, base)
        }
        Some(base) => {
            if sealed_next.is_some_and(|n| n != base) {
                return Err(LogError::CorruptFile {
                    path: s.dir.join(log_file_name(base)),
                    reason: "segment offsets are not contiguous",
                });
            }
            let path = s.dir.join(log_file_name(base));
            // A stale index of the active segment (from a crash while
            // sealing) no longer matches and would confuse the next open.
            let stale_idx = s.dir.join(index_file_name(base));
            if stale_idx.exists() {
                std::fs::remove_file(&stale_idx).map_err(|e| LogError::io(&stale_idx, e))?;
                report.removed_files.push(stale_idx);
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| LogError::io(&path, e))?;
            let len = file.metadata().map_err(|e| LogError::io(&path, e))?.len();
            let (builder, end, witness, zero_tail) = {
                let scan_map = Mapping::map(&file, &path, len)?;
                let bytes = scan_map.bytes(len);
                let (builder, end) =
                    index_bytes(bytes, base, s.index_interval_bytes, &mut producers);
                // The zeros after the data of a preallocated segment end it
                // cleanly: kept (the writer goes on over them), not reported.
                let zero_tail = end.error.is_some() && is_zero_from(bytes, end.valid_len);
                let witness = end.error.as_ref().filter(|_| !zero_tail).and_then(|_| {
                    find_durable_witness(bytes, end.valid_len, end.next_offset, end.last_time_ms)
                });
                (builder, end, witness, zero_tail)
                // The scan mapping is dropped here, before any truncation.
            };
            report.active_bytes_scanned = len;
            if let Some(reason) = end.error.clone().filter(|_| !zero_tail) {
                refuse_durable_damage(&s, &path, end.valid_len, &reason, witness)?;
                file.set_len(end.valid_len)
                    .map_err(|e| LogError::io(&path, e))?;
                tracing::warn!(segment = %path.display(), at = end.valid_len, removed = len - end.valid_len, %reason, "truncated torn tail");
                report.truncated = Some(Truncation {
                    segment: path.clone(),
                    file_offset: end.valid_len,
                    bytes_removed: len - end.valid_len,
                    reason,
                });
            }
            // What a killed process left in the page cache becomes visible
            // to readers now, so make it durable first.
            file.sync_all().map_err(|e| LogError::io(&path, e))?;
            last_time_ms = last_time_ms.max(end.last_time_ms);
            (
                open_active(&s, base, file, end.valid_len, builder)?,
                end.valid_len,
                end.next_offset,
            )
        }
    };
    report.sealed_segments = sealed.len();
    let start = sealed.keys().next().copied().unwrap_or(active.base_offset);
    let progress = Arc::new(Progress::new(
        &s.topic,
        s.partition,
        start,
        next_offset,
        next_offset,
    ));
    let active_for_sync = active.clone();
    let spare = s
        .preallocate_segments
        .then(|| Spare::new(&s.dir, s.segment_bytes_max));
    let partition = Arc::new_cyclic(|me| Partition {
        settings: s,
        me: me.clone(),
        writer: Mutex::new(Writer {
            active: active.clone(),
            write_pos,
            next_offset,
            last_time_ms,
            producers,
        }),
        segments: RwLock::new(Segments {
            sealed,
            sealing: BTreeMap::new(),
            active,
        }),
        progress,
        written: Mutex::new(SyncSnapshot {
            segment: active_for_sync,
            write_pos,
            next_offset,
        }),
        queued: AtomicBool::new(false),
        archived: Mutex::new(None),
        snapshot_offset: Mutex::new(0),
        spare,
        sealers: Mutex::new(Vec::new()),
        seals_hurry: AtomicBool::new(false),
    });
    match &partition.spare {
        Some(spare) => spare.prepare(),
        None => {
            let leftover = partition.settings.dir.join(prealloc::SPARE_FILE_NAME);
            match std::fs::remove_file(&leftover) {
                Ok(()) => report.removed_files.push(leftover),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io(&leftover, e)),
            }
        }
    }
    Ok((partition, report))
}
