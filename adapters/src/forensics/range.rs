//! `dropline replay --topic T --from TIME [--to TIME] --group G`: re-feed a
//! range of a topic to a consumer group after an incident.
//!
//! Semantics: for every partition of the topic, the group's committed
//! offset is set to the first offset at or after `from` (log time), so the
//! group's consumer re-reads from there when it next starts. Consumer
//! groups have no stop marker, so `to` is not enforced: the stop offset per
//! partition (first offset at or after `to`) is computed and reported, and
//! the consumer keeps going past it (all Dropline consumers are idempotent
//! on replays: notification ids are deterministic and sinks drop repeats).
//! The group's consumer must be stopped while its offsets are reset, or it
//! will overwrite them with its own next commit; the node's lock on the
//! data directory enforces that for an offline reset.

use dropline_log::Log;
use serde::{Deserialize, Serialize};

use super::{ForensicsError, log_err, partitions_of};

/// What was done to one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionReset {
    /// The partition.
    pub partition: u32,
    /// The group's committed offset before the reset.
    pub previous_offset: Option<u64>,
    /// The new committed offset (first offset at or after `from`; the end
    /// of the partition if none is).
    pub from_offset: u64,
    /// First offset at or after `to` (reported, not enforced).
    pub stop_offset: Option<u64>,
}

/// The outcome of a range reset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeReset {
    /// The topic.
    pub topic: String,
    /// The consumer group.
    pub group: String,
    /// `from`, ms.
    pub from_ms: u64,
    /// `to`, ms.
    pub to_ms: Option<u64>,
    /// Per-partition outcome.
    pub partitions: Vec<PartitionReset>,
    /// Records that will be re-read up to the stop offsets (or the ends).
    pub records: u64,
}

/// Resets `group`'s committed offsets on `topic` to `from_ms`.
pub fn replay_topic_range(
    log: &Log,
    topic: &str,
    from_ms: u64,
    to_ms: Option<u64>,
    group: &str,
) -> Result<RangeReset, ForensicsError> {
    let n = partitions_of(log, topic).ok_or_else(|| ForensicsError::NoTopic {
        topic: topic.to_string(),
    })?;
    let mut partitions = Vec::with_capacity(n as usize);
    let mut records = 0u64;
    for p in 0..n {
        let part = log.partition(topic, p).map_err(log_err(topic))?;
        let end = part.durable_offset();
        let from = part
            .offset_for_time(from_ms)
            .map_err(log_err(topic))?
            .unwrap_or(end);
        let stop = match to_ms {
            Some(t) => Some(
                part.offset_for_time(t)
                    .map_err(log_err(topic))?
                    .unwrap_or(end),
            ),
            None => None,
        };
        let previous = log
            .consumer_offset(group, topic, p)
            .map_err(log_err(topic))?;
        log.commit_consumer_offset(group, topic, p, from)
            .map_err(log_err(topic))?;
        records += stop.unwrap_or(end).saturating_sub(from);
        partitions.push(PartitionReset {
            partition: p,
            previous_offset: previous,
            from_offset: from,
            stop_offset: stop,
        });
    }
    Ok(RangeReset {
        topic: topic.to_string(),
        group: group.to_string(),
        from_ms,
        to_ms,
        partitions,
        records,
    })
}
