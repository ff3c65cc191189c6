#![allow(clippy::unwrap_used, clippy::expect_used)]
//! End-to-end behaviour of the public API on a real directory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dropline_log::*;

#[derive(Debug, Default)]
struct TestClock(AtomicU64);
impl Clock for TestClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn config(dir: &std::path::Path, clock: &Arc<TestClock>) -> LogConfig {
    let mut c = LogConfig::new(dir);
    c.segment_bytes_max = 4096;
    c.index_interval_bytes = 256;
    c.clock = clock.clone();
    c
}

fn rec<'a>(key: &'a [u8], value: &'a [u8]) -> Record<'a> {
    Record { key, value }
}

fn all_records(p: &Partition) -> Vec<(u64, u64, Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut next = p.start_offset();
    loop {
        let batches = p.read(next, 1 << 16).unwrap();
        if batches.is_empty() {
            return out;
        }
        for b in &batches {
            for r in b.records().filter(|r| r.offset >= next) {
                out.push((r.offset, r.log_time_ms, r.key.to_vec(), r.value.to_vec()));
            }
            next = b.last_offset() + 1;
        }
    }
}

#[test]
fn append_read_reopen_roll_and_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(TestClock(AtomicU64::new(1_000)));
    let log = Log::open(config(dir.path(), &clock)).unwrap();
    log.create_topic("events", TopicConfig::new(2)).unwrap();
    log.create_topic("events", TopicConfig::new(2)).unwrap();
    assert!(matches!(
        log.create_topic("events", TopicConfig::new(3)),
        Err(LogError::TopicExists { .. })
    ));
    let p = log.partition("events", 1).unwrap();
    let mut expected = Vec::new();
    for i in 0..200u64 {
        clock.0.store(1_000 + i * 10, Ordering::SeqCst);
        let key = format!("key-{}", i % 7);
        let value = format!("value-{i}-{}", "x".repeat((i % 50) as usize));
        let ack = p
            .append(&AppendRequest {
                records: &[rec(key.as_bytes(), value.as_bytes())],
                producer: None,
            })
            .unwrap();
        assert_eq!(ack.base_offset, i);
        assert_eq!(ack.log_time_ms, 1_000 + i * 10);
        expected.push((i, 1_000 + i * 10, key.into_bytes(), value.into_bytes()));
    }
    assert_eq!(p.durable_offset(), 200);
    assert!(
        log.topics()[0].partitions[1].segments > 3,
        "segments rolled"
    );
    assert_eq!(all_records(&p), expected);
    assert_eq!(p.offset_for_time(1_055).unwrap(), Some(6));
    assert_eq!(p.offset_for_time(0).unwrap(), Some(0));
    assert_eq!(p.offset_for_time(99_999).unwrap(), None);
    let hits = p.lookup_key(b"key-3").unwrap();
    let want: Vec<u64> = (0..200).filter(|i| i % 7 == 3).collect();
    assert_eq!(hits.iter().map(|r| r.offset).collect::<Vec<_>>(), want);
    drop(p);
    log.close().unwrap();

    let log = Log::open(config(dir.path(), &clock)).unwrap();
    assert!(log.recovery_report().truncations().next().is_none());
    let p = log.partition("events", 1).unwrap();
    assert_eq!(p.next_offset(), 200);
    assert_eq!(all_records(&p), expected);
    assert_eq!(p.lookup_key(b"key-3").unwrap().len(), want.len());
    // Log time stays monotonic even if the clock goes back.
    clock.0.store(5, Ordering::SeqCst);
    let ack = p
        .append(&AppendRequest {
            records: &[rec(b"k", b"v")],
            producer: None,
        })
        .unwrap();
    assert_eq!(ack.log_time_ms, 1_000 + 199 * 10);
    assert!(verify(dir.path()).unwrap().is_clean());
}

#[test]
fn lock_file_excludes_a_second_open() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(LogConfig::new(dir.path())).unwrap();
    assert!(matches!(
        Log::open(LogConfig::new(dir.path())),
        Err(LogError::Locked { .. })
    ));
    log.close().unwrap();
    Log::open(LogConfig::new(dir.path())).unwrap();
}

#[test]
fn idempotent_producer_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(TestClock(AtomicU64::new(7)));
    let seq = |sequence| {
        Some(ProducerSeq {
            producer_id: 42,
            sequence,
        })
    };
    {
        let log = Log::open(config(dir.path(), &clock)).unwrap();
        log.create_topic("t", TopicConfig::new(1)).unwrap();
        let p = log.partition("t", 0).unwrap();
        let value = vec![7u8; 700];
        for s in 0..20 {
            let ack = p
                .append(&AppendRequest {
                    records: &[rec(b"a", &value), rec(b"b", &value)],
                    producer: seq(s),
                })
                .unwrap();
            assert_eq!((ack.base_offset, ack.duplicate), (s * 2, false));
        }
        let again = p
            .append(&AppendRequest {
                records: &[rec(b"a", b"")],
                producer: seq(19),
            })
            .unwrap();
        assert_eq!(
            (again.base_offset, again.last_offset, again.duplicate),
            (38, 39, true)
        );
        assert!(matches!(
            p.append(&AppendRequest {
                records: &[rec(b"a", b"")],
                producer: seq(25)
            }),
            Err(LogError::OutOfOrderSequence {
                expected: 20,
                got: 25,
                ..
            })
        ));
        log.close().unwrap();
    }
    let log = Log::open(config(dir.path(), &clock)).unwrap();
    let p = log.partition("t", 0).unwrap();
    let again = p
        .append(&AppendRequest {
            records: &[rec(b"a", b"")],
            producer: seq(18),
        })
        .unwrap();
    assert_eq!((again.base_offset, again.duplicate), (36, true));
    let next = p
        .append(&AppendRequest {
            records: &[rec(b"a", b"")],
            producer: seq(20),
        })
        .unwrap();
    assert_eq!((next.base_offset, next.duplicate), (40, false));
}

#[test]
fn concurrent_appenders_share_fdatasyncs_and_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(LogConfig::new(dir.path())).unwrap());
    log.create_topic("t", TopicConfig::new(1)).unwrap();
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                let p = log.partition("t", 0).unwrap();
                let mut offsets = Vec::new();
                for i in 0..50u8 {
                    let ack = p
                        .append(&AppendRequest {
                            records: &[rec(&[t], &[i; 100])],
                            producer: None,
                        })
                        .unwrap();
                    assert!(p.durable_offset() > ack.last_offset);
                    offsets.push(ack.base_offset);
                }
                offsets
            })
        })
        .collect();
    let mut all: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..200).collect::<Vec<_>>());
    let p = log.partition("t", 0).unwrap();
    assert_eq!(all_records(&p).len(), 200);
}

#[test]
fn tail_follow_wakes_on_durable_data_and_async_durable_completes() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(LogConfig::new(dir.path())).unwrap());
    log.create_topic("t", TopicConfig::new(1)).unwrap();
    let p = log.partition("t", 0).unwrap();
    assert!(!p.wait_for_data(0, Duration::from_millis(1)));
    let reader = {
        let p = p.clone();
        std::thread::spawn(move || {
            assert!(p.wait_for_data(0, Duration::from_secs(60)));
            p.read(0, 1024).unwrap().len()
        })
    };
    let (_, durable) = p
        .append_pending(&AppendRequest {
            records: &[rec(b"k", b"v")],
            producer: None,
        })
        .unwrap();
    durable.wait().unwrap();
    assert_eq!(reader.join().unwrap(), 1);
    let (ack, durable) = p
        .append_pending(&AppendRequest {
            records: &[rec(b"k", b"w")],
            producer: None,
        })
        .unwrap();
    block_on(durable).unwrap();
    assert!(p.durable_offset() > ack.last_offset);
}

/// A minimal executor: polls the future, parking the thread between wakes.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

#[test]
fn consumer_offsets_are_durable_and_validated() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(LogConfig::new(dir.path())).unwrap();
        log.create_topic("t", TopicConfig::new(2)).unwrap();
        assert_eq!(log.consumer_offset("engine", "t", 1).unwrap(), None);
        log.commit_consumer_offset("engine", "t", 1, 17).unwrap();
        log.commit_consumer_offset("engine", "t", 1, 18).unwrap();
        assert!(matches!(
            log.commit_consumer_offset("../x", "t", 1, 1),
            Err(LogError::InvalidName { .. })
        ));
        assert!(matches!(
            log.commit_consumer_offset("g", "t", 5, 1),
            Err(LogError::PartitionNotFound { .. })
        ));
    }
    let log = Log::open(LogConfig::new(dir.path())).unwrap();
    assert_eq!(log.consumer_offset("engine", "t", 1).unwrap(), Some(18));
}

#[test]
fn limits_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(LogConfig::new(dir.path())).unwrap();
    log.create_topic("t", TopicConfig::new(1)).unwrap();
    let p = log.partition("t", 0).unwrap();
    let big_key = vec![0u8; KEY_BYTES_MAX + 1];
    let big_value = vec![0u8; RECORD_BYTES_MAX];
    assert!(matches!(
        p.append(&AppendRequest {
            records: &[rec(&big_key, b"")],
            producer: None
        }),
        Err(LogError::KeyTooLarge { .. })
    ));
    assert!(matches!(
        p.append(&AppendRequest {
            records: &[rec(b"k", &big_value)],
            producer: None
        }),
        Err(LogError::RecordTooLarge { .. })
    ));
    let many: Vec<Record<'_>> = (0..9)
        .map(|_| rec(b"", &big_value[..RECORD_BYTES_MAX - 1]))
        .collect();
    assert!(matches!(
        p.append(&AppendRequest {
            records: &many,
            producer: None
        }),
        Err(LogError::BatchTooLarge { .. })
    ));
    assert!(matches!(
        p.append(&AppendRequest {
            records: &[],
            producer: None
        }),
        Err(LogError::EmptyBatch)
    ));
    assert!(matches!(
        log.partition("nope", 0),
        Err(LogError::TopicNotFound { .. })
    ));
    assert_eq!(p.next_offset(), 0);
}

#[test]
fn both_io_backends_write_the_same_bytes_and_both_read_paths_agree() {
    let mut files = Vec::new();
    for mode in [IoMode::Auto, IoMode::Pwrite] {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(TestClock(AtomicU64::new(123)));
        let mut c = config(dir.path(), &clock);
        c.io_mode = mode;
        let log = Log::open(c).unwrap();
        match (mode, log.io_backend()) {
            (
                IoMode::Pwrite,
                IoBackend::Pwrite {
                    reason: PwriteReason::Forced,
                },
            ) => {}
            (IoMode::Pwrite, other) => panic!("forced pwrite, got {other:?}"),
            (_, backend) => eprintln!("auto-selected backend: {backend:?}"),
        }
        log.create_topic("t", TopicConfig::new(1)).unwrap();
        let p = log.partition("t", 0).unwrap();
        for i in 0..60u32 {
            let v = vec![i as u8; (i * 13 % 300) as usize];
            p.append(&AppendRequest {
                records: &[rec(&i.to_le_bytes(), &v), rec(b"x", &v)],
                producer: None,
            })
            .unwrap();
        }
        for from in [0, 1, 37, 80, 119] {
            let mapped: Vec<Vec<u8>> = p
                .read(from, 2000)
                .unwrap()
                .iter()
                .map(|b| b.as_bytes().to_vec())
                .collect();
            let copied = p.read_pread(from, 2000).unwrap();
            assert!(!mapped.is_empty());
            assert_eq!(mapped, copied, "from {from}");
        }
        log.close().unwrap();
        let part = dir.path().join("topics/t/00000");
        let mut names: Vec<_> = std::fs::read_dir(&part)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        files.push(
            names
                .iter()
                .map(|n| (n.file_name().unwrap().to_owned(), std::fs::read(n).unwrap()))
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(files[0], files[1]);
}

#[test]
fn interval_mode_acks_after_write_and_syncs_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = LogConfig::new(dir.path());
    c.durability = Durability::Interval { interval_ms: 5 };
    let log = Log::open(c).unwrap();
    log.create_topic("t", TopicConfig::new(1)).unwrap();
    let p = log.partition("t", 0).unwrap();
    let ack = p
        .append(&AppendRequest {
            records: &[rec(b"k", b"v")],
            producer: None,
        })
        .unwrap();
    assert_eq!(p.next_offset(), 1);
    // Readers see the batch once the interval's fdatasync has run.
    assert_eq!(ack.base_offset, 0);
    assert!(p.wait_for_data(0, Duration::from_secs(60)));
    assert_eq!(p.durable_offset(), 1);
    assert_eq!(p.read(0, 1).unwrap().len(), 1);
}

#[test]
fn size_retention_deletes_oldest_sealed_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(TestClock(AtomicU64::new(1)));
    let log = Log::open(config(dir.path(), &clock)).unwrap();
    let mut t = TopicConfig::new(1);
    t.retention_ms = None;
    t.retention_bytes = Some(10_000);
    log.create_topic("t", t).unwrap();
    let p = log.partition("t", 0).unwrap();
    let v = vec![9u8; 900];
    for _ in 0..60 {
        p.append(&AppendRequest {
            records: &[rec(b"k", &v)],
            producer: None,
        })
        .unwrap();
    }
    let before = p.info();
    assert!(before.bytes > 10_000);
    let report = log.enforce_retention(u64::MAX).unwrap();
    assert!(!report.deleted.is_empty());
    assert!(
        report
            .deleted
            .iter()
            .all(|d| d.reason == RetentionReason::Size && d.archived_to.is_none())
    );
    let after = p.info();
    assert!(after.bytes <= 10_000 + 4096, "{after:?}");
    assert_eq!(
        after.start_offset,
        report.deleted.last().unwrap().next_offset
    );
    assert_eq!(after.next_offset, 60);
    assert!(matches!(
        p.read(0, 1),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(
        p.read(after.start_offset, 1).unwrap()[0].base_offset(),
        after.start_offset
    );
    assert_eq!(
        p.lookup_key(b"k").unwrap().first().unwrap().offset,
        after.start_offset
    );
    // Default (age) retention keeps everything younger than 30 days.
    assert_eq!(TopicConfig::new(1).retention_ms, Some(RETENTION_MS_DEFAULT));
}
