//! What a replicated partition needs from the log: appending a batch that
//! was encoded elsewhere (by the Raft leader), checking a producer batch
//! before proposing it, and cutting off a conflicting suffix.
//!
//! Why the batch is re-stamped and not written verbatim: the leader encodes
//! a proposal before it knows where in the log the entry will land (the
//! consensus library may put its own entries in between), so the batch
//! carries base offset 0 and the leader's clock reading. Every replica
//! stamps it with its own next offset and `max(batch time, last log
//! time)`; the Raft log prefix before the entry is identical on every
//! replica, so both values, and hence the bytes, are identical too.
//!
//! Why the producer table is not consulted on append: on a follower, an
//! entry's place in the log was already decided by the leader; refusing it
//! would make the replica's log differ from the leader's. The leader checks
//! a producer batch with [`Partition::check_producer`] before proposing
//! it. The table is still updated, so a replica that becomes leader knows
//! every producer batch in its log.
//!
//! Why truncation copies the kept prefix into a new file: readers may hold
//! views into the bytes being cut off (they were durable, so visible), and
//! shortening a mapped file would make those pages fault (SIGBUS). The kept
//! prefix is copied into a temporary file, fdatasynced and renamed over
//! the segment; old mappings keep the old inode alive until dropped
//! (invariant 3 of `mmap.rs`: replaced files are unlinked, never shrunk).
//! A cut inside a sealed segment first removes the later segments (newest
//! first) and the sealed segment's index, then replaces its file the same
//! way; it becomes the active segment, as recovery would open it.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::progress::Durable;
use super::{Partition, Writer};
use crate::atomic_file;
use crate::batch::{
    AppendAck, AppendRequest, BatchRef, ProducerSeq, crc_with_records, decode_batch_records_crc,
    encode_batch, parse_header,
};
use crate::error::LogError;
use crate::io;
use crate::locking;
use crate::mmap::Mapping;
use crate::segment::scan::scan_batches;

/// Encodes a batch for a replicated partition: records, optional producer
/// and control flag as [`Partition::append`] would write them, with base
/// offset 0 and log time `log_time_ms`. [`Partition::append_replicated`]
/// re-stamps both.
pub fn encode_unplaced_batch(
    req: &AppendRequest<'_>,
    control: bool,
    log_time_ms: u64,
) -> Result<Vec<u8>, LogError> {
    let mut batch = encode_batch(req, control)?;
    batch.seal(0, log_time_ms);
    Ok(batch.bytes)
}

impl Partition {
    /// Appends a batch encoded elsewhere (a Raft entry): re-stamps its base
    /// offset with this partition's next offset and its log time with
    /// `max(batch time, last log time)`, recomputes the CRC and writes it.
    /// A producer batch is recorded in the producer table without an
    /// admission check (see the module docs). Returns the ack and the
    /// handle that completes at the covering fdatasync.
    pub fn append_replicated(&self, batch: &[u8]) -> Result<(AppendAck, Durable), LogError> {
        self.append_replicated_owned(&mut batch.to_vec())
    }

    /// [`Partition::append_replicated`] re-stamping `bytes` in place (no
    /// copy of the batch): afterwards they hold the batch as written, cut
    /// to its encoded length. A replica may serve these bytes to the
    /// others: re-stamping them again gives the same bytes at the same
    /// place in the log.
    pub fn append_replicated_owned(
        &self,
        bytes: &mut Vec<u8>,
    ) -> Result<(AppendAck, Durable), LogError> {
        let (decoded, records_crc) = decode_batch_records_crc(bytes)
            .map_err(|e| LogError::from_batch(self.settings.dir.clone(), 0, e))?;
        let producer = decoded.producer();
        let control = decoded.is_control();
        let count = u64::from(decoded.record_count());
        let (first_ms, last_ms) = (decoded.first_time_ms(), decoded.last_time_ms());
        let len = decoded.encoded_len();
        bytes.truncate(len);
        let mut w = locking::lock(&self.writer);
        if self.progress.is_closed() {
            return Err(LogError::Closed);
        }
        if self.progress.is_poisoned() {
            self.resume_if_room(&mut w)?;
        }
        let base_offset = w.next_offset;
        let first = first_ms.max(w.last_time_ms);
        let last = last_ms.max(first);
        bytes[16..24].copy_from_slice(&base_offset.to_le_bytes());
        // The segment's durable length (version 2) differs between replicas
        // (it depends on when each fdatasync ran), so a replicated batch
        // claims none: 0, as under `Durability::None`. Recovery then treats
        // damage in a replica's active segment as a torn tail; the other
        // replicas hold the same batch.
        bytes[28..32].copy_from_slice(&0u32.to_le_bytes());
        bytes[32..40].copy_from_slice(&first.to_le_bytes());
        bytes[40..48].copy_from_slice(&last.to_le_bytes());
        // The records are unchanged: their CRC from the check above is
        // combined with the re-stamped header's.
        let crc = crc_with_records(bytes, records_crc);
        bytes[8..12].copy_from_slice(&crc.to_le_bytes());
        let len = bytes.len() as u64;
        let mut seal = None;
        if w.write_pos > 0 && w.write_pos + len > self.settings.segment_bytes_max {
            seal = Some(self.roll(&mut w)?);
        }
        let pos = w.write_pos;
        if let Err(err) = self.write_placed(&w, bytes, pos) {
            drop(w);
            if let Some(seal) = seal {
                self.finish_seal(seal);
            }
            return Err(err);
        }
        // Only the header was re-stamped: the records (and so the keys) are
        // the ones validated above.
        let written = BatchRef::trusted(
            bytes,
            parse_header(bytes)
                .map_err(|e| LogError::from_batch(w.active.log_path.clone(), pos, e))?,
        );
        let rel = u32::try_from(base_offset - w.active.base_offset).unwrap_or(u32::MAX);
        let keys = (!control).then(|| written.records().map(|r| r.key));
        locking::write(&w.active.index).add_batch(pos as u32, rel, first, last, keys);
        let placed = super::writer::Placed {
            pos,
            len,
            base_offset,
            count,
            first_ms: first,
            last_ms: last,
        };
        Ok(self.commit_placed(w, &placed, producer, seal))
    }

    /// What an append of a batch of `p` would do, without appending:
    /// `Ok(None)` if it is new, `Ok(Some(ack))` with the original ack if
    /// the log holds it already, `StaleSequence` / `OutOfOrderSequence` as
    /// [`Partition::append`] would answer.
    pub fn check_producer(&self, p: ProducerSeq) -> Result<Option<AppendAck>, LogError> {
        let w = locking::lock(&self.writer);
        match w.producers.admit(p)? {
            super::producer::Admission::Append => Ok(None),
            super::producer::Admission::Duplicate(ack) => Ok(Some(ack)),
        }
    }

    /// Removes every batch at or after `offset`, which must be a batch
    /// boundary at or after the start offset (or the next offset, which
    /// changes nothing). Durable when it returns (see the module docs for
    /// how, and for the order of file operations a crash may interrupt).
    /// The producer table is rebuilt as recovery would build it; pending
    /// [`Durable`] handles of cut-off batches never complete on a later
    /// fdatasync. Readers must not rely on offsets at or after `offset` (a
    /// replicated partition's readers stay below the commit offset, which
    /// is never cut).
    pub fn truncate_to(&self, offset: u64) -> Result<(), LogError> {
        let mut w = locking::lock(&self.writer);
        if self.progress.is_closed() {
            return Err(LogError::Closed);
        }
        if self.progress.is_poisoned() {
            return Err(self.progress.poisoned_error());
        }
        if offset == w.next_offset {
            return Ok(());
        }
        let refuse = |reason: &'static str| LogError::CannotTruncate {
            topic: self.settings.topic.clone(),
            partition: self.settings.partition,
            offset,
            reason,
        };
        if offset > w.next_offset || offset < self.start_offset() {
            return Err(refuse("the offset is outside the partition"));
        }
        // Seals run on their own threads (writer.rs) and never take the
        // writer lock, held here: wait for them rather than refuse.
        self.wait_for_seals();
        if !locking::read(&self.segments).sealing.is_empty() {
            return Err(refuse("a rolled segment is still being sealed"));
        }
        let res = self.truncate_locked(&mut w, offset);
        if let Err(e) = &res
            && !matches!(e, LogError::CannotTruncate { .. })
        {
            self.progress.poison(format!(
                "truncating {}/{} to offset {offset} failed: {e}",
                self.settings.topic, self.settings.partition
            ));
        }
        res
    }

    fn truncate_locked(&self, w: &mut Writer, offset: u64) -> Result<(), LogError> {
        let s = &self.settings;
        let mut written = locking::lock(&self.written);
        // The segment that keeps a prefix, its bytes, the segments after it,
        // and the producer table before it.
        let (base, path, bytes, later, before): (u64, PathBuf, Arc<Mapping>, Vec<PathBuf>, _) = {
            let segs = locking::read(&self.segments);
            let active = &w.active;
            if offset >= active.base_offset {
                let before = segs.sealed.values().next_back().cloned();
                (
                    active.base_offset,
                    active.log_path.clone(),
                    active.map.clone(),
                    Vec::new(),
                    before,
                )
            } else {
                let Some(seg) = segs
                    .sealed
                    .range(..=offset)
                    .next_back()
                    .map(|(_, s)| s.clone())
                else {
                    return Err(LogError::CannotTruncate {
                        topic: s.topic.clone(),
                        partition: s.partition,
                        offset,
                        reason: "no segment holds the offset",
                    });
                };
                let base = seg.header.base_offset;
                let mut later = vec![active.log_path.clone()];
                for l in segs.sealed.range(base + 1..).rev().map(|(_, l)| l) {
                    later.push(l.log_path.clone());
                    later.push(l.idx_path.clone());
                }
                later.push(seg.idx_path.clone());
                let before = segs
                    .sealed
                    .range(..base)
                    .next_back()
                    .map(|(_, b)| b.clone());
                (base, seg.log_path.clone(), seg.data()?, later, before)
            }
        };
        let len = if base == w.active.base_offset {
            w.write_pos
        } else {
            bytes.bytes(u64::MAX).len() as u64
        };
        let all = bytes.bytes(len);
        let mut cut = None;
        let end = scan_batches(all, base, |pos, b| {
            if b.base_offset() == offset {
                cut = Some(pos);
            }
        });
        let cut = match cut {
            Some(c) if c <= end.valid_len => c,
            _ => {
                return Err(LogError::CannotTruncate {
                    topic: s.topic.clone(),
                    partition: s.partition,
                    offset,
                    reason: "the offset is not a batch boundary",
                });
            }
        };
        let kept = all
            .get(..usize::try_from(cut).unwrap_or(usize::MAX))
            .unwrap_or(&[]);
        // The producer table as recovery would rebuild it: the previous
        // sealed segment's snapshot (nothing for a partition's first
        // segment), then the kept batches.
        let mut producers = match &before {
            Some(seg) => {
                let count = seg.header.producer_count;
                seg.with_index(|b| super::producer::ProducerTable::decode(b.producers, count))?
                    .ok_or_else(|| LogError::CorruptFile {
                        path: seg.idx_path.clone(),
                        reason: "bad producer snapshot",
                    })?
            }
            None if base == 0 => super::producer::ProducerTable::default(),
            None => {
                let mut t = w.producers.clone();
                t.forget_from(offset);
                t
            }
        };
        let (builder, scan_end) =
            super::recovery::index_bytes(kept, base, s.index_interval_bytes, &mut producers);
        if scan_end.error.is_some() || scan_end.next_offset != offset {
            return Err(LogError::CorruptFile {
                path,
                reason: "the kept prefix of the segment does not end at the truncation offset",
            });
        }
        // Files after the kept segment go newest first (and the kept
        // segment's index last), so that a crash in between leaves a
        // contiguous run of segments whose last one recovery opens as the
        // active segment: a longer log, consistent, never a hole.
        for f in &later {
            match std::fs::remove_file(f) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io(f, e)),
            }
        }
        if !later.is_empty() {
            io::sync_dir(&s.dir).map_err(|e| LogError::io(&s.dir, e))?;
        }
        let tmp = atomic_file::tmp_path(&path);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| LogError::io(&tmp, e))?;
        s.io.write_all_at(&file, &tmp, kept, 0)
            .map_err(|e| LogError::io(&tmp, e))?;
        s.io.sync(&file, &tmp).map_err(|e| LogError::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| LogError::io(&path, e))?;
        io::sync_dir(&s.dir).map_err(|e| LogError::io(&s.dir, e))?;
        // Log time never decreases, and the kept prefix decides it: the last
        // kept batch's time, or the previous segment's if none is kept here.
        let before_last = before.as_ref().map_or(0, |l| l.header.last_time_ms);
        let last_time_ms = scan_end.last_time_ms.max(before_last);
        let new = super::writer::open_active(s, base, file, cut, builder)?;
        new.visible_len.store(cut, Ordering::Release);
        w.active = new.clone();
        w.write_pos = cut;
        w.next_offset = offset;
        w.last_time_ms = last_time_ms;
        w.producers = producers;
        {
            let mut segs = locking::write(&self.segments);
            segs.sealed.retain(|&b, _| b < base);
            segs.active = new.clone();
        }
        // Later seals must write the partition-level producer snapshot again.
        *locking::lock(&self.snapshot_offset) = 0;
        written.segment = new;
        written.write_pos = cut;
        written.next_offset = offset;
        self.progress.truncated(offset);
        drop(written);
        Ok(())
    }
}
