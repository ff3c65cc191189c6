//! Dropline's storage engine: topics, partitions, memory-mapped segments,
//! CRC'd batches, offset/time/key indexes, group-commit fsync, recovery,
//! retention and consumers. It knows nothing of shipments.
//!
//! Why a log and not a database: every downstream view is derived by
//! replaying it, so the log must be the one thing that is never wrong. An
//! append is acknowledged only when the fdatasync covering it is done
//! (by default); readers see only durable data; corruption is detected by
//! CRC32C and reported with the file and byte offset; recovery after a
//! crash truncates a torn tail and does work bounded by one segment per
//! partition. The formats and the crash analysis are in docs/FORMAT.md.
//!
//! Entry points: [`Log::open`], [`Log::partition`], [`Partition::append`],
//! [`Partition::read`], [`Partition::lookup_key`], [`verify`],
//! [`decode_batch`].

mod atomic_file;
mod batch;
mod config;
mod consumer;
mod error;
mod io;
mod limits;
mod locking;
mod log;
mod mmap;
mod partition;
mod segment;
mod syncer;
mod topic;
mod verify;
mod view;

pub use atomic_file::write_atomic;
pub use batch::{
    ATTR_CONTROL, ATTR_PRODUCER, AppendAck, AppendRequest, BATCH_FORMAT_VERSION,
    BATCH_FORMAT_VERSION_MIN, BATCH_HEADER_BYTES, BATCH_MAGIC, BatchPeek, BatchRef, ProducerSeq,
    RECORD_HEADER_BYTES, Record, RecordIter, RecordView, decode_batch,
};
pub use config::{Clock, Durability, IoMode, LogConfig, SystemClock, TopicConfig};
pub use error::{BatchError, DamagedDurable, LogError, is_storage_full};
pub use io::{FaultInjector, IoBackend, PwriteReason};
pub use limits::*;
pub use log::{Log, RetentionReport};
pub use partition::progress::{DataReady, Durable};
pub use partition::recovery::{PartitionRecovery, RecoveryReport, Truncation};
pub use partition::{
    DeletedSegment, OwnedRecord, Partition, PartitionInfo, RetentionReason, encode_unplaced_batch,
};
pub use segment::index::key_hash;
pub use topic::TopicInfo;
pub use verify::{Problem, ProblemKind, VerifyReport, verify};
pub use view::BatchView;
