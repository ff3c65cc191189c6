//! The worker thread and its output stage: the thin driver around the
//! sans-IO partition tasks.
//!
//! A worker is pinned to a core and owns a set of partition tasks. It reads
//! input batches from the log (zero-copy views of the mapped segments) into
//! each task's bounded queues, steps the tasks, and hands each step's
//! effects to its output stage over a bounded crossbeam channel: one
//! message per input batch, never one per event.
//!
//! The output stage (one thread per worker, `worker/output_stage.rs`) appends
//! each step's output batches, publishes the step once they are durable,
//! saves checkpoints in order, and waits out a full disk.
//!
//! Backpressure: when the output stage falls behind (slow disk, stalled
//! output partition, a full disk it waits out), the channel fills, the
//! worker blocks on `send` and stops reading; the backlog stays in the log
//! as lag. Memory is bounded by the task queues (`queue_batches_max` views
//! per input) plus the channel (`inflight_steps_max` steps) plus the
//! pending steps (`pending_durable_steps_max`).
//!
//! A tick the worker requests on a full disk is refused by the log; it is
//! skipped (counted in `tick_requests_refused_total`) and requested again
//! later, since the task asks again while the input holds back ready data.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Sender, TrySendError};
use dropline_log::{BatchView, LogError, Partition};

use crate::checkpoint::CheckpointStore;
use crate::engine::EngineConfig;
use crate::error::EngineError;
use crate::input::{INPUT_COUNT, InputKind};
use crate::metrics::Metrics;
use crate::output::{OUTPUT_TOPIC_COUNT, OutputTopic};
use crate::processor::Processor;
use crate::task::{Effect, PartitionTask, StepResult};
use crate::tick::{append_tick, wall_ms};
use output_stage::{Stage, StageMsg};

pub(crate) mod output_stage;

const R: Ordering = Ordering::Relaxed;

/// How often a worker measures its partitions' state size (a gauge), ms.
const STATE_SAMPLE_INTERVAL_MS: u64 = 250;

/// A partition task with the log partitions of its inputs.
pub(crate) struct Slot<P> {
    pub(crate) task: PartitionTask<P, BatchView>,
    pub(crate) inputs: [Arc<Partition>; INPUT_COUNT],
    /// After a tick request refused by a full disk, none is appended
    /// before this (see [`TICK_REFUSED_PAUSE_MS`]).
    pub(crate) ticks_paused_until: Option<Instant>,
}

/// How long a partition's tick requests are skipped after the log refused
/// one on a full disk, in ms: the task asks again every
/// `tick_request_interval_ms`, and each refusal may cost the log a probe.
pub(crate) const TICK_REFUSED_PAUSE_MS: u64 = 100;

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

    pub(crate) fn get(
        &self,
        topic: OutputTopic,
        partition: u32,
    ) -> Result<&Arc<Partition>, EngineError> {
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
        let (metrics, outputs, gate, stop) = (
            metrics.clone(),
            outputs.clone(),
            config.output_gate.clone(),
            stop.clone(),
        );
        let pending_max = config.pending_durable_steps_max.max(1);
        let name = format!("dropline-output-{id}");
        std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                if let Some(cpu) = core {
                    // Share the worker's core: the stage mostly waits.
                    let _ = crate::affinity::pin_current_thread(cpu);
                }
                Stage::new(
                    id,
                    &outputs,
                    &*store,
                    &metrics,
                    gate.as_deref(),
                    &stop,
                    pending_max,
                )
                .run(&rx)
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
    let mut state_sampled_ms: u64 = 0;
    while !stop.load(Ordering::Acquire) {
        let now_ms = wall_ms();
        let mut worked = false;
        let mut wait_on: Option<(Arc<Partition>, u64)> = None;
        // Measuring state walks every case journal: a gauge, so a few
        // times a second is enough (it was once per idle turn, which under
        // a trickle of input is once per arriving batch).
        let sample_state = now_ms.saturating_sub(state_sampled_ms) >= STATE_SAMPLE_INTERVAL_MS;
        if sample_state {
            state_sampled_ms = now_ms;
        }
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
                if sample_state {
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
    slot: &mut Slot<P>,
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
                let paused = slot
                    .ticks_paused_until
                    .is_some_and(|until| Instant::now() < until);
                if config.tick_requests && !paused {
                    match append_tick(&slot.inputs[input.index()]) {
                        Ok(()) => {
                            if let Some(w) = metrics.worker(id) {
                                w.tick_requests_total.fetch_add(1, R);
                            }
                        }
                        // A full disk: the task asks again while the input
                        // holds back ready data.
                        Err(e) if e.is_storage_full() => {
                            slot.ticks_paused_until =
                                Some(Instant::now() + Duration::from_millis(TICK_REFUSED_PAUSE_MS));
                            if let Some(w) = metrics.worker(id) {
                                w.tick_requests_refused_total.fetch_add(1, R);
                            }
                        }
                        Err(e) => return Err(e.into()),
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
