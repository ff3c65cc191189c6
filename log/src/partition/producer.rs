//! Idempotent-producer state of one partition.
//!
//! Why: an adapter that times out waiting for an ack retries the batch; the
//! partition must answer the retry with the original offsets instead of
//! appending it twice. It remembers, per producer, the last sequence and the
//! acks of the last few batches, for a bounded number of producers.
//!
//! Why it survives restarts without a scan: each sealed segment's index file
//! carries a snapshot of this table; recovery loads the newest snapshot and
//! replays only the active segment's batches.

use std::collections::{HashMap, VecDeque};

use crate::batch::{AppendAck, ProducerSeq};
use crate::error::LogError;
use crate::limits::{PRODUCER_RECENT_BATCHES_MAX, PRODUCERS_PER_PARTITION_MAX};

/// One remembered batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecentBatch {
    pub(crate) sequence: u64,
    pub(crate) base_offset: u64,
    pub(crate) last_offset: u64,
    pub(crate) log_time_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct ProducerState {
    last_sequence: u64,
    recent: VecDeque<RecentBatch>,
    /// A rewind after a full disk cut off the whole remembered window
    /// (see [`ProducerTable::forget_from`]): the next batch may have any
    /// sequence up to `last_sequence + 1`, the first one cut off.
    rewound: bool,
}

impl ProducerState {
    fn last_offset(&self) -> u64 {
        self.recent.back().map_or(0, |b| b.last_offset)
    }
}

/// What to do with an incoming producer batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Append it.
    Append,
    /// A retry: answer with this ack.
    Duplicate(AppendAck),
}

/// Per-partition producer table, bounded by [`PRODUCERS_PER_PARTITION_MAX`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProducerTable {
    producers: HashMap<u64, ProducerState>,
}

const PRODUCER_ENTRY_BYTES: usize = 24;
const RECENT_ENTRY_BYTES: usize = 32;

impl ProducerTable {
    /// Decides whether a batch from `p` is new, a retry, or out of order.
    pub(crate) fn admit(&self, p: ProducerSeq) -> Result<Admission, LogError> {
        let Some(state) = self.producers.get(&p.producer_id) else {
            return Ok(Admission::Append);
        };
        if state.rewound {
            // Any batch up to the first one cut off may be the producer's
            // oldest unacknowledged one; a later one would be appended
            // behind a gap.
            if p.sequence <= state.last_sequence.wrapping_add(1) {
                return Ok(Admission::Append);
            }
            return Err(LogError::OutOfOrderSequence {
                producer_id: p.producer_id,
                expected: state.last_sequence.wrapping_add(1),
                got: p.sequence,
            });
        }
        if p.sequence == state.last_sequence.wrapping_add(1) {
            return Ok(Admission::Append);
        }
        if p.sequence <= state.last_sequence {
            return match state.recent.iter().find(|b| b.sequence == p.sequence) {
                Some(b) => Ok(Admission::Duplicate(AppendAck {
                    base_offset: b.base_offset,
                    last_offset: b.last_offset,
                    log_time_ms: b.log_time_ms,
                    duplicate: true,
                })),
                None => Err(LogError::StaleSequence {
                    producer_id: p.producer_id,
                    last: state.last_sequence,
                    got: p.sequence,
                }),
            };
        }
        Err(LogError::OutOfOrderSequence {
            producer_id: p.producer_id,
            expected: state.last_sequence.wrapping_add(1),
            got: p.sequence,
        })
    }

    /// Records an appended batch of `p`.
    pub(crate) fn record(&mut self, p: ProducerSeq, batch: RecentBatch) {
        if !self.producers.contains_key(&p.producer_id)
            && self.producers.len() >= PRODUCERS_PER_PARTITION_MAX
        {
            // Forget the producer that appended least recently.
            if let Some(oldest) = self
                .producers
                .iter()
                .min_by_key(|(_, s)| s.last_offset())
                .map(|(id, _)| *id)
            {
                self.producers.remove(&oldest);
            }
        }
        let state = self.producers.entry(p.producer_id).or_default();
        state.last_sequence = p.sequence;
        state.rewound = false;
        state.recent.push_back(batch);
        while state.recent.len() > PRODUCER_RECENT_BATCHES_MAX {
            state.recent.pop_front();
        }
    }

    /// Forgets every batch at or after `offset` (they were cut off by a
    /// rewind after a full disk): a retry of one of them is then appended
    /// again instead of being answered with offsets that now hold nothing.
    /// Batch sequences of a producer are consecutive, so its last sequence
    /// becomes the one before the first batch forgotten. A producer whose
    /// whole remembered window was cut off may have had older batches cut
    /// off too, which the table cannot tell: it is marked rewound, and its
    /// next batch is accepted as a first batch (never answered as stale,
    /// which would lose it) if its sequence is at most that of the first
    /// batch cut off. A later sequence is refused as out of order: a
    /// producer with several batches in flight (the engine's output stage,
    /// an adapter's pipeline) may send its next new batch before it learns
    /// that earlier ones were cut off, and accepting it would leave the
    /// cut-off ones behind as "stale" for good.
    pub(crate) fn forget_from(&mut self, offset: u64) {
        for state in self.producers.values_mut() {
            let mut popped = false;
            while let Some(b) = state.recent.back().copied() {
                if b.last_offset < offset {
                    break;
                }
                state.recent.pop_back();
                state.last_sequence = b.sequence.wrapping_sub(1);
                popped = true;
            }
            if popped && state.recent.is_empty() {
                state.rewound = true;
            }
        }
    }

    /// Appends the snapshot encoding to `out`; returns the producer count.
    /// Layout per producer: id u64, last sequence u64, recent count u32,
    /// reserved u32, then per recent batch: sequence, base offset, last
    /// offset, log time (u64 each). Sorted by producer id.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> u32 {
        // A rewound producer is left out: read back, its empty window would
        // answer retries of its cut-off batches as stale.
        let mut ids: Vec<&u64> = self
            .producers
            .iter()
            .filter(|(_, s)| !s.rewound)
            .map(|(id, _)| id)
            .collect();
        ids.sort_unstable();
        for id in &ids {
            let s = &self.producers[*id];
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&s.last_sequence.to_le_bytes());
            out.extend_from_slice(&(s.recent.len() as u32).to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            for b in &s.recent {
                for v in [b.sequence, b.base_offset, b.last_offset, b.log_time_ms] {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
        ids.len() as u32
    }

    /// Decodes a snapshot of `count` producers; `None` if malformed.
    pub(crate) fn decode(mut bytes: &[u8], count: u32) -> Option<ProducerTable> {
        let u64_at = |b: &[u8], at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
        };
        let mut table = ProducerTable::default();
        for _ in 0..count {
            let id = u64_at(bytes, 0)?;
            let last_sequence = u64_at(bytes, 8)?;
            let n = u32::from_le_bytes(bytes.get(16..20)?.try_into().ok()?) as usize;
            if n > PRODUCER_RECENT_BATCHES_MAX {
                return None;
            }
            let mut recent = VecDeque::with_capacity(n);
            for i in 0..n {
                let at = PRODUCER_ENTRY_BYTES + i * RECENT_ENTRY_BYTES;
                recent.push_back(RecentBatch {
                    sequence: u64_at(bytes, at)?,
                    base_offset: u64_at(bytes, at + 8)?,
                    last_offset: u64_at(bytes, at + 16)?,
                    log_time_ms: u64_at(bytes, at + 24)?,
                });
            }
            bytes = bytes.get(PRODUCER_ENTRY_BYTES + n * RECENT_ENTRY_BYTES..)?;
            table.producers.insert(
                id,
                ProducerState {
                    last_sequence,
                    recent,
                    rewound: false,
                },
            );
        }
        (table.producers.len() <= PRODUCERS_PER_PARTITION_MAX).then_some(table)
    }
}

/// Magic of the partition's `producers.snapshot` file; last byte = version.
const SNAPSHOT_MAGIC: [u8; 4] = [b'D', b'L', b'P', 1];
const SNAPSHOT_HEADER_BYTES: usize = 24;
/// File name of the partition-level producer snapshot.
pub(crate) const SNAPSHOT_FILE: &str = "producers.snapshot";

/// Encodes the partition-level snapshot, valid at `offset` (the base of
/// the segment that was started right after it). It outlives retention,
/// which may delete every sealed segment and with them their snapshots.
pub(crate) fn encode_snapshot_file(offset: u64, table: &ProducerTable) -> Vec<u8> {
    let mut b = vec![0u8; SNAPSHOT_HEADER_BYTES];
    let count = table.encode(&mut b);
    b[0..4].copy_from_slice(&SNAPSHOT_MAGIC);
    b[8..16].copy_from_slice(&offset.to_le_bytes());
    b[16..20].copy_from_slice(&count.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&b[0..4]), &b[8..]);
    b[4..8].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes a snapshot file; `None` if damaged.
pub(crate) fn decode_snapshot_file(b: &[u8]) -> Option<(u64, ProducerTable)> {
    if b.len() < SNAPSHOT_HEADER_BYTES || b[0..4] != SNAPSHOT_MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(b[4..8].try_into().ok()?);
    if crc != crc32c::crc32c_append(crc32c::crc32c(&b[0..4]), &b[8..]) {
        return None;
    }
    let offset = u64::from_le_bytes(b[8..16].try_into().ok()?);
    let count = u32::from_le_bytes(b[16..20].try_into().ok()?);
    Some((
        offset,
        ProducerTable::decode(&b[SNAPSHOT_HEADER_BYTES..], count)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(seq: u64, base: u64) -> RecentBatch {
        RecentBatch {
            sequence: seq,
            base_offset: base,
            last_offset: base + 1,
            log_time_ms: 7,
        }
    }

    #[test]
    fn retry_gap_and_stale_are_told_apart() {
        let mut t = ProducerTable::default();
        let p = |sequence| ProducerSeq {
            producer_id: 9,
            sequence,
        };
        assert_eq!(t.admit(p(5)).unwrap(), Admission::Append);
        for s in 5..12 {
            t.record(p(s), b(s, s * 10));
        }
        assert_eq!(t.admit(p(12)).unwrap(), Admission::Append);
        match t.admit(p(10)).unwrap() {
            Admission::Duplicate(ack) => assert_eq!((ack.base_offset, ack.duplicate), (100, true)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            t.admit(p(14)),
            Err(LogError::OutOfOrderSequence {
                expected: 12,
                got: 14,
                ..
            })
        ));
        assert!(matches!(t.admit(p(5)), Err(LogError::StaleSequence { .. })));
    }

    #[test]
    fn forgetting_a_cut_off_tail_reopens_its_sequences() {
        let mut t = ProducerTable::default();
        let p = |producer_id, sequence| ProducerSeq {
            producer_id,
            sequence,
        };
        // Producer 1: batches at offsets 10..=11, 20..=21, 30..=31.
        for s in 1..=3 {
            t.record(p(1, s), b(s, s * 10));
        }
        // Producer 2: seven batches, all cut off (the window holds five).
        for s in 1..=7 {
            t.record(p(2, s), b(s, 100 + s * 10));
        }
        t.forget_from(20);
        assert_eq!(t.admit(p(1, 2)).unwrap(), Admission::Append, "cut off");
        assert!(matches!(
            t.admit(p(1, 1)).unwrap(),
            Admission::Duplicate(ack) if ack.base_offset == 10
        ));
        assert!(matches!(
            t.admit(p(1, 3)),
            Err(LogError::OutOfOrderSequence { expected: 2, .. })
        ));
        // Its oldest cut-off batch may be older than the window (3..=7):
        // any sequence up to the window's first is accepted as a first
        // batch, so no retry is ever answered as stale...
        assert_eq!(t.admit(p(2, 1)).unwrap(), Admission::Append);
        assert_eq!(t.admit(p(2, 3)).unwrap(), Admission::Append);
        // ...but a later one, sent before the producer learnt of the cut,
        // is refused rather than appended behind the gap.
        assert!(matches!(
            t.admit(p(2, 4)),
            Err(LogError::OutOfOrderSequence {
                expected: 3,
                got: 4,
                ..
            })
        ));
        // Not in a snapshot while rewound (an empty window there would
        // answer its retries as stale).
        let mut snapshot = Vec::new();
        assert_eq!(t.encode(&mut snapshot), 1);
        // Once it appends again it is an ordinary producer.
        t.record(p(2, 1), b(1, 200));
        assert_eq!(t.admit(p(2, 2)).unwrap(), Admission::Append);
        assert!(matches!(t.admit(p(2, 1)).unwrap(), Admission::Duplicate(_)));
    }

    #[test]
    fn snapshot_round_trips_and_table_is_bounded() {
        let mut t = ProducerTable::default();
        for id in 0..(PRODUCERS_PER_PARTITION_MAX as u64 + 3) {
            t.record(
                ProducerSeq {
                    producer_id: id,
                    sequence: 1,
                },
                b(1, id),
            );
        }
        assert_eq!(t.producers.len(), PRODUCERS_PER_PARTITION_MAX);
        assert!(
            !t.producers.contains_key(&0),
            "least recent producer evicted"
        );
        let mut bytes = Vec::new();
        let n = t.encode(&mut bytes);
        assert_eq!(ProducerTable::decode(&bytes, n).unwrap(), t);
        assert!(ProducerTable::decode(&bytes[..bytes.len() - 1], n).is_none());
    }
}
