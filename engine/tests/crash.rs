//! Exactly-once across real crashes: the engine runs as a child process over
//! a recorded log and is killed with SIGKILL at random points, restarted,
//! killed again, and finally left to finish. Its outputs (notification ids,
//! shipment views, everything) must equal those of one uninterrupted run
//! over a copy of the same recorded log: no loss, no duplicate.
//!
//! This file is its own test harness (`harness = false`): run without
//! arguments it is the parent; with `--child <data> <checkpoints> <workers>`
//! it is the engine. `DROPLINE_CRASH_ROUNDS` sets the number of kills
//! (default 6) and `DROPLINE_CRASH_SEED` the seed (printed on failure).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::logs;
use common::{CountingFactory, Rng};
use dropline_engine::{Engine, EngineConfig};

const PARTITIONS: u32 = 4;
const WAIT: Duration = Duration::from_secs(300);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        child(
            Path::new(&args[2]),
            Path::new(&args[3]),
            args[4].parse().unwrap(),
        );
        return;
    }
    // `cargo test` passes harness flags (e.g. `--nocapture`, filters); the
    // parent ignores them, except `--list`, answered like libtest.
    if args.iter().any(|a| a == "--list") {
        println!("crash_and_restart_loses_nothing_and_duplicates_nothing: test");
        return;
    }
    let seed: u64 = std::env::var("DROPLINE_CRASH_SEED")
        .ok()
        .map(|s| s.parse().expect("DROPLINE_CRASH_SEED must be a u64"))
        .unwrap_or_else(|| u64::from(std::process::id()) ^ 0x9e37_79b9);
    let rounds: u32 = std::env::var("DROPLINE_CRASH_ROUNDS")
        .ok()
        .map_or(6, |s| s.parse().unwrap());
    let result = std::panic::catch_unwind(|| parent(seed, rounds));
    if let Err(e) = result {
        eprintln!("crash test failed: rerun with DROPLINE_CRASH_SEED={seed}");
        std::panic::resume_unwind(e);
    }
    println!("test crash_and_restart_loses_nothing_and_duplicates_nothing ... ok");
}

/// The engine: runs until everything recorded is processed, printing a
/// `progress` line whenever more input is processed, then `done`.
fn child(data: &Path, ckpt: &Path, workers: u32) {
    let log = logs::open(data);
    let config = EngineConfig {
        tick_interval_ms: None,
        tick_requests: false,
        checkpoint_every_batches: 5,
        pin_cores: false,
        ..EngineConfig::new(workers, ckpt)
    };
    let engine = Engine::start(&log, config, Arc::new(CountingFactory)).unwrap();
    let targets = logs::targets(&log, PARTITIONS);
    println!("ready");
    let m = engine.metrics().clone();
    let mut last = 0;
    loop {
        let done = |m: &dropline_engine::Metrics| {
            targets.iter().enumerate().all(|(p, t)| {
                let pm = m.partition(p as u32).unwrap();
                t.iter().enumerate().all(|(i, &off)| {
                    pm.processed_offset[i].load(std::sync::atomic::Ordering::Relaxed) >= off
                })
            })
        };
        let moved = m.wait_until(WAIT, |m| {
            done(m) || m.events_total() > last || engine.failed()
        });
        if engine.failed() {
            let err = engine.stop().err();
            panic!("engine failed: {err:?}");
        }
        assert!(moved, "child stalled");
        if done(&m) {
            break;
        }
        last = m.events_total();
        println!("progress {last}");
    }
    engine.stop().unwrap();
    println!("done");
}

fn spawn(data: &Path, ckpt: &Path, workers: u32) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .arg("--child")
        .arg(data)
        .arg(ckpt)
        .arg(workers.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// Runs a child to completion; panics if it does not print `done`.
fn run_to_end(data: &Path, ckpt: &Path, workers: u32) {
    let mut c = spawn(data, ckpt, workers);
    let out = BufReader::new(c.stdout.take().unwrap());
    let done = out.lines().map_while(Result::ok).any(|l| l == "done");
    let status = c.wait().unwrap();
    assert!(done && status.success(), "child failed: {status}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn parent(seed: u64, rounds: u32) {
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().unwrap();
    let recorded: PathBuf = tmp.path().join("recorded");
    {
        let log = logs::open(&recorded);
        logs::fill(&log, PARTITIONS, seed, 1_500, 60, 5_000);
        logs::close_inputs(&log, PARTITIONS);
    }
    let (reference, crashed) = (tmp.path().join("reference"), tmp.path().join("crashed"));
    copy_dir(&recorded, &reference);
    copy_dir(&recorded, &crashed);
    run_to_end(&reference, &tmp.path().join("reference-ckpt"), 1);

    let ckpt = tmp.path().join("crashed-ckpt");
    let mut kills = 0;
    for _ in 0..rounds {
        let workers = 1 + rng.below(2) as u32;
        let mut c = spawn(&crashed, &ckpt, workers);
        let lines = BufReader::new(c.stdout.take().unwrap()).lines();
        // Kill after a random number of progress lines (0: right after
        // start-up, before or while the first batches are processed).
        let kill_after = rng.below(40);
        let mut seen = 0;
        let mut finished = false;
        for line in lines.map_while(Result::ok) {
            if line == "done" {
                finished = true;
                break;
            }
            if line.starts_with("progress") || line == "ready" {
                if seen >= kill_after {
                    break;
                }
                seen += 1;
            }
        }
        if finished {
            c.wait().unwrap();
            continue;
        }
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
        kills += 1;
    }
    run_to_end(&crashed, &ckpt, 2);

    let want = logs::outputs(&logs::open(&reference), PARTITIONS);
    let got = logs::outputs(&logs::open(&crashed), PARTITIONS);
    assert!(
        logs::count(&want) > 10_000,
        "workload too small: {}",
        logs::count(&want)
    );
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (k, w) in &want {
        let g = &got[k];
        if let Some(i) = (0..g.len().max(w.len())).find(|&i| g.get(i) != w.get(i)) {
            panic!(
                "stream {k:?}: {} records, reference {}; first difference at {i}: {:?} vs {:?}",
                g.len(),
                w.len(),
                g.get(i),
                w.get(i)
            );
        }
    }
    eprintln!(
        "crash test: seed {seed}, {kills} kills in {rounds} rounds, {} output records identical to the uninterrupted run",
        logs::count(&want)
    );
}
