//! The worker thread and its output stage: the thin driver around the
//! sans-IO partition tasks.
//!
//! A worker is pinned to a core and owns a set of partition tasks. It reads
//! input batches from the log (zero-copy views of the mapped segments) into
//! each task's bounded queues, steps the tasks, and hands each step's
//! effects to its output stage over a bounded crossbeam channel: one
//! message per input batch, never one per event.
//!
//! The output stage (one thread per worker) appends each step's output
//! batches with their producer ids and sequences, keeps up to
//! `pending_durable_steps_max` steps waiting for the log's group-commit
//! fdatasync, and only then publishes the step's input offsets as processed.
//! A checkpoint message is carried out after every earlier step is durable.
//!
//! Backpressure: when the output stage falls behind (slow disk, stalled
//! output partition), the channel fills, the worker blocks on `send` and
//! stops reading; the backlog stays in the log as lag. Memory is bounded by
//! the task queues (`queue_batches_max` views per input) plus the channel
//! (`inflight_steps_max` steps) plus the pending steps.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use dropline_log::{AppendRequest, BatchView, Durable, LogError, Partition};

use crate::checkpoint::{CheckpointState, CheckpointStore};
use crate::engine::{EngineConfig, OutputGate};
use crate::error::EngineError;
use crate::input::{INPUT_COUNT, InputKind};
use crate::merge::InputPosition;
use crate::metrics::{LATENCY_PUBLISH_EVERY_STEPS, Metrics, latency_histogram};
use crate::output::{OUTPUT_TOPIC_COUNT, OutputTopic};
use crate::processor::Processor;
use crate::task::{Effect, PartitionTask, StepOutput, StepResult};
use crate::tick::{append_tick, wall_ms};

const R: Ordering = Ordering::Relaxed;

/// A partition task with the log partitions of its inputs.
pub(crate) struct Slot<P> {
    pub(crate) task: PartitionTask<P, BatchView>,
    pub(crate) inputs: [Arc<Partition>; INPUT_COUNT],
}

/// The output partitions, by topic index then partition.
#[derive(Debug)]
pub(crate) struct OutputPartitions {
    by_topic: Vec<Vec<Arc<Partition>>>,
}

impl OutputPartitions {
    pub(crate) fn new(by_topic: Vec<Vec<Arc<Partition>>>) -> Self {
        debug_assert_eq!(by_topic.len(), OUTPUT_TOPIC_COUNT);
        OutputPartitions { by_topic }
    }

    fn get(&self, topic: OutputTopic, partition: u32) -> Result<&Arc<Partition>, EngineError> {
        self.by_topic
            .get(topic.index())
            .and_then(|v| v.get(partition as usize))
            .ok_or_else(|| EngineError::Log {
                source: LogError::PartitionNotFound {
                    topic: topic.name(),
                    partition,
                    partitions: self
                        .by_topic
                        .get(topic.index())
                        .map_or(0, |v| v.len() as u32),
                },
            })
    }
}

/// Everything a worker thread needs.
pub(crate) struct WorkerSetup<P> {
    pub(crate) id: usize,
    pub(crate) core: Option<usize>,
    pub(crate) slots: Vec<Slot<P>>,
    pub(crate) config: EngineConfig,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) stop: Arc<AtomicBool>,
    pub(crate) outputs: Arc<OutputPartitions>,
    pub(crate) store: Arc<dyn CheckpointStore>,
}

enum StageMsg {
    Output { step: StepOutput, started: Instant },
    Checkpoint(Box<CheckpointState>),
}

/// Runs a worker until `stop` is set, then checkpoints its partitions.
pub(crate) fn run_worker<P: Processor>(setup: WorkerSetup<P>) -> Result<(), EngineError> {
    let WorkerSetup {
        id,
        core,
        mut slots,
        config,
        metrics,
        stop,
        outputs,
        store,
    } = setup;
    if let Some(cpu) = core
        && let Err(e) = crate::affinity::pin_current_thread(cpu)
    {
        tracing::warn!(worker = id, cpu, error = %e, "pinning the worker to its core failed; running unpinned");
    }
    let capacity = config.inflight_steps_max.max(1);
    if let Some(w) = metrics.worker(id) {
        w.queue_capacity.store(capacity as u64, R);
    }
    let (tx, rx) = crossbeam_channel::bounded::<StageMsg>(capacity);
    let stage = {
        let (metrics, outputs, gate) =
            (metrics.clone(), outputs.clone(), config.output_gate.clone());
        let pending_max = config.pending_durable_steps_max.max(1);
        let name = format!("dropline-output-{id}");
        std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                if let Some(cpu) = core {
                    // Share the worker's core: the stage mostly waits.
                    let _ = crate::affinity::pin_current_thread(cpu);
                }
                run_output_stage(
                    id,
                    &rx,
                    &outputs,
                    &*store,
                    &metrics,
                    gate.as_deref(),
                    pending_max,
                )
            })
            .map_err(|source| EngineError::Spawn { name, source })?
    };
    let result = worker_loop(id, &mut slots, &config, &metrics, &stop, &tx);
    drop(tx);
    let stage_result = stage.join().unwrap_or_else(|_| {
        Err(EngineError::Panicked {
            name: format!("dropline-output-{id}"),
        })
    });
    metrics.signal();
    // The stage's own error explains a worker's `OutputStageGone`.
    match (result, stage_result) {
        (Err(EngineError::OutputStageGone { .. }), Err(e)) | (Ok(()), Err(e)) | (Err(e), _) => {
            Err(e)
        }
        (Ok(()), Ok(())) => Ok(()),
    }
}

fn worker_loop<P: Processor>(
    id: usize,
    slots: &mut [Slot<P>],
    config: &EngineConfig,
    metrics: &Metrics,
    stop: &AtomicBool,
    tx: &Sender<StageMsg>,
) -> Result<(), EngineError> {
    let mut effects = Vec::new();
    let idle_wait = Duration::from_millis(config.idle_wait_ms.max(1));
    let mut turns: u64 = 0;
    while !stop.load(Ordering::Acquire) {
        let now_ms = wall_ms();
        let mut worked = false;
        let mut wait_on: Option<(Arc<Partition>, u64)> = None;
        turns += 1;
        for slot in slots.iter_mut() {
            read_inputs(slot, config.read_bytes_max, metrics)?;
            for _ in 0..config.steps_per_turn.max(1) {
                let started = Instant::now();
                let r = slot.task.step(now_ms, &mut effects);
                dispatch(id, slot, &mut effects, started, config, metrics, tx)?;
                match r {
                    StepResult::Processed { .. } => worked = true,
                    StepResult::Blocked { waiting_on } => {
                        if wait_on.is_none() {
                            let p = slot.inputs[waiting_on.index()].clone();
                            wait_on = Some((p, slot.task.read_offset(waiting_on)));
                        }
                        break;
                    }
                    StepResult::Idle => {
                        if wait_on.is_none() {
                            let input = InputKind::CarrierEvents;
                            let p = slot.inputs[input.index()].clone();
                            wait_on = Some((p, slot.task.read_offset(input)));
                        }
                        break;
                    }
                }
            }
            if let Some(m) = metrics.partition(slot.task.partition()) {
                m.pending_batches
                    .store(slot.task.pending_batches() as u64, R);
                if turns.is_multiple_of(64) || !worked {
                    m.state_bytes
                        .store(slot.task.processor().state_bytes() as u64, R);
                }
            }
        }
        if !worked && let Some((p, offset)) = wait_on {
            let t = Instant::now();
            let _ = p.wait_for_data(offset, idle_wait);
            if let Some(w) = metrics.worker(id) {
                w.idle_us_total.fetch_add(t.elapsed().as_micros() as u64, R);
            }
        }
    }
    // Shutdown: checkpoint whatever moved since the last checkpoint.
    for slot in slots.iter_mut() {
        if slot.task.dirty() {
            slot.task.checkpoint(&mut effects);
            dispatch(id, slot, &mut effects, Instant::now(), config, metrics, tx)?;
        }
    }
    Ok(())
}

/// Reads each input whose queue has room, from where reading stopped.
fn read_inputs<P: Processor>(
    slot: &mut Slot<P>,
    read_bytes_max: usize,
    metrics: &Metrics,
) -> Result<(), EngineError> {
    let m = metrics.partition(slot.task.partition());
    for input in InputKind::ALL {
        let part = &slot.inputs[input.index()];
        if let Some(m) = m {
            m.end_offset[input.index()].store(part.next_offset(), R);
        }
        let Some(from) = slot.task.wants(input) else {
            continue;
        };
        if from >= part.durable_offset() {
            continue;
        }
        for batch in part.read(from, read_bytes_max)? {
            if slot.task.wants(input).is_none() {
                break;
            }
            slot.task.offer(input, batch)?;
        }
        if let Some(m) = m {
            m.read_offset[input.index()].store(slot.task.read_offset(input), R);
        }
    }
    Ok(())
}

/// Carries out a task's effects: outputs and checkpoints go to the output
/// stage (blocking when it is full: backpressure), ticks to the log.
fn dispatch<P: Processor>(
    id: usize,
    slot: &Slot<P>,
    effects: &mut Vec<Effect>,
    started: Instant,
    config: &EngineConfig,
    metrics: &Metrics,
    tx: &Sender<StageMsg>,
) -> Result<(), EngineError> {
    for effect in effects.drain(..) {
        let msg = match effect {
            Effect::Output(step) => {
                if let Some(w) = metrics.worker(id) {
                    w.queue_fill.fetch_add(1, R);
                }
                StageMsg::Output { step, started }
            }
            Effect::Checkpoint(state) => StageMsg::Checkpoint(state),
            Effect::RequestTick { input, .. } => {
                if config.tick_requests {
                    append_tick(&slot.inputs[input.index()])?;
                    if let Some(w) = metrics.worker(id) {
                        w.tick_requests_total.fetch_add(1, R);
                    }
                }
                continue;
            }
        };
        match tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(msg)) => {
                if let Some(w) = metrics.worker(id) {
                    w.output_stalls_total.fetch_add(1, R);
                }
                metrics.signal();
                tx.send(msg)
                    .map_err(|_| EngineError::OutputStageGone { worker: id })?;
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(EngineError::OutputStageGone { worker: id });
            }
        }
    }
    Ok(())
}

/// A step whose outputs are appended and not yet known durable.
struct Pending {
    durables: Vec<Durable>,
    partition: u32,
    inputs: [InputPosition; INPUT_COUNT],
    records_in: u64,
    started: Instant,
}

struct Stage<'a> {
    id: usize,
    metrics: &'a Metrics,
    latency: hdrhistogram::Histogram<u64>,
    unpublished: u64,
}

impl Stage<'_> {
    fn complete(&mut self, p: Pending) -> Result<(), EngineError> {
        for d in p.durables {
            d.wait()?;
        }
        if let Some(m) = self.metrics.partition(p.partition) {
            for (i, pos) in p.inputs.iter().enumerate() {
                m.processed_offset[i].store(pos.next_offset, R);
            }
            m.events_total.fetch_add(p.records_in, R);
        }
        if let Some(w) = self.metrics.worker(self.id) {
            w.events_total.fetch_add(p.records_in, R);
            w.batches_total.fetch_add(1, R);
            w.queue_fill.fetch_sub(1, R);
        }
        let us = u64::try_from(p.started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let _ = self
            .latency
            .record(us.clamp(1, crate::metrics::LATENCY_US_MAX));
        self.unpublished += 1;
        if self.unpublished >= LATENCY_PUBLISH_EVERY_STEPS
            && self.metrics.try_publish_latency(self.id, &self.latency)
        {
            self.latency.reset();
            self.unpublished = 0;
        }
        self.metrics.signal();
        Ok(())
    }

    fn flush_latency(&mut self) {
        if self.unpublished > 0 && self.metrics.try_publish_latency(self.id, &self.latency) {
            self.latency.reset();
            self.unpublished = 0;
        }
    }
}

fn run_output_stage(
    id: usize,
    rx: &Receiver<StageMsg>,
    outputs: &OutputPartitions,
    store: &dyn CheckpointStore,
    metrics: &Metrics,
    gate: Option<&dyn OutputGate>,
    pending_max: usize,
) -> Result<(), EngineError> {
    let mut stage = Stage {
        id,
        metrics,
        latency: latency_histogram(),
        unpublished: 0,
    };
    let mut pending: VecDeque<Pending> = VecDeque::new();
    loop {
        let msg = if pending.is_empty() {
            stage.flush_latency();
            match rx.recv() {
                Ok(m) => m,
                Err(_) => break,
            }
        } else {
            match rx.try_recv() {
                Ok(m) => m,
                Err(TryRecvError::Empty) => {
                    // Nothing new: wait for the oldest step's fdatasync.
                    if let Some(p) = pending.pop_front() {
                        stage.complete(p)?;
                    }
                    continue;
                }
                Err(TryRecvError::Disconnected) => break,
            }
        };
        match msg {
            StageMsg::Output { step, started } => {
                let mut durables = Vec::with_capacity(step.batches.len());
                for b in &step.batches {
                    if let Some(g) = gate {
                        g.before_append(b.topic, b.partition);
                    }
                    let part = outputs.get(b.topic, b.partition)?;
                    // One allocation per output batch, not per record.
                    let mut records = Vec::with_capacity(b.len());
                    b.log_records(&mut records);
                    let res = part.append_pending(&AppendRequest {
                        records: &records,
                        producer: Some(b.producer),
                    });
                    let w = metrics.worker(id);
                    if let Some(w) = w {
                        w.output_batches_total.fetch_add(1, R);
                    }
                    match res {
                        Ok((ack, durable)) => {
                            if ack.duplicate
                                && let Some(w) = w
                            {
                                w.output_duplicates_total.fetch_add(1, R);
                            }
                            durables.push(durable);
                        }
                        // Older than the acks the log remembers: it was
                        // appended before, and is not appended again.
                        Err(LogError::StaleSequence { .. }) => {
                            if let Some(w) = w {
                                w.output_duplicates_total.fetch_add(1, R);
                            }
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                pending.push_back(Pending {
                    durables,
                    partition: step.partition,
                    inputs: step.inputs,
                    records_in: step.records_in,
                    started,
                });
                while let Some(front) = pending.front() {
                    let ready = front.durables.iter().all(Durable::is_durable);
                    if !ready && pending.len() <= pending_max {
                        break;
                    }
                    if let Some(p) = pending.pop_front() {
                        stage.complete(p)?;
                    }
                }
            }
            StageMsg::Checkpoint(state) => {
                while let Some(p) = pending.pop_front() {
                    stage.complete(p)?;
                }
                store.save(&state)?;
                if let Some(m) = metrics.partition(state.partition) {
                    m.checkpoints_total.fetch_add(1, R);
                    m.last_checkpoint_log_ms.store(state.log_time_ms, R);
                    m.last_checkpoint_unix_ms.store(wall_ms(), R);
                }
                metrics.signal();
            }
        }
    }
    while let Some(p) = pending.pop_front() {
        stage.complete(p)?;
    }
    stage.flush_latency();
    if stage.unpublished > 0 {
        // A reader held the lock at every try: wait for it this once.
        while !metrics.try_publish_latency(id, &stage.latency) {
            std::thread::yield_now();
        }
    }
    Ok(())
}
