#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A full disk (`ENOSPC` from a write or an fdatasync, injected): the
//! failed batch is not acknowledged, appends are refused with the typed
//! `StorageFull` error, and once space returns the writer is rewound to its
//! last durable batch and appends resume with no restart. Checked against
//! a model of what was acknowledged, in every durability mode, across a
//! reopen, and with concurrent appenders while the disk fills and empties.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use dropline_log::*;

/// Fails writes and/or fdatasyncs with `ENOSPC` while set, or, with
/// `cycle_calls` > 0, fills and empties by itself: every other run of
/// `cycle_calls` writes and fdatasyncs fails.
#[derive(Debug, Default)]
struct Disk {
    full_writes: AtomicBool,
    full_syncs: AtomicBool,
    refusals: AtomicU64,
    cycle_calls: AtomicU64,
    calls: AtomicU64,
}

fn no_space() -> std::io::Error {
    std::io::Error::from(std::io::ErrorKind::StorageFull)
}

impl FaultInjector for Disk {
    fn before_write(&self, _: &Path, _: u64, _: usize) -> std::io::Result<()> {
        if self.full_writes.load(Ordering::SeqCst) || self.cycled_full() {
            self.refusals.fetch_add(1, Ordering::Relaxed);
            return Err(no_space());
        }
        Ok(())
    }
    fn before_sync(&self, _: &Path) -> std::io::Result<()> {
        if self.full_syncs.load(Ordering::SeqCst) || self.cycled_full() {
            self.refusals.fetch_add(1, Ordering::Relaxed);
            return Err(no_space());
        }
        Ok(())
    }
}

impl Disk {
    /// Counts a call; true if it falls in a full run of the cycle.
    fn cycled_full(&self) -> bool {
        let every = self.cycle_calls.load(Ordering::SeqCst);
        every > 0 && (self.calls.fetch_add(1, Ordering::SeqCst) / every) % 2 == 1
    }
    fn fill(&self) {
        self.full_writes.store(true, Ordering::SeqCst);
        self.full_syncs.store(true, Ordering::SeqCst);
    }
    fn free(&self) {
        self.full_writes.store(false, Ordering::SeqCst);
        self.full_syncs.store(false, Ordering::SeqCst);
    }
}

fn open(dir: &Path, disk: &Arc<Disk>, durability: Durability, segment_bytes_max: u64) -> Log {
    let mut c = LogConfig::new(dir);
    c.durability = durability;
    c.segment_bytes_max = segment_bytes_max;
    c.io_mode = IoMode::Pwrite;
    c.fault_injector = Some(disk.clone());
    // Every refused append probes: tests wait on no clock.
    c.storage_full_probe_interval_ms = 0;
    Log::open(c).unwrap()
}

fn append(p: &Partition, value: &[u8]) -> Result<AppendAck, LogError> {
    p.append(&AppendRequest {
        records: &[Record { key: value, value }],
        producer: None,
    })
}

/// Every record of a partition: offset -> value.
fn contents(p: &Partition) -> BTreeMap<u64, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut from = p.start_offset();
    while from < p.durable_offset() {
        let views = p.read(from, 1 << 20).unwrap();
        for v in &views {
            for (i, r) in v.records().enumerate() {
                out.insert(v.base_offset() + i as u64, r.value.to_vec());
            }
            from = v.last_offset() + 1;
        }
    }
    out
}

fn is_storage_full(e: &LogError) -> bool {
    matches!(e, LogError::StorageFull { .. } | LogError::Io { .. })
}

#[test]
fn a_full_disk_refuses_appends_and_they_resume_when_space_returns() {
    for durability in [
        Durability::Fsync,
        Durability::None,
        Durability::Interval { interval_ms: 1 },
    ] {
        let dir = tempfile::tempdir().unwrap();
        let disk = Arc::new(Disk::default());
        let log = open(dir.path(), &disk, durability, 64 * 1024);
        log.create_topic("t", TopicConfig::new(1)).unwrap();
        let p = log.partition("t", 0).unwrap();
        let mut model = BTreeMap::new();
        for i in 0..20u32 {
            let v = format!("before-{i}").into_bytes();
            let ack = append(&p, &v).unwrap();
            model.insert(ack.base_offset, v);
        }
        if durability != Durability::Fsync {
            // Acks there do not wait for the fdatasync; make them durable
            // so that the model is what a crash would keep too.
            while p.durable_offset() < 20 {
                p.wait_for_data(19, std::time::Duration::from_secs(1));
            }
        }
        disk.fill();
        let err = append(&p, b"refused").unwrap_err();
        assert!(is_storage_full(&err), "{durability:?}: {err}");
        assert!(p.is_storage_full() && p.is_poisoned());
        // Refused with the typed error, which says what to expect.
        let err = append(&p, b"refused").unwrap_err();
        assert!(
            matches!(err, LogError::StorageFull { ref topic, partition: 0, .. } if topic == "t"),
            "{durability:?}: {err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("disk is full") && text.contains("resume once space returns"),
            "{text}"
        );
        assert!(log.topics()[0].partitions[0].poisoned);
        // Space returns: the next append resumes the writer.
        disk.free();
        let ack = append(&p, b"after").unwrap();
        assert_eq!(ack.base_offset, 20, "{durability:?}: offsets continue");
        model.insert(ack.base_offset, b"after".to_vec());
        assert!(!p.is_poisoned() && !p.is_storage_full());
        while p.durable_offset() < 21 {
            p.wait_for_data(20, std::time::Duration::from_secs(1));
        }
        assert_eq!(contents(&p), model, "{durability:?}");
        // The key index knows nothing of the refused batch.
        assert!(p.lookup_key(b"refused").unwrap().is_empty());
        assert_eq!(p.lookup_key(b"after").unwrap().len(), 1);
        drop(p);
        log.close().unwrap();
        // A reopen finds exactly the acknowledged batches, no torn tail.
        let log = open(dir.path(), &disk, durability, 64 * 1024);
        assert_eq!(log.recovery_report().truncations().count(), 0);
        assert_eq!(contents(&log.partition("t", 0).unwrap()), model);
    }
}

#[test]
fn a_batch_written_before_a_failed_fdatasync_is_cut_off_and_never_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(Disk::default());
    let log = open(dir.path(), &disk, Durability::Fsync, 64 * 1024);
    log.create_topic("t", TopicConfig::new(1)).unwrap();
    let p = log.partition("t", 0).unwrap();
    let producer = |sequence| {
        Some(ProducerSeq {
            producer_id: 7,
            sequence,
        })
    };
    let first = p
        .append(&AppendRequest {
            records: &[Record {
                key: b"a",
                value: b"one",
            }],
            producer: producer(1),
        })
        .unwrap();
    assert_eq!(first.base_offset, 0);
    // The write lands in the page cache; its fdatasync finds the disk full.
    disk.full_syncs.store(true, Ordering::SeqCst);
    let (ack, stale) = p
        .append_pending(&AppendRequest {
            records: &[Record {
                key: b"b",
                value: b"two",
            }],
            producer: producer(2),
        })
        .unwrap();
    assert_eq!(ack.base_offset, 1);
    let err = p.append(&AppendRequest {
        records: &[Record {
            key: b"x",
            value: b"x",
        }],
        producer: None,
    });
    assert!(err.is_err());
    assert!(p.is_storage_full());
    assert_eq!(p.durable_offset(), 1);
    disk.free();
    // The producer retries sequence 2: it was cut off, so it is appended
    // again (not answered with the offsets of bytes that are gone).
    let retry = p
        .append(&AppendRequest {
            records: &[Record {
                key: b"b",
                value: b"two",
            }],
            producer: producer(2),
        })
        .unwrap();
    assert!(!retry.duplicate);
    assert_eq!(retry.base_offset, 1);
    // A retry of the durable batch is still answered with its offsets.
    let again = p
        .append(&AppendRequest {
            records: &[Record {
                key: b"a",
                value: b"one",
            }],
            producer: producer(1),
        })
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.base_offset, 0);
    // The handle of the cut-off write never completes on the later batch
    // that now holds its offset.
    assert!(!stale.is_durable());
    assert!(matches!(stale.wait(), Err(LogError::StorageFull { .. })));
    let c = contents(&p);
    assert_eq!(c.get(&1).map(Vec::as_slice), Some(&b"two"[..]));
    assert_eq!(c.len(), 2);
}

/// A producer with batches in flight (the engine's output stage, an
/// adapter's pipeline) may send its next batch before it learns that the
/// ones before it were cut off. That batch is refused as out of order,
/// never appended behind the gap (which would leave the cut-off ones to be
/// answered as stale, and lost), even when the producer's whole remembered
/// window was cut off; resent in order from the first cut-off one, all are
/// appended once.
#[test]
fn a_pipelined_batch_behind_cut_off_ones_is_refused_until_they_are_resent() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(Disk::default());
    let log = open(dir.path(), &disk, Durability::Fsync, 64 * 1024);
    log.create_topic("t", TopicConfig::new(1)).unwrap();
    let p = log.partition("t", 0).unwrap();
    let send = |sequence: u64, value: &'static [u8]| {
        p.append_pending(&AppendRequest {
            records: &[Record { key: value, value }],
            producer: Some(ProducerSeq {
                producer_id: 11,
                sequence,
            }),
        })
    };
    // Sequence 0 is written; its fdatasync finds the disk full.
    disk.full_syncs.store(true, Ordering::SeqCst);
    let (_, d0) = send(0, b"zero").unwrap();
    assert!(d0.wait().is_err());
    assert!(p.is_storage_full());
    disk.free();
    // The producer's next batches arrive first; the first resumes the
    // writer (which cuts 0 off, the producer's whole window): refused,
    // nothing appended.
    for sequence in [1, 2] {
        let err = send(sequence, b"later").unwrap_err();
        assert!(
            matches!(
                err,
                LogError::OutOfOrderSequence { expected: 0, got, .. } if got == sequence
            ),
            "{err}"
        );
    }
    assert!(!p.is_storage_full());
    assert_eq!(p.next_offset(), 0);
    // Resent in order: each appended once.
    for (sequence, value) in [(0, &b"zero"[..]), (1, b"one"), (2, b"two")] {
        let ack = p
            .append(&AppendRequest {
                records: &[Record { key: value, value }],
                producer: Some(ProducerSeq {
                    producer_id: 11,
                    sequence,
                }),
            })
            .unwrap();
        assert!(!ack.duplicate);
        assert_eq!(ack.base_offset, sequence);
    }
    let values: Vec<Vec<u8>> = contents(&p).into_values().collect();
    assert_eq!(values, [&b"zero"[..], b"one", b"two"]);
}

#[test]
fn other_io_failures_still_poison_until_restart() {
    #[derive(Debug, Default)]
    struct BrokenDisk(AtomicBool);
    impl FaultInjector for BrokenDisk {
        fn before_sync(&self, _: &Path) -> std::io::Result<()> {
            if self.0.load(Ordering::SeqCst) {
                return Err(std::io::Error::from_raw_os_error(5)); // EIO
            }
            Ok(())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let broken = Arc::new(BrokenDisk::default());
    let mut c = LogConfig::new(dir.path());
    c.fault_injector = Some(broken.clone());
    c.storage_full_probe_interval_ms = 0;
    let log = Log::open(c).unwrap();
    log.create_topic("t", TopicConfig::new(1)).unwrap();
    let p = log.partition("t", 0).unwrap();
    broken.0.store(true, Ordering::SeqCst);
    assert!(append(&p, b"v").is_err());
    broken.0.store(false, Ordering::SeqCst);
    assert!(matches!(append(&p, b"v"), Err(LogError::Poisoned { .. })));
    assert!(!p.is_storage_full());
}

#[test]
fn concurrent_appenders_lose_nothing_acknowledged_while_the_disk_fills_and_empties() {
    const THREADS: u64 = 4;
    const APPENDS_PER_THREAD: u64 = 400;
    /// Writes and fdatasyncs per full (and per free) run of the disk.
    const CYCLE_CALLS: u64 = 40;
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(Disk::default());
    // Small segments: rolls happen while the disk fills and empties.
    let log = Arc::new(open(dir.path(), &disk, Durability::Fsync, 16 * 1024));
    log.create_topic("t", TopicConfig::new(1)).unwrap();
    let p = log.partition("t", 0).unwrap();
    // The disk fills and empties while they append, counted in I/O calls
    // (not in time, which would let fast appenders finish in one run).
    disk.cycle_calls.store(CYCLE_CALLS, Ordering::SeqCst);
    let acked = Arc::new(std::sync::Mutex::new(BTreeMap::new()));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (p, acked) = (p.clone(), acked.clone());
            std::thread::spawn(move || {
                let mut refused = 0u64;
                for i in 0..APPENDS_PER_THREAD {
                    let v = format!("t{t}-{i}").into_bytes();
                    // Each batch is retried with its sequence until
                    // acknowledged, like a client: a refused batch whose
                    // fdatasync completed anyway is answered as a retry.
                    let req = AppendRequest {
                        records: &[Record { key: &v, value: &v }],
                        producer: Some(ProducerSeq {
                            producer_id: t + 1,
                            sequence: i + 1,
                        }),
                    };
                    loop {
                        match p.append(&req) {
                            Ok(ack) => {
                                let prev = acked.lock().unwrap().insert(ack.base_offset, v.clone());
                                assert!(
                                    prev.is_none(),
                                    "offset {} acknowledged twice",
                                    ack.base_offset
                                );
                                break;
                            }
                            Err(e) => {
                                assert!(is_storage_full(&e), "{e}");
                                refused += 1;
                                std::thread::yield_now();
                            }
                        }
                    }
                }
                refused
            })
        })
        .collect();
    let refused: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    disk.cycle_calls.store(0, Ordering::SeqCst);
    disk.free();
    let flips = disk.calls.load(Ordering::SeqCst) / CYCLE_CALLS;
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len() as u64, THREADS * APPENDS_PER_THREAD);
    assert!(
        refused > 0 && flips > 2,
        "the disk filled: {refused} {flips}"
    );
    let c = contents(&p);
    assert_eq!(c, acked, "the log holds exactly the acknowledged appends");
    drop(p);
    Arc::try_unwrap(log).unwrap().close().unwrap();
    let log = open(dir.path(), &disk, Durability::Fsync, 16 * 1024);
    assert_eq!(contents(&log.partition("t", 0).unwrap()), acked);
}
