//! An in-memory [`IngestSink`] with the log's idempotence rules, for tests
//! of the server, the client and everything built on them.
//!
//! Why it follows the log's rules exactly (first batch of an unknown
//! producer accepted at any sequence, then +1; the last
//! [`MEMORY_SINK_RECENT_BATCHES`] batches answered with their original
//! offsets; older retries are stale): client retry logic tested against it
//! then holds against the log.

use std::collections::{HashMap, VecDeque};
use std::future::{Ready, ready};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::sink::{DeadLetter, IngestAck, IngestSink, ProducerSeq, SinkError};
use crate::wire::{ErrorCode, RecordRef};

/// Batches per producer whose acks are remembered (as in the log).
pub const MEMORY_SINK_RECENT_BATCHES: usize = 5;

/// A record held by [`MemorySink`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Its offset in the partition.
    pub offset: u64,
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
}

/// A dead letter held by [`MemorySink`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDeadLetter {
    /// Why it was rejected.
    pub code: ErrorCode,
    /// The adapter that sent it.
    pub adapter: String,
    /// Input length as received.
    pub input_bytes: u64,
    /// The kept bytes.
    pub payload: Vec<u8>,
}

#[derive(Debug, Default)]
struct ProducerState {
    last_sequence: u64,
    recent: VecDeque<(u64, IngestAck)>,
}

#[derive(Debug, Default)]
struct PartitionState {
    records: Vec<StoredRecord>,
    producers: HashMap<u64, ProducerState>,
}

#[derive(Debug, Default)]
struct State {
    partitions: Vec<PartitionState>,
    dead_letters: Vec<StoredDeadLetter>,
    log_time_ms: u64,
}

/// In-memory sink; appends are "durable" immediately.
#[derive(Debug)]
pub struct MemorySink {
    state: Mutex<State>,
    partitions: u32,
}

impl MemorySink {
    /// A sink with `partitions` partitions (at least one).
    pub fn new(partitions: u32) -> MemorySink {
        let partitions = partitions.max(1);
        let mut state = State::default();
        state
            .partitions
            .resize_with(partitions as usize, PartitionState::default);
        MemorySink {
            state: Mutex::new(state),
            partitions,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of one partition's records.
    pub fn records(&self, partition: u32) -> Vec<StoredRecord> {
        self.lock()
            .partitions
            .get(partition as usize)
            .map(|p| p.records.clone())
            .unwrap_or_default()
    }

    /// Total records over all partitions.
    pub fn record_count(&self) -> usize {
        self.lock().partitions.iter().map(|p| p.records.len()).sum()
    }

    /// A copy of the dead letters.
    pub fn dead_letters(&self) -> Vec<StoredDeadLetter> {
        self.lock().dead_letters.clone()
    }
}

impl IngestSink for MemorySink {
    type Durable = Ready<Result<IngestAck, SinkError>>;

    fn partitions(&self) -> u32 {
        self.partitions
    }

    fn append(
        &self,
        partition: u32,
        producer: ProducerSeq,
        records: &[RecordRef<'_>],
    ) -> Result<Self::Durable, SinkError> {
        let partitions = self.partitions;
        let mut state = self.lock();
        state.log_time_ms += 1;
        let log_time_ms = state.log_time_ms;
        let part =
            state
                .partitions
                .get_mut(partition as usize)
                .ok_or(SinkError::PartitionOutOfRange {
                    partition,
                    partitions,
                })?;
        if records.is_empty() {
            return Err(SinkError::EmptyBatch);
        }
        let ProducerSeq {
            producer_id,
            sequence,
        } = producer;
        if let Some(p) = part.producers.get(&producer_id)
            && sequence != p.last_sequence.wrapping_add(1)
        {
            if sequence <= p.last_sequence {
                return match p.recent.iter().find(|(s, _)| *s == sequence) {
                    Some((_, ack)) => Ok(ready(Ok(IngestAck {
                        duplicate: true,
                        ..*ack
                    }))),
                    None => Err(SinkError::StaleSequence {
                        producer_id,
                        last: p.last_sequence,
                        got: sequence,
                    }),
                };
            }
            return Err(SinkError::OutOfOrderSequence {
                producer_id,
                expected: p.last_sequence.wrapping_add(1),
                got: sequence,
            });
        }
        let base_offset = part.records.len() as u64;
        for (i, r) in records.iter().enumerate() {
            part.records.push(StoredRecord {
                offset: base_offset + i as u64,
                key: r.key.to_vec(),
                value: r.value.to_vec(),
            });
        }
        let ack = IngestAck {
            base_offset,
            last_offset: base_offset + records.len() as u64 - 1,
            log_time_ms,
            duplicate: false,
        };
        let p = part.producers.entry(producer_id).or_default();
        p.last_sequence = sequence;
        p.recent.push_back((sequence, ack));
        while p.recent.len() > MEMORY_SINK_RECENT_BATCHES {
            p.recent.pop_front();
        }
        Ok(ready(Ok(ack)))
    }

    fn dead_letter(&self, letter: &DeadLetter<'_>) -> Result<(), SinkError> {
        self.lock().dead_letters.push(StoredDeadLetter {
            code: letter.code,
            adapter: letter.adapter.to_string(),
            input_bytes: letter.input_bytes,
            payload: letter.payload.to_vec(),
        });
        Ok(())
    }
}
