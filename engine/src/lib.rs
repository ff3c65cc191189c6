//! Dropline's runtime: workers pinned to cores that own partitions and run
//! the fused operator chain over the log, with bounded batch queues,
//! checkpoints, tick records, drop mode and a metrics registry.
//!
//! The core is sans-IO, in the manner of a protocol state machine: the
//! merge scheduler ([`merge`]) and the partition task ([`task`]) take
//! batches and log times in and return effects (append these output
//! batches, request a tick, save this checkpoint). The worker threads that
//! read the real log, append, fsync and pin cores are a thin driver around
//! them, and the deterministic simulation in the tests drives the same core
//! with a simulated log, clock and faults.

pub mod affinity;
pub mod checkpoint;
pub mod cluster;
pub mod control;
pub mod engine;
pub mod error;
pub mod input;
pub mod merge;
pub mod metrics;
pub mod output;
pub mod processor;
pub mod task;
pub mod tick;

pub mod chain_processor;

mod log_input;
mod worker;

pub use chain_processor::{ChainFactory, ChainProcessor};
pub use checkpoint::{CheckpointError, CheckpointState, CheckpointStore, DirCheckpointStore};
pub use control::{ControlRecord, DropSchedule, TICK_VALUE, append_control, request_drop_mode};
pub use engine::{
    Engine, EngineConfig, OutputGate, ensure_topics, input_partitions, worker_for_partition,
};
pub use error::EngineError;
pub use input::{BatchMeta, InputBatch, InputKind, InputRecord, SourceRef};
pub use merge::{InputPosition, Merger, Readiness};
pub use metrics::Metrics;
pub use output::{OutputBatch, OutputSequences, OutputSink, OutputTopic};
pub use processor::{DataRecord, Processor, ProcessorFactory};
pub use task::{Effect, PartitionTask, StepOutput, StepResult, TaskConfig};
