//! The ingest client against a replicated cluster's `not_leader` answers:
//! two real QUIC ingest servers on loopback over one shared sink (standing
//! for the replicated log, whose producer state every leader shares); only
//! the node the test names leader appends. The client must follow the
//! hint (or try the other node without one), resend its unacknowledged
//! batches with the same producer id and sequences, and lose or duplicate
//! nothing, also when the old leader appended a batch it then answered
//! `not_leader` for (a write committed before the ack could be sent).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use dropline_adapters::client::{IngestClient, IngestClientConfig, ServerTrust};
use dropline_adapters::ingest::{
    DeadLetter, IngestAck, IngestSink, MemorySink, ProducerSeq, ServerHandle, SinkError,
    StoredRecord,
};
use dropline_adapters::wire::RecordRef;

/// Who leads, as both nodes see it.
#[derive(Debug, Default)]
struct Leadership {
    /// 0: nobody; 1: node A; 2: node B.
    leader: AtomicU8,
    /// Node A appends, then answers `not_leader` (it lost leadership after
    /// committing) this many more times.
    a_commits_then_refuses: AtomicU64,
    /// Ingest addresses of A and B, once bound.
    addrs: Mutex<[Option<String>; 2]>,
    /// Whether `not_leader` names the leader.
    hint: std::sync::atomic::AtomicBool,
}

/// One node's sink: appends to the shared sink only while it leads.
struct NodeSink {
    id: u8,
    shared: Arc<MemorySink>,
    leadership: Arc<Leadership>,
}

impl NodeSink {
    fn not_leader(&self) -> SinkError {
        let leader = self.leadership.leader.load(Ordering::SeqCst);
        let addr = if self.leadership.hint.load(Ordering::SeqCst) && leader > 0 {
            self.leadership.addrs.lock().unwrap()[usize::from(leader - 1)].clone()
        } else {
            None
        };
        SinkError::NotLeader { leader_addr: addr }
    }
}

type Durable = Pin<Box<dyn Future<Output = Result<IngestAck, SinkError>> + Send>>;

impl IngestSink for NodeSink {
    type Durable = Durable;

    fn partitions(&self) -> u32 {
        self.shared.partitions()
    }

    fn append(
        &self,
        partition: u32,
        producer: ProducerSeq,
        records: &[RecordRef<'_>],
    ) -> Result<Durable, SinkError> {
        let leader = self.leadership.leader.load(Ordering::SeqCst);
        if self.id == 1 && leader != 1 {
            let left = &self.leadership.a_commits_then_refuses;
            if left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                let durable = self.shared.append(partition, producer, records)?;
                let refusal = self.not_leader();
                return Ok(Box::pin(async move {
                    durable.await?;
                    Err(refusal)
                }));
            }
        }
        if leader != self.id {
            return Err(self.not_leader());
        }
        let durable = self.shared.append(partition, producer, records)?;
        Ok(Box::pin(durable))
    }

    fn dead_letter(&self, letter: &DeadLetter<'_>) -> Result<(), SinkError> {
        self.shared.dead_letter(letter)
    }
}

struct TwoNodes {
    shared: Arc<MemorySink>,
    leadership: Arc<Leadership>,
    a: ServerHandle,
    b: ServerHandle,
    _dir: tempfile::TempDir,
}

async fn two_nodes(partitions: u32, leader: u8, hint: bool) -> TwoNodes {
    // Both servers keep their certificate in the same directory, so one
    // pinned fingerprint trusts both (as a cluster CA would).
    let dir = tempfile::tempdir().unwrap();
    let shared = Arc::new(MemorySink::new(partitions));
    let leadership = Arc::new(Leadership::default());
    leadership.leader.store(leader, Ordering::SeqCst);
    leadership.hint.store(hint, Ordering::SeqCst);
    let sink = |id| {
        Arc::new(NodeSink {
            id,
            shared: shared.clone(),
            leadership: leadership.clone(),
        })
    };
    let a = start(dir.path(), loopback(), sink(1)).await;
    let b = start(dir.path(), loopback(), sink(2)).await;
    *leadership.addrs.lock().unwrap() = [
        Some(a.local_addr().to_string()),
        Some(b.local_addr().to_string()),
    ];
    TwoNodes {
        shared,
        leadership,
        a,
        b,
        _dir: dir,
    }
}

fn cluster_client(nodes: &TwoNodes) -> IngestClientConfig {
    let mut c = IngestClientConfig::new_cluster(
        &[nodes.a.local_addr(), nodes.b.local_addr()],
        ServerTrust::PinnedSha256(nodes.a.fingerprint_sha256().to_string()),
        "adapter-a",
        TOKEN_A,
    )
    .unwrap();
    c.batch_records_max = 64;
    c.linger_us = 500;
    c.backoff_initial_ms = 5;
    c.backoff_max_ms = 100;
    c
}

fn all_keys(sink: &MemorySink) -> Vec<Vec<u8>> {
    (0..sink.partitions())
        .flat_map(|p| sink.records(p).into_iter().map(|r: StoredRecord| r.key))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_hint_the_client_finds_the_leader_among_its_addresses() {
    let nodes = two_nodes(4, 2, false).await;
    assert_eq!(
        nodes.a.fingerprint_sha256(),
        nodes.b.fingerprint_sha256(),
        "one identity for both servers"
    );
    let client = IngestClient::connect(cluster_client(&nodes)).await.unwrap();
    for i in 0..2_000 {
        client.send(&event(i)).await.unwrap();
    }
    client.flush().await.unwrap();
    let m = client.metrics();
    assert_exactly_once(all_keys(&nodes.shared), 2_000);
    assert_eq!(m.events_acked, 2_000, "{m:?}");
    assert!(
        m.leader_redirects >= 1,
        "partitions moved from A to B: {m:?}"
    );
    assert!(
        nodes.b.metrics().batches_acked >= 4,
        "B acknowledged: {:?}",
        nodes.b.metrics()
    );
    assert_eq!(nodes.a.metrics().batches_acked, 0);
    client.close().await.unwrap();
    nodes.a.shutdown().await;
    nodes.b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_change_mid_stream_loses_and_duplicates_nothing() {
    let nodes = two_nodes(4, 1, true).await;
    let client = IngestClient::connect(cluster_client(&nodes)).await.unwrap();
    for i in 0..3_000 {
        client.send(&event(i)).await.unwrap();
    }
    client.flush().await.unwrap();
    assert_eq!(nodes.b.metrics().batches_acked, 0, "A led so far");

    // Leadership moves to B. A still commits the next batches it gets but
    // answers them `not_leader` (its acks lost with its leadership); the
    // client must resend them to B, which answers with the original
    // offsets instead of appending them again.
    nodes
        .leadership
        .a_commits_then_refuses
        .store(3, Ordering::SeqCst);
    nodes.leadership.leader.store(2, Ordering::SeqCst);
    for i in 3_000..6_000 {
        client.send(&event(i)).await.unwrap();
    }
    client.flush().await.unwrap();
    let m = client.metrics();
    assert_exactly_once(all_keys(&nodes.shared), 6_000);
    assert_eq!(m.events_acked, 6_000, "{m:?}");
    assert_eq!(
        nodes
            .leadership
            .a_commits_then_refuses
            .load(Ordering::SeqCst),
        0,
        "A committed batches it refused"
    );
    assert!(
        m.batches_duplicate >= 1,
        "B answered resends of A's commits as duplicates: {m:?}"
    );
    assert!(m.leader_redirects >= 1, "{m:?}");
    // Offsets stay dense in every partition: nothing appended twice.
    for p in 0..4 {
        for (i, r) in nodes.shared.records(p).iter().enumerate() {
            assert_eq!(r.offset, i as u64);
        }
    }

    // And back to A with no hint at all while nobody leads, then A leads.
    nodes.leadership.hint.store(false, Ordering::SeqCst);
    nodes.leadership.leader.store(0, Ordering::SeqCst);
    for i in 6_000..6_500 {
        client.send(&event(i)).await.unwrap();
    }
    nodes.leadership.leader.store(1, Ordering::SeqCst);
    client.flush().await.unwrap();
    assert_exactly_once(all_keys(&nodes.shared), 6_500);
    client.close().await.unwrap();
    nodes.a.shutdown().await;
    nodes.b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_single_address_constructor_still_works() {
    let nodes = two_nodes(2, 1, true).await;
    let mut config = client_config(&nodes.a, "adapter-a", TOKEN_A);
    assert!(config.other_addrs.is_empty());
    config.batch_records_max = 16;
    let client = IngestClient::connect(config).await.unwrap();
    for i in 0..500 {
        client.send(&event(i)).await.unwrap();
    }
    client.flush().await.unwrap();
    assert_exactly_once(all_keys(&nodes.shared), 500);
    assert_eq!(client.metrics().leader_redirects, 0);
    client.close().await.unwrap();
    nodes.a.shutdown().await;
    nodes.b.shutdown().await;
}
