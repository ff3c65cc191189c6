//! Writing orders and notification intents into a log the way the API and
//! the engine do: the topics, the partitioner, the record keys. Used by
//! tools, the delivery bench and tests.

use dropline_log::{AppendRequest, Log, LogError, Record, TopicConfig};
use dropline_operators::model::{
    Carrier, Channel, Priority, ShipmentOrder, Status, SubStatus, notify_topic, partition_for,
};

use super::intent::encode_notification;
use super::notification::Notification;

/// Creates `orders` and every notify topic with `partitions` partitions.
pub fn create_topics(log: &Log, orders_topic: &str, partitions: u32) -> Result<(), LogError> {
    log.create_topic(orders_topic, TopicConfig::new(partitions))?;
    for c in Channel::ALL {
        for p in Priority::ALL {
            log.create_topic(&notify_topic(c, p), TopicConfig::new(partitions))?;
        }
    }
    Ok(())
}

/// Appends orders (keyed and partitioned by tracking number) in one batch
/// per partition; returns each order's (partition, offset), in input order.
pub fn append_orders(
    log: &Log,
    orders_topic: &str,
    partitions: u32,
    orders: &[ShipmentOrder],
) -> Result<Vec<(u32, u64)>, LogError> {
    let mut out = vec![(0, 0); orders.len()];
    for p in 0..partitions {
        let idx: Vec<usize> = (0..orders.len())
            .filter(|i| partition_for(orders[*i].tracking_number.as_bytes(), partitions) == p)
            .collect();
        if idx.is_empty() {
            continue;
        }
        let values: Vec<Vec<u8>> = idx.iter().map(|i| orders[*i].encode()).collect();
        let records: Vec<Record<'_>> = idx
            .iter()
            .zip(&values)
            .map(|(i, v)| Record {
                key: orders[*i].tracking_number.as_bytes(),
                value: v,
            })
            .collect();
        for chunk_start in (0..records.len()).step_by(APPEND_RECORDS_MAX) {
            let chunk =
                &records[chunk_start..(chunk_start + APPEND_RECORDS_MAX).min(records.len())];
            let ack = log.partition(orders_topic, p)?.append(&AppendRequest {
                records: chunk,
                producer: None,
            })?;
            for (k, i) in idx[chunk_start..chunk_start + chunk.len()]
                .iter()
                .enumerate()
            {
                out[*i] = (p, ack.base_offset + k as u64);
            }
        }
    }
    Ok(out)
}

/// Records per append in these helpers.
const APPEND_RECORDS_MAX: usize = 10_000;

/// Appends notifications to their notify topics, each in the partition of
/// its tracking number (where its order is).
pub fn append_notifications(
    log: &Log,
    partitions: u32,
    notifications: &[Notification],
) -> Result<(), LogError> {
    use std::collections::BTreeMap;
    let mut groups: BTreeMap<(String, u32), Vec<&Notification>> = BTreeMap::new();
    for n in notifications {
        let p = partition_for(n.tracking_number.as_bytes(), partitions);
        groups
            .entry((notify_topic(n.channel, n.priority), p))
            .or_default()
            .push(n);
    }
    for ((topic, p), ns) in groups {
        for chunk in ns.chunks(APPEND_RECORDS_MAX) {
            let values: Vec<Vec<u8>> = chunk.iter().map(|n| encode_notification(n)).collect();
            let keys: Vec<&[u8]> = chunk.iter().map(|n| n.order_id.as_bytes()).collect();
            let records: Vec<Record<'_>> = keys
                .iter()
                .zip(&values)
                .map(|(k, v)| Record { key: k, value: v })
                .collect();
            log.partition(&topic, p)?.append(&AppendRequest {
                records: &records,
                producer: None,
            })?;
        }
    }
    Ok(())
}

/// A notification with plausible defaults for the rest of its fields
/// (`order_offset` and the log times are 0: set them).
pub fn notification(
    id: u128,
    tracking_number: &str,
    order_id: &str,
    buyer_id: &str,
    channel: Channel,
    priority: Priority,
    status: Status,
) -> Notification {
    let (order_offset, event_log_ms) = (0, 0);
    Notification {
        id,
        tracking_number: tracking_number.to_string(),
        carrier: Carrier::Ups,
        channel,
        priority,
        template: format!("{}_{}", status.as_str(), channel.as_str()),
        rule_id: format!("default.{}", status.as_str()),
        order_id: order_id.to_string(),
        marketplace: "demo-market".to_string(),
        buyer_id: buyer_id.to_string(),
        order_offset,
        status,
        sub_status: SubStatus::ALL[0],
        digest: false,
        send_after_ms: 0,
        created_log_ms: event_log_ms,
        event_log_ms,
        source_offset: 0,
    }
}
