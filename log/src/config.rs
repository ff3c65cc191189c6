//! Configuration of a log and of its topics, and the injectable clock.
//!
//! Why the clock is injected: log time (the append time stamped on every
//! batch) drives every downstream decision, so tests must be able to set it.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::io::FaultInjector;
use crate::limits::{
    INDEX_INTERVAL_BYTES_DEFAULT, RETENTION_MS_DEFAULT, SEGMENT_BYTES_MAX_DEFAULT,
    STORAGE_FULL_PROBE_INTERVAL_MS_DEFAULT,
};

/// When an append counts as acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// The default. `append` returns only after the fdatasync that covers
    /// the batch; concurrent appenders share one fdatasync (group commit).
    /// Readers see only fdatasync'd data.
    #[default]
    Fsync,
    /// `append` returns once the batch is written to the page cache; a
    /// background thread fdatasyncs every `interval_ms`. Readers see data
    /// once it is fdatasync'd, so they lag by up to the interval; a crash
    /// can lose up to the interval's acknowledged appends.
    Interval {
        /// Milliseconds between fdatasyncs.
        interval_ms: u64,
    },
    /// No fdatasync at all (benchmarks only): appends and readers run on the
    /// page cache; a machine crash loses anything the kernel had not written.
    None,
}

/// Source of wall-clock time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync {
    /// Current time in milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// Which I/O path appends use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoMode {
    /// Probe io_uring at open and fall back to `pwrite` if it is unusable.
    #[default]
    Auto,
    /// Always use `pwrite`/`fdatasync` (tests of the fallback path).
    Pwrite,
}

/// Configuration of a [`crate::Log`].
#[derive(Clone)]
pub struct LogConfig {
    /// The data directory (created if missing).
    pub dir: PathBuf,
    /// When appends are acknowledged.
    pub durability: Durability,
    /// Default maximum segment size for topics that do not set their own.
    pub segment_bytes_max: u64,
    /// Spacing of sparse offset/time index entries, in segment bytes.
    pub index_interval_bytes: u32,
    /// Cold store that receives sealed segments before retention deletes
    /// them; `Partition::lookup_key` and `Partition::read_archive` read it.
    pub archive_dir: Option<PathBuf>,
    /// I/O path selection.
    pub io_mode: IoMode,
    /// The clock that stamps log time.
    pub clock: Arc<dyn Clock>,
    /// Test hook: makes chosen writes or fdatasyncs fail.
    pub fault_injector: Option<Arc<dyn FaultInjector>>,
    /// While a partition refuses appends because the disk is full, an
    /// append checks for space at most this often, in milliseconds; the
    /// others are refused at once.
    pub storage_full_probe_interval_ms: u64,
    /// Zero-fill every segment to `segment_bytes_max` before appending to
    /// it (the first one when a partition is created, the next ones in the
    /// background as a spare that a roll renames into place), so that an
    /// append's fdatasync flushes data only instead of also committing the
    /// file system's journal for a growing file. Costs one segment of disk
    /// per partition ahead of the data and the zero writes themselves;
    /// off by default (docs/FORMAT.md, "Preallocated segments").
    pub preallocate_segments: bool,
}

impl LogConfig {
    /// A configuration with the defaults: fsync durability, 128 MiB
    /// segments, 4 KiB index interval, no archive, io_uring if available,
    /// the system clock.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LogConfig {
            dir: dir.into(),
            durability: Durability::Fsync,
            segment_bytes_max: SEGMENT_BYTES_MAX_DEFAULT,
            index_interval_bytes: INDEX_INTERVAL_BYTES_DEFAULT,
            archive_dir: None,
            io_mode: IoMode::Auto,
            clock: Arc::new(SystemClock),
            fault_injector: None,
            storage_full_probe_interval_ms: STORAGE_FULL_PROBE_INTERVAL_MS_DEFAULT,
            preallocate_segments: false,
        }
    }
}

impl fmt::Debug for LogConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogConfig")
            .field("dir", &self.dir)
            .field("durability", &self.durability)
            .field("segment_bytes_max", &self.segment_bytes_max)
            .field("index_interval_bytes", &self.index_interval_bytes)
            .field("archive_dir", &self.archive_dir)
            .field("io_mode", &self.io_mode)
            .field("fault_injector", &self.fault_injector.is_some())
            .field(
                "storage_full_probe_interval_ms",
                &self.storage_full_probe_interval_ms,
            )
            .field("preallocate_segments", &self.preallocate_segments)
            .finish_non_exhaustive()
    }
}

/// Configuration of a topic, fixed at creation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicConfig {
    /// Number of partitions (1..=[`crate::PARTITIONS_MAX`]).
    pub partitions: u32,
    /// Delete sealed segments whose newest record is older than this
    /// (default 30 days); `None` keeps them regardless of age.
    pub retention_ms: Option<u64>,
    /// Delete the oldest sealed segments while a partition holds more than
    /// this many bytes; `None` for no size limit.
    pub retention_bytes: Option<u64>,
    /// Maximum segment size for this topic; `None` uses the log's default.
    pub segment_bytes_max: Option<u64>,
}

impl TopicConfig {
    /// A topic with `partitions` partitions and default retention.
    pub fn new(partitions: u32) -> Self {
        TopicConfig {
            partitions,
            retention_ms: Some(RETENTION_MS_DEFAULT),
            retention_bytes: None,
            segment_bytes_max: None,
        }
    }
}

impl Default for TopicConfig {
    fn default() -> Self {
        TopicConfig::new(1)
    }
}
