//! The engine over a real log: outputs of a run equal those of a fresh
//! replay, rescaling 1 -> 2 -> 1 workers changes nothing, drop mode
//! switches at a deterministic point, and a stalled output keeps memory
//! bounded, loses nothing and catches up when released.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::CountingFactory;
use common::logs::{self, Outputs};
use dropline_engine::{
    Engine, EngineConfig, InputKind, OutputGate, OutputTopic, request_drop_mode,
};

const PARTITIONS: u32 = 4;
/// Safety net only: a wait that times out fails the test instead of hanging.
const WAIT: Duration = Duration::from_secs(120);

fn config(workers: u32, ckpt: &Path) -> EngineConfig {
    EngineConfig {
        tick_interval_ms: None,
        tick_requests: false,
        checkpoint_every_batches: 7,
        pin_cores: false,
        ..EngineConfig::new(workers, ckpt)
    }
}

/// Runs the engine over what `log` holds now, until processed, then stops.
fn run(log: &dropline_log::Log, cfg: EngineConfig) {
    let engine = Engine::start(log, cfg, Arc::new(CountingFactory)).unwrap();
    let targets = logs::targets(log, PARTITIONS);
    assert!(
        engine.wait_processed(&targets, WAIT),
        "engine did not catch up"
    );
    engine.stop().unwrap();
}

fn reference(phases: &Path, tmp: &Path) -> Outputs {
    let dir = tmp.join("reference");
    logs::copy_dir(phases, &dir);
    let log = logs::open(&dir);
    run(&log, config(1, &tmp.join("reference-ckpt")));
    logs::outputs(&log, PARTITIONS)
}

#[test]
fn rescaling_one_two_one_gives_the_outputs_of_one_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let ckpt = tmp.path().join("ckpt");
    // Three phases of input, each appended just before it is processed by
    // a different worker count.
    {
        let log = logs::open(&data);
        for (i, workers) in [1u32, 2, 1].into_iter().enumerate() {
            logs::fill(&log, PARTITIONS, 10 + i as u64, 60, 40, 300);
            logs::close_inputs(&log, PARTITIONS);
            run(&log, config(workers, &ckpt));
        }
    }
    let log = logs::open(&data);
    let got = logs::outputs(&log, PARTITIONS);
    drop(log);
    let want = reference(&logs::inputs_only(&data, tmp.path()), tmp.path());
    assert!(logs::count(&want) > 1000);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (k, w) in &want {
        assert_eq!(&got[k], w, "stream {k:?} differs");
    }
}

#[test]
fn drop_mode_switch_is_a_record_applied_at_the_same_place_on_replay() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = logs::open(&data);
    logs::fill(&log, PARTITIONS, 3, 20, 30, 100);
    request_drop_mode(&log, true, None).unwrap();
    logs::fill(&log, PARTITIONS, 4, 20, 30, 100);
    request_drop_mode(&log, false, None).unwrap();
    logs::close_inputs(&log, PARTITIONS);
    run(&log, config(2, &tmp.path().join("ckpt")));
    let got = logs::outputs(&log, PARTITIONS);
    drop(log);
    let decisions: Vec<&String> = got
        .iter()
        .filter(|(k, _)| k.0 == "decisions")
        .flat_map(|(_, v)| v)
        .collect();
    // Every partition saw the switch on and off.
    assert_eq!(
        decisions
            .iter()
            .filter(|d| d.starts_with("drop-mode=true@"))
            .count(),
        PARTITIONS as usize
    );
    assert_eq!(
        decisions
            .iter()
            .filter(|d| d.starts_with("drop-mode=false@"))
            .count(),
        PARTITIONS as usize
    );
    // Low-priority notifications exist only because of drop mode.
    assert!(got.keys().any(|k| k.0 == "notify-sms-low"));
    let want = reference(&logs::inputs_only(&data, tmp.path()), tmp.path());
    assert_eq!(got, want);
}

/// An output gate that blocks every append while closed.
#[derive(Debug, Default)]
struct Gate {
    closed: Mutex<bool>,
    changed: Condvar,
}

impl OutputGate for Gate {
    fn before_append(&self, _topic: OutputTopic, _partition: u32) {
        let mut closed = self.closed.lock().unwrap();
        while *closed {
            closed = self.changed.wait(closed).unwrap();
        }
    }
}

#[test]
fn a_stalled_output_bounds_memory_loses_nothing_and_catches_up() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let log = logs::open(&data);
    let events = logs::fill(&log, PARTITIONS, 5, 400, 50, 2000);
    logs::close_inputs(&log, PARTITIONS);
    let gate = Arc::new(Gate::default());
    *gate.closed.lock().unwrap() = true;
    let cfg = EngineConfig {
        output_gate: Some(gate.clone()),
        inflight_steps_max: 4,
        pending_durable_steps_max: 2,
        queue_batches_max: 3,
        ..config(1, &tmp.path().join("ckpt"))
    };
    let engine = Engine::start(&log, cfg, Arc::new(CountingFactory)).unwrap();
    let m = engine.metrics().clone();
    // Wait until the worker found its output queue full.
    assert!(m.wait_until(WAIT, |m| {
        m.worker(0)
            .unwrap()
            .output_stalls_total
            .load(Ordering::Relaxed)
            > 0
    }));
    let w = m.worker(0).unwrap();
    // Bounded: at most the queue capacity plus the step being sent and the
    // one in the output stage's hands.
    assert!(w.queue_fill.load(Ordering::Relaxed) <= 4 + 2);
    for p in 0..PARTITIONS {
        let pm = m.partition(p).unwrap();
        assert!(pm.pending_batches.load(Ordering::Relaxed) <= 3 * 3);
        let ce = InputKind::CarrierEvents.index();
        let read_ahead = pm.read_offset[ce].load(Ordering::Relaxed)
            - pm.processed_offset[ce].load(Ordering::Relaxed);
        assert!(
            read_ahead <= 3 * 50 + 4 * 50 * 2,
            "partition {p} read {read_ahead} records ahead"
        );
    }
    // Nothing is processed while stalled; the backlog is lag in the log.
    assert_eq!(m.events_total(), 0);
    let lag: u64 = (0..PARTITIONS)
        .map(|p| m.partition(p).unwrap().lag(InputKind::CarrierEvents))
        .sum();
    assert!(lag > 0);
    // Release: everything is processed, once.
    *gate.closed.lock().unwrap() = false;
    gate.changed.notify_all();
    let targets = logs::targets(&log, PARTITIONS);
    assert!(engine.wait_processed(&targets, WAIT));
    assert!(m.events_total() >= events);
    engine.stop().unwrap();
    let got = logs::outputs(&log, PARTITIONS);
    drop(log);
    let want = reference(&logs::inputs_only(&data, tmp.path()), tmp.path());
    assert_eq!(got, want);
}
