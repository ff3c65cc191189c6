//! The output stage of a worker: appends each step's output batches,
//! publishes the step once they are durable, saves checkpoints in order,
//! and waits out a full disk.
//!
//! One stage thread per worker takes the worker's steps from a bounded
//! channel, appends their output batches with their producer ids and
//! sequences, keeps up to `pending_durable_steps_max` steps waiting for the
//! log's group-commit fdatasync, and only then publishes the steps' input
//! offsets as processed. A checkpoint is saved after every earlier step is
//! durable.
//!
//! Why a full disk is waited out here and not fatal: the log refuses
//! appends with `StorageFull` while the disk (or quota) is full and resumes
//! by itself once space returns (log/src/partition/storage_full.rs). A
//! stage that stopped at the first refusal would need a node restart for
//! something that clears by itself. So the stage keeps every step's output
//! batches until they are durable, and on a full disk (`StorageFull`, an
//! `ENOSPC`/`EDQUOT` I/O error from an append, a wait or a checkpoint save)
//! it stops taking steps, and retries, with a capped back-off
//! ([`STORAGE_FULL_RETRY_MS_MIN`] to [`STORAGE_FULL_RETRY_MS_MAX`]), one
//! round at a time:
//!
//! 1. settle every pending batch: wait for its handle; durable ones are
//!    done, the ones that failed (refused, or cut off when the log rewound
//!    to its durable prefix) are to be appended again;
//! 2. append those again, oldest step first and each step's batches in
//!    order, with the same producer ids and sequences: within one output
//!    partition the batches that are not durable are a suffix of what was
//!    sent, so they go back in sequence order, and the log's idempotent
//!    producer answers any that did land as duplicates;
//! 3. wait until every pending step is durable and publish them.
//!
//! A round that meets the full disk again ends, and the next one starts
//! after the back-off, so a full disk costs one log probe per back-off, not
//! a spinning core. Meanwhile the worker finds the channel full and stops
//! reading input: the backlog stays in the log as lag. No checkpoint is
//! saved while a step before it is not durable, so a crash while waiting
//! replays from the last checkpoint, as after any crash.
//!
//! A batch of a later step may be appended while an earlier one to the same
//! partition waits for its fdatasync (that is what keeps the disk busy).
//! If the log rewinds in between, cutting the earlier one off, the log
//! refuses the later one as out of order instead of appending it behind the
//! gap (the producer table, log/src/partition/producer.rs); the stage then
//! recovers as above. Only a gap that no cut-off batch explains stops the
//! worker, like every other error (a poisoned partition, a corrupt
//! checkpoint directory).
//!
//! What settling assumes: a handle made before a rewind tells whether its
//! batch was durable then only while the log remembers that rewind (its
//! last 16 per partition); older, it fails as if cut off, and the batch is
//! appended again. Every round settles every handle, and a partition is
//! rewound at most once per probe of a refused append, so that takes
//! sixteen rewinds of one partition by other appenders between two rounds
//! (at most `STORAGE_FULL_RETRY_MS_MAX` apart); only `dead-letters` has
//! other appenders.
//!
//! Stopping the engine while the stage waits ends the wait without the
//! final checkpoint ([`EngineError::StoppedWhileStorageFull`]); the restart
//! replays the steps that were not durable.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};
use dropline_log::{AppendRequest, Durable, LogError};

use crate::checkpoint::{CheckpointError, CheckpointState, CheckpointStore};
use crate::engine::OutputGate;
use crate::error::EngineError;
use crate::metrics::{LATENCY_PUBLISH_EVERY_STEPS, Metrics, latency_histogram};
use crate::task::StepOutput;
use crate::tick::wall_ms;
use crate::worker::OutputPartitions;

const R: Ordering = Ordering::Relaxed;

/// First pause before the output stage retries after a full disk, in ms;
/// doubled after every failed round up to [`STORAGE_FULL_RETRY_MS_MAX`].
pub(crate) const STORAGE_FULL_RETRY_MS_MIN: u64 = 10;
/// Longest pause between two retries on a full disk, in ms: how long the
/// outputs may lag behind the disk's return (plus the log's own
/// `storage_full_probe_interval_ms`).
pub(crate) const STORAGE_FULL_RETRY_MS_MAX: u64 = 500;
/// Longest single sleep while waiting, in ms, so that a stop is noticed.
const STOP_CHECK_MS: u64 = 50;

/// A message from a worker to its output stage.
pub(crate) enum StageMsg {
    /// Append a step's outputs; publish the step once they are durable.
    Output {
        /// The step.
        step: StepOutput,
        /// When its input batch was taken for processing.
        started: Instant,
    },
    /// Save a checkpoint once every earlier step is durable.
    Checkpoint(Box<CheckpointState>),
}

/// Where one output batch of a pending step stands.
enum Sent {
    /// Not appended yet, or refused or cut off by a full disk: to append.
    No,
    /// Appended; durable once the handle completes.
    Waiting(Durable),
    /// Durable (or the log already held it).
    Done,
}

/// A step whose outputs are not all known durable. Its batches are kept
/// until they are, so that a full disk can be waited out.
struct Pending {
    step: StepOutput,
    sent: Vec<Sent>,
    started: Instant,
}

impl Pending {
    fn ready(&self) -> bool {
        self.sent.iter().all(|s| match s {
            Sent::Done => true,
            Sent::Waiting(d) => d.is_durable(),
            Sent::No => false,
        })
    }
}

/// Whether `e` says the disk or the quota is full: the stage waits for
/// space and retries.
pub(crate) fn waits_for_space(e: &EngineError) -> bool {
    match e {
        EngineError::Log { source } => source.is_storage_full(),
        EngineError::Checkpoint {
            source: CheckpointError::Io { source, .. },
        } => dropline_log::is_storage_full(source),
        _ => false,
    }
}

/// The output stage's state.
pub(crate) struct Stage<'a> {
    id: usize,
    outputs: &'a OutputPartitions,
    store: &'a dyn CheckpointStore,
    metrics: &'a Metrics,
    gate: Option<&'a dyn OutputGate>,
    stop: &'a AtomicBool,
    pending_max: usize,
    pending: VecDeque<Pending>,
    latency: hdrhistogram::Histogram<u64>,
    unpublished: u64,
}

impl<'a> Stage<'a> {
    pub(crate) fn new(
        id: usize,
        outputs: &'a OutputPartitions,
        store: &'a dyn CheckpointStore,
        metrics: &'a Metrics,
        gate: Option<&'a dyn OutputGate>,
        stop: &'a AtomicBool,
        pending_max: usize,
    ) -> Self {
        Stage {
            id,
            outputs,
            store,
            metrics,
            gate,
            stop,
            pending_max: pending_max.max(1),
            pending: VecDeque::new(),
            latency: latency_histogram(),
            unpublished: 0,
        }
    }

    /// Runs until the worker closes the channel (then completes what is
    /// pending) or an error stops it.
    pub(crate) fn run(mut self, rx: &Receiver<StageMsg>) -> Result<(), EngineError> {
        loop {
            let msg = if self.pending.is_empty() {
                self.flush_latency();
                match rx.recv() {
                    Ok(m) => m,
                    Err(_) => break,
                }
            } else {
                match rx.try_recv() {
                    Ok(m) => m,
                    Err(TryRecvError::Empty) => {
                        // Nothing new: wait for the oldest step's fdatasync.
                        self.complete_front_or_wait()?;
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => break,
                }
            };
            match msg {
                StageMsg::Output { step, started } => {
                    let sent = (0..step.batches.len()).map(|_| Sent::No).collect();
                    self.pending.push_back(Pending {
                        step,
                        sent,
                        started,
                    });
                    let last = self.pending.len() - 1;
                    if let Err(e) = self.send(last) {
                        self.recover(e)?;
                    }
                    while let Some(front) = self.pending.front() {
                        if !front.ready() && self.pending.len() <= self.pending_max {
                            break;
                        }
                        self.complete_front_or_wait()?;
                    }
                }
                StageMsg::Checkpoint(state) => {
                    while !self.pending.is_empty() {
                        self.complete_front_or_wait()?;
                    }
                    if let Err(e) = self.store.save(&state) {
                        let e = EngineError::from(e);
                        if !waits_for_space(&e) {
                            return Err(e);
                        }
                        self.wait_for_space(e, |s| s.store.save(&state).map_err(Into::into))?;
                    }
                    if let Some(m) = self.metrics.partition(state.partition) {
                        m.checkpoints_total.fetch_add(1, R);
                        m.last_checkpoint_log_ms.store(state.log_time_ms, R);
                        m.last_checkpoint_unix_ms.store(wall_ms(), R);
                    }
                    self.metrics.signal();
                }
            }
        }
        while !self.pending.is_empty() {
            self.complete_front_or_wait()?;
        }
        self.flush_latency();
        if self.unpublished > 0 {
            // A reader held the lock at every try: wait for it this once.
            while !self.metrics.try_publish_latency(self.id, &self.latency) {
                std::thread::yield_now();
            }
        }
        Ok(())
    }

    /// Completes the oldest pending step, waiting out a full disk.
    fn complete_front_or_wait(&mut self) -> Result<(), EngineError> {
        match self.complete_front() {
            Ok(()) => Ok(()),
            Err(e) => self.recover(e),
        }
    }

    /// Appends the batches of pending step `i` that are not appended yet,
    /// in order; stops at the first failure.
    fn send(&mut self, i: usize) -> Result<(), EngineError> {
        let (outputs, gate, metrics, id) = (self.outputs, self.gate, self.metrics, self.id);
        let Some(p) = self.pending.get_mut(i) else {
            return Ok(());
        };
        let mut records = Vec::new();
        for (b, sent) in p.step.batches.iter().zip(p.sent.iter_mut()) {
            if !matches!(sent, Sent::No) {
                continue;
            }
            if let Some(g) = gate {
                g.before_append(b.topic, b.partition);
            }
            let part = outputs.get(b.topic, b.partition)?;
            b.log_records(&mut records);
            let res = part.append_pending(&AppendRequest {
                records: &records,
                producer: Some(b.producer),
            });
            let w = metrics.worker(id);
            match res {
                Ok((ack, durable)) => {
                    if let Some(w) = w {
                        w.output_batches_total.fetch_add(1, R);
                        if ack.duplicate {
                            w.output_duplicates_total.fetch_add(1, R);
                        }
                    }
                    *sent = Sent::Waiting(durable);
                }
                // Older than the acks the log remembers: it was appended
                // before (and is durable: the log keeps only durable
                // batches in its window after a full disk), and is not
                // appended again.
                Err(LogError::StaleSequence { .. }) => {
                    if let Some(w) = w {
                        w.output_batches_total.fetch_add(1, R);
                        w.output_duplicates_total.fetch_add(1, R);
                    }
                    *sent = Sent::Done;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Waits for the batches of pending step `i` that were appended: the
    /// durable ones are done, those a full disk refused or cut off are to
    /// be appended again. Returns the first error that is not a full disk.
    fn settle(&mut self, i: usize) -> Result<(), EngineError> {
        let Some(p) = self.pending.get_mut(i) else {
            return Ok(());
        };
        for sent in &mut p.sent {
            if let Sent::Waiting(_) = sent
                && let Sent::Waiting(d) = std::mem::replace(sent, Sent::No)
            {
                match d.wait() {
                    Ok(()) => *sent = Sent::Done,
                    Err(e) if e.is_storage_full() => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    /// Waits until the oldest pending step's outputs are durable and
    /// publishes it.
    fn complete_front(&mut self) -> Result<(), EngineError> {
        self.settle(0)?;
        let Some(front) = self.pending.front() else {
            return Ok(());
        };
        if let Some((b, _)) = front
            .step
            .batches
            .iter()
            .zip(&front.sent)
            .find(|(_, s)| !matches!(s, Sent::Done))
        {
            return Err(EngineError::Log {
                source: LogError::StorageFull {
                    topic: b.topic.name(),
                    partition: b.partition,
                    cause: "an output batch was refused or removed unacknowledged".into(),
                },
            });
        }
        if let Some(p) = self.pending.pop_front() {
            self.published(p);
        }
        Ok(())
    }

    /// Publishes a step whose outputs are all durable.
    fn published(&mut self, p: Pending) {
        if let Some(m) = self.metrics.partition(p.step.partition) {
            for (i, pos) in p.step.inputs.iter().enumerate() {
                m.processed_offset[i].store(pos.next_offset, R);
            }
            m.events_total.fetch_add(p.step.records_in, R);
        }
        if let Some(w) = self.metrics.worker(self.id) {
            w.events_total.fetch_add(p.step.records_in, R);
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
    }

    fn flush_latency(&mut self) {
        if self.unpublished > 0 && self.metrics.try_publish_latency(self.id, &self.latency) {
            self.latency.reset();
            self.unpublished = 0;
        }
    }

    /// One retry round over every pending step: settle, append again what
    /// is not durable (in order), wait until all are durable.
    fn round(&mut self) -> Result<(), EngineError> {
        for i in 0..self.pending.len() {
            self.settle(i)?;
        }
        for i in 0..self.pending.len() {
            self.send(i)?;
        }
        while !self.pending.is_empty() {
            self.complete_front()?;
        }
        Ok(())
    }

    /// Handles an error met while appending or completing steps: a full
    /// disk (or a batch refused because an earlier one was cut off by the
    /// log's rewind after one) is waited out, anything else is returned.
    fn recover(&mut self, e: EngineError) -> Result<(), EngineError> {
        if !self.waits(&e) {
            return Err(e);
        }
        self.wait_for_space(e, Stage::round)
    }

    /// Whether the stage waits and retries after `e`: a full disk, or a
    /// batch the log refused as out of order because the batch before it,
    /// still pending here, was cut off by a rewind after a full disk.
    fn waits(&self, e: &EngineError) -> bool {
        match e {
            EngineError::Log {
                source:
                    LogError::OutOfOrderSequence {
                        producer_id,
                        expected,
                        ..
                    },
            } => self.holds_unsettled(*producer_id, *expected),
            e => waits_for_space(e),
        }
    }

    /// Whether a pending batch of `producer_id` with `sequence` is not
    /// known durable (a rewind after a full disk may have cut it off).
    fn holds_unsettled(&self, producer_id: u64, sequence: u64) -> bool {
        self.pending.iter().any(|p| {
            p.step.batches.iter().zip(&p.sent).any(|(b, s)| {
                b.producer.producer_id == producer_id
                    && b.producer.sequence == sequence
                    && !matches!(s, Sent::Done)
            })
        })
    }

    /// Waits out a full disk: `attempt` is retried with a capped back-off
    /// until it succeeds, fails otherwise, or the engine stops.
    fn wait_for_space(
        &mut self,
        first: EngineError,
        mut attempt: impl FnMut(&mut Self) -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        let since = Instant::now();
        let w = self.metrics.worker(self.id);
        if let Some(w) = w {
            w.output_storage_full_waits_total.fetch_add(1, R);
            w.output_blocked_storage_full.store(1, R);
        }
        self.metrics.signal();
        tracing::warn!(
            worker = self.id,
            pending_steps = self.pending.len(),
            error = %first,
            "disk full: engine outputs wait for space; the worker stops reading input until they are durable"
        );
        let mut backoff_ms = STORAGE_FULL_RETRY_MS_MIN;
        let mut rounds: u64 = 0;
        let result = loop {
            if self.stop.load(Ordering::Acquire) {
                break Err(EngineError::StoppedWhileStorageFull {
                    worker: self.id,
                    steps_not_durable: self.pending.len(),
                });
            }
            self.pause(Duration::from_millis(backoff_ms));
            backoff_ms = (backoff_ms * 2).min(STORAGE_FULL_RETRY_MS_MAX);
            rounds += 1;
            match attempt(self) {
                Ok(()) => break Ok(()),
                Err(e) if self.waits(&e) => {
                    tracing::debug!(worker = self.id, error = %e, "disk still full");
                }
                Err(e) => break Err(e),
            }
        };
        if let Some(w) = w {
            w.output_blocked_storage_full.store(0, R);
        }
        self.metrics.signal();
        let waited_ms = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX);
        match &result {
            Ok(()) => tracing::info!(
                worker = self.id,
                waited_ms,
                rounds,
                "disk has room again: engine outputs resumed"
            ),
            Err(e) => tracing::warn!(
                worker = self.id,
                waited_ms,
                error = %e,
                "engine outputs stopped waiting for disk space"
            ),
        }
        result
    }

    /// Sleeps for `d`, in slices, returning early when the engine stops.
    fn pause(&self, d: Duration) {
        let until = Instant::now() + d;
        while !self.stop.load(Ordering::Acquire) {
            let Some(left) = until.checked_duration_since(Instant::now()) else {
                return;
            };
            std::thread::sleep(left.min(Duration::from_millis(STOP_CHECK_MS)));
        }
    }
}
