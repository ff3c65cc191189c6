//! Dead letters: notifications given up after their last attempt, kept in
//! a topic with the reason, and replayable.
//!
//! Why one record per member with the intent's own bytes: replay appends
//! those bytes back to the notify partition they came from, so a replayed
//! intent is exactly the original (same id, so the same idempotency key if
//! it is sent alone) and finds its order in the same `orders` partition.
//!
//! Record (v1): key = the intent id (32 hex); value = JSON
//! [`DeadLetterRecord`].

use std::sync::Arc;

use dropline_log::{AppendRequest, Log, LogError, Record, TopicConfig};
use dropline_operators::model::{Channel, Priority, notify_topic};
use serde::{Deserialize, Serialize};

use super::notification::Message;
use super::scheduler::DeadLetterReason;

/// The dead-letter topic of delivery.
pub const DEAD_LETTER_TOPIC: &str = "notify-dead-letters";
/// Consumer group under which replay remembers how far it got.
pub const REPLAY_GROUP: &str = "dead-letter-replay";
const READ_BYTES: usize = 1 << 20;

/// Why dead letters could not be written or replayed.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// The log failed.
    #[error("dead letters: {0}")]
    Log(#[from] LogError),
}

/// One dead-lettered notification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterRecord {
    /// Format version (1).
    pub v: u8,
    /// Why it was given up.
    pub reason: DeadLetterReason,
    /// The provider's last answer.
    pub error: String,
    /// Attempts made.
    pub attempts: u32,
    /// 429 answers received.
    pub rate_limited: u32,
    /// The channel.
    pub channel: Channel,
    /// The priority.
    pub priority: Priority,
    /// The idempotency key of the message it was part of.
    pub message_key: String,
    /// The intent id.
    pub intent_id: String,
    /// Notify partition it was read from.
    pub partition: u32,
    /// Offset it was read at.
    pub offset: u64,
    /// When it was given up, ms since the epoch.
    pub at_ms: u64,
    /// The intent record's value, hex.
    pub intent_hex: String,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Creates the dead-letter topic (one partition, kept until removed).
pub fn ensure_topic(log: &Log, topic: &str) -> Result<(), DeadLetterError> {
    log.create_topic(
        topic,
        TopicConfig {
            retention_ms: None,
            ..TopicConfig::new(1)
        },
    )?;
    Ok(())
}

/// Appends one record per member of `message`; durable when it returns.
pub fn append_dead_letters(
    log: &Log,
    topic: &str,
    message: &Message,
    reason: DeadLetterReason,
    at_ms: u64,
) -> Result<(), DeadLetterError> {
    let mut keys = Vec::with_capacity(message.members.len());
    let mut values = Vec::with_capacity(message.members.len());
    for m in &message.members {
        let rec = DeadLetterRecord {
            v: 1,
            reason,
            error: message.last_error.clone().unwrap_or_default(),
            attempts: message.attempts,
            rate_limited: message.rate_limited,
            channel: m.source.channel,
            priority: m.source.priority,
            message_key: message.idempotency_key(),
            intent_id: m.notification.id_hex(),
            partition: m.source.partition,
            offset: m.source.offset,
            at_ms,
            intent_hex: hex(&m.raw),
        };
        keys.push(rec.intent_id.clone());
        values.push(serde_json::to_vec(&rec).unwrap_or_default());
    }
    let records: Vec<Record<'_>> = keys
        .iter()
        .zip(&values)
        .map(|(k, v)| Record {
            key: k.as_bytes(),
            value: v,
        })
        .collect();
    log.partition(topic, 0)?.append(&AppendRequest {
        records: &records,
        producer: None,
    })?;
    Ok(())
}

/// Reads every dead letter from `from_offset` on.
pub fn read_dead_letters(
    log: &Log,
    topic: &str,
    from_offset: u64,
) -> Result<Vec<(u64, DeadLetterRecord)>, DeadLetterError> {
    let p = log.partition(topic, 0)?;
    let mut at = from_offset.max(p.start_offset());
    let mut out = Vec::new();
    loop {
        let batches = p.read(at, READ_BYTES)?;
        if batches.is_empty() {
            break;
        }
        for b in &batches {
            for r in b.records() {
                if r.offset >= at {
                    if let Ok(rec) = serde_json::from_slice::<DeadLetterRecord>(r.value) {
                        out.push((r.offset, rec));
                    }
                    at = r.offset + 1;
                }
            }
        }
    }
    Ok(out)
}

/// What a replay did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayReport {
    /// Dead letters read.
    pub read: u64,
    /// Intents appended back to their notify topics.
    pub replayed: u64,
    /// Dead letters skipped by the filter or unreadable.
    pub skipped: u64,
    /// The replay group's committed offset afterwards.
    pub next_offset: u64,
}

/// Appends the dead letters not replayed yet (those after the replay
/// group's committed offset) that `filter` accepts back to their notify
/// topics, then commits the group's offset. A dead letter is replayed once
/// per call; pass `from_offset` to replay older ones again.
pub fn replay_dead_letters(
    log: &Arc<Log>,
    topic: &str,
    from_offset: Option<u64>,
    filter: impl Fn(&DeadLetterRecord) -> bool,
) -> Result<ReplayReport, DeadLetterError> {
    let start = match from_offset {
        Some(o) => o,
        None => log.consumer_offset(REPLAY_GROUP, topic, 0)?.unwrap_or(0),
    };
    let letters = read_dead_letters(log, topic, start)?;
    let mut report = ReplayReport {
        next_offset: start,
        ..ReplayReport::default()
    };
    for (offset, rec) in letters {
        report.read += 1;
        report.next_offset = offset + 1;
        let bytes = match unhex(&rec.intent_hex) {
            Some(b) if filter(&rec) => b,
            _ => {
                report.skipped += 1;
                continue;
            }
        };
        let p = log.partition(&notify_topic(rec.channel, rec.priority), rec.partition)?;
        p.append(&AppendRequest {
            records: &[Record {
                key: rec.intent_id.as_bytes(),
                value: &bytes,
            }],
            producer: None,
        })?;
        report.replayed += 1;
    }
    if report.read > 0 {
        log.commit_consumer_offset(REPLAY_GROUP, topic, 0, report.next_offset)?;
    }
    Ok(report)
}
