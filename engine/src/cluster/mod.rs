//! Replicated partitions: each partition is its own Raft group, run by
//! TiKV's raft-rs, with the partition log itself as the Raft log.
//!
//! Why raft-rs: its `RawNode`/`Ready` interface is sans-IO (messages,
//! entries to persist and committed entries come out as values; time comes
//! in as ticks), like the rest of this crate, so a seeded simulation can
//! drive it deterministically; it is the consensus of TiKV, tested there
//! for years. Why not openraft: its core runs on async tasks and owns
//! storage and network through async traits, which a deterministic
//! single-threaded simulation would have to fight. The reasoning and what
//! is built are in docs/ARCHITECTURE.md, "Cluster".
//!
//! Map: [`entry`] (one entry = one batch), [`state`] (hard state and leader
//! epochs in one atomic file), [`log_store`] (the partition as a Raft log
//! with an unsynced tail), [`storage`] (raft-rs's `Storage` and the
//! persistence order), [`replica`] (the driver: propose, step, ready,
//! sync, acks). No sockets and no clock: the node (not built yet) and the
//! simulation (`engine/tests/cluster_sim.rs`) move the messages.

pub mod entry;
pub mod log_store;
pub mod replica;
pub mod state;
pub mod storage;

use std::path::PathBuf;

pub use log_store::{PartitionReplicaLog, ProducerCheck};
pub use replica::{Ack, Proposal, Replica, ReplicaConfig};
pub use state::{ReplicaState, StateFile};
pub use storage::ReplicaStorage;

/// Errors of a replica.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The partition log failed.
    #[error("log error: {0}")]
    Log(#[from] dropline_log::LogError),
    /// raft-rs refused an operation.
    #[error("raft error: {0}")]
    Raft(#[from] raft::Error),
    /// Reading or writing the state file failed.
    #[error("replica state file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The state file is damaged or does not match the log.
    #[error("replica state file {path} is damaged or does not match the log")]
    CorruptState {
        /// The file.
        path: PathBuf,
    },
    /// A stored entry does not decode as a batch.
    #[error("entry {index} is not a valid batch: {source}")]
    BadEntry {
        /// Raft index.
        index: u64,
        /// The decoding error.
        source: dropline_log::BatchError,
    },
    /// An entry that should be in the log is not.
    #[error("entry {index} is not in the log")]
    Unavailable {
        /// Raft index.
        index: u64,
    },
    /// Raft handed over entries that do not continue the log.
    #[error("entries start at index {got}, the log continues at {expected}")]
    Gap {
        /// The index the log expects.
        expected: u64,
        /// The index received.
        got: u64,
    },
    /// Something the replicated partition does not support yet.
    #[error("not supported yet: {what}")]
    Unsupported {
        /// What.
        what: &'static str,
    },
}
