//! The log's replica API: batches encoded elsewhere are placed identically
//! on every replica, a producer batch is checked before it is proposed, and
//! a conflicting suffix is cut off durably.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dropline_log::{
    AppendRequest, Clock, Log, LogConfig, LogError, Partition, ProducerSeq, Record, TopicConfig,
    encode_unplaced_batch,
};

#[derive(Debug, Default)]
struct TestClock(AtomicU64);
impl Clock for TestClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

fn open(dir: &std::path::Path, clock_ms: u64) -> (Log, Arc<Partition>) {
    let mut c = LogConfig::new(dir);
    c.segment_bytes_max = 4096;
    c.index_interval_bytes = 256;
    c.clock = Arc::new(TestClock(AtomicU64::new(clock_ms)));
    let log = Log::open(c).expect("open");
    if log.partition("t", 0).is_err() {
        log.create_topic("t", TopicConfig::new(1)).expect("topic");
    }
    let p = log.partition("t", 0).expect("partition");
    (log, p)
}

fn batch(i: u64, producer: Option<ProducerSeq>, time_ms: u64) -> Vec<u8> {
    let key = format!("k{i}");
    let value = format!("value {i}").repeat((i % 7 + 1) as usize);
    let records = [
        Record {
            key: key.as_bytes(),
            value: value.as_bytes(),
        },
        Record {
            key: b"other",
            value: value.as_bytes(),
        },
    ];
    encode_unplaced_batch(
        &AppendRequest {
            records: &records,
            producer,
        },
        false,
        time_ms,
    )
    .expect("encode")
}

fn all_bytes(p: &Partition) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut next = p.start_offset();
    while next < p.durable_offset() {
        let views = p.read(next, 1 << 20).expect("read");
        for v in &views {
            out.push(v.as_bytes().to_vec());
            next = v.last_offset() + 1;
        }
    }
    out
}

#[test]
fn replicas_place_the_same_batches_identically() {
    let a_dir = tempfile::tempdir().expect("tmp");
    let b_dir = tempfile::tempdir().expect("tmp");
    // Different local clocks: placement must not depend on them.
    let (_la, a) = open(a_dir.path(), 5);
    let (_lb, b) = open(b_dir.path(), 999_999);
    for i in 0..60u64 {
        // Leader clocks may go backwards across leader changes.
        let t = 1_000 + (i * 37) % 500;
        let producer = (i % 3 == 0).then_some(ProducerSeq {
            producer_id: 7,
            sequence: i / 3,
        });
        let bytes = batch(i, producer, t);
        let (ack_a, da) = a.append_replicated(&bytes).expect("append a");
        let (ack_b, db) = b.append_replicated(&bytes).expect("append b");
        da.wait().expect("durable");
        db.wait().expect("durable");
        assert_eq!(ack_a, ack_b);
        assert_eq!(ack_a.base_offset, i * 2);
    }
    let (ba, bb) = (all_bytes(&a), all_bytes(&b));
    assert_eq!(ba.len(), 60);
    assert_eq!(ba, bb, "replicas differ");
    // Log time never decreases.
    let times: Vec<u64> = ba
        .iter()
        .map(|b| {
            dropline_log::decode_batch(b)
                .expect("decode")
                .first_time_ms()
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    // Producer batches appended this way are known to the producer table.
    let seen = a
        .check_producer(ProducerSeq {
            producer_id: 7,
            sequence: 19,
        })
        .expect("check");
    assert_eq!(seen.map(|ack| ack.base_offset), Some(57 * 2));
    assert_eq!(
        a.check_producer(ProducerSeq {
            producer_id: 7,
            sequence: 20
        })
        .expect("check"),
        None
    );
    assert!(matches!(
        a.check_producer(ProducerSeq {
            producer_id: 7,
            sequence: 22
        }),
        Err(LogError::OutOfOrderSequence { .. })
    ));
}

#[test]
fn truncation_cuts_durably_in_the_active_and_in_sealed_segments() {
    let dir = tempfile::tempdir().expect("tmp");
    let (log, p) = open(dir.path(), 0);
    let mut acks = Vec::new();
    for i in 0..40u64 {
        let producer = Some(ProducerSeq {
            producer_id: 9,
            sequence: i,
        });
        let (ack, d) = p
            .append_replicated(&batch(i, producer, 100 + i))
            .expect("append");
        d.wait().expect("durable");
        acks.push(ack);
    }
    let info = p.info();
    assert!(
        info.segments > 1,
        "the test needs sealed segments: {info:?}"
    );
    let before = all_bytes(&p);
    // A view held across the truncation keeps reading the old bytes.
    let held = p.read(acks[39].base_offset, 1 << 20).expect("read");
    p.truncate_to(acks[39].base_offset)
        .expect("cut the last batch");
    assert_eq!(p.next_offset(), acks[39].base_offset);
    assert_eq!(p.durable_offset(), acks[39].base_offset);
    assert_eq!(held[0].as_bytes(), before[39].as_slice());
    // Retrying producer sequence 39 is now new again; 38 is still known.
    assert_eq!(
        p.check_producer(ProducerSeq {
            producer_id: 9,
            sequence: 39
        })
        .expect("check"),
        None
    );
    assert!(
        p.check_producer(ProducerSeq {
            producer_id: 9,
            sequence: 38
        })
        .expect("check")
        .is_some()
    );
    // A cut off a batch boundary is refused and changes nothing.
    let mid = acks[38].base_offset + 1;
    assert!(matches!(
        p.truncate_to(mid),
        Err(LogError::CannotTruncate { .. })
    ));
    assert_eq!(all_bytes(&p).as_slice(), &before[..39]);
    drop(held);
    // The refused cut poisoned nothing it should not: a fresh log state
    // after reopening equals the kept prefix.
    drop(p);
    log.close().expect("close");
    let (log, p) = open(dir.path(), 0);
    let after = all_bytes(&p);
    assert_eq!(after.as_slice(), &before[..39]);
    // Appending after the cut continues with the same offsets and time
    // rule, and a reopen agrees.
    let (ack, d) = p
        .append_replicated(&batch(
            1000,
            Some(ProducerSeq {
                producer_id: 9,
                sequence: 39,
            }),
            1,
        ))
        .expect("append");
    d.wait().expect("durable");
    assert_eq!(ack.base_offset, acks[39].base_offset);
    assert_eq!(ack.log_time_ms, acks[38].log_time_ms);
    drop(p);
    log.close().expect("close");
    let (log, p) = open(dir.path(), 0);
    assert_eq!(all_bytes(&p).len(), 40);
    // A cut inside a sealed segment: later segments go, that segment
    // becomes the active one, and a view of a removed segment stays valid.
    let segments_before = p.info().segments;
    let held = p.read(acks[30].base_offset, 1 << 20).expect("read");
    p.truncate_to(acks[5].base_offset)
        .expect("cut into a sealed segment");
    assert!(p.info().segments < segments_before);
    assert_eq!(all_bytes(&p).as_slice(), &before[..5]);
    assert_eq!(held[0].as_bytes(), before[30].as_slice());
    assert_eq!(
        p.check_producer(ProducerSeq {
            producer_id: 9,
            sequence: 5
        })
        .expect("check"),
        None
    );
    assert!(
        p.check_producer(ProducerSeq {
            producer_id: 9,
            sequence: 4
        })
        .expect("check")
        .is_some()
    );
    // Appends after it roll and seal again as usual, and a reopen agrees.
    for i in 5..40u64 {
        let producer = Some(ProducerSeq {
            producer_id: 9,
            sequence: i,
        });
        let (ack, d) = p
            .append_replicated(&batch(i, producer, 100 + i))
            .expect("append");
        d.wait().expect("durable");
        assert_eq!(ack, acks[i as usize]);
    }
    assert_eq!(all_bytes(&p), before);
    drop((p, held));
    log.close().expect("close");
    let (_log, p) = open(dir.path(), 0);
    assert_eq!(all_bytes(&p), before);
}

#[test]
fn truncation_inside_the_active_segment_then_reopen() {
    let dir = tempfile::tempdir().expect("tmp");
    let (log, p) = open(dir.path(), 0);
    let mut acks = Vec::new();
    for i in 0..6u64 {
        let (ack, d) = p
            .append_replicated(&batch(i, None, 10 + i))
            .expect("append");
        d.wait().expect("durable");
        acks.push(ack);
    }
    assert_eq!(p.info().segments, 1);
    let before = all_bytes(&p);
    p.truncate_to(acks[2].base_offset).expect("truncate");
    assert_eq!(all_bytes(&p).as_slice(), &before[..2]);
    // Appends written but not yet durable can be cut too.
    let (_, pending) = p.append_replicated(&batch(50, None, 60)).expect("append");
    p.truncate_to(acks[2].base_offset)
        .expect("truncate unsynced");
    assert!(
        pending.wait().is_err(),
        "a cut-off batch never becomes durable"
    );
    p.truncate_to(0).expect("truncate everything");
    assert_eq!(p.next_offset(), 0);
    let (ack, d) = p.append_replicated(&batch(0, None, 10)).expect("append");
    d.wait().expect("durable");
    assert_eq!(ack.base_offset, 0);
    drop(p);
    log.close().expect("close");
    let (_log, p) = open(dir.path(), 0);
    assert_eq!(all_bytes(&p).as_slice(), &before[..1]);
}

/// The file states a crash inside `truncate_to` can leave (later segments
/// partly removed, the kept segment's index removed, the copy not yet
/// renamed) all recover to a contiguous prefix of the original log.
#[test]
fn a_crash_inside_a_truncation_leaves_a_contiguous_prefix() {
    let dir = tempfile::tempdir().expect("tmp");
    let (log, p) = open(dir.path(), 0);
    for i in 0..160u64 {
        let (_, d) = p
            .append_replicated(&batch(i, None, 100 + i))
            .expect("append");
        d.wait().expect("durable");
    }
    let before = all_bytes(&p);
    drop(p);
    log.close().expect("close");
    let part_dir = dir.path().join("topics").join("t").join("00000");
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&part_dir)
        .expect("ls")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "log" || x == "idx"))
        .collect();
    files.sort();
    let logs: Vec<_> = files
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .cloned()
        .collect();
    assert!(logs.len() >= 3, "needs several segments: {files:?}");
    // Step by step as truncate_to removes them: the active segment, then
    // each later sealed segment's log and index, newest first, then the
    // kept segment's index. Every intermediate state must open.
    let kept = logs.len() - 3;
    let mut removals = vec![logs[logs.len() - 1].clone()];
    for l in logs[kept + 1..logs.len() - 1].iter().rev() {
        removals.push(l.clone());
        removals.push(l.with_extension("idx"));
    }
    removals.push(logs[kept].with_extension("idx"));
    // A crash stops the sequence after any step; each such state, from
    // the original files, must open as a prefix of the original log.
    let originals: Vec<(std::path::PathBuf, Vec<u8>)> = files
        .iter()
        .map(|f| (f.clone(), std::fs::read(f).expect("read")))
        .collect();
    for done in 1..=removals.len() {
        for entry in std::fs::read_dir(&part_dir).expect("ls") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|x| x == "log" || x == "idx") {
                std::fs::remove_file(&path).expect("clean");
            }
        }
        for (f, bytes) in &originals {
            std::fs::write(f, bytes).expect("restore");
        }
        for r in &removals[..done] {
            std::fs::remove_file(r).expect("remove");
        }
        let (log, p) = open(dir.path(), 0);
        let now = all_bytes(&p);
        assert!(!now.is_empty() && now.len() < before.len());
        assert_eq!(
            now.as_slice(),
            &before[..now.len()],
            "not a prefix after the first {done} removals"
        );
        drop(p);
        log.close().expect("close");
    }
}
