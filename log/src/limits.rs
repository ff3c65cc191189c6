//! Every bound the log enforces, in one place, with its unit in its name.
//!
//! Why one module: a reader auditing "what is the largest thing this log
//! accepts" should find every answer here rather than scattered through the
//! write path. Configurable bounds live in `LogConfig`/`TopicConfig`; these
//! are the fixed ones, mostly tied to field widths of the on-disk format.

/// Largest key a record may carry. The key length is a `u16` on disk; keys
/// are tracking numbers, far shorter than this.
pub const KEY_BYTES_MAX: usize = 1024;

/// Largest record (key plus value) accepted by an append.
pub const RECORD_BYTES_MAX: usize = 1024 * 1024;

/// Largest encoded batch (header, record headers, keys and values).
pub const BATCH_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Most records one batch may carry.
pub const BATCH_RECORDS_MAX: usize = 100_000;

/// Smallest allowed `segment_bytes_max` (keeps tests able to roll often while
/// refusing nonsense such as a zero-byte segment).
pub const SEGMENT_BYTES_MAX_MIN: u64 = 4 * 1024;

/// Largest allowed `segment_bytes_max`. File positions inside a segment are
/// `u32` in the index files, and a segment may overshoot its maximum by at
/// most one batch, so the cap leaves room for [`BATCH_BYTES_MAX`].
pub const SEGMENT_BYTES_MAX_LIMIT: u64 = 2 * 1024 * 1024 * 1024;

/// Default maximum segment size. Recovery scans the active segment, so this
/// bounds recovery work per partition; 128 MiB keeps it well under a second
/// from the page cache.
pub const SEGMENT_BYTES_MAX_DEFAULT: u64 = 128 * 1024 * 1024;

/// Default spacing of sparse offset/time index entries, in segment bytes.
pub const INDEX_INTERVAL_BYTES_DEFAULT: u32 = 4096;

/// Default retention by age: 30 days.
pub const RETENTION_MS_DEFAULT: u64 = 30 * 24 * 60 * 60 * 1000;

/// Most partitions one topic may have.
pub const PARTITIONS_MAX: u32 = 4096;

/// Longest topic or consumer-group name, in bytes.
pub const NAME_BYTES_MAX: usize = 200;

/// Most distinct producers whose sequence state one partition remembers.
/// When a new producer would exceed it, the producer that appended least
/// recently is forgotten (its next batch is then accepted as a first batch).
pub const PRODUCERS_PER_PARTITION_MAX: usize = 8192;

/// How many of a producer's most recent batches are remembered, so that a
/// retry of any of them is answered with its original offsets.
pub const PRODUCER_RECENT_BATCHES_MAX: usize = 5;

/// Default interval for `Durability::Interval`, in milliseconds.
pub const SYNC_INTERVAL_MS_DEFAULT: u64 = 100;

/// Default `LogConfig::storage_full_probe_interval_ms`: how often appends
/// to a partition refused for a full disk check whether space returned.
pub const STORAGE_FULL_PROBE_INTERVAL_MS_DEFAULT: u64 = 100;

/// Bytes written (and fdatasynced, then removed) in a partition directory
/// to check that a full disk has room again before its writer resumes.
pub const STORAGE_FULL_PROBE_BYTES: usize = 64 * 1024;
