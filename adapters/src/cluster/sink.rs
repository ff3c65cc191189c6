//! [`ReplicatedSink`]: the ingest server's [`IngestSink`] over a
//! [`ClusterNode`]. On a partition's leader an append is proposed and
//! acknowledged once Raft commits it (a majority has it fdatasynced); on
//! any other node it is refused with `not_leader` and the leader's ingest
//! address, which adapters follow.
//!
//! Dead letters stay on the node that received the input (the local,
//! unreplicated `dead-letters` topic): they are diagnostics of that
//! node's traffic, best effort by contract.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use dropline_log::{AppendRequest, Partition, Record};

use super::runtime::{ClusterNode, ProposeError};
use crate::ingest::{
    DEAD_LETTER_KEY, DEAD_LETTERS_TOPIC, DeadLetter, IngestAck, IngestSink, ProducerSeq, SinkError,
    encode_dead_letter,
};
use crate::wire::RecordRef;

/// An [`IngestSink`] that replicates through a [`ClusterNode`].
#[derive(Debug, Clone)]
pub struct ReplicatedSink {
    node: Arc<ClusterNode>,
    dead_letters: Arc<Partition>,
}

impl ReplicatedSink {
    /// A sink over `node`.
    pub fn new(node: Arc<ClusterNode>) -> Result<ReplicatedSink, dropline_log::LogError> {
        let dead_letters = node.log().partition(DEAD_LETTERS_TOPIC, 0)?;
        Ok(ReplicatedSink { node, dead_letters })
    }

    /// The node.
    pub fn node(&self) -> &Arc<ClusterNode> {
        &self.node
    }
}

fn map_err(partition: u32, partitions: u32, producer: ProducerSeq, err: ProposeError) -> SinkError {
    match err {
        ProposeError::NotLeader {
            leader_ingest_addr, ..
        } => SinkError::NotLeader {
            leader_addr: leader_ingest_addr,
        },
        ProposeError::UnknownPartition { partition } => SinkError::PartitionOutOfRange {
            partition,
            partitions,
        },
        ProposeError::Stale => SinkError::StaleSequence {
            producer_id: producer.producer_id,
            last: producer.sequence,
            got: producer.sequence,
        },
        other => SinkError::Unavailable {
            partition,
            source: Box::new(other),
        },
    }
}

/// Completes when the batch is committed.
pub type ReplicatedDurable = Pin<Box<dyn Future<Output = Result<IngestAck, SinkError>> + Send>>;

impl IngestSink for ReplicatedSink {
    type Durable = ReplicatedDurable;

    fn partitions(&self) -> u32 {
        self.node.config().partitions
    }

    fn append(
        &self,
        partition: u32,
        producer: ProducerSeq,
        records: &[RecordRef<'_>],
    ) -> Result<ReplicatedDurable, SinkError> {
        let partitions = self.partitions();
        if partition >= partitions {
            return Err(SinkError::PartitionOutOfRange {
                partition,
                partitions,
            });
        }
        if records.is_empty() {
            return Err(SinkError::EmptyBatch);
        }
        // Known follower: answer at once (the driver checks again).
        if let Some(leader) = self.node.leader_of(partition)
            && leader != self.node.node_id()
        {
            return Err(SinkError::NotLeader {
                leader_addr: self.node.ingest_addr_of(leader),
            });
        }
        // Encoded here, on the ingest thread, straight from the received
        // frame: no owned copy per record, and no encoding on the driver.
        let borrowed: Vec<Record<'_>> = records.iter().map(|&r| r.into()).collect();
        let fut = self.node.propose(partition, producer.into(), &borrowed);
        Ok(Box::pin(async move {
            fut.await
                .map_err(|e| map_err(partition, partitions, producer, e))
        }))
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
            .map_err(|e| SinkError::Unavailable {
                partition: 0,
                source: Box::new(e),
            })
    }
}
