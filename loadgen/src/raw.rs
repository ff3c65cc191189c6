//! Raw ingest: canonical events straight to the node over QUIC with the
//! adapters' ingest client, no carrier formats and no adapter in between.
//! What it measures is the node's ingest path alone.
//!
//! Each event's acknowledgement is the durable ack of the batch that
//! carried it. The client seals batches per partition in the order events
//! are handed to it, and one sender hands them over one at a time, so the
//! k-th event sent to a partition is the k-th record acknowledged there:
//! a queue of intended times per partition pairs them without touching
//! the client's internals.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use dropline_adapters::client::{BatchAcked, IngestClient, IngestClientConfig};
use dropline_operators::model::partition_for;

use crate::audit::{Identity, Ledger};
use crate::error::LoadgenError;
use crate::node::NodeTarget;
use crate::open_loop::Target;
use crate::orders::OrderSink;
use crate::recorder::{Kind, Recorder};
use crate::scenario::Planned;
use crate::workload::WorkItem;

/// Bytes of events the client holds until acknowledged before the sender
/// waits.
pub const RAW_BUFFERED_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// Per partition: the (intended time, identity) of events sent and not yet
/// acknowledged, and the highest acknowledged batch sequence.
#[derive(Debug, Default)]
struct PartitionQueue {
    waiting: VecDeque<(u64, u64)>,
    acked_through: Option<u64>,
}

/// Events to a node over QUIC, orders to `orders`.
pub struct RawTarget {
    client: IngestClient,
    queues: Arc<Mutex<Vec<PartitionQueue>>>,
    ledger: Arc<Ledger>,
    orders: OrderSink,
}

impl std::fmt::Debug for RawTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawTarget")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

fn on_ack(
    queues: &Mutex<Vec<PartitionQueue>>,
    recorder: &Recorder,
    ledger: &Ledger,
    ack: &BatchAcked,
) {
    let (intended, ids): (Vec<u64>, Vec<u64>) = {
        let mut qs = queues.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(q) = qs.get_mut(ack.partition as usize) else {
            return;
        };
        // A resend after a lost connection can be acknowledged again.
        if q.acked_through.is_some_and(|s| ack.sequence <= s) {
            return;
        }
        q.acked_through = Some(ack.sequence);
        let n = (ack.records as usize).min(q.waiting.len());
        q.waiting.drain(..n).unzip()
    };
    recorder.acked(Kind::Event, &intended);
    ledger.acked(ids);
}

impl RawTarget {
    /// Connects to `node` as its adapter.
    pub async fn connect(
        node: &NodeTarget,
        recorder: Arc<Recorder>,
        orders: OrderSink,
    ) -> Result<RawTarget, LoadgenError> {
        let mut config = IngestClientConfig::new(
            node.addr,
            node.trust.clone(),
            node.adapter.clone(),
            node.token.as_bytes().to_vec(),
        );
        config.server_name = node.server_name.clone();
        config.partitions = node.partitions;
        config.buffered_bytes_max = RAW_BUFFERED_BYTES_MAX;
        let queues: Arc<Mutex<Vec<PartitionQueue>>> = Arc::new(Mutex::new(Vec::new()));
        let ledger = Arc::new(Ledger::new(Identity::Event));
        let (q, r, l) = (queues.clone(), recorder.clone(), ledger.clone());
        config.ack_observer = Some(Arc::new(move |ack: &BatchAcked| on_ack(&q, &r, &l, ack)));
        let client = IngestClient::connect(config).await?;
        queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .resize_with(client.partitions() as usize, PartitionQueue::default);
        Ok(RawTarget {
            client,
            queues,
            ledger,
            orders,
        })
    }

    /// What the node acknowledged.
    pub fn ledger(&self) -> &Arc<Ledger> {
        &self.ledger
    }

    /// Events refused by the node for good (kept in its dead letters).
    pub fn rejected(&self) -> u64 {
        self.client.metrics().events_rejected
    }

    /// Stops the client.
    pub async fn close(self) {
        self.client.abort().await;
    }
}

impl Target for RawTarget {
    async fn submit(&self, item: Planned) -> Result<(), LoadgenError> {
        match item.item {
            WorkItem::Order(o) => self.orders.submit(o, item.at_us).await,
            WorkItem::Event(e) => {
                let key = e.tracking_number.as_bytes();
                let p = partition_for(key, self.client.partitions()) as usize;
                let id = Identity::Event.of(&e);
                if let Some(q) = self
                    .queues
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_mut(p)
                {
                    q.waiting.push_back((item.at_us, id));
                }
                self.client.send_encoded(key, &e.encode()).await?;
                Ok(())
            }
            WorkItem::Tick => Ok(()),
        }
    }

    async fn idle(&self) -> Result<(), LoadgenError> {
        Ok(())
    }

    async fn drain(&self) -> Result<(), LoadgenError> {
        self.orders.drain().await?;
        self.client.flush().await?;
        Ok(())
    }
}
