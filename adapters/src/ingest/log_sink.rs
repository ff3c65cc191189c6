//! The production [`IngestSink`]: batches go to the `carrier-events` topic
//! of the node's log, rejected input to `dead-letters`.
//!
//! Why dead letters are not awaited: they are best effort by contract; the
//! next group commit of that partition makes them durable, and an adapter
//! waiting on them would gain nothing.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use dropline_log::{AppendAck, AppendRequest, Log, LogError, Partition, Record, TopicConfig};

use super::dead_letter::{DEAD_LETTER_KEY, encode_dead_letter};
use super::sink::{DeadLetter, IngestAck, IngestSink, ProducerSeq, SinkError};
use crate::wire::RecordRef;

/// Topic of canonical carrier events.
pub const CARRIER_EVENTS_TOPIC: &str = "carrier-events";
/// Topic of rejected input.
pub const DEAD_LETTERS_TOPIC: &str = "dead-letters";
/// Partitions of `dead-letters` when this sink creates it.
pub const DEAD_LETTERS_PARTITIONS: u32 = 1;

/// An [`IngestSink`] over a Dropline log.
#[derive(Debug, Clone)]
pub struct LogSink {
    log: Arc<Log>,
    events: Vec<Arc<Partition>>,
    dead_letters: Arc<Partition>,
}

fn topic_partitions(log: &Log, name: &str) -> Option<u32> {
    log.topics()
        .into_iter()
        .find(|t| t.name == name)
        .map(|t| t.config.partitions)
}

fn ensure_topic(log: &Log, name: &str, partitions: u32) -> Result<u32, LogError> {
    if let Some(n) = topic_partitions(log, name) {
        return Ok(n);
    }
    log.create_topic(name, TopicConfig::new(partitions))?;
    Ok(partitions)
}

impl LogSink {
    /// A sink over `log`, creating `carrier-events` with `partitions`
    /// partitions and `dead-letters` if they do not exist (existing topics
    /// keep their partition count).
    pub fn open(log: Arc<Log>, partitions: u32) -> Result<LogSink, LogError> {
        let n = ensure_topic(&log, CARRIER_EVENTS_TOPIC, partitions)?;
        ensure_topic(&log, DEAD_LETTERS_TOPIC, DEAD_LETTERS_PARTITIONS)?;
        let events = (0..n)
            .map(|p| log.partition(CARRIER_EVENTS_TOPIC, p))
            .collect::<Result<Vec<_>, _>>()?;
        let dead_letters = log.partition(DEAD_LETTERS_TOPIC, 0)?;
        Ok(LogSink {
            log,
            events,
            dead_letters,
        })
    }

    /// The log.
    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }
}

fn map_err(partition: u32, err: LogError) -> SinkError {
    match err {
        LogError::OutOfOrderSequence {
            producer_id,
            expected,
            got,
        } => SinkError::OutOfOrderSequence {
            producer_id,
            expected,
            got,
        },
        LogError::StaleSequence {
            producer_id,
            last,
            got,
        } => SinkError::StaleSequence {
            producer_id,
            last,
            got,
        },
        LogError::RecordTooLarge { bytes, bytes_max }
        | LogError::KeyTooLarge { bytes, bytes_max } => {
            SinkError::RecordTooLarge { bytes, bytes_max }
        }
        LogError::BatchTooLarge {
            bytes, bytes_max, ..
        } => SinkError::RecordTooLarge { bytes, bytes_max },
        LogError::EmptyBatch => SinkError::EmptyBatch,
        other => SinkError::Unavailable {
            partition,
            source: Box::new(other),
        },
    }
}

/// Completes when an appended batch is durable in the log.
#[derive(Debug)]
pub struct LogDurable {
    ack: AppendAck,
    partition: u32,
    durable: dropline_log::Durable,
}

impl Future for LogDurable {
    type Output = Result<IngestAck, SinkError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let partition = self.partition;
        let ack = self.ack;
        match Pin::new(&mut self.durable).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => Poll::Ready(Ok(IngestAck {
                base_offset: ack.base_offset,
                last_offset: ack.last_offset,
                log_time_ms: ack.log_time_ms,
                duplicate: ack.duplicate,
            })),
            Poll::Ready(Err(err)) => Poll::Ready(Err(map_err(partition, err))),
        }
    }
}

impl IngestSink for LogSink {
    type Durable = LogDurable;

    fn partitions(&self) -> u32 {
        self.events.len() as u32
    }

    fn append(
        &self,
        partition: u32,
        producer: ProducerSeq,
        records: &[RecordRef<'_>],
    ) -> Result<LogDurable, SinkError> {
        let part = self
            .events
            .get(partition as usize)
            .ok_or(SinkError::PartitionOutOfRange {
                partition,
                partitions: self.partitions(),
            })?;
        let records: Vec<Record<'_>> = records.iter().map(|&r| r.into()).collect();
        let request = AppendRequest {
            records: &records,
            producer: Some(producer.into()),
        };
        let (ack, durable) = part
            .append_pending(&request)
            .map_err(|e| map_err(partition, e))?;
        Ok(LogDurable {
            ack,
            partition,
            durable,
        })
    }

    fn dead_letter(&self, letter: &DeadLetter<'_>) -> Result<(), SinkError> {
        let value = encode_dead_letter(letter);
        let record = [Record {
            key: DEAD_LETTER_KEY,
            value: &value,
        }];
        self.dead_letters
            .append_pending(&AppendRequest {
                records: &record,
                producer: None,
            })
            .map(|_| ())
            .map_err(|e| map_err(0, e))
    }

    fn orders_feed(&self) -> Option<super::OrdersFeed> {
        match super::OrdersFeed::open(&self.log) {
            Ok(feed) => feed,
            Err(err) => {
                tracing::warn!(%err, "the orders topic cannot be opened");
                None
            }
        }
    }
}
