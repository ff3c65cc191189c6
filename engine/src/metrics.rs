//! The engine's metrics registry, per worker and per partition, rendered in
//! Prometheus' text format for the HTTP server's `/metrics`.
//!
//! Why atomics and a reader-side merge: workers update counters and gauges
//! on every step, so the hot path must never wait. Counters and gauges are
//! relaxed atomics. Each worker's output stage keeps its batch-latency
//! histogram locally and folds it into the shared one with `try_lock` every
//! [`LATENCY_PUBLISH_EVERY_STEPS`] steps: if a reader holds the lock the
//! fold is skipped and retried later, so a worker never blocks on a reader
//! (the lock is only ever waited on by readers).
//!
//! Waiters (tests, benchmarks, the CLI) block on a condition variable that
//! workers signal only while someone waits ([`Metrics::wait_until`]).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::input::{INPUT_COUNT, InputKind};

/// How often (in completed steps) a worker folds its local latency
/// histogram into the shared one.
pub const LATENCY_PUBLISH_EVERY_STEPS: u64 = 64;
/// Highest batch latency the histograms track, in µs (longer values are
/// clamped): 10 minutes.
pub const LATENCY_US_MAX: u64 = 600_000_000;

const R: Ordering = Ordering::Relaxed;

/// A new latency histogram (1 µs .. [`LATENCY_US_MAX`], 3 digits).
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, 3)
        .unwrap_or_else(|e| unreachable!("constant histogram bounds are valid: {e}"))
}

/// Metrics of one worker.
#[derive(Debug)]
pub struct WorkerMetrics {
    /// Input records whose outputs are durable.
    pub events_total: AtomicU64,
    /// Input batches whose outputs are durable.
    pub batches_total: AtomicU64,
    /// Output batches appended (duplicates included).
    pub output_batches_total: AtomicU64,
    /// Output batches the log already held (replays after a restart).
    pub output_duplicates_total: AtomicU64,
    /// Times the worker found its output queue full and had to wait.
    pub output_stalls_total: AtomicU64,
    /// Steps queued to the output stage and not yet durable.
    pub queue_fill: AtomicU64,
    /// Capacity of the output queue, in steps.
    pub queue_capacity: AtomicU64,
    /// Ticks requested for inputs that held back ready data.
    pub tick_requests_total: AtomicU64,
    /// Ticks requested that the log refused on a full disk (requested
    /// again later).
    pub tick_requests_refused_total: AtomicU64,
    /// Time the worker spent idle-waiting for input, in µs.
    pub idle_us_total: AtomicU64,
    /// 1 while the output stage waits for disk space (the worker reads no
    /// input meanwhile), else 0.
    pub output_blocked_storage_full: AtomicU64,
    /// Times the output stage started waiting for disk space.
    pub output_storage_full_waits_total: AtomicU64,
    latency_us: Mutex<Histogram<u64>>,
}

/// Metrics of one partition.
#[derive(Debug)]
pub struct PartitionMetrics {
    /// The worker that owns it.
    pub worker: AtomicU64,
    /// Input records processed (outputs durable).
    pub events_total: AtomicU64,
    /// Offset up to which each input is processed, outputs durable.
    pub processed_offset: [AtomicU64; INPUT_COUNT],
    /// Offset up to which each input has been read into the task's queue.
    pub read_offset: [AtomicU64; INPUT_COUNT],
    /// Next offset of each input's partition, as last seen.
    pub end_offset: [AtomicU64; INPUT_COUNT],
    /// Batches read and not yet processed.
    pub pending_batches: AtomicU64,
    /// Bytes of operator state.
    pub state_bytes: AtomicU64,
    /// Checkpoints saved.
    pub checkpoints_total: AtomicU64,
    /// Log time covered by the last checkpoint.
    pub last_checkpoint_log_ms: AtomicU64,
    /// Wall time of the last checkpoint, ms since the Unix epoch.
    pub last_checkpoint_unix_ms: AtomicU64,
}

impl PartitionMetrics {
    /// Records not yet processed on `input`: end offset minus processed.
    pub fn lag(&self, input: InputKind) -> u64 {
        let i = input.index();
        self.end_offset[i]
            .load(R)
            .saturating_sub(self.processed_offset[i].load(R))
    }
}

/// The registry.
#[derive(Debug)]
pub struct Metrics {
    workers: Vec<WorkerMetrics>,
    partitions: Vec<PartitionMetrics>,
    started: Instant,
    waiters: AtomicUsize,
    generation: Mutex<u64>,
    changed: Condvar,
}

fn zeros<const N: usize>() -> [AtomicU64; N] {
    std::array::from_fn(|_| AtomicU64::new(0))
}

impl Metrics {
    /// A registry for `workers` workers and `partitions` partitions.
    pub fn new(workers: u32, partitions: u32) -> Self {
        Metrics {
            workers: (0..workers)
                .map(|_| WorkerMetrics {
                    events_total: AtomicU64::new(0),
                    batches_total: AtomicU64::new(0),
                    output_batches_total: AtomicU64::new(0),
                    output_duplicates_total: AtomicU64::new(0),
                    output_stalls_total: AtomicU64::new(0),
                    queue_fill: AtomicU64::new(0),
                    queue_capacity: AtomicU64::new(0),
                    tick_requests_total: AtomicU64::new(0),
                    tick_requests_refused_total: AtomicU64::new(0),
                    idle_us_total: AtomicU64::new(0),
                    output_blocked_storage_full: AtomicU64::new(0),
                    output_storage_full_waits_total: AtomicU64::new(0),
                    latency_us: Mutex::new(latency_histogram()),
                })
                .collect(),
            partitions: (0..partitions)
                .map(|_| PartitionMetrics {
                    worker: AtomicU64::new(0),
                    events_total: AtomicU64::new(0),
                    processed_offset: zeros(),
                    read_offset: zeros(),
                    end_offset: zeros(),
                    pending_batches: AtomicU64::new(0),
                    state_bytes: AtomicU64::new(0),
                    checkpoints_total: AtomicU64::new(0),
                    last_checkpoint_log_ms: AtomicU64::new(0),
                    last_checkpoint_unix_ms: AtomicU64::new(0),
                })
                .collect(),
            started: Instant::now(),
            waiters: AtomicUsize::new(0),
            generation: Mutex::new(0),
            changed: Condvar::new(),
        }
    }

    /// Metrics of worker `w`.
    pub fn worker(&self, w: usize) -> Option<&WorkerMetrics> {
        self.workers.get(w)
    }

    /// Metrics of partition `p`.
    pub fn partition(&self, p: u32) -> Option<&PartitionMetrics> {
        self.partitions.get(p as usize)
    }

    /// Every worker's metrics.
    pub fn workers(&self) -> &[WorkerMetrics] {
        &self.workers
    }

    /// Every partition's metrics.
    pub fn partitions(&self) -> &[PartitionMetrics] {
        &self.partitions
    }

    /// Workers whose output stage waits for disk space now.
    pub fn workers_blocked_on_storage_full(&self) -> usize {
        self.workers
            .iter()
            .filter(|w| w.output_blocked_storage_full.load(R) != 0)
            .count()
    }

    /// Input records processed over all partitions.
    pub fn events_total(&self) -> u64 {
        self.partitions.iter().map(|p| p.events_total.load(R)).sum()
    }

    /// Folds a worker-local latency histogram into the shared one if the
    /// lock is free; returns whether it did (the caller then resets its
    /// local copy).
    pub fn try_publish_latency(&self, worker: usize, local: &Histogram<u64>) -> bool {
        let Some(w) = self.workers.get(worker) else {
            return true;
        };
        match w.latency_us.try_lock() {
            Ok(mut h) => {
                let _ = h.add(local);
                true
            }
            Err(_) => false,
        }
    }

    /// Batch latency over all workers (merged on read).
    pub fn batch_latency_us(&self) -> Histogram<u64> {
        let mut all = latency_histogram();
        for w in &self.workers {
            let h = w.latency_us.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = all.add(&*h);
        }
        all
    }

    /// Wakes [`Metrics::wait_until`] callers (cheap when nobody waits).
    pub fn signal(&self) {
        if self.waiters.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut g = self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *g += 1;
        drop(g);
        self.changed.notify_all();
    }

    /// Blocks until `done(self)` holds or `timeout` passes; returns whether
    /// it holds. Workers signal after every durable step, checkpoint and
    /// stall.
    pub fn wait_until(&self, timeout: Duration, mut done: impl FnMut(&Metrics) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        self.waiters.fetch_add(1, Ordering::AcqRel);
        let mut g = self
            .generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let ok = loop {
            if done(self) {
                break true;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break done(self);
            };
            // Bounded wait: a signal sent between `done` and `wait` (the
            // flag is checked without the lock) is caught at the next turn.
            let slice = left.min(Duration::from_millis(50));
            g = self
                .changed
                .wait_timeout(g, slice)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        };
        drop(g);
        self.waiters.fetch_sub(1, Ordering::AcqRel);
        ok
    }

    /// Renders every metric in the Prometheus text exposition format.
    pub fn render_prometheus(&self, out: &mut String) {
        let uptime = self.started.elapsed().as_secs_f64();
        let _ = writeln!(
            out,
            "# HELP dropline_engine_uptime_seconds Seconds since the engine started."
        );
        let _ = writeln!(out, "# TYPE dropline_engine_uptime_seconds gauge");
        let _ = writeln!(out, "dropline_engine_uptime_seconds {uptime:.3}");
        type WorkerField = fn(&WorkerMetrics) -> &AtomicU64;
        let worker_fields: [(&str, &str, &str, WorkerField); 12] = [
            (
                "worker_events_total",
                "counter",
                "Input records processed with durable outputs.",
                |w| &w.events_total,
            ),
            (
                "worker_batches_total",
                "counter",
                "Input batches processed with durable outputs.",
                |w| &w.batches_total,
            ),
            (
                "output_batches_total",
                "counter",
                "Output batches appended.",
                |w| &w.output_batches_total,
            ),
            (
                "output_duplicates_total",
                "counter",
                "Output batches the log already held (replays).",
                |w| &w.output_duplicates_total,
            ),
            (
                "output_stalls_total",
                "counter",
                "Times the output queue was full.",
                |w| &w.output_stalls_total,
            ),
            (
                "queue_fill_steps",
                "gauge",
                "Steps queued to the output stage, not yet durable.",
                |w| &w.queue_fill,
            ),
            (
                "queue_capacity_steps",
                "gauge",
                "Capacity of the output queue.",
                |w| &w.queue_capacity,
            ),
            (
                "tick_requests_total",
                "counter",
                "Ticks requested for inputs holding back ready data.",
                |w| &w.tick_requests_total,
            ),
            (
                "tick_requests_refused_total",
                "counter",
                "Tick requests the log refused on a full disk.",
                |w| &w.tick_requests_refused_total,
            ),
            (
                "idle_microseconds_total",
                "counter",
                "Time spent waiting for input.",
                |w| &w.idle_us_total,
            ),
            (
                "output_blocked_storage_full",
                "gauge",
                "1 while the output stage waits for disk space (no input is read).",
                |w| &w.output_blocked_storage_full,
            ),
            (
                "output_storage_full_waits_total",
                "counter",
                "Times the output stage started waiting for disk space.",
                |w| &w.output_storage_full_waits_total,
            ),
        ];
        for (name, kind, help, get) in worker_fields {
            let _ = writeln!(out, "# HELP dropline_engine_{name} {help}");
            let _ = writeln!(out, "# TYPE dropline_engine_{name} {kind}");
            for (i, w) in self.workers.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "dropline_engine_{name}{{worker=\"{i}\"}} {}",
                    get(w).load(R)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP dropline_engine_batch_latency_microseconds Input batch read to outputs durable."
        );
        let _ = writeln!(
            out,
            "# TYPE dropline_engine_batch_latency_microseconds summary"
        );
        for (i, w) in self.workers.iter().enumerate() {
            let h = w.latency_us.lock().unwrap_or_else(PoisonError::into_inner);
            for q in [0.5, 0.9, 0.99, 0.999] {
                let _ = writeln!(
                    out,
                    "dropline_engine_batch_latency_microseconds{{worker=\"{i}\",quantile=\"{q}\"}} {}",
                    h.value_at_quantile(q)
                );
            }
            let _ = writeln!(
                out,
                "dropline_engine_batch_latency_microseconds_count{{worker=\"{i}\"}} {}",
                h.len()
            );
        }
        type PartitionField = fn(&PartitionMetrics) -> u64;
        let partition_fields: [(&str, &str, &str, PartitionField); 7] = [
            (
                "events_total",
                "counter",
                "Input records processed with durable outputs.",
                |p| p.events_total.load(R),
            ),
            (
                "pending_batches",
                "gauge",
                "Batches read and not yet processed.",
                |p| p.pending_batches.load(R),
            ),
            ("state_bytes", "gauge", "Bytes of operator state.", |p| {
                p.state_bytes.load(R)
            }),
            ("checkpoints_total", "counter", "Checkpoints saved.", |p| {
                p.checkpoints_total.load(R)
            }),
            (
                "last_checkpoint_log_time_ms",
                "gauge",
                "Log time covered by the last checkpoint.",
                |p| p.last_checkpoint_log_ms.load(R),
            ),
            (
                "last_checkpoint_unix_ms",
                "gauge",
                "Wall time of the last checkpoint.",
                |p| p.last_checkpoint_unix_ms.load(R),
            ),
            (
                "owner_worker",
                "gauge",
                "Worker owning the partition.",
                |p| p.worker.load(R),
            ),
        ];
        for (name, kind, help, get) in partition_fields {
            let _ = writeln!(out, "# HELP dropline_engine_{name} {help}");
            let _ = writeln!(out, "# TYPE dropline_engine_{name} {kind}");
            for (i, p) in self.partitions.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "dropline_engine_{name}{{partition=\"{i}\"}} {}",
                    get(p)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP dropline_engine_lag_records Records in the input not yet processed."
        );
        let _ = writeln!(out, "# TYPE dropline_engine_lag_records gauge");
        for (i, p) in self.partitions.iter().enumerate() {
            for input in InputKind::ALL {
                let _ = writeln!(
                    out,
                    "dropline_engine_lag_records{{partition=\"{i}\",input=\"{}\"}} {}",
                    input.topic(),
                    p.lag(input)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_lag_and_merged_latency() {
        let m = Metrics::new(2, 3);
        m.worker(1).unwrap().events_total.store(42, R);
        let p = m.partition(2).unwrap();
        p.end_offset[InputKind::CarrierEvents.index()].store(100, R);
        p.processed_offset[InputKind::CarrierEvents.index()].store(60, R);
        let mut local = latency_histogram();
        local.record(250).unwrap();
        assert!(m.try_publish_latency(0, &local));
        assert!(m.try_publish_latency(1, &local));
        assert_eq!(m.batch_latency_us().len(), 2);
        let mut text = String::new();
        m.render_prometheus(&mut text);
        assert!(text.contains("dropline_engine_worker_events_total{worker=\"1\"} 42"));
        assert!(
            text.contains(
                "dropline_engine_lag_records{partition=\"2\",input=\"carrier-events\"} 40"
            )
        );
        assert!(text.contains("# TYPE dropline_engine_batch_latency_microseconds summary"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "bad sample line {line}");
        }
    }

    #[test]
    fn wait_until_wakes_on_signal() {
        let m = std::sync::Arc::new(Metrics::new(1, 1));
        let m2 = m.clone();
        let t = std::thread::spawn(move || {
            m2.wait_until(Duration::from_secs(30), |m| m.events_total() == 5)
        });
        // Wait until the waiter registered, then change and signal.
        while m.waiters.load(Ordering::Acquire) == 0 {
            std::thread::yield_now();
        }
        m.partition(0).unwrap().events_total.store(5, R);
        m.signal();
        assert!(t.join().unwrap());
    }
}
