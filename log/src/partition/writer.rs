//! The append path: admission (limits, producer sequence), offsets and log
//! time, the positioned write, in-memory indexing, segment roll and seal.
//!
//! Why the write happens under the writer lock: file positions must be
//! assigned in offset order and a batch must be fully written before the
//! next one is placed after it; the costly parts (encoding the records and
//! their CRC, the fdatasync) happen outside the lock.

use std::fs::{File, OpenOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{MutexGuard, RwLock};

use super::producer::{Admission, RecentBatch};
use super::progress::{DataReady, Durable};
use super::{Partition, Writer};
use crate::atomic_file;
use crate::batch::{AppendAck, AppendRequest, ProducerSeq, Record, encode_batch};
use crate::config::Durability;
use crate::error::LogError;
use crate::io;
use crate::limits::BATCH_BYTES_MAX;
use crate::locking;
use crate::mmap::Mapping;
use crate::segment::index::{IndexBuilder, decode_index_header, encode_index_file};
use crate::segment::prealloc::{self, Spare};
use crate::segment::{ActiveSegment, SealedSegment, index_file_name, log_file_name};

/// A rolled segment whose index file is still to be written.
#[derive(Debug)]
pub(crate) struct PendingSeal {
    segment: Arc<ActiveSegment>,
    segment_bytes: u64,
    next_offset: u64,
    producers: super::producer::ProducerTable,
}

/// Where a written batch sits: its byte position and length in the active
/// segment, its offsets and its log times.
#[derive(Debug)]
pub(super) struct Placed {
    pub(super) pos: u64,
    pub(super) len: u64,
    pub(super) base_offset: u64,
    pub(super) count: u64,
    pub(super) first_ms: u64,
    pub(super) last_ms: u64,
}

/// What the syncer fdatasyncs for one partition in one round: how far the
/// active segment is completely written. Kept in `Partition::written`,
/// updated under the writer lock after each write and read by the syncer
/// without it.
#[derive(Debug, Clone)]
pub(crate) struct SyncSnapshot {
    pub(crate) segment: Arc<ActiveSegment>,
    pub(crate) write_pos: u64,
    pub(crate) next_offset: u64,
}

/// Creates an empty segment file and maps it with room to grow. With
/// `zero_fill`, the file is first zero-filled to `segment_bytes_max`
/// (segment/prealloc.rs); if that fails (a full disk, say) a plain
/// growing file is created instead.
pub(crate) fn create_active(
    p: &super::PartitionSettings,
    base: u64,
    zero_fill: bool,
) -> Result<Arc<ActiveSegment>, LogError> {
    let path = p.dir.join(log_file_name(base));
    let preallocated = if zero_fill {
        prealloc::create_zero_filled(&path, p.segment_bytes_max)
            .map_err(|e| {
                tracing::warn!(segment = %path.display(), error = %e, "preallocating a segment failed; it grows with its data instead");
            })
            .ok()
    } else {
        None
    };
    let file = match preallocated {
        Some(f) => f,
        None => OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| LogError::io(&path, e))?,
    };
    io::sync_dir(&p.dir).map_err(|e| LogError::io(&p.dir, e))?;
    open_active(p, base, file, 0, IndexBuilder::new(p.index_interval_bytes))
}

/// The segment a roll starts: the partition's ready spare renamed into
/// place if there is one, else a plain growing file (a roll never waits
/// for zero-filling). Then starts preparing the next spare.
fn create_next(
    p: &super::PartitionSettings,
    spare: Option<&Spare>,
    base: u64,
) -> Result<Arc<ActiveSegment>, LogError> {
    let Some(spare) = spare else {
        return create_active(p, base, false);
    };
    let path = p.dir.join(log_file_name(base));
    let new = match spare.take_into(&path).map_err(|e| LogError::io(&path, e))? {
        Some(file) => {
            io::sync_dir(&p.dir).map_err(|e| LogError::io(&p.dir, e))?;
            open_active(p, base, file, 0, IndexBuilder::new(p.index_interval_bytes))?
        }
        None => {
            tracing::debug!(segment = %path.display(), "no spare segment ready at the roll; creating a growing one");
            create_active(p, base, false)?
        }
    };
    spare.prepare();
    Ok(new)
}

/// Share of a rolled segment's fill time (its first to last append, in log
/// time) over which its index file is written, at most
/// [`INDEX_WRITE_SPREAD_MAX`]: an index is 6 % of its segment's bytes with
/// 250-byte records, so spread over half the time the next segment takes
/// to fill it costs the appends about an eighth of the disk meanwhile.
const INDEX_WRITE_SPREAD_SHARE: u64 = 2;

/// The longest an index write is spread over: what a close or a truncate
/// could wait for a seal if nobody told it to hurry.
const INDEX_WRITE_SPREAD_MAX: std::time::Duration = std::time::Duration::from_secs(1);

/// How long to spread the write of a rolled segment's index file over.
fn index_write_spread(segment: &ActiveSegment, index_bytes: usize) -> std::time::Duration {
    if index_bytes <= atomic_file::PACED_WRITE_CHUNK_BYTES {
        return std::time::Duration::ZERO;
    }
    let b = locking::read(&segment.index);
    let fill_ms = b
        .first_time_ms
        .map_or(0, |first| b.last_time_ms.saturating_sub(first));
    std::time::Duration::from_millis(fill_ms / INDEX_WRITE_SPREAD_SHARE).min(INDEX_WRITE_SPREAD_MAX)
}

/// Wraps an open segment file whose first `len` bytes are valid batches.
pub(crate) fn open_active(
    p: &super::PartitionSettings,
    base: u64,
    file: File,
    len: u64,
    index: IndexBuilder,
) -> Result<Arc<ActiveSegment>, LogError> {
    let path = p.dir.join(log_file_name(base));
    let capacity = p.segment_bytes_max + BATCH_BYTES_MAX as u64;
    let map = Arc::new(Mapping::map(&file, &path, capacity)?);
    Ok(Arc::new(ActiveSegment {
        base_offset: base,
        log_path: path,
        file,
        map,
        visible_len: AtomicU64::new(len),
        index: RwLock::new(index),
    }))
}

impl Partition {
    /// Appends one batch and returns when it is durable under the log's
    /// durability mode: after the covering fdatasync for `Fsync`, after the
    /// write for `Interval` and `None`.
    pub fn append(&self, req: &AppendRequest<'_>) -> Result<AppendAck, LogError> {
        let (ack, durable) = self.append_pending(req)?;
        if self.settings.durability == Durability::Fsync {
            durable.wait()?;
        }
        Ok(ack)
    }

    /// Appends one batch and returns once it is written, with a handle that
    /// completes when the covering fdatasync is done. A retried producer
    /// batch returns its original ack (`duplicate: true`).
    pub fn append_pending(
        &self,
        req: &AppendRequest<'_>,
    ) -> Result<(AppendAck, Durable), LogError> {
        self.append_inner(req, false)
    }

    /// Appends a control batch (e.g. ticks for idle partitions). Control
    /// records are readable like others but are left out of the key index.
    pub fn append_control(&self, records: &[Record<'_>]) -> Result<(AppendAck, Durable), LogError> {
        self.append_inner(
            &AppendRequest {
                records,
                producer: None,
            },
            true,
        )
    }

    fn append_inner(
        &self,
        req: &AppendRequest<'_>,
        control: bool,
    ) -> Result<(AppendAck, Durable), LogError> {
        let mut batch = encode_batch(req, control)?;
        let mut w = locking::lock(&self.writer);
        if self.progress.is_closed() {
            return Err(LogError::Closed);
        }
        if self.progress.is_poisoned() {
            self.resume_if_room(&mut w)?; // storage_full.rs
        }
        if let Some(p) = req.producer
            && let Admission::Duplicate(ack) = w.producers.admit(p)?
        {
            return Ok((
                ack,
                Durable::new(self.progress.clone(), ack.last_offset + 1),
            ));
        }
        let log_time_ms = self.settings.clock.now_ms().max(w.last_time_ms);
        let base_offset = w.next_offset;
        let len = batch.bytes.len() as u64;
        let mut seal = None;
        if w.write_pos > 0 && w.write_pos + len > self.settings.segment_bytes_max {
            seal = Some(self.roll(&mut w)?);
        }
        let pos = w.write_pos;
        // Sealed after the roll: the batch records the durable length of the
        // segment it is written to (none claimed under `None`, which never
        // fdatasyncs), which recovery uses to tell damage from a torn tail.
        let durable_bytes = match self.settings.durability {
            Durability::None => 0,
            _ => w.active.visible_len(),
        };
        batch.seal_claiming_durable(base_offset, log_time_ms, durable_bytes);
        debug_assert!(pos + len <= self.settings.segment_bytes_max + BATCH_BYTES_MAX as u64);
        if let Err(err) = self.write_placed(&w, &batch.bytes, pos) {
            drop(w);
            if let Some(seal) = seal {
                self.finish_seal(seal);
            }
            return Err(err);
        }
        let rel = u32::try_from(base_offset - w.active.base_offset).unwrap_or(u32::MAX);
        let keys = (!control).then(|| req.records.iter().map(|r| r.key));
        locking::write(&w.active.index).add_batch(pos as u32, rel, log_time_ms, log_time_ms, keys);
        let placed = Placed {
            pos,
            len,
            base_offset,
            count: u64::from(batch.record_count),
            first_ms: log_time_ms,
            last_ms: log_time_ms,
        };
        Ok(self.commit_placed(w, &placed, req.producer, seal))
    }

    /// Writes a placed batch at `pos` of the active segment; a failure
    /// poisons the partition (a full disk marks it as waiting for space).
    pub(super) fn write_placed(&self, w: &Writer, bytes: &[u8], pos: u64) -> Result<(), LogError> {
        self.settings
            .io
            .write_all_at(&w.active.file, &w.active.log_path, bytes, pos)
            .map_err(|e| {
                self.progress.poison_with(
                    format!(
                        "write of {} bytes at {pos} in {} failed: {e}",
                        bytes.len(),
                        w.active.log_path.display()
                    ),
                    crate::error::is_storage_full(&e),
                );
                LogError::io(&w.active.log_path, e)
            })
    }

    /// After a batch is written and indexed: advances the writer past it,
    /// remembers its producer sequence, publishes it to the syncer (or as
    /// durable under `None`), releases the writer lock and finishes a roll.
    pub(super) fn commit_placed(
        &self,
        mut w: MutexGuard<'_, Writer>,
        b: &Placed,
        producer: Option<ProducerSeq>,
        seal: Option<PendingSeal>,
    ) -> (AppendAck, Durable) {
        w.write_pos = b.pos + b.len;
        w.next_offset = b.base_offset + b.count;
        w.last_time_ms = b.last_ms;
        let ack = AppendAck {
            base_offset: b.base_offset,
            last_offset: b.base_offset + b.count - 1,
            log_time_ms: b.first_ms,
            duplicate: false,
        };
        if let Some(p) = producer {
            w.producers.record(
                p,
                RecentBatch {
                    sequence: p.sequence,
                    base_offset: b.base_offset,
                    last_offset: ack.last_offset,
                    log_time_ms: b.first_ms,
                },
            );
        }
        self.progress
            .next_offset
            .store(w.next_offset, Ordering::Release);
        self.publish_written(&w);
        let target = w.next_offset;
        // Made under the writer lock: a full-disk rewind (which holds it)
        // starts a new generation that this handle must not belong to.
        let durable = Durable::new(self.progress.clone(), target);
        if self.settings.durability == Durability::None {
            w.active
                .visible_len
                .fetch_max(w.write_pos, Ordering::AcqRel);
            self.progress.publish_durable(target);
        }
        drop(w);
        if self.settings.durability != Durability::None {
            self.mark_dirty();
        }
        if let Some(spare) = &self.spare {
            spare.note_appended(b.len);
        }
        if let Some(seal) = seal {
            self.seal_in_background(seal);
        }
        (ack, durable)
    }

    /// Publishes how far the active segment is written, for the syncer.
    /// Called under the writer lock, after the write, so the syncer never
    /// sees a position whose bytes are not all written.
    pub(super) fn publish_written(&self, w: &Writer) {
        let mut written = locking::lock(&self.written);
        if !Arc::ptr_eq(&written.segment, &w.active) {
            written.segment = w.active.clone();
        }
        written.write_pos = w.write_pos;
        written.next_offset = w.next_offset;
    }

    pub(super) fn mark_dirty(&self) {
        if !self.queued.swap(true, Ordering::AcqRel)
            && let Some(me) = self.me.upgrade()
        {
            self.settings.syncer.enqueue(me);
        }
    }

    /// Starts a new segment at the next offset, under the writer lock:
    /// fdatasyncs the old one (usually little is left: the syncer keeps up)
    /// and creates the new file. Writing the old segment's index file is
    /// left to [`Partition::finish_seal`], outside the lock, because sorting
    /// and writing the key index of a full segment takes tens of
    /// milliseconds. Any failure poisons the partition.
    pub(super) fn roll(&self, w: &mut Writer) -> Result<PendingSeal, LogError> {
        let res = self.roll_inner(w);
        if let Err(e) = &res {
            self.progress.poison_with(
                format!(
                    "rolling segment {} failed: {e}",
                    w.active.log_path.display()
                ),
                e.is_storage_full_io(),
            );
        }
        res
    }

    fn roll_inner(&self, w: &mut Writer) -> Result<PendingSeal, LogError> {
        let s = &self.settings;
        let old = w.active.clone();
        s.io.sync(&old.file, &old.log_path)
            .map_err(|e| LogError::io(&old.log_path, e))?;
        let new = create_next(s, self.spare.as_ref(), w.next_offset)?; // fsyncs the directory
        old.visible_len.fetch_max(w.write_pos, Ordering::AcqRel);
        {
            let mut segs = locking::write(&self.segments);
            segs.sealing.insert(old.base_offset, old.clone());
            segs.active = new.clone();
        }
        let seal = PendingSeal {
            segment: old,
            segment_bytes: w.write_pos,
            next_offset: w.next_offset,
            producers: w.producers.clone(),
        };
        w.active = new;
        w.write_pos = 0;
        self.publish_written(w);
        self.progress.publish_durable(w.next_offset);
        Ok(seal)
    }

    /// Finishes a seal on its own thread, so that the appender whose batch
    /// rolled the segment is not acknowledged only after the old
    /// segment's index is sorted and written (tens of milliseconds for a
    /// full segment: the ack maxima of `bench log`). Readers see the
    /// segment through `Segments::sealing` meanwhile. Done inline if no
    /// thread can be started.
    fn seal_in_background(&self, seal: PendingSeal) {
        let Some(me) = self.me.upgrade() else {
            return self.finish_seal(seal);
        };
        let slot = Arc::new(std::sync::Mutex::new(Some(seal)));
        let theirs = slot.clone();
        let spawned = std::thread::Builder::new()
            .name("dropline-seal".into())
            .spawn(move || {
                crate::io::lower_thread_priority();
                if let Some(seal) = locking::lock(&theirs).take() {
                    me.finish_seal(seal);
                }
            });
        match spawned {
            Ok(h) => {
                let mut sealers = locking::lock(&self.sealers);
                sealers.retain(|h| !h.is_finished());
                sealers.push(h);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a seal thread; sealing inline");
                if let Some(seal) = locking::lock(&slot).take() {
                    self.finish_seal(seal);
                }
            }
        }
    }

    /// Waits until every seal started so far has finished (they stop
    /// pacing their index writes meanwhile).
    pub(crate) fn wait_for_seals(&self) {
        let sealers = std::mem::take(&mut *locking::lock(&self.sealers));
        self.seals_hurry.store(true, Ordering::Release);
        for h in sealers {
            let _ = h.join();
        }
        self.seals_hurry.store(false, Ordering::Release);
    }

    /// Writes the index file of a rolled segment (atomically, with the
    /// producer snapshot) and moves it to the sealed set. A crash before
    /// this completes leaves a segment without index, which recovery
    /// rebuilds by scanning it.
    pub(crate) fn finish_seal(&self, seal: PendingSeal) {
        if let Err(e) = self.finish_seal_inner(&seal) {
            self.progress.poison(format!(
                "sealing segment {} failed: {e}",
                seal.segment.log_path.display()
            ));
        }
    }

    fn finish_seal_inner(&self, seal: &PendingSeal) -> Result<(), LogError> {
        let s = &self.settings;
        let base = seal.segment.base_offset;
        // A preallocated segment is cut to its data, durably, before the
        // index claims that length (a sealed segment's file length is its
        // data length). Only zeros past the visible length go, which no
        // reader is ever given (mmap.rs, invariant 3).
        let (file, path) = (&seal.segment.file, &seal.segment.log_path);
        let file_len = file.metadata().map_err(|e| LogError::io(path, e))?.len();
        if file_len > seal.segment_bytes {
            file.set_len(seal.segment_bytes)
                .map_err(|e| LogError::io(path, e))?;
            s.io.sync(file, path).map_err(|e| LogError::io(path, e))?;
        }
        let idx = {
            let builder = locking::read(&seal.segment.index);
            encode_index_file(
                seal.segment_bytes,
                base,
                seal.next_offset,
                &builder,
                &seal.producers,
            )
        };
        let idx_path = s.dir.join(index_file_name(base));
        let pace = atomic_file::Pace {
            spread: index_write_spread(&seal.segment, idx.len()),
            hurry: &self.seals_hurry,
        };
        atomic_file::write_paced(&idx_path, &idx, true, &pace)?;
        let header = decode_index_header(&idx_path, &idx)?;
        {
            // Seals may finish out of order; keep the newest snapshot.
            let mut newest = locking::lock(&self.snapshot_offset);
            if seal.next_offset > *newest {
                let snapshot =
                    super::producer::encode_snapshot_file(seal.next_offset, &seal.producers);
                atomic_file::write(&s.dir.join(super::producer::SNAPSHOT_FILE), &snapshot, true)?;
                *newest = seal.next_offset;
            }
        }
        let sealed = Arc::new(SealedSegment::from_parts(
            &s.dir,
            header,
            seal.segment.map.clone(),
        ));
        let mut segs = locking::write(&self.segments);
        segs.sealing.remove(&base);
        segs.sealed.insert(base, sealed);
        Ok(())
    }

    /// Called by the syncer: what to fdatasync, or `None` if all is durable.
    /// Reads the published write position instead of taking the writer
    /// lock: with appenders queued on that lock, the syncer used to wait
    /// behind their writes (about 1 ms per round measured with 8 producers
    /// on one partition) while the disk sat idle. Clearing `queued` before
    /// reading pairs with appenders publishing before they set it (both
    /// ordered by the `written` mutex), so a write this snapshot misses
    /// always queues the partition again.
    pub(crate) fn sync_snapshot(&self) -> Option<SyncSnapshot> {
        self.queued.store(false, Ordering::Release);
        let snap = locking::lock(&self.written).clone();
        (snap.next_offset > self.progress.durable_offset() && !self.progress.is_poisoned())
            .then_some(snap)
    }

    /// Called by the syncer after the fdatasync of a snapshot.
    pub(crate) fn sync_done(&self, snap: &SyncSnapshot, res: std::io::Result<()>) {
        match res {
            Ok(()) => {
                // Under the lock a full-disk rewind holds: a snapshot of a
                // segment that is no longer the active one (rolled, which
                // published it already, or rewound) publishes nothing.
                let written = locking::lock(&self.written);
                if !Arc::ptr_eq(&written.segment, &snap.segment) {
                    return;
                }
                snap.segment
                    .visible_len
                    .fetch_max(snap.write_pos, Ordering::AcqRel);
                self.progress.publish_durable(snap.next_offset);
                drop(written);
            }
            Err(e) => self.progress.poison_with(
                format!(
                    "fdatasync of {} failed: {e}",
                    snap.segment.log_path.display()
                ),
                crate::error::is_storage_full(&e),
            ),
        }
    }

    /// fdatasyncs whatever is written and refuses later appends; used by
    /// `Log::close`. Holding the writer lock makes the two steps atomic
    /// with respect to appends.
    pub(crate) fn close_partition(&self) -> Result<(), LogError> {
        if let Some(spare) = &self.spare {
            spare.shutdown();
        }
        let w = locking::lock(&self.writer);
        // Under the writer lock no roll can start another seal.
        self.wait_for_seals();
        let mut res = Ok(());
        if w.next_offset > self.progress.durable_offset() && !self.progress.is_poisoned() {
            let snap = SyncSnapshot {
                segment: w.active.clone(),
                write_pos: w.write_pos,
                next_offset: w.next_offset,
            };
            let r = self
                .settings
                .io
                .sync(&snap.segment.file, &snap.segment.log_path);
            if let Err(e) = &r {
                res = Err(LogError::io(
                    &snap.segment.log_path,
                    std::io::Error::new(e.kind(), e.to_string()),
                ));
            }
            self.sync_done(&snap, r);
        }
        self.progress.close();
        drop(w);
        res
    }

    /// Tail following: blocks until the record at `after_offset` is durable
    /// (`durable_offset() > after_offset`; pass the next offset you want to
    /// read) or `timeout` passes. True if there is data to read; also true
    /// early if the partition is poisoned or the log closed, so the caller
    /// notices on its next read or append.
    pub fn wait_for_data(&self, after_offset: u64, timeout: std::time::Duration) -> bool {
        self.progress
            .wait(after_offset.saturating_add(1), Some(timeout))
            .is_some()
    }

    /// Async tail following: completes when the record at `after_offset` is
    /// durable (as [`Partition::wait_for_data`]), with `Err` if the
    /// partition is poisoned or the log closed first.
    pub fn data_ready(&self, after_offset: u64) -> DataReady {
        DataReady(Durable::new(
            self.progress.clone(),
            after_offset.saturating_add(1),
        ))
    }
}
