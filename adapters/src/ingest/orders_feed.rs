//! What a follow stream reads: the node's `orders` topic, projected to the
//! fields an adapter needs ([`OrderEntry`]) and filtered by carrier.
//!
//! Why the projection happens here, at the read: the order records hold
//! sealed contacts and buyer data; only the tracking number, carrier, drop
//! flag and promised window are copied out, so nothing else can reach an
//! adapter whatever the frame code does with an entry.

use std::sync::Arc;

use dropline_log::{DataReady, Log, LogError, Partition};
use dropline_operators::model::ShipmentOrder;

use crate::wire::{OrderEntry, TRACKING_NUMBER_BYTES_MAX};

/// Topic of shipment orders (written by `POST /v1/shipments`).
pub const ORDERS_TOPIC: &str = "orders";

/// Bytes of log read per partition per step of a follow stream.
pub const FOLLOW_READ_BYTES_MAX: usize = 1024 * 1024;

/// The `orders` partitions of a log.
#[derive(Debug, Clone)]
pub struct OrdersFeed {
    partitions: Vec<Arc<Partition>>,
}

/// One read of a partition.
#[derive(Debug, Default)]
pub(crate) struct FeedRead {
    /// Orders of the asked carriers, by offset.
    pub(crate) entries: Vec<OrderEntry>,
    /// Where the partition resumes after this read.
    pub(crate) next_offset: u64,
    /// Order records that could not be decoded (skipped, counted).
    pub(crate) undecodable: u64,
    /// Orders whose tracking number is longer than the wire allows.
    pub(crate) oversized: u64,
}

impl OrdersFeed {
    /// The feed over `log`'s `orders` topic; `None` when it has none.
    pub fn open(log: &Log) -> Result<Option<OrdersFeed>, LogError> {
        let Some(topic) = log.topics().into_iter().find(|t| t.name == ORDERS_TOPIC) else {
            return Ok(None);
        };
        let partitions = (0..topic.config.partitions)
            .map(|p| log.partition(ORDERS_TOPIC, p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(OrdersFeed { partitions }))
    }

    /// Partition count of `orders`.
    pub fn partitions(&self) -> u32 {
        self.partitions.len() as u32
    }

    pub(crate) fn partition(&self, p: u32) -> Option<&Arc<Partition>> {
        self.partitions.get(p as usize)
    }

    /// Completes when partition `p` has a durable record at `next_offset`.
    pub(crate) fn data_ready(&self, p: u32, next_offset: u64) -> Option<DataReady> {
        self.partition(p).map(|part| part.data_ready(next_offset))
    }

    /// Reads partition `p` from `from`: up to `entries_max` orders whose
    /// carrier code has its bit in `carriers_mask`, skipping everything
    /// else (ticks, other carriers, undecodable values) but moving past it.
    pub(crate) fn read(
        &self,
        p: u32,
        from: u64,
        carriers_mask: u32,
        entries_max: usize,
    ) -> Result<FeedRead, LogError> {
        let Some(part) = self.partition(p) else {
            return Ok(FeedRead {
                next_offset: from,
                ..FeedRead::default()
            });
        };
        let mut out = FeedRead {
            next_offset: from,
            ..FeedRead::default()
        };
        for batch in part.read(from, FOLLOW_READ_BYTES_MAX)? {
            if batch.is_control() {
                out.next_offset = out.next_offset.max(batch.last_offset() + 1);
                continue;
            }
            for r in batch.records().filter(|r| r.offset >= from) {
                if out.entries.len() >= entries_max {
                    return Ok(out);
                }
                out.next_offset = r.offset + 1;
                let Some(order) = ShipmentOrder::decode(r.value) else {
                    out.undecodable += 1;
                    continue;
                };
                let code = order.carrier as u8;
                if carriers_mask & (1u32 << (code - 1)) == 0 {
                    continue;
                }
                let tn = order.tracking_number;
                if tn.is_empty() || tn.len() > TRACKING_NUMBER_BYTES_MAX {
                    out.oversized += 1;
                    continue;
                }
                out.entries.push(OrderEntry {
                    offset: r.offset,
                    carrier: code,
                    drop: order.drop,
                    promised_from_ms: order.promised_from_ms,
                    promised_to_ms: order.promised_to_ms,
                    tracking_number: tn,
                });
            }
            out.next_offset = out.next_offset.max(batch.last_offset() + 1);
        }
        Ok(out)
    }
}
