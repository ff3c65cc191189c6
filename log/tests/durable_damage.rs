#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Torn tail or damaged durable data: recovery truncates bytes that may be
//! a torn write, and refuses (typed error, nothing changed) when a later
//! batch records a durable length past the damage (docs/FORMAT.md, "Torn
//! tail or damaged durable data").
//!
//! How the "last group" is made without a crash: batches appended under
//! `Interval` with an hour-long interval are written but never fdatasynced
//! by the syncer, so they record the durable length the segment had when
//! the log was opened, exactly like the batches of one group-commit round
//! that a crash interrupts. (Closing the log fdatasyncs them afterwards,
//! which changes no byte.)

use std::path::{Path, PathBuf};

use dropline_log::*;
use proptest::prelude::*;

const SEGMENT_BYTES_MAX: u64 = 1 << 20;

fn config(dir: &Path, durability: Durability) -> LogConfig {
    let mut c = LogConfig::new(dir);
    c.segment_bytes_max = SEGMENT_BYTES_MAX;
    c.index_interval_bytes = 512;
    c.durability = durability;
    c
}

/// Durability under which nothing is fdatasynced during a test.
const NEVER_SYNCED: Durability = Durability::Interval {
    interval_ms: 3_600_000,
};

fn value(i: u64) -> Vec<u8> {
    vec![b'a' + (i % 26) as u8; 50 + (i % 7) as usize * 10]
}

/// Appends batches `from..to` (one record each, value `value(i)`); under
/// `Fsync` each waits for its fdatasync.
fn append(dir: &Path, durability: Durability, from: u64, to: u64) {
    let log = Log::open(config(dir, durability)).unwrap();
    match log.create_topic("t", TopicConfig::new(1)) {
        Ok(()) | Err(LogError::TopicExists { .. }) => {}
        Err(e) => panic!("{e}"),
    }
    let p = log.partition("t", 0).unwrap();
    for i in from..to {
        let k = format!("key-{i}");
        let v = value(i);
        let (ack, _durable) = p
            .append_pending(&AppendRequest {
                records: &[Record {
                    key: k.as_bytes(),
                    value: &v,
                }],
                producer: None,
            })
            .unwrap();
        assert_eq!(ack.base_offset, i);
        if durability == Durability::Fsync {
            _durable.wait().unwrap();
        }
    }
    log.close().unwrap();
}

fn active_segment(dir: &Path) -> PathBuf {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("topics/t/00000"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v.pop().unwrap()
}

/// (position, length) of every batch of a segment, by walking the headers.
fn batches(path: &Path) -> Vec<(usize, usize)> {
    let bytes = std::fs::read(path).unwrap();
    let mut at = 0usize;
    let mut v = Vec::new();
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        v.push((at, len));
        at += len;
    }
    v
}

fn edit(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut b = std::fs::read(path).unwrap();
    f(&mut b);
    std::fs::write(path, b).unwrap();
}

fn expect_refused(dir: &Path, damaged_at: usize) -> (u64, u64) {
    let active = active_segment(dir);
    let before = std::fs::read(&active).unwrap();
    let err = match Log::open(config(dir, Durability::Fsync)) {
        Ok(_) => panic!("damage at byte {damaged_at} was not refused"),
        Err(e) => e,
    };
    let LogError::DamagedDurableBatch(ref d) = err else {
        panic!("expected DamagedDurableBatch, got {err}");
    };
    let (topic, partition, segment) = (&d.topic, d.partition, &d.segment);
    let (file_offset, witness_offset, durable_bytes) =
        (d.file_offset, d.witness_offset, d.durable_bytes);
    assert_eq!((topic.as_str(), partition), ("t", 0));
    assert_eq!(segment, &active);
    assert_eq!(file_offset, damaged_at as u64);
    assert!(durable_bytes > file_offset && durable_bytes <= witness_offset);
    let text = err.to_string();
    assert!(text.contains("Refusing to truncate"), "{text}");
    assert!(text.contains(&active.display().to_string()), "{text}");
    assert_eq!(
        std::fs::read(&active).unwrap(),
        before,
        "nothing is changed"
    );
    // `verify` skips a damaged batch whose header is still sane and goes
    // on, so damage across two batches is two problems.
    let report = verify(dir).unwrap();
    assert!(!report.problems.is_empty());
    assert_eq!(report.problems[0].file_offset, Some(damaged_at as u64));
    for p in &report.problems {
        assert!(
            matches!(
                p.kind,
                ProblemKind::DamagedDurable { witness_offset: w, durable_bytes: d, .. }
                    if (w, d) == (witness_offset, durable_bytes)
            ),
            "{p}"
        );
    }
    (witness_offset, durable_bytes)
}

fn expect_newer_version_refused(dir: &Path, at: usize, version: u8) {
    let active = active_segment(dir);
    let before = std::fs::read(&active).unwrap();
    match Log::open(config(dir, Durability::Fsync)) {
        Err(LogError::UnknownVersion {
            segment,
            file_offset,
            version: v,
        }) => {
            assert_eq!(segment, active);
            assert_eq!((file_offset, v), (at as u64, version));
        }
        Err(other) => panic!("expected UnknownVersion, got {other}"),
        Ok(_) => panic!("a newer batch version was truncated"),
    }
    assert_eq!(
        std::fs::read(&active).unwrap(),
        before,
        "nothing is changed"
    );
    let report = verify(dir).unwrap();
    assert!(
        matches!(
            &report.problems[..],
            [Problem {
                kind: ProblemKind::BadBatch {
                    error: BatchError::UnknownVersion { version: v }
                },
                file_offset: Some(o),
                ..
            }] if *v == version && *o == at as u64
        ),
        "{:?}",
        report.problems
    );
}

/// Opens the log, expecting recovery to cut the active segment at `at`;
/// returns the next offset.
fn expect_truncated(dir: &Path, at: usize) -> u64 {
    let active = active_segment(dir);
    let len = std::fs::metadata(&active).unwrap().len();
    let report = verify(dir).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        matches!(report.problems[0].kind, ProblemKind::TornTail { bytes, .. } if bytes == len - at as u64),
        "{}",
        report.problems[0]
    );
    let log = Log::open(config(dir, Durability::Fsync)).unwrap();
    let t: Vec<&Truncation> = log.recovery_report().truncations().collect();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].file_offset, at as u64);
    assert_eq!(t[0].bytes_removed, len - at as u64);
    assert_eq!(std::fs::metadata(&active).unwrap().len(), at as u64);
    let next = log.partition("t", 0).unwrap().next_offset();
    log.close().unwrap();
    assert!(verify(dir).unwrap().is_clean());
    next
}

fn copy(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    let part = to.path().join("topics/t/00000");
    std::fs::create_dir_all(&part).unwrap();
    std::fs::copy(
        from.join("topics/t/topic.meta"),
        to.path().join("topics/t/topic.meta"),
    )
    .unwrap();
    for e in std::fs::read_dir(from.join("topics/t/00000")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), part.join(e.file_name())).unwrap();
    }
    to
}

#[test]
fn damage_in_the_middle_of_the_active_segment_is_refused_until_cut_deliberately() {
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), Durability::Fsync, 0, 30);
    let active = active_segment(dir.path());
    let b = batches(&active);
    assert_eq!(b.len(), 30);
    for (i, &(at, _)) in b.iter().enumerate() {
        let batch = std::fs::read(&active).unwrap()[at..at + b[i].1].to_vec();
        // Under `Fsync` each batch waited for its own fdatasync, so the
        // next one records the segment durable up to its own position.
        assert_eq!(
            decode_batch(&batch).unwrap().segment_durable_bytes(),
            Some(at as u32)
        );
    }
    let (at, _) = b[10];
    edit(&active, |bytes| bytes[at + BATCH_HEADER_BYTES + 20] ^= 0x01);
    let (witness, durable) = expect_refused(dir.path(), at);
    // The farthest-reaching proof: the last batch.
    assert_eq!((witness, durable), (b[29].0 as u64, b[29].0 as u64));

    // The operator accepts the loss: cut the file at the damaged batch.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap()
        .set_len(at as u64)
        .unwrap();
    let log = Log::open(config(dir.path(), Durability::Fsync)).unwrap();
    let p = log.partition("t", 0).unwrap();
    assert_eq!(p.next_offset(), 10);
    assert_eq!(log.recovery_report().truncations().count(), 0);
    let ack = p
        .append(&AppendRequest {
            records: &[Record {
                key: b"k",
                value: b"v",
            }],
            producer: None,
        })
        .unwrap();
    assert_eq!(ack.base_offset, 10);
    log.close().unwrap();
    assert!(verify(dir.path()).unwrap().is_clean());
}

#[test]
fn damaged_header_or_lost_sector_in_durable_data_is_refused() {
    let src = tempfile::tempdir().unwrap();
    append(src.path(), Durability::Fsync, 0, 30);
    let b = batches(&active_segment(src.path()));

    // The length field itself: the damaged batch cannot be skipped, the
    // later batches are found by their magic.
    let dir = copy(src.path());
    let (at, _) = b[12];
    edit(&active_segment(dir.path()), |bytes| bytes[at + 6] = 0xff);
    expect_refused(dir.path(), at);

    // A lost 512-byte sector across two batches reads back as zeros.
    let dir = copy(src.path());
    let (at, len) = b[5];
    edit(&active_segment(dir.path()), |bytes| {
        bytes[at + len - 100..at + len + 412].fill(0)
    });
    expect_refused(dir.path(), at);
}

#[test]
fn torn_last_group_is_truncated_even_with_valid_batches_after_the_damage() {
    let src = tempfile::tempdir().unwrap();
    append(src.path(), Durability::Fsync, 0, 10);
    append(src.path(), NEVER_SYNCED, 10, 15);
    let b = batches(&active_segment(src.path()));
    assert_eq!(b.len(), 15);

    // The first batch of the last group never reached the disk but the
    // later ones did (pages are written back in any order): every later
    // batch records a durable length at that batch, none past it.
    let dir = copy(src.path());
    let (at, len) = b[10];
    edit(&active_segment(dir.path()), |bytes| {
        bytes[at..at + len].fill(0)
    });
    assert_eq!(expect_truncated(dir.path(), at), 10);

    // A damaged batch of the group in the middle of it: truncated too.
    let dir = copy(src.path());
    let (at, _) = b[12];
    edit(&active_segment(dir.path()), |bytes| bytes[at + 70] ^= 0x10);
    assert_eq!(expect_truncated(dir.path(), at), 12);

    // The last batch before the group was durable when the group was
    // written: damage there is refused.
    let dir = copy(src.path());
    let (at, _) = b[9];
    edit(&active_segment(dir.path()), |bytes| bytes[at + 70] ^= 0x10);
    expect_refused(dir.path(), at);

    // A plain torn tail: the last write cut short.
    let dir = copy(src.path());
    let active = active_segment(dir.path());
    let len = std::fs::metadata(&active).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    assert_eq!(expect_truncated(dir.path(), b[14].0), 14);
}

#[test]
fn without_fdatasync_nothing_is_claimed_and_damage_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), Durability::None, 0, 10);
    let active = active_segment(dir.path());
    let b = batches(&active);
    let bytes = std::fs::read(&active).unwrap();
    for &(at, len) in &b {
        let batch = decode_batch(&bytes[at..at + len]).unwrap();
        assert_eq!(batch.segment_durable_bytes(), Some(0));
    }
    let (at, _) = b[3];
    edit(&active, |bytes| bytes[at + 70] ^= 0x10);
    assert_eq!(expect_truncated(dir.path(), at), 3);
}

#[test]
fn a_batch_of_a_newer_version_is_refused_and_version_zero_is_torn() {
    let src = tempfile::tempdir().unwrap();
    append(src.path(), Durability::Fsync, 0, 5);
    let b = batches(&active_segment(src.path()));
    let (at, _) = b[4];

    let dir = copy(src.path());
    edit(&active_segment(dir.path()), |bytes| bytes[at + 3] = 3);
    expect_newer_version_refused(dir.path(), at, 3);

    // A write torn right after the third magic byte leaves a zero there.
    let dir = copy(src.path());
    let active = active_segment(dir.path());
    edit(&active, |bytes| bytes[at + 3..].fill(0));
    assert_eq!(expect_truncated(dir.path(), at), 4);
}

#[test]
fn version_1_damage_is_proven_durable_by_later_version_2_batches() {
    // A log written by the version-1 encoder whose active segment holds 13
    // version-1 batches (offsets 52..78): the fixture without its last
    // segment and without the index of the one before, which becomes the
    // active segment again. This build appends version-2 batches to it.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1-torn-tail");
    let dir = copy(&fixture);
    let part = dir.path().join("topics/t/00000");
    std::fs::remove_file(part.join("00000000000000000078.log")).unwrap();
    std::fs::remove_file(part.join("00000000000000000052.idx")).unwrap();
    let log = Log::open(config(dir.path(), Durability::Fsync)).unwrap();
    assert_eq!(log.recovery_report().truncations().count(), 0);
    assert_eq!(log.partition("t", 0).unwrap().next_offset(), 78);
    log.close().unwrap();
    append(dir.path(), Durability::Fsync, 78, 81);
    let active = active_segment(dir.path());
    let b = batches(&active);
    let bytes = std::fs::read(&active).unwrap();
    let versions: Vec<u8> = b.iter().map(|&(at, _)| bytes[at + 3]).collect();
    assert_eq!(versions, [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2]);
    let (at, _) = b[6];
    edit(&active, |bytes| bytes[at + 100] ^= 0x04);
    let (witness, _) = expect_refused(dir.path(), at);
    assert_eq!(witness, b[15].0 as u64);
}

/// What each batch of a log made of `durable` batches appended under
/// `Fsync` and then a last group of `group` batches records; damage to
/// batch `k` must be refused exactly when a later batch records a durable
/// length past its start.
fn refused(durable: usize, group: usize, k: usize) -> bool {
    k + 1 < durable || (k + 1 == durable && group > 0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn damage_is_refused_exactly_when_a_later_batch_proves_it_durable(
        durable in 1usize..6,
        group in 0usize..4,
        pick in any::<prop::sample::Index>(),
        spot in any::<prop::sample::Index>(),
        zero in any::<bool>(),
        x in 1u8..=255,
    ) {
        let dir = tempfile::tempdir().unwrap();
        append(dir.path(), Durability::Fsync, 0, durable as u64);
        append(dir.path(), NEVER_SYNCED, durable as u64, (durable + group) as u64);
        let active = active_segment(dir.path());
        let b = batches(&active);
        let k = pick.index(b.len());
        let (at, len) = b[k];
        let spot = spot.index(len);
        if zero {
            // The batch's pages never reached the disk (or a lost sector).
            edit(&active, |bytes| bytes[at + spot..at + len].fill(0));
        } else {
            edit(&active, |bytes| bytes[at + spot] ^= x);
        }
        let version = if !zero && spot == 3 { BATCH_FORMAT_VERSION ^ x } else { 0 };
        // The last batch zeroed from its first byte: the segment's tail is
        // all zeros, which reads as space never written (a preallocated
        // segment looks the same), not as damage. Nothing proves it was
        // durable, so losing it is allowed; the log must resume at it.
        let all_zero_tail = zero && spot == 0 && k + 1 == b.len();
        if refused(durable, group, k) {
            expect_refused(dir.path(), at);
        } else if version > BATCH_FORMAT_VERSION {
            expect_newer_version_refused(dir.path(), at, version);
        } else if all_zero_tail {
            let log = Log::open(config(dir.path(), Durability::Fsync)).unwrap();
            prop_assert_eq!(log.partition("t", 0).unwrap().next_offset(), k as u64);
            log.close().unwrap();
        } else {
            prop_assert_eq!(expect_truncated(dir.path(), at), k as u64);
        }
    }
}
