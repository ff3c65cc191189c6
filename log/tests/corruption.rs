#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Torn and corrupt files: recovery truncates a torn or garbled tail of the
//! active segment; a corrupt byte in a sealed segment is reported by
//! `verify` and by reads as a typed error, never a panic.
//!
//! The fixtures under tests/fixtures/ were produced by the ignored test
//! `regenerate_fixtures` (`cargo test -p dropline-log --test corruption --
//! --ignored regenerate_fixtures`) and are checked in so that a format
//! change that breaks reading old files shows up here.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dropline_log::*;

struct FixedClock;
impl Clock for FixedClock {
    fn now_ms(&self) -> u64 {
        1_700_000_000_000
    }
}

fn config(dir: &Path) -> LogConfig {
    let mut c = LogConfig::new(dir);
    c.segment_bytes_max = 4096;
    c.index_interval_bytes = 512;
    c.durability = Durability::None;
    c.clock = Arc::new(FixedClock);
    c
}

const BATCHES: u64 = 40;

fn key(i: u64, j: u64) -> String {
    format!("k{:03}", (i * 2 + j) % 17)
}

/// Writes the deterministic data set the fixtures are made from.
fn build(dir: &Path) {
    let log = Log::open(config(dir)).unwrap();
    log.create_topic("t", TopicConfig::new(1)).unwrap();
    let p = log.partition("t", 0).unwrap();
    for i in 0..BATCHES {
        let (k0, k1) = (key(i, 0), key(i, 1));
        let v = vec![b'a' + (i % 26) as u8; 100];
        p.append(&AppendRequest {
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
    }
    log.close().unwrap();
    std::fs::remove_file(dir.join("LOCK")).unwrap();
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("topics/t/00000"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

fn flip(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0x40;
    std::fs::write(path, b).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Byte inside the first record's value of the first batch.
const CORRUPT_AT: usize = BATCH_HEADER_BYTES + RECORD_HEADER_BYTES + 4 + 10;
const TORN_BYTES: u64 = 7;

#[test]
#[ignore = "writes the checked-in fixtures; run explicitly after a deliberate format change"]
fn regenerate_fixtures() {
    let root = fixtures();
    let _ = std::fs::remove_dir_all(&root);
    let sealed = root.join("sealed-corrupt");
    build(&sealed);
    flip(&segments(&sealed)[0], CORRUPT_AT);
    let torn = root.join("torn-tail");
    build(&torn);
    let active = segments(&torn).pop().unwrap();
    let len = std::fs::metadata(&active).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap()
        .set_len(len - TORN_BYTES)
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    build(tmp.path());
    let mut batch = std::fs::read(&segments(tmp.path())[0]).unwrap();
    let len = u32::from_le_bytes(batch[4..8].try_into().unwrap()) as usize;
    batch.truncate(len);
    batch[3] = 2;
    std::fs::write(root.join("batch-version-2.bin"), batch).unwrap();
    assert!(verify(&sealed).unwrap().problems.len() == 1);
}

#[test]
fn fixture_corrupt_sealed_segment_is_reported_by_verify_and_reads() {
    let fixture = fixtures().join("sealed-corrupt");
    let report = verify(&fixture).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let p = &report.problems[0];
    assert!(
        p.path.ends_with("topics/t/00000/00000000000000000000.log"),
        "{}",
        p.path.display()
    );
    assert_eq!(p.file_offset, Some(0));
    assert!(
        matches!(
            p.kind,
            ProblemKind::BadBatch {
                error: BatchError::ChecksumMismatch { .. }
            }
        ),
        "{p}"
    );

    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture, dir.path());
    let log = Log::open(config(dir.path())).unwrap();
    let part = log.partition("t", 0).unwrap();
    assert_eq!(part.next_offset(), BATCHES * 2);
    match part.read(0, 1) {
        Err(LogError::ChecksumMismatch {
            segment,
            file_offset: 0,
            expected,
            got,
        }) => {
            assert!(segment.ends_with("00000000000000000000.log"));
            assert_ne!(expected, got);
        }
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
    assert!(matches!(
        part.read_pread(1, 1),
        Err(LogError::ChecksumMismatch { .. })
    ));
    assert!(matches!(
        part.lookup_key(key(0, 0).as_bytes()),
        Err(LogError::ChecksumMismatch { .. })
    ));
    // Everything after the damaged batch is still readable.
    let later = part.read(2, 1 << 20).unwrap();
    assert_eq!(later[0].base_offset(), 2);
    assert_eq!(later.last().unwrap().last_offset(), BATCHES * 2 - 1);
}

#[test]
fn fixture_torn_tail_is_truncated_and_reported() {
    let fixture = fixtures().join("torn-tail");
    let report = verify(&fixture).unwrap();
    assert_eq!(report.problems.len(), 1);
    assert!(
        matches!(report.problems[0].kind, ProblemKind::TornTail { .. }),
        "{}",
        report.problems[0]
    );

    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture, dir.path());
    let active = segments(dir.path()).pop().unwrap();
    let torn_len = std::fs::metadata(&active).unwrap().len();
    let log = Log::open(config(dir.path())).unwrap();
    let t: Vec<&Truncation> = log.recovery_report().truncations().collect();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].segment, active);
    assert_eq!(t[0].file_offset + t[0].bytes_removed, torn_len);
    assert!(matches!(t[0].reason, BatchError::Truncated { .. }));
    let part = log.partition("t", 0).unwrap();
    assert_eq!(
        part.next_offset(),
        BATCHES * 2 - 2,
        "only the torn batch is lost"
    );
    let ack = part
        .append(&AppendRequest {
            records: &[Record {
                key: b"k",
                value: b"v",
            }],
            producer: None,
        })
        .unwrap();
    assert_eq!(ack.base_offset, BATCHES * 2 - 2);
    log.close().unwrap();
    assert!(verify(dir.path()).unwrap().is_clean());
}

#[test]
fn fixture_unknown_batch_version_is_a_typed_error() {
    let bytes = std::fs::read(fixtures().join("batch-version-2.bin")).unwrap();
    assert_eq!(
        decode_batch(&bytes).unwrap_err(),
        BatchError::UnknownVersion { version: 2 }
    );
}

#[test]
fn garbled_tail_is_truncated_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let active = segments(dir.path()).pop().unwrap();
    let bytes = std::fs::read(&active).unwrap();
    // Find the last batch by walking the headers.
    let mut at = 0usize;
    let mut last = 0usize;
    while at < bytes.len() {
        last = at;
        at += u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
    }
    flip(&active, last + BATCH_HEADER_BYTES + 20);
    let mut garbage = std::fs::read(&active).unwrap();
    garbage.extend_from_slice(&[0u8; 100]);
    std::fs::write(&active, garbage).unwrap();
    let log = Log::open(config(dir.path())).unwrap();
    let t = log.recovery_report().truncations().next().unwrap().clone();
    assert_eq!(t.file_offset, last as u64);
    assert!(
        matches!(t.reason, BatchError::ChecksumMismatch { .. }),
        "{:?}",
        t.reason
    );
    assert_eq!(
        log.partition("t", 0).unwrap().next_offset(),
        BATCHES * 2 - 2
    );
}

#[test]
fn damaged_index_header_is_rebuilt_and_damaged_body_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path());
    let idx = segments(dir.path())[0].with_extension("idx");
    flip(&idx, 20);
    let log = Log::open(config(dir.path())).unwrap();
    assert_eq!(
        log.recovery_report().partitions[0].rebuilt_indexes,
        vec![idx.clone()]
    );
    let part = log.partition("t", 0).unwrap();
    assert_eq!(part.lookup_key(key(0, 0).as_bytes()).unwrap()[0].offset, 0);
    log.close().unwrap();
    assert!(verify(dir.path()).unwrap().is_clean());

    let len = std::fs::metadata(&idx).unwrap().len() as usize;
    flip(&idx, len - 1);
    let report = verify(dir.path()).unwrap();
    assert!(
        matches!(report.problems[0].kind, ProblemKind::IndexInvalid { .. }),
        "{}",
        report.problems[0]
    );
    let log = Log::open(config(dir.path())).unwrap();
    let part = log.partition("t", 0).unwrap();
    assert!(matches!(
        part.lookup_key(key(0, 0).as_bytes()),
        Err(LogError::CorruptFile { .. })
    ));
}
