//! Starting and stopping the engine: topics, partition assignment,
//! checkpoint restore, worker threads and the idle ticker.
//!
//! Why partitions are assigned by `p % workers` at start only: state and
//! checkpoints are per partition, so a restart with another worker count
//! simply hands each partition's checkpoint to its new owner; nothing is
//! moved while running, and no two workers ever own one partition.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;
use dropline_log::{Log, LogError, Partition, TopicConfig};

use crate::checkpoint::{CheckpointStore, DirCheckpointStore};
use crate::error::EngineError;
use crate::input::{CARRIER_EVENTS_TOPIC, CONTROL_TOPIC, INPUT_COUNT, InputKind, ORDERS_TOPIC};
use crate::metrics::Metrics;
use crate::output::OutputTopic;
use crate::processor::ProcessorFactory;
use crate::task::{PartitionTask, TaskConfig};
use crate::worker::{OutputPartitions, Slot, WorkerSetup, run_worker};

/// A test hook called by the output stage before each output append; a
/// test can block in it to stall the outputs.
pub trait OutputGate: Send + Sync + std::fmt::Debug {
    /// Called before appending a batch to `topic`/`partition`.
    fn before_append(&self, topic: OutputTopic, partition: u32);
}

/// Engine settings. Every bound is here with its unit.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Worker threads, one per core.
    pub workers: u32,
    /// Pin each worker to a core (best effort).
    pub pin_cores: bool,
    /// Directory of the partition checkpoints.
    pub checkpoint_dir: PathBuf,
    /// Bytes read from an input partition per read.
    pub read_bytes_max: usize,
    /// Input batches queued per input of a partition before reading stops.
    pub queue_batches_max: usize,
    /// Steps queued from a worker to its output stage (the bounded channel).
    pub inflight_steps_max: usize,
    /// Steps the output stage lets wait for their fdatasync before it waits.
    pub pending_durable_steps_max: usize,
    /// Input batches one partition processes per turn of its worker.
    pub steps_per_turn: usize,
    /// Checkpoint a partition after this many input batches...
    pub checkpoint_every_batches: u64,
    /// ...or this much log time, whichever comes first.
    pub checkpoint_every_log_ms: u64,
    /// Append a tick to input partitions idle this long; `None` disables
    /// the idle ticker (tests over a recorded log).
    pub tick_interval_ms: Option<u64>,
    /// Whether workers append ticks on inputs that hold back ready data.
    pub tick_requests: bool,
    /// Longest a worker with nothing to do waits for new input at a time.
    pub idle_wait_ms: u64,
    /// Test hook on output appends.
    pub output_gate: Option<Arc<dyn OutputGate>>,
}

impl EngineConfig {
    /// Defaults: `workers` workers pinned to cores, checkpoints in `dir`.
    pub fn new(workers: u32, checkpoint_dir: impl Into<PathBuf>) -> Self {
        EngineConfig {
            workers,
            pin_cores: true,
            checkpoint_dir: checkpoint_dir.into(),
            read_bytes_max: 1024 * 1024,
            queue_batches_max: 16,
            inflight_steps_max: 64,
            pending_durable_steps_max: 32,
            steps_per_turn: 16,
            checkpoint_every_batches: 5_000,
            checkpoint_every_log_ms: 10_000,
            tick_interval_ms: Some(1_000),
            tick_requests: true,
            idle_wait_ms: 5,
            output_gate: None,
        }
    }

    fn validate(&self) -> Result<(), EngineError> {
        let bad = |field, reason| Err(EngineError::InvalidConfig { field, reason });
        if self.workers == 0 {
            return bad("workers", "must be at least 1");
        }
        if self.queue_batches_max == 0 || self.inflight_steps_max == 0 {
            return bad("queue_batches_max/inflight_steps_max", "must be at least 1");
        }
        if self.read_bytes_max == 0 {
            return bad("read_bytes_max", "must be at least 1");
        }
        Ok(())
    }
}

/// The partition count of the input topics (that of `carrier-events`),
/// checked against `orders`.
pub fn input_partitions(log: &Log) -> Result<u32, EngineError> {
    let topics = log.topics();
    let count = |name: &str| {
        topics
            .iter()
            .find(|t| t.name == name)
            .map(|t| t.config.partitions)
            .ok_or_else(|| LogError::TopicNotFound {
                topic: name.to_string(),
            })
    };
    let expected = count(CARRIER_EVENTS_TOPIC)?;
    let orders = count(ORDERS_TOPIC)?;
    if orders != expected {
        return Err(EngineError::PartitionMismatch {
            topic: ORDERS_TOPIC.into(),
            partitions: orders,
            expected,
        });
    }
    Ok(expected)
}

fn ensure_topic(log: &Log, name: &str, partitions: u32) -> Result<(), EngineError> {
    if let Some(t) = log.topics().into_iter().find(|t| t.name == name) {
        if t.config.partitions != partitions {
            return Err(EngineError::PartitionMismatch {
                topic: name.into(),
                partitions: t.config.partitions,
                expected: partitions,
            });
        }
        return Ok(());
    }
    log.create_topic(name, TopicConfig::new(partitions))?;
    Ok(())
}

/// Creates every topic the engine reads or writes that is missing: the
/// inputs with `partitions` partitions (`control` with one), and the
/// outputs (`dead-letters` with one).
pub fn ensure_topics(log: &Log, partitions: u32) -> Result<(), EngineError> {
    ensure_topic(log, CARRIER_EVENTS_TOPIC, partitions)?;
    ensure_topic(log, ORDERS_TOPIC, partitions)?;
    ensure_topic(log, CONTROL_TOPIC, 1)?;
    for t in OutputTopic::all() {
        ensure_topic(log, &t.name(), if t.partitioned() { partitions } else { 1 })?;
    }
    Ok(())
}

/// The worker that owns partition `p` with `workers` workers.
pub fn worker_for_partition(p: u32, workers: u32) -> usize {
    (p % workers.max(1)) as usize
}

/// The idle ticker's stop channel and thread.
type Ticker = (Sender<()>, JoinHandle<Result<(), LogError>>);

/// A running engine.
#[derive(Debug)]
pub struct Engine {
    workers: Vec<(String, JoinHandle<Result<(), EngineError>>)>,
    ticker: Option<Ticker>,
    stop: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    partitions: u32,
}

impl Engine {
    /// Starts the engine over `log`: creates missing topics, loads each
    /// partition's checkpoint (or starts it fresh), assigns partitions to
    /// workers and starts the workers and the idle ticker.
    pub fn start<F: ProcessorFactory>(
        log: &Log,
        config: EngineConfig,
        factory: Arc<F>,
    ) -> Result<Engine, EngineError> {
        config.validate()?;
        let partitions = input_partitions(log)?;
        ensure_topics(log, partitions)?;
        let store: Arc<dyn CheckpointStore> =
            Arc::new(DirCheckpointStore::open(&config.checkpoint_dir)?);
        let metrics = Arc::new(Metrics::new(config.workers, partitions));
        let outputs = Arc::new(OutputPartitions::new(
            OutputTopic::all()
                .map(|t| {
                    let n = if t.partitioned() { partitions } else { 1 };
                    (0..n)
                        .map(|p| log.partition(&t.name(), p))
                        .collect::<Result<Vec<_>, _>>()
                })
                .collect::<Result<Vec<_>, _>>()?,
        ));
        let mut per_worker: Vec<Vec<Slot<F::Processor>>> =
            (0..config.workers).map(|_| Vec::new()).collect();
        for p in 0..partitions {
            let task_config = TaskConfig {
                queue_batches_max: config.queue_batches_max,
                checkpoint_every_batches: config.checkpoint_every_batches,
                checkpoint_every_log_ms: config.checkpoint_every_log_ms,
                ..TaskConfig::new(p, partitions)
            };
            let task = match store.load(p)? {
                Some(ck) => {
                    let processor = factory.restore(p, partitions, &ck.processor).map_err(|e| {
                        EngineError::Restore {
                            partition: p,
                            source: Box::new(e),
                        }
                    })?;
                    if let Some(m) = metrics.partition(p) {
                        for (i, pos) in ck.inputs.iter().enumerate() {
                            m.processed_offset[i].store(pos.next_offset, Ordering::Relaxed);
                        }
                        m.last_checkpoint_log_ms
                            .store(ck.log_time_ms, Ordering::Relaxed);
                    }
                    PartitionTask::resume(task_config, processor, &ck)
                }
                None => PartitionTask::new(task_config, factory.create(p, partitions)),
            };
            let inputs: [Arc<Partition>; INPUT_COUNT] = [
                log.partition(CONTROL_TOPIC, 0)?,
                log.partition(ORDERS_TOPIC, InputKind::Orders.topic_partition(p))?,
                log.partition(
                    CARRIER_EVENTS_TOPIC,
                    InputKind::CarrierEvents.topic_partition(p),
                )?,
            ];
            let w = worker_for_partition(p, config.workers);
            if let Some(m) = metrics.partition(p) {
                m.worker.store(w as u64, Ordering::Relaxed);
            }
            per_worker[w].push(Slot {
                task,
                inputs,
                ticks_paused_until: None,
            });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let allowed = crate::affinity::allowed_cpus();
        let mut engine = Engine {
            workers: Vec::new(),
            ticker: None,
            stop: stop.clone(),
            metrics: metrics.clone(),
            partitions,
        };
        for (id, slots) in per_worker.into_iter().enumerate() {
            let setup = WorkerSetup {
                id,
                core: if config.pin_cores {
                    crate::affinity::core_for_worker(id, &allowed)
                } else {
                    None
                },
                slots,
                config: config.clone(),
                metrics: metrics.clone(),
                stop: stop.clone(),
                outputs: outputs.clone(),
                store: store.clone(),
            };
            let name = format!("dropline-worker-{id}");
            let stop_all = stop.clone();
            let handle = std::thread::Builder::new().name(name.clone()).spawn(move || {
                let r = run_worker(setup);
                match &r {
                    Ok(()) => {}
                    Err(e @ EngineError::StoppedWhileStorageFull { .. }) => {
                        tracing::warn!(worker = id, error = %e, "worker stopped while the disk was full");
                    }
                    Err(e) => {
                        tracing::error!(worker = id, error = %e, "worker failed; stopping the engine");
                        stop_all.store(true, Ordering::Release);
                    }
                }
                r
            });
            match handle {
                Ok(h) => engine.workers.push((name, h)),
                Err(source) => {
                    let _ = engine.shutdown();
                    return Err(EngineError::Spawn { name, source });
                }
            }
        }
        if let Some(interval_ms) = config.tick_interval_ms {
            let mut watched = vec![log.partition(CONTROL_TOPIC, 0)?];
            for p in 0..partitions {
                watched.push(log.partition(ORDERS_TOPIC, p)?);
                watched.push(log.partition(CARRIER_EVENTS_TOPIC, p)?);
            }
            let (tx, rx) = crossbeam_channel::bounded(1);
            match crate::tick::spawn_ticker(watched, interval_ms, rx) {
                Ok(h) => engine.ticker = Some((tx, h)),
                Err(source) => {
                    let _ = engine.shutdown();
                    return Err(EngineError::Spawn {
                        name: "dropline-ticker".into(),
                        source,
                    });
                }
            }
        }
        Ok(engine)
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Partitions of the input topics.
    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// Whether a worker failed (the engine then stops itself; [`Engine::stop`]
    /// returns the error).
    pub fn failed(&self) -> bool {
        self.stop.load(Ordering::Acquire) && self.workers.iter().any(|(_, h)| h.is_finished())
    }

    /// Blocks until every partition has processed (outputs durable) each
    /// input up to the given offsets (`targets[p][input.index()]`), or the
    /// engine failed, or `timeout` passed. Returns whether the targets are
    /// reached.
    pub fn wait_processed(&self, targets: &[[u64; INPUT_COUNT]], timeout: Duration) -> bool {
        self.metrics.wait_until(timeout, |m| {
            self.stop.load(Ordering::Acquire)
                || targets.iter().enumerate().all(|(p, t)| {
                    m.partition(p as u32).is_some_and(|pm| {
                        t.iter()
                            .enumerate()
                            .all(|(i, &off)| pm.processed_offset[i].load(Ordering::Relaxed) >= off)
                    })
                })
        }) && !self.stop.load(Ordering::Acquire)
    }

    /// Stops the workers (each checkpoints its partitions first) and the
    /// ticker; returns the first error any of them hit.
    pub fn stop(mut self) -> Result<(), EngineError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), EngineError> {
        self.stop.store(true, Ordering::Release);
        let mut first: Option<EngineError> = None;
        for (name, h) in self.workers.drain(..) {
            let r = h.join().unwrap_or(Err(EngineError::Panicked { name }));
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        }
        if let Some((tx, h)) = self.ticker.take() {
            let _ = tx.send(());
            match h.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first.get_or_insert(e.into());
                }
                Err(_) => {
                    first.get_or_insert(EngineError::Panicked {
                        name: "dropline-ticker".into(),
                    });
                }
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if !self.workers.is_empty()
            && let Err(e) = self.shutdown()
        {
            tracing::error!(error = %e, "stopping the engine on drop failed");
        }
    }
}
