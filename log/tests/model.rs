#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Property test: the log against a simple in-memory model over random
//! appends (with idempotent producers), reads, key and time lookups,
//! reopenings and retention runs (with an archive).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dropline_log::*;
use proptest::prelude::*;

const PARTITIONS: u32 = 2;
const RETENTION_MS: u64 = 2_000;

#[derive(Debug, Default)]
struct TestClock(AtomicU64);
impl Clock for TestClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Debug, Clone)]
enum Seq {
    Next,
    Retry(usize),
    Gap,
}

#[derive(Debug, Clone)]
enum Op {
    Append {
        part: u32,
        records: Vec<(u8, u16)>,
        producer: Option<(u64, Seq)>,
        dt_ms: u64,
    },
    Read {
        part: u32,
        from: prop::sample::Index,
        bytes_max: usize,
    },
    Lookup {
        part: u32,
        key: u8,
    },
    Time {
        part: u32,
        t: prop::sample::Index,
    },
    Reopen,
    Retention {
        dt_ms: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let seq = prop_oneof![8 => Just(Seq::Next), 2 => (0usize..7).prop_map(Seq::Retry), 1 => Just(Seq::Gap)];
    prop_oneof![
        10 => (0..PARTITIONS, proptest::collection::vec((0u8..6, 0u16..400), 1..6), proptest::option::of((0u64..3, seq)), 0u64..300)
            .prop_map(|(part, records, producer, dt_ms)| Op::Append { part, records, producer, dt_ms }),
        4 => (0..PARTITIONS, any::<prop::sample::Index>(), 1usize..3000).prop_map(|(part, from, bytes_max)| Op::Read { part, from, bytes_max }),
        2 => (0..PARTITIONS, 0u8..6).prop_map(|(part, key)| Op::Lookup { part, key }),
        2 => (0..PARTITIONS, any::<prop::sample::Index>()).prop_map(|(part, t)| Op::Time { part, t }),
        1 => Just(Op::Reopen),
        1 => (0u64..3000).prop_map(|dt_ms| Op::Retention { dt_ms }),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct Rec {
    offset: u64,
    time: u64,
    key: Vec<u8>,
    value: Vec<u8>,
}

#[derive(Default)]
struct PartModel {
    start: u64,
    records: Vec<Rec>,
    /// producer -> acks by sequence, in order.
    producers: HashMap<u64, Vec<(u64, AppendAck)>>,
}

fn value(key: u8, len: u16, offset_hint: usize) -> Vec<u8> {
    (0..len)
        .map(|i| key ^ (i as u8) ^ (offset_hint as u8))
        .collect()
}

fn open(dir: &Path, clock: &Arc<TestClock>) -> Log {
    let mut c = LogConfig::new(dir.join("data"));
    c.segment_bytes_max = 4096;
    c.index_interval_bytes = 300;
    c.archive_dir = Some(dir.join("archive"));
    c.clock = clock.clone();
    let log = Log::open(c).unwrap();
    let mut t = TopicConfig::new(PARTITIONS);
    t.retention_ms = Some(RETENTION_MS);
    log.create_topic("m", t).unwrap();
    log
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(TestClock(AtomicU64::new(10_000)));
    let mut log = open(dir.path(), &clock);
    let mut model: Vec<PartModel> = (0..PARTITIONS).map(|_| PartModel::default()).collect();
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Append {
                part,
                records,
                producer,
                dt_ms,
            } => {
                clock.0.fetch_add(dt_ms, Ordering::SeqCst);
                let m = &mut model[part as usize];
                let next = m.records.last().map_or(0, |r| r.offset + 1);
                let vals: Vec<(Vec<u8>, Vec<u8>)> = records
                    .iter()
                    .map(|&(k, l)| (vec![b'k', k], value(k, l, step)))
                    .collect();
                let recs: Vec<Record<'_>> = vals
                    .iter()
                    .map(|(k, v)| Record { key: k, value: v })
                    .collect();
                let (pseq, expect) = match &producer {
                    None => (None, None),
                    Some((pid, s)) => {
                        let acks = m.producers.entry(*pid).or_default();
                        let last = acks.last().map(|a| a.0);
                        let (sequence, expect) = match (s, last) {
                            (_, None) => (0, None),
                            (Seq::Next, Some(l)) => (l + 1, None),
                            (Seq::Gap, Some(l)) => (l + 2, Some(Err(()))),
                            (Seq::Retry(back), Some(l)) => {
                                let seq = l.saturating_sub(*back as u64);
                                let recent = acks
                                    .iter()
                                    .rev()
                                    .take(PRODUCER_RECENT_BATCHES_MAX)
                                    .find(|a| a.0 == seq);
                                (seq, Some(recent.map(|a| a.1).ok_or(())))
                            }
                        };
                        (
                            Some(ProducerSeq {
                                producer_id: *pid,
                                sequence,
                            }),
                            expect,
                        )
                    }
                };
                let res = log.partition("m", part).unwrap().append(&AppendRequest {
                    records: &recs,
                    producer: pseq,
                });
                match expect {
                    Some(Ok(ack)) => prop_assert_eq!(
                        res.unwrap(),
                        AppendAck {
                            duplicate: true,
                            ..ack
                        }
                    ),
                    Some(Err(())) => prop_assert!(
                        matches!(
                            res,
                            Err(LogError::OutOfOrderSequence { .. }
                                | LogError::StaleSequence { .. })
                        ),
                        "{:?}",
                        res
                    ),
                    None => {
                        let ack = res.unwrap();
                        let now = clock.0.load(Ordering::SeqCst);
                        prop_assert_eq!(
                            (ack.base_offset, ack.log_time_ms, ack.duplicate),
                            (next, now, false)
                        );
                        for (i, (k, v)) in vals.into_iter().enumerate() {
                            m.records.push(Rec {
                                offset: next + i as u64,
                                time: now,
                                key: k,
                                value: v,
                            });
                        }
                        if let Some(p) = pseq {
                            m.producers
                                .get_mut(&p.producer_id)
                                .unwrap()
                                .push((p.sequence, ack));
                        }
                    }
                }
            }
            Op::Read {
                part,
                from,
                bytes_max,
            } => {
                let m = &model[part as usize];
                let next = m.records.last().map_or(0, |r| r.offset + 1);
                let from = m.start + from.index((next - m.start + 1) as usize) as u64;
                let p = log.partition("m", part).unwrap();
                let batches = p.read(from, bytes_max).unwrap();
                prop_assert_eq!(batches.is_empty(), from == next);
                if let Some(first) = batches.first() {
                    prop_assert!(first.base_offset() <= from && from <= first.last_offset());
                }
                let got: Vec<Rec> = batches
                    .iter()
                    .flat_map(|b| {
                        b.records()
                            .map(|r| Rec {
                                offset: r.offset,
                                time: r.log_time_ms,
                                key: r.key.to_vec(),
                                value: r.value.to_vec(),
                            })
                            .collect::<Vec<_>>()
                    })
                    .filter(|r| r.offset >= from)
                    .collect();
                let want = &m.records[from as usize..from as usize + got.len()];
                prop_assert_eq!(&got[..], want);
                let pread: Vec<Vec<u8>> = p.read_pread(from, bytes_max).unwrap();
                prop_assert_eq!(
                    pread,
                    batches
                        .iter()
                        .map(|b| b.as_bytes().to_vec())
                        .collect::<Vec<_>>()
                );
                if from < m.start {
                    prop_assert!(p.read(from, bytes_max).is_err());
                }
            }
            Op::Lookup { part, key } => {
                // With an archive, retention moves data but lookups still see all of it.
                let m = &model[part as usize];
                let want: Vec<u64> = m
                    .records
                    .iter()
                    .filter(|r| r.key == [b'k', key])
                    .map(|r| r.offset)
                    .collect();
                let got = log
                    .partition("m", part)
                    .unwrap()
                    .lookup_key(&[b'k', key])
                    .unwrap();
                prop_assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), want);
                for r in got {
                    prop_assert_eq!(&r.value, &m.records[r.offset as usize].value);
                }
            }
            Op::Time { part, t } => {
                let m = &model[part as usize];
                let now = clock.0.load(Ordering::SeqCst);
                let t = 9_000 + t.index((now - 9_000 + 2) as usize) as u64;
                let want = m
                    .records
                    .iter()
                    .filter(|r| r.offset >= m.start)
                    .find(|r| r.time >= t)
                    .map(|r| r.offset);
                prop_assert_eq!(
                    log.partition("m", part)
                        .unwrap()
                        .offset_for_time(t)
                        .unwrap(),
                    want
                );
            }
            Op::Reopen => {
                log.close().unwrap();
                log = open(dir.path(), &clock);
                for (part, m) in model.iter().enumerate() {
                    let p = log.partition("m", part as u32).unwrap();
                    prop_assert_eq!(
                        p.next_offset(),
                        m.records.last().map_or(0, |r| r.offset + 1)
                    );
                    prop_assert_eq!(p.start_offset(), m.start);
                }
                prop_assert!(log.recovery_report().truncations().next().is_none());
            }
            Op::Retention { dt_ms } => {
                let now = clock.0.fetch_add(dt_ms, Ordering::SeqCst) + dt_ms;
                let report = log.enforce_retention(now).unwrap();
                for (part, m) in model.iter_mut().enumerate() {
                    let p = log.partition("m", part as u32).unwrap();
                    let start = p.start_offset();
                    prop_assert!(start >= m.start);
                    for r in &m.records[m.start as usize..start as usize] {
                        prop_assert!(
                            r.time + RETENTION_MS <= now,
                            "deleted a record younger than retention"
                        );
                    }
                    let archived = p.read_archive(m.start, usize::MAX).unwrap();
                    let got: Vec<u64> = archived
                        .iter()
                        .flat_map(|b| b.records().map(|r| r.offset).collect::<Vec<_>>())
                        .filter(|o| *o >= m.start && *o < start)
                        .collect();
                    prop_assert_eq!(got, (m.start..start).collect::<Vec<_>>());
                    m.start = start;
                }
                prop_assert!(report.deleted.iter().all(|d| d.archived_to.is_some()));
            }
        }
    }
    log.close().unwrap();
    let report = verify(&dir.path().join("data")).unwrap();
    prop_assert!(report.is_clean(), "{:?}", report.problems);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model(ops in proptest::collection::vec(op(), 1..80)) {
        run(ops)?;
    }
}
