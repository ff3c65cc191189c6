//! A full disk under the engine's outputs (`ENOSPC` from the log's storage
//! backend, injected): the output stage waits instead of stopping, the
//! worker stops reading (the backlog stays lag, memory bounded), no
//! checkpoint is saved past outputs that are not durable, and once space
//! returns the engine resumes by itself, with no restart: its outputs equal
//! those of a run that never met a full disk (nothing lost, nothing twice,
//! no notification id twice). Stopping the engine while it waits leaves a
//! state the next start replays from.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use common::CountingFactory;
use common::logs::{self, Outputs};
use dropline_engine::{Engine, EngineConfig, EngineError, InputKind, Metrics};
use dropline_log::{FaultInjector, Log};

const PARTITIONS: u32 = 4;
/// Safety net only: a wait that times out fails the test instead of hanging.
const WAIT: Duration = Duration::from_secs(120);
const R: Ordering = Ordering::Relaxed;

/// Fails every segment write and fdatasync (and the log's space probes)
/// with `ENOSPC` while full; fills by itself after `writes_left` more
/// writes when that is not negative.
#[derive(Debug)]
struct Disk {
    full: AtomicBool,
    writes_left: AtomicI64,
    refusals: AtomicU64,
}

impl Disk {
    fn new() -> Arc<Disk> {
        Arc::new(Disk {
            full: AtomicBool::new(false),
            writes_left: AtomicI64::new(-1),
            refusals: AtomicU64::new(0),
        })
    }

    fn check(&self) -> std::io::Result<()> {
        if self.full.load(Ordering::SeqCst) {
            self.refusals.fetch_add(1, R);
            return Err(std::io::Error::from(std::io::ErrorKind::StorageFull));
        }
        Ok(())
    }

    fn free(&self) {
        self.writes_left.store(-1, Ordering::SeqCst);
        self.full.store(false, Ordering::SeqCst);
    }
}

impl FaultInjector for Disk {
    fn before_write(&self, _: &Path, _: u64, _: usize) -> std::io::Result<()> {
        if self.writes_left.load(Ordering::SeqCst) >= 0
            && self.writes_left.fetch_sub(1, Ordering::SeqCst) == 0
        {
            self.full.store(true, Ordering::SeqCst);
        }
        self.check()
    }
    fn before_sync(&self, _: &Path) -> std::io::Result<()> {
        self.check()
    }
}

fn config(ckpt: &Path) -> EngineConfig {
    EngineConfig {
        tick_interval_ms: None,
        tick_requests: false,
        checkpoint_every_batches: 7,
        pin_cores: false,
        inflight_steps_max: 4,
        pending_durable_steps_max: 2,
        queue_batches_max: 3,
        ..EngineConfig::new(1, ckpt)
    }
}

/// A log over `data` whose storage backend is `disk`; every refused
/// append probes for space (the test waits on no clock).
fn open(data: &Path, disk: &Arc<Disk>) -> Log {
    logs::open_with(data, |c| {
        c.fault_injector = Some(disk.clone());
        c.storage_full_probe_interval_ms = 0;
    })
}

/// Inputs in `tmp/data`; returns their record count.
fn fill(tmp: &Path, disk: &Arc<Disk>) -> u64 {
    let log = open(&tmp.join("data"), disk);
    let events = logs::fill(&log, PARTITIONS, 9, 300, 40, 1500);
    logs::close_inputs(&log, PARTITIONS);
    events
}

/// The outputs of one run over a copy of the inputs that meets no fault.
fn reference(tmp: &Path) -> Outputs {
    let dir = logs::inputs_only(&tmp.join("data"), &tmp.join("reference"));
    let log = logs::open(&dir);
    let engine = Engine::start(
        &log,
        config(&tmp.join("reference-ckpt")),
        Arc::new(CountingFactory),
    )
    .unwrap();
    assert!(engine.wait_processed(&logs::targets(&log, PARTITIONS), WAIT));
    engine.stop().unwrap();
    logs::outputs(&log, PARTITIONS)
}

/// No notification id twice in the notify topics; returns how many.
fn assert_notification_ids_unique(outputs: &Outputs) -> usize {
    let mut ids = HashSet::new();
    for ((topic, _, _), records) in outputs {
        if topic.starts_with("notify-") {
            for r in records {
                assert!(ids.insert(r.clone()), "{r} written twice to {topic}");
            }
        }
    }
    ids.len()
}

fn blocked(m: &Metrics) -> bool {
    m.worker(0).unwrap().output_blocked_storage_full.load(R) == 1
}

fn checkpoints(m: &Metrics) -> u64 {
    (0..PARTITIONS)
        .map(|p| m.partition(p).unwrap().checkpoints_total.load(R))
        .sum()
}

#[test]
fn outputs_wait_out_a_full_disk_and_resume_without_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = Disk::new();
    let events = fill(tmp.path(), &disk);
    let want = reference(tmp.path());
    let ckpt = tmp.path().join("ckpt");
    let log = open(&tmp.path().join("data"), &disk);
    // The disk is full before the engine writes anything.
    disk.full.store(true, Ordering::SeqCst);
    let engine = Engine::start(&log, config(&ckpt), Arc::new(CountingFactory)).unwrap();
    let m = engine.metrics().clone();
    assert!(m.wait_until(WAIT, blocked), "the output stage never waited");
    // The worker stops reading once its output queue is full.
    assert!(m.wait_until(WAIT, |m| {
        m.worker(0).unwrap().output_stalls_total.load(R) > 0
    }));
    let refusals = disk.refusals.load(R);
    // It keeps retrying (a probe per back-off), and nothing moves.
    assert!(m.wait_until(WAIT, |_| disk.refusals.load(R) > refusals + 2));
    assert!(blocked(&m), "still waiting");
    assert!(!engine.failed());
    assert_eq!(m.events_total(), 0, "nothing counts as processed");
    assert_eq!(checkpoints(&m), 0, "no checkpoint past outputs not durable");
    assert_eq!(std::fs::read_dir(&ckpt).unwrap().count(), 0);
    let w = m.worker(0).unwrap();
    // The channel, the pending steps (one past the bound when the append
    // failed) and the step the worker is sending.
    assert!(w.queue_fill.load(R) <= 4 + (2 + 1) + 1, "bounded");
    let mut lag = 0;
    for p in 0..PARTITIONS {
        let pm = m.partition(p).unwrap();
        assert!(pm.pending_batches.load(R) <= 3 * 3);
        lag += pm.lag(InputKind::CarrierEvents);
    }
    assert!(lag > 0, "the backlog is lag in the log");
    let mut text = String::new();
    m.render_prometheus(&mut text);
    assert!(text.contains("dropline_engine_output_blocked_storage_full{worker=\"0\"} 1"));
    assert!(text.contains("dropline_engine_output_storage_full_waits_total{worker=\"0\"} 1"));

    // Space returns: the same engine catches up.
    disk.free();
    assert!(
        engine.wait_processed(&logs::targets(&log, PARTITIONS), WAIT),
        "the engine did not resume"
    );
    assert!(!blocked(&m));
    assert!(m.events_total() >= events);
    assert!(checkpoints(&m) > 0);
    engine.stop().unwrap();
    let got = logs::outputs(&log, PARTITIONS);
    assert!(assert_notification_ids_unique(&got) > 0);
    assert_eq!(got, want, "outputs differ from a run without a full disk");
}

/// The disk fills at several points of a run (after a given number of
/// segment writes): some outputs are durable, some written and cut off
/// when the log rewinds, some refused. Each time the engine waits, resumes
/// once space returns, and its outputs equal the reference.
#[test]
fn a_disk_filling_mid_run_loses_nothing_and_repeats_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = Disk::new();
    fill(tmp.path(), &disk);
    let want = reference(tmp.path());
    assert!(assert_notification_ids_unique(&want) > 0);
    for (round, writes) in [3_i64, 40, 150].into_iter().enumerate() {
        let run = tmp.path().join(format!("run-{round}"));
        let data = logs::inputs_only(&tmp.path().join("data"), &run);
        let log = open(&data, &disk);
        disk.writes_left.store(writes, Ordering::SeqCst);
        let engine =
            Engine::start(&log, config(&run.join("ckpt")), Arc::new(CountingFactory)).unwrap();
        let m = engine.metrics().clone();
        assert!(
            m.wait_until(WAIT, blocked),
            "run {round}: the output stage never waited"
        );
        disk.free();
        assert!(
            engine.wait_processed(&logs::targets(&log, PARTITIONS), WAIT),
            "run {round}: the engine did not resume"
        );
        assert!(!engine.failed());
        engine.stop().unwrap();
        let got = logs::outputs(&log, PARTITIONS);
        assert_notification_ids_unique(&got);
        assert_eq!(got, want, "run {round} (full after {writes} writes)");
    }
}

/// Stopping the engine while it waits for space ends the wait with a
/// typed error and saves no checkpoint past what is durable; the next
/// start, with space back, replays and ends where a fault-free run ends.
#[test]
fn stopping_while_the_disk_is_full_is_safe_and_the_next_start_replays() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = Disk::new();
    fill(tmp.path(), &disk);
    let want = reference(tmp.path());
    let ckpt = tmp.path().join("ckpt");
    let log = open(&tmp.path().join("data"), &disk);
    disk.writes_left.store(60, Ordering::SeqCst);
    let engine = Engine::start(&log, config(&ckpt), Arc::new(CountingFactory)).unwrap();
    assert!(engine.metrics().clone().wait_until(WAIT, blocked));
    match engine.stop() {
        Err(EngineError::StoppedWhileStorageFull {
            worker: 0,
            steps_not_durable,
        }) => assert!(steps_not_durable > 0),
        other => panic!("expected StoppedWhileStorageFull, got {other:?}"),
    }
    disk.free();
    let engine = Engine::start(&log, config(&ckpt), Arc::new(CountingFactory)).unwrap();
    assert!(engine.wait_processed(&logs::targets(&log, PARTITIONS), WAIT));
    engine.stop().unwrap();
    let got = logs::outputs(&log, PARTITIONS);
    assert_notification_ids_unique(&got);
    assert_eq!(got, want);
}
