//! One partition: an ordered sequence of segments with one writer.
//!
//! Why the state is split in three: the writer's mutex covers only the
//! append path (assign offsets and time, write, index); readers take a
//! short read lock on the segment list and then work on mapped memory
//! without any lock; waiters block on `Progress`. A reader never waits for
//! a write, and a write never waits for an fdatasync.

pub(crate) mod producer;
pub(crate) mod progress;
mod read;
pub(crate) mod recovery;
mod replica;
mod retention;
mod storage_full;
mod writer;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock, Weak};

use crate::config::{Clock, Durability};
use crate::io::DiskIo;
use crate::segment::{ActiveSegment, SealedSegment, SegmentRef};
use crate::syncer::SyncerShared;
use producer::ProducerTable;
use progress::Progress;
use writer::SyncSnapshot;

pub use read::OwnedRecord;
pub use replica::encode_unplaced_batch;
pub use retention::{DeletedSegment, RetentionReason};

/// Archived segments by base offset.
pub(crate) type ArchivedSegments = BTreeMap<u64, Arc<SealedSegment>>;

/// Settings a partition needs from its log and topic.
#[derive(Clone)]
pub(crate) struct PartitionSettings {
    pub(crate) topic: String,
    pub(crate) partition: u32,
    pub(crate) dir: PathBuf,
    pub(crate) archive_dir: Option<PathBuf>,
    pub(crate) segment_bytes_max: u64,
    pub(crate) index_interval_bytes: u32,
    pub(crate) durability: Durability,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) io: Arc<DiskIo>,
    pub(crate) syncer: Arc<SyncerShared>,
    /// See `LogConfig::storage_full_probe_interval_ms`.
    pub(crate) storage_full_probe_interval_ms: u64,
    /// See `LogConfig::preallocate_segments`.
    pub(crate) preallocate_segments: bool,
}

/// The writer's state, behind the writer mutex.
#[derive(Debug)]
pub(crate) struct Writer {
    pub(crate) active: Arc<ActiveSegment>,
    pub(crate) write_pos: u64,
    pub(crate) next_offset: u64,
    pub(crate) last_time_ms: u64,
    pub(crate) producers: ProducerTable,
}

/// The segments readers can see.
#[derive(Debug)]
pub(crate) struct Segments {
    pub(crate) sealed: BTreeMap<u64, Arc<SealedSegment>>,
    /// Rolled segments whose index file is being written; read like the
    /// active segment (in-memory indexes) until then.
    pub(crate) sealing: BTreeMap<u64, Arc<ActiveSegment>>,
    pub(crate) active: Arc<ActiveSegment>,
}

impl Segments {
    /// All segments in offset order, starting with the one holding `from`
    /// (or the first one).
    pub(crate) fn starting_at(&self, from: u64) -> Vec<SegmentRef> {
        let mut all: Vec<SegmentRef> = self
            .sealed
            .values()
            .map(|s| SegmentRef::Sealed(s.clone()))
            .chain(self.sealing.values().map(|a| SegmentRef::Active(a.clone())))
            .collect();
        all.sort_by_key(SegmentRef::base_offset);
        all.push(SegmentRef::Active(self.active.clone()));
        let first = all
            .iter()
            .rposition(|s| s.base_offset() <= from)
            .unwrap_or(0);
        all.split_off(first)
    }

    /// First offset still held by a segment.
    pub(crate) fn start_offset(&self) -> u64 {
        let sealed = self.sealed.keys().next().copied().unwrap_or(u64::MAX);
        let sealing = self.sealing.keys().next().copied().unwrap_or(u64::MAX);
        sealed.min(sealing).min(self.active.base_offset)
    }
}

/// A partition of a topic. Shared as `Arc<Partition>`; every method takes
/// `&self` and is safe to call from many threads.
pub struct Partition {
    pub(crate) settings: PartitionSettings,
    pub(crate) me: Weak<Partition>,
    pub(crate) writer: Mutex<Writer>,
    pub(crate) segments: RwLock<Segments>,
    pub(crate) progress: Arc<Progress>,
    /// How far the active segment is completely written (the syncer's
    /// next fdatasync target), published after each write.
    pub(crate) written: Mutex<SyncSnapshot>,
    /// Set while the partition sits in the syncer's queue.
    pub(crate) queued: AtomicBool,
    /// Archived segments, loaded on first use and dropped when retention
    /// archives more.
    pub(crate) archived: Mutex<Option<Arc<ArchivedSegments>>>,
    /// Offset of the newest producer snapshot file written.
    pub(crate) snapshot_offset: Mutex<u64>,
    /// The next segment, zero-filled ahead of the roll
    /// (`LogConfig::preallocate_segments`).
    pub(crate) spare: Option<crate::segment::prealloc::Spare>,
    /// Threads finishing seals of rolled segments (writer.rs), joined by
    /// `close_partition` and `truncate_to`.
    pub(crate) sealers: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Set while someone waits for the seals: they stop pacing their
    /// index writes (see `atomic_file::write_paced`).
    pub(crate) seals_hurry: AtomicBool,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition")
            .field("topic", &self.settings.topic)
            .field("partition", &self.settings.partition)
            .field("next_offset", &self.next_offset())
            .field("durable_offset", &self.durable_offset())
            .finish_non_exhaustive()
    }
}

/// Per-partition figures reported by `Log::topics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Partition number.
    pub partition: u32,
    /// First retained offset.
    pub start_offset: u64,
    /// Offset the next append gets.
    pub next_offset: u64,
    /// Everything below is durable.
    pub durable_offset: u64,
    /// Bytes in segment files (sealed plus active).
    pub bytes: u64,
    /// Number of segments (sealed plus the active one).
    pub segments: usize,
    /// Whether a failed write or fdatasync poisoned the writer.
    pub poisoned: bool,
}

impl Partition {
    /// The topic this partition belongs to.
    pub fn topic(&self) -> &str {
        &self.settings.topic
    }
    /// This partition's number.
    pub fn id(&self) -> u32 {
        self.settings.partition
    }
    /// Offset the next append gets.
    pub fn next_offset(&self) -> u64 {
        self.progress
            .next_offset
            .load(std::sync::atomic::Ordering::Acquire)
    }
    /// Everything below this offset is durable (`Fsync`, `Interval`) or
    /// written (`None`); readers see exactly this prefix.
    pub fn durable_offset(&self) -> u64 {
        self.progress.durable_offset()
    }
    /// First offset still retained (earlier ones were deleted or archived).
    pub fn start_offset(&self) -> u64 {
        self.progress
            .start_offset
            .load(std::sync::atomic::Ordering::Acquire)
    }
    /// Whether a failed write or fdatasync poisoned the writer.
    pub fn is_poisoned(&self) -> bool {
        self.progress.is_poisoned()
    }

    /// Figures for `Log::topics`.
    pub fn info(&self) -> PartitionInfo {
        let w = crate::locking::lock(&self.writer);
        let write_pos = w.write_pos;
        drop(w);
        let segs = crate::locking::read(&self.segments);
        let sealed_bytes: u64 = segs
            .sealed
            .values()
            .map(|s| s.header.segment_bytes)
            .sum::<u64>()
            + segs.sealing.values().map(|a| a.visible_len()).sum::<u64>();
        PartitionInfo {
            partition: self.id(),
            start_offset: self.start_offset(),
            next_offset: self.next_offset(),
            durable_offset: self.durable_offset(),
            bytes: sealed_bytes + write_pos,
            segments: segs.sealed.len() + segs.sealing.len() + 1,
            poisoned: self.is_poisoned(),
        }
    }
}
