#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Preallocated segments (`LogConfig::preallocate_segments`): the zeros
//! after the data of a segment are free space, not a torn tail, for
//! recovery and `verify`; a rolled segment is cut to its data when sealed
//! (or at the next open, if the process stopped before); damage inside a
//! preallocated segment is still truncated or refused as before.

use std::path::{Path, PathBuf};

use dropline_log::*;

const SEGMENT_BYTES: u64 = 64 * 1024;

fn config(dir: &Path, preallocate: bool) -> LogConfig {
    let mut c = LogConfig::new(dir);
    c.segment_bytes_max = SEGMENT_BYTES;
    c.index_interval_bytes = 512;
    c.preallocate_segments = preallocate;
    c
}

fn partition_dir(dir: &Path) -> PathBuf {
    dir.join("topics/t/00000")
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(partition_dir(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

fn value(i: u64) -> Vec<u8> {
    vec![b'a' + (i % 26) as u8; 200 + (i % 7) as usize]
}

/// Appends batches `from..to` of two records each; returns the acked
/// offset ranges.
fn append(log: &Log, from: u64, to: u64) {
    let p = log.partition("t", 0).unwrap();
    for i in from..to {
        let (k0, k1, v) = (format!("k{}", i % 13), format!("k{}", i % 17), value(i));
        let ack = p
            .append(&AppendRequest {
                records: &[
                    Record {
                        key: k0.as_bytes(),
                        value: &v,
                    },
                    Record {
                        key: k1.as_bytes(),
                        value: &v,
                    },
                ],
                producer: None,
            })
            .unwrap();
        assert_eq!(ack.base_offset, 2 * i);
    }
}

/// Checks that exactly batches `0..batches` are readable, intact.
fn check_all(log: &Log, batches: u64) {
    let p = log.partition("t", 0).unwrap();
    assert_eq!(p.durable_offset(), 2 * batches);
    let mut next = 0;
    while next < p.durable_offset() {
        for b in p.read(next, 1 << 20).unwrap() {
            for r in b.records() {
                assert_eq!(r.value, &value(r.offset / 2)[..], "offset {}", r.offset);
            }
            next = b.last_offset() + 1;
        }
    }
    assert_eq!(next, 2 * batches);
}

/// Where the batches of a segment file end: walks the headers' lengths up
/// to the first zero length (the preallocated rest).
fn data_end(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    let mut at = 0usize;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        if len == 0 {
            break;
        }
        at += len;
    }
    at as u64
}

fn new_log(dir: &Path) -> Log {
    let log = Log::open(config(dir, true)).unwrap();
    log.create_topic("t", TopicConfig::new(1)).unwrap();
    log
}

#[test]
fn a_preallocated_active_segment_reopens_without_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let log = new_log(dir.path());
    let active = segments(dir.path()).pop().unwrap();
    assert_eq!(std::fs::metadata(&active).unwrap().len(), SEGMENT_BYTES);
    append(&log, 0, 20);
    log.close().unwrap();
    assert_eq!(std::fs::metadata(&active).unwrap().len(), SEGMENT_BYTES);
    assert!(data_end(&active) < SEGMENT_BYTES);

    // The zeros after the data are neither damage for verify...
    let report = verify(dir.path()).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.records, 40);
    // ...nor a torn tail for recovery, with or without preallocation now.
    for preallocate in [true, false] {
        let log = Log::open(config(dir.path(), preallocate)).unwrap();
        let rec = log.recovery_report();
        assert_eq!(rec.truncations().count(), 0, "{rec:?}");
        check_all(&log, 20);
        log.close().unwrap();
        assert_eq!(std::fs::metadata(&active).unwrap().len(), SEGMENT_BYTES);
    }
    // Appends go on over the zeros.
    let log = Log::open(config(dir.path(), true)).unwrap();
    append(&log, 20, 40);
    check_all(&log, 40);
    log.close().unwrap();
    let log = Log::open(config(dir.path(), true)).unwrap();
    check_all(&log, 40);
    assert!(verify(dir.path()).unwrap().is_clean());
}

#[test]
fn rolled_segments_are_cut_to_their_data_and_verify_clean() {
    let dir = tempfile::tempdir().unwrap();
    let log = new_log(dir.path());
    append(&log, 0, 1000);
    check_all(&log, 1000);
    // Keys are found across sealed, preallocated segments.
    let p = log.partition("t", 0).unwrap();
    let found = p.lookup_key(b"k3").unwrap();
    let expected = (0..1000u64).map(|i| u64::from(i % 13 == 3) + u64::from(i % 17 == 3));
    assert_eq!(found.len() as u64, expected.sum::<u64>());
    log.close().unwrap();
    let segs = segments(dir.path());
    assert!(segs.len() >= 4, "{} segments", segs.len());
    for s in &segs[..segs.len() - 1] {
        let len = std::fs::metadata(s).unwrap().len();
        assert_eq!(len, data_end(s), "{} is cut to its data", s.display());
        assert!(s.with_extension("idx").exists());
    }
    let report = verify(dir.path()).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.records, 2000);
    let log = Log::open(config(dir.path(), true)).unwrap();
    assert_eq!(log.recovery_report().truncations().count(), 0);
    check_all(&log, 1000);
    append(&log, 1000, 1100);
    check_all(&log, 1100);
}

#[test]
fn a_rolled_segment_not_yet_cut_when_the_process_stopped_is_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let log = new_log(dir.path());
    append(&log, 0, 700);
    log.close().unwrap();
    std::fs::remove_file(dir.path().join("LOCK")).unwrap();
    // The state a crash between the roll and the end of sealing leaves:
    // the segment still has its zeros and no index file.
    let segs = segments(dir.path());
    let rolled = &segs[segs.len() - 2];
    let data = std::fs::metadata(rolled).unwrap().len();
    std::fs::remove_file(rolled.with_extension("idx")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(rolled)
        .unwrap()
        .set_len(SEGMENT_BYTES)
        .unwrap();

    let report = verify(dir.path()).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(matches!(report.problems[0].kind, ProblemKind::IndexMissing));
    assert_eq!(report.records, 1400);

    let log = Log::open(config(dir.path(), true)).unwrap();
    let rec = log.recovery_report();
    assert_eq!(rec.truncations().count(), 0);
    assert_eq!(rec.partitions[0].rebuilt_indexes.len(), 1);
    assert_eq!(std::fs::metadata(rolled).unwrap().len(), data);
    check_all(&log, 700);
    log.close().unwrap();
    assert!(verify(dir.path()).unwrap().is_clean());
}

#[test]
fn a_torn_write_inside_a_preallocated_segment_is_truncated_to_the_acked_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let log = new_log(dir.path());
    append(&log, 0, 30);
    log.close().unwrap();
    std::fs::remove_file(dir.path().join("LOCK")).unwrap();
    let active = segments(dir.path()).pop().unwrap();
    let end = data_end(&active);
    // A batch torn by a crash: its first bytes reached the disk, the rest of
    // the preallocated file is still zeros.
    let mut bytes = std::fs::read(&active).unwrap();
    bytes.copy_within(..20, end as usize);
    std::fs::write(&active, &bytes).unwrap();

    let report = verify(dir.path()).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].file_offset, Some(end));
    assert!(matches!(
        report.problems[0].kind,
        ProblemKind::TornTail { bytes, .. } if bytes == SEGMENT_BYTES - end
    ));

    let log = Log::open(config(dir.path(), true)).unwrap();
    let t: Vec<_> = log.recovery_report().truncations().cloned().collect();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].file_offset, end);
    assert_eq!(t[0].bytes_removed, SEGMENT_BYTES - end);
    check_all(&log, 30);
    append(&log, 30, 40);
    check_all(&log, 40);
    log.close().unwrap();
    assert!(verify(dir.path()).unwrap().is_clean());
}

#[test]
fn damaged_durable_data_inside_a_preallocated_segment_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = new_log(dir.path());
    append(&log, 0, 30);
    log.close().unwrap();
    std::fs::remove_file(dir.path().join("LOCK")).unwrap();
    let active = segments(dir.path()).pop().unwrap();
    // A value byte of the first batch: later batches prove it was durable.
    let mut bytes = std::fs::read(&active).unwrap();
    bytes[BATCH_HEADER_BYTES + RECORD_HEADER_BYTES + 10] ^= 0x40;
    std::fs::write(&active, &bytes).unwrap();

    let report = verify(dir.path()).unwrap();
    assert!(
        report
            .problems
            .iter()
            .any(|p| matches!(p.kind, ProblemKind::DamagedDurable { .. })
                && p.file_offset == Some(0)),
        "{:?}",
        report.problems
    );
    match Log::open(config(dir.path(), true)) {
        Err(LogError::DamagedDurableBatch(d)) => assert_eq!(d.file_offset, 0),
        Err(other) => panic!("expected DamagedDurableBatch, got {other}"),
        Ok(_) => panic!("damaged durable data was accepted"),
    }
    assert_eq!(std::fs::read(&active).unwrap(), bytes, "nothing is changed");
}

#[test]
fn a_log_written_without_preallocation_opens_and_grows_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(config(dir.path(), false)).unwrap();
    log.create_topic("t", TopicConfig::new(1)).unwrap();
    append(&log, 0, 300);
    log.close().unwrap();
    let log = Log::open(config(dir.path(), true)).unwrap();
    assert_eq!(log.recovery_report().truncations().count(), 0);
    append(&log, 300, 900);
    check_all(&log, 900);
    log.close().unwrap();
    assert!(verify(dir.path()).unwrap().is_clean());
    let log = Log::open(config(dir.path(), false)).unwrap();
    check_all(&log, 900);
}

#[test]
fn a_leftover_spare_is_refilled_by_a_preallocating_open_and_deleted_by_another() {
    let dir = tempfile::tempdir().unwrap();
    let log = new_log(dir.path());
    append(&log, 0, 10);
    log.close().unwrap();
    // A spare as a crash in the middle of zero-filling may leave it.
    let spare = partition_dir(dir.path()).join("next-segment.log.tmp");
    std::fs::write(&spare, vec![0x5a; 10_000]).unwrap();

    // Reused: refilled with zeros before any roll takes it.
    let log = Log::open(config(dir.path(), true)).unwrap();
    assert!(log.recovery_report().partitions[0].removed_files.is_empty());
    append(&log, 10, 1000);
    check_all(&log, 1000);
    log.close().unwrap();
    let report = verify(dir.path()).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.records, 2000);

    // Without preallocation it is deleted at open.
    std::fs::write(&spare, vec![0x5a; 10_000]).unwrap();
    let log = Log::open(config(dir.path(), false)).unwrap();
    assert_eq!(
        log.recovery_report().partitions[0].removed_files,
        vec![spare.clone()]
    );
    assert!(!spare.exists());
    check_all(&log, 1000);
}
