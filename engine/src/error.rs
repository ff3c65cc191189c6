//! Typed errors of the engine's driver.

use dropline_log::LogError;

use crate::checkpoint::CheckpointError;
use crate::task::TaskError;

/// Errors starting or running the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The log failed (read, append, durability).
    #[error("log error: {source}")]
    Log {
        /// The error.
        #[from]
        source: LogError,
    },
    /// Loading or saving a checkpoint failed.
    #[error("checkpoint error: {source}")]
    Checkpoint {
        /// The error.
        #[from]
        source: CheckpointError,
    },
    /// The processor could not be restored from its snapshot.
    #[error("partition {partition}: restoring the processor failed: {source}")]
    Restore {
        /// The partition.
        partition: u32,
        /// The processor's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A partition task refused its input.
    #[error("{source}")]
    Task {
        /// The error.
        #[from]
        source: TaskError,
    },
    /// The input topics do not have matching partition counts.
    #[error("topic {topic} has {partitions} partitions, expected {expected}")]
    PartitionMismatch {
        /// The topic.
        topic: String,
        /// Its partition count.
        partitions: u32,
        /// The count of `carrier-events`.
        expected: u32,
    },
    /// A configuration value is out of range.
    #[error("invalid engine configuration {field}: {reason}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// A thread could not be started.
    #[error("starting thread {name} failed: {source}")]
    Spawn {
        /// The thread's name.
        name: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A worker or output-stage thread panicked.
    #[error("thread {name} panicked")]
    Panicked {
        /// The thread's name.
        name: String,
    },
    /// The engine was stopped while a worker's output stage waited for disk
    /// space: the steps whose outputs were not durable were not
    /// checkpointed, and the next start replays them from the last
    /// checkpoint.
    #[error(
        "worker {worker} stopped while the disk was full: {steps_not_durable} steps' outputs were not durable; \
         the next start replays them from the last checkpoint"
    )]
    StoppedWhileStorageFull {
        /// The worker.
        worker: usize,
        /// Steps waiting for their outputs to be durable.
        steps_not_durable: usize,
    },
    /// The output stage of a worker stopped while the worker was sending.
    #[error("the output stage of worker {worker} stopped")]
    OutputStageGone {
        /// The worker.
        worker: usize,
    },
}
