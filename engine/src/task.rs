//! The partition task: the sans-IO state machine that owns one partition.
//!
//! It takes batches read from its three inputs, merges them
//! deterministically ([`crate::merge`]), runs the processor over one input
//! batch per [`PartitionTask::step`], and returns effects for the driver to
//! carry out in order:
//!
//! - [`Effect::Output`]: the output batches cut from that input batch (with
//!   their producer ids and sequences) and the input positions after it;
//! - [`Effect::Checkpoint`]: a checkpoint to save once every earlier
//!   `Output` is durable;
//! - [`Effect::RequestTick`]: ask the node for a tick on an input whose
//!   frontier holds back a ready batch (rate-bounded by the wall time the
//!   driver passes in; this never influences outputs, only latency).
//!
//! Why this shape: everything that decides (merge order, timers, drop mode,
//! output sequencing, checkpoint points) is in here and depends only on the
//! batches, so a replay decides the same, and a simulation can drive it
//! with a fake log, a fake clock and injected crashes.

use crate::checkpoint::CheckpointState;
use crate::control::{ControlRecord, DropSchedule};
use crate::input::{INPUT_COUNT, InputBatch, InputKind, SourceRef};
use crate::merge::{InputPosition, MergeError, Merger, Readiness};
use crate::output::{
    OUTPUT_BATCH_BYTES_MAX, OUTPUT_BATCH_RECORDS_MAX, OutputBatch, OutputSequences, OutputSink,
    OutputTopic,
};
use crate::processor::{DataRecord, Processor};

/// Settings of a partition task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskConfig {
    /// The partition.
    pub partition: u32,
    /// Partitions of the input topics.
    pub partitions: u32,
    /// Batches queued per input before reading stops.
    pub queue_batches_max: usize,
    /// Save a checkpoint after this many processed input batches...
    pub checkpoint_every_batches: u64,
    /// ...or after this much log time since the last one, whichever first.
    pub checkpoint_every_log_ms: u64,
    /// At most one tick request per input per this many wall-clock ms.
    pub tick_request_interval_ms: u64,
}

impl TaskConfig {
    /// Defaults for `partition` of `partitions`.
    pub fn new(partition: u32, partitions: u32) -> Self {
        TaskConfig {
            partition,
            partitions,
            queue_batches_max: 16,
            checkpoint_every_batches: 5_000,
            checkpoint_every_log_ms: 10_000,
            tick_request_interval_ms: 1,
        }
    }
}

/// What the driver must do, in order.
#[derive(Debug)]
pub enum Effect {
    /// Append these batches (possibly none) and, once they are durable,
    /// count the step's inputs as processed.
    Output(StepOutput),
    /// Save this checkpoint once every earlier `Output` is durable.
    Checkpoint(Box<CheckpointState>),
    /// Append a tick to this input's partition.
    RequestTick {
        /// The partition task.
        partition: u32,
        /// The input.
        input: InputKind,
    },
}

/// The outputs of one processed input batch.
#[derive(Debug)]
pub struct StepOutput {
    /// The partition task.
    pub partition: u32,
    /// Number of this step since the partition's first start (1-based).
    pub step: u64,
    /// The input the batch came from.
    pub input: InputKind,
    /// Records in the input batch.
    pub records_in: u64,
    /// Log time of the input batch.
    pub log_time_ms: u64,
    /// Input positions after this step.
    pub inputs: [InputPosition; INPUT_COUNT],
    /// The output batches (empty if the batch produced nothing).
    pub batches: Vec<OutputBatch>,
}

/// What one call to [`PartitionTask::step`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepResult {
    /// Processed one input batch.
    Processed {
        /// Its input.
        input: InputKind,
        /// Its records.
        records: u64,
    },
    /// A batch is pending but `waiting_on` could still get an earlier one.
    Blocked {
        /// The input to read (or tick).
        waiting_on: InputKind,
    },
    /// Nothing pending.
    Idle,
}

/// Errors of a partition task.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// A batch broke the inputs' ordering guarantees.
    #[error("partition {partition}: {source}")]
    Merge {
        /// The partition.
        partition: u32,
        /// What broke.
        #[source]
        source: MergeError,
    },
}

/// The state machine owning one partition.
#[derive(Debug)]
pub struct PartitionTask<P, B> {
    config: TaskConfig,
    processor: P,
    merger: Merger<B>,
    processed: [InputPosition; INPUT_COUNT],
    sequences: OutputSequences,
    sink: OutputSink,
    drop: DropSchedule,
    batches_processed: u64,
    log_time_ms: u64,
    last_tick_ms: u64,
    batches_since_checkpoint: u64,
    checkpoint_log_ms: u64,
    tick_requested_at_ms: [Option<u64>; INPUT_COUNT],
    /// Reused buffer for a batch's data records (always empty between
    /// steps).
    records_scratch: Vec<DataRecord<'static>>,
}

impl<P: Processor, B: InputBatch> PartitionTask<P, B> {
    /// A task with a fresh processor, starting at the beginning of every
    /// input.
    pub fn new(config: TaskConfig, processor: P) -> Self {
        Self::build(config, processor, None)
    }

    /// A task resuming from a checkpoint, with the processor restored from
    /// its snapshot.
    pub fn resume(config: TaskConfig, processor: P, checkpoint: &CheckpointState) -> Self {
        Self::build(config, processor, Some(checkpoint))
    }

    fn build(config: TaskConfig, processor: P, ck: Option<&CheckpointState>) -> Self {
        let processed = ck.map_or([InputPosition::default(); INPUT_COUNT], |c| c.inputs);
        let log_time_ms = ck.map_or(0, |c| c.log_time_ms);
        PartitionTask {
            config,
            processor,
            merger: Merger::new(processed, config.queue_batches_max),
            processed,
            sequences: ck.map_or_else(OutputSequences::default, |c| c.sequences),
            sink: OutputSink::default(),
            drop: ck.map_or_else(DropSchedule::default, |c| c.drop),
            batches_processed: ck.map_or(0, |c| c.batches_processed),
            log_time_ms,
            last_tick_ms: ck.map_or(0, |c| c.last_tick_ms),
            batches_since_checkpoint: 0,
            checkpoint_log_ms: log_time_ms,
            tick_requested_at_ms: [None; INPUT_COUNT],
            records_scratch: Vec::new(),
        }
    }

    /// The partition.
    pub fn partition(&self) -> u32 {
        self.config.partition
    }

    /// The processor.
    pub fn processor(&self) -> &P {
        &self.processor
    }

    /// The offset to read `input` from, if its queue has room.
    pub fn wants(&self, input: InputKind) -> Option<u64> {
        self.merger
            .has_room(input)
            .then(|| self.merger.read_offset(input))
    }

    /// The offset reading of `input` has reached.
    pub fn read_offset(&self, input: InputKind) -> u64 {
        self.merger.read_offset(input)
    }

    /// Positions of the processed prefix of each input.
    pub fn processed(&self) -> [InputPosition; INPUT_COUNT] {
        self.processed
    }

    /// Batches read but not processed yet.
    pub fn pending_batches(&self) -> usize {
        self.merger.pending_total()
    }

    /// Input batches processed since the partition's first start.
    pub fn batches_processed(&self) -> u64 {
        self.batches_processed
    }

    /// Log time of the last processed batch.
    pub fn log_time_ms(&self) -> u64 {
        self.log_time_ms
    }

    /// Queues a batch read from `input`. Batches must arrive in offset order
    /// starting at [`PartitionTask::wants`]; a batch ending before it (a
    /// read that started inside an already-queued batch) is ignored.
    pub fn offer(&mut self, input: InputKind, batch: B) -> Result<(), TaskError> {
        let meta = batch.meta();
        if meta.last_offset < self.merger.read_offset(input) {
            return Ok(());
        }
        self.merger
            .push(input, meta, batch)
            .map_err(|source| TaskError::Merge {
                partition: self.config.partition,
                source,
            })
    }

    /// Processes the next input batch if its place in the merge order is
    /// proven; otherwise says which input holds it back and, at most once
    /// per `tick_request_interval_ms` of `now_ms` (wall time), requests a
    /// tick there.
    ///
    /// Only data held back asks for a tick: while nothing but ticks is
    /// pending, the idle ticker moves the frontiers instead. If ticks asked
    /// for ticks, every input's tick would ask the others for a later one,
    /// and the partitions would trade tick appends (each an fdatasync) for
    /// as long as the node runs. Which records get appended never changes
    /// the merge order of what is in the log, so this only moves latency,
    /// never decisions.
    pub fn step(&mut self, now_ms: u64, effects: &mut Vec<Effect>) -> StepResult {
        match self.merger.readiness() {
            Readiness::Idle => StepResult::Idle,
            Readiness::Blocked { waiting_on, .. } => {
                let data_waits = self.merger.has_pending_data();
                let slot = &mut self.tick_requested_at_ms[waiting_on.index()];
                let due = data_waits
                    && slot.is_none_or(|at| {
                        now_ms.saturating_sub(at) >= self.config.tick_request_interval_ms
                    });
                if due {
                    *slot = Some(now_ms);
                    effects.push(Effect::RequestTick {
                        partition: self.config.partition,
                        input: waiting_on,
                    });
                }
                StepResult::Blocked { waiting_on }
            }
            Readiness::Ready(input) => {
                let Some((meta, batch)) = self.merger.pop(input) else {
                    return StepResult::Idle;
                };
                let records = self.process(input, &batch);
                debug_assert_eq!(meta.base_offset, self.processed[input.index()].next_offset);
                self.processed[input.index()] = InputPosition {
                    next_offset: meta.last_offset + 1,
                    frontier_ms: meta.last_time_ms,
                };
                self.log_time_ms = self.log_time_ms.max(meta.last_time_ms);
                self.batches_processed += 1;
                self.batches_since_checkpoint += 1;
                self.emit_output(input, records, meta.last_time_ms, effects);
                if self.batches_since_checkpoint >= self.config.checkpoint_every_batches
                    || self.log_time_ms.saturating_sub(self.checkpoint_log_ms)
                        >= self.config.checkpoint_every_log_ms
                {
                    self.checkpoint(effects);
                }
                StepResult::Processed { input, records }
            }
        }
    }

    /// Runs the processor over one batch; returns its record count.
    fn process(&mut self, input: InputKind, batch: &B) -> u64 {
        let meta = batch.meta();
        let (processor, sink, drop) = (&mut self.processor, &mut self.sink, &mut self.drop);
        if let Some(on) = drop.transition(meta.first_time_ms) {
            processor.set_drop_mode(on, meta.first_time_ms, sink);
        }
        if meta.control {
            // Ticks: fire timers once per new log time.
            if meta.last_time_ms > self.last_tick_ms {
                self.last_tick_ms = meta.last_time_ms;
                processor.on_tick(meta.last_time_ms, sink);
            }
            return batch.record_count();
        }
        let partition = input.topic_partition(self.config.partition);
        let owner = self.config.partition;
        if input != InputKind::Control {
            // Data records go to the processor together (it may prefetch
            // state ahead); the scratch vector keeps its allocation.
            let mut records: Vec<DataRecord<'_>> = std::mem::take(&mut self.records_scratch);
            batch.for_each_record(&mut |r| {
                records.push(DataRecord {
                    src: SourceRef {
                        input,
                        partition,
                        offset: r.offset,
                        log_time_ms: r.log_time_ms,
                    },
                    key: r.key,
                    value: r.value,
                });
            });
            processor.on_records(&records, sink);
            let count = records.len() as u64;
            self.records_scratch = recycle(records);
            return count;
        }
        let mut count = 0u64;
        batch.for_each_record(&mut |r| {
            count += 1;
            let src = SourceRef {
                input,
                partition,
                offset: r.offset,
                log_time_ms: r.log_time_ms,
            };
            match ControlRecord::decode(r.value) {
                Ok(rec @ (ControlRecord::DropMode { .. } | ControlRecord::DropWindow { .. })) => {
                    drop.apply(&rec);
                    if let Some(on) = drop.transition(r.log_time_ms) {
                        processor.set_drop_mode(on, r.log_time_ms, sink);
                    }
                }
                Ok(rec) => processor.on_control(src, &rec, sink),
                Err(e) => {
                    // Every task reads `control`; partition 0's task alone
                    // keeps the bad record, so it is kept once.
                    if owner == 0 {
                        dead_letter_control(src, r.value, &e, sink);
                    }
                }
            }
        });
        count
    }

    fn emit_output(
        &mut self,
        input: InputKind,
        records_in: u64,
        log_time_ms: u64,
        effects: &mut Vec<Effect>,
    ) {
        let mut batches = Vec::new();
        self.sink.cut(
            self.config.partition,
            &mut self.sequences,
            OUTPUT_BATCH_BYTES_MAX,
            OUTPUT_BATCH_RECORDS_MAX,
            &mut batches,
        );
        effects.push(Effect::Output(StepOutput {
            partition: self.config.partition,
            step: self.batches_processed,
            input,
            records_in,
            log_time_ms,
            inputs: self.processed,
            batches,
        }));
    }

    /// The checkpoint of the current (processed) state.
    pub fn checkpoint_state(&self) -> CheckpointState {
        let mut processor = Vec::with_capacity(self.processor.state_bytes().min(1 << 26));
        self.processor.snapshot(&mut processor);
        CheckpointState {
            partition: self.config.partition,
            batches_processed: self.batches_processed,
            log_time_ms: self.log_time_ms,
            last_tick_ms: self.last_tick_ms,
            inputs: self.processed,
            drop: self.drop,
            sequences: self.sequences,
            processor,
        }
    }

    /// Emits a checkpoint of the current state now (e.g. at shutdown).
    pub fn checkpoint(&mut self, effects: &mut Vec<Effect>) {
        self.batches_since_checkpoint = 0;
        self.checkpoint_log_ms = self.log_time_ms;
        effects.push(Effect::Checkpoint(Box::new(self.checkpoint_state())));
    }

    /// Whether anything was processed since the last checkpoint.
    pub fn dirty(&self) -> bool {
        self.batches_since_checkpoint > 0
    }
}

/// Empties a batch's record buffer and keeps its allocation for the next
/// batch: an empty vector collected in place into the `'static` element
/// type (the records borrowed the batch, which is gone).
#[expect(
    clippy::unnecessary_filter_map,
    reason = "the filter_map changes the element lifetime; it keeps no element"
)]
fn recycle(mut records: Vec<DataRecord<'_>>) -> Vec<DataRecord<'static>> {
    records.clear();
    records.into_iter().filter_map(|_| None).collect()
}

/// Dead-letter value for a control record the engine could not read:
/// `engine:control:` + the reason, a NUL, then the original value.
fn dead_letter_control(
    src: SourceRef,
    value: &[u8],
    err: &crate::control::ControlDecodeError,
    sink: &mut OutputSink,
) {
    let key = format!("control/{}@{}", src.partition, src.offset);
    sink.push_with(OutputTopic::DeadLetters, key.as_bytes(), |out| {
        out.extend_from_slice(b"engine:control:");
        out.extend_from_slice(err.to_string().as_bytes());
        out.push(0);
        out.extend_from_slice(value);
    });
}
