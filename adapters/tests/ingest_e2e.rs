//! End to end over QUIC on loopback: client → server → sink, through
//! reconnects and a server restart, with idempotent retries.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use dropline_adapters::client::IngestClient;
use dropline_adapters::ingest::{MemorySink, StoredRecord};

fn all_keys(sink: &MemorySink) -> Vec<Vec<u8>> {
    (0..dropline_adapters::ingest::IngestSink::partitions(sink))
        .flat_map(|p| sink.records(p).into_iter().map(|r: StoredRecord| r.key))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_once_through_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(MemorySink::new(8));
    let server = start(dir.path(), loopback(), sink.clone()).await;
    let addr = server.local_addr();
    let client = IngestClient::connect(client_config(&server, "adapter-a", TOKEN_A))
        .await
        .unwrap();
    assert_eq!(client.partitions(), 8);

    for i in 0..3_000 {
        client.send(&event(i)).await.unwrap();
    }
    // Kill the node while batches are in flight, then bring it back on the
    // same address with the same storage.
    server.abort().await;
    for i in 3_000..6_000 {
        client.send(&event(i)).await.unwrap();
    }
    let server = start(dir.path(), addr, sink.clone()).await;
    client.flush().await.unwrap();
    let m = client.metrics();
    assert!(m.connects >= 2, "the client reconnected: {m:?}");
    assert_exactly_once(all_keys(&sink), 6_000);
    assert_eq!(m.events_acked, 6_000, "{m:?} {:?}", server.metrics());

    // Offsets in every partition are dense: nothing appended twice.
    for p in 0..8 {
        for (i, r) in sink.records(p).iter().enumerate() {
            assert_eq!(r.offset, i as u64);
        }
    }
    client.close().await.unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_acks_in_flight_and_client_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(MemorySink::new(4));
    let server = start(dir.path(), loopback(), sink.clone()).await;
    let addr = server.local_addr();
    let client = IngestClient::connect(client_config(&server, "adapter-b", TOKEN_B))
        .await
        .unwrap();
    for i in 0..1_000 {
        client.send(&event(i)).await.unwrap();
    }
    server.shutdown().await;
    let server = start(dir.path(), addr, sink.clone()).await;
    for i in 1_000..2_000 {
        client.send(&event(i)).await.unwrap();
    }
    client.flush().await.unwrap();
    assert_exactly_once(all_keys(&sink), 2_000);
    assert_eq!(server.metrics().sessions_authenticated, 1);
    client.close().await.unwrap();
    server.shutdown().await;
}
