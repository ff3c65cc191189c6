//! The client's on-disk spool: events taken while the node is unreachable
//! are sent later, a client stopped abruptly resends exactly what was not
//! acknowledged from its spool, and a full spool refuses new events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use dropline_adapters::client::{ClientError, IngestClient, IngestClientConfig, SpoolConfig};
use dropline_adapters::ingest::{CARRIER_EVENTS_TOPIC, IngestSink, LogSink, MemorySink};
use dropline_log::{Log, LogConfig};

fn keys(sink: &MemorySink) -> Vec<Vec<u8>> {
    (0..sink.partitions())
        .flat_map(|p| sink.records(p).into_iter().map(|r| r.key))
        .collect()
}

/// A client configuration for a node that was started on `node_dir` (to
/// learn a free address and its certificate) and is down again, with
/// `partitions` and a spool in `spool_dir`; and that node's address.
async fn config_for_a_down_node(
    node_dir: &std::path::Path,
    spool_dir: &std::path::Path,
    sink: Arc<MemorySink>,
    partitions: u32,
) -> (IngestClientConfig, std::net::SocketAddr) {
    let server = start(node_dir, loopback(), sink).await;
    let addr = server.local_addr();
    let mut config = client_config(&server, "adapter-a", TOKEN_A);
    server.shutdown().await;
    config.partitions = Some(partitions);
    config.spool = Some(SpoolConfig {
        dir: spool_dir.to_path_buf(),
    });
    (config, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spooled_while_down_sent_later_and_resent_after_abort() {
    let node_dir = tempfile::tempdir().unwrap();
    let spool_dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(MemorySink::new(4));
    let (config, addr) =
        config_for_a_down_node(node_dir.path(), spool_dir.path(), sink.clone(), 4).await;
    let client = IngestClient::connect(config.clone()).await.unwrap();
    let producer = client.producer_id();
    // The node is down: every send returns once the event is durable in
    // the spool.
    for i in 0..1_500 {
        client.try_send(&event(i)).await.unwrap();
    }
    assert_eq!(client.metrics().spool_depth_events, 1_500);
    assert_eq!(sink.record_count(), 0);
    // Stop abruptly, as a killed adapter would: nothing was acknowledged.
    client.abort().await;

    // A new client on the same spool, with the node back.
    let server = start(node_dir.path(), addr, sink.clone()).await;
    let client = IngestClient::connect(config.clone()).await.unwrap();
    assert_eq!(
        client.producer_id(),
        producer,
        "the spool keeps the producer id"
    );
    for i in 1_500..3_000 {
        client.send(&event(i)).await.unwrap();
    }
    client.flush().await.unwrap();
    assert_exactly_once(keys(&sink), 3_000);
    assert_eq!(client.metrics().spool_depth_events, 0);
    // Abort right after more sends: some batches may be acknowledged and
    // not yet committed; the next client resends them and the node answers
    // them as duplicates.
    for i in 3_000..4_000 {
        client.send(&event(i)).await.unwrap();
    }
    client.abort().await;
    let client = IngestClient::connect(config).await.unwrap();
    client.flush().await.unwrap();
    assert_exactly_once(keys(&sink), 4_000);
    client.close().await.unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_spool_refuses_with_a_typed_error() {
    let node_dir = tempfile::tempdir().unwrap();
    let spool_dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(MemorySink::new(2));
    let (mut config, _) = config_for_a_down_node(node_dir.path(), spool_dir.path(), sink, 2).await;
    config.batch_bytes_max = 4096;
    config.buffered_bytes_max = 8192;
    let client = IngestClient::connect(config).await.unwrap();
    assert_eq!(client.room_bytes(), 8192, "all room free at first");
    let mut refused = None;
    for i in 0..1_000 {
        if let Err(e) = client.try_send(&event(i)).await {
            refused = Some((i, e));
            break;
        }
    }
    let (at, err) = refused.expect("the spool fills up");
    assert!(
        matches!(
            err,
            ClientError::SpoolFull {
                bytes_max: 8192,
                ..
            }
        ),
        "{err}"
    );
    assert!(at > 10, "some events fit first");
    assert_eq!(client.metrics().spool_full_refusals, 1);
    // What is left is less than an event: a webhook would be refused
    // before its body is parsed.
    assert!(
        client.room_bytes() < dropline_adapters::carrier::ROOM_FOR_AN_EVENT_BYTES,
        "{} bytes of room",
        client.room_bytes()
    );
    client.abort().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_log_holds_every_event_once() {
    let node_dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(LogConfig::new(node_dir.path().join("log"))).unwrap());
    let sink = Arc::new(LogSink::open(log.clone(), 4).unwrap());
    let server = start(node_dir.path(), loopback(), sink.clone()).await;
    let client = IngestClient::connect(client_config(&server, "adapter-a", TOKEN_A))
        .await
        .unwrap();
    for i in 0..2_000 {
        client.send(&event(i)).await.unwrap();
    }
    client.flush().await.unwrap();
    client.close().await.unwrap();
    server.shutdown().await;
    let mut all = Vec::new();
    for p in 0..4 {
        let part = log.partition(CARRIER_EVENTS_TOPIC, p).unwrap();
        let mut from = 0;
        loop {
            let views = part.read(from, 1 << 20).unwrap();
            let Some(last) = views.last() else { break };
            from = last.batch().last_offset() + 1;
            for v in &views {
                assert!(v.batch().producer().is_some(), "batches carry the producer");
                all.extend(v.batch().records().map(|r| r.key.to_vec()));
            }
        }
    }
    assert_exactly_once(all, 2_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_takes_what_fits_in_order_and_the_node_gets_it_once() {
    let node_dir = tempfile::tempdir().unwrap();
    let spool_dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(MemorySink::new(2));
    let (mut config, addr) =
        config_for_a_down_node(node_dir.path(), spool_dir.path(), sink.clone(), 2).await;
    config.batch_bytes_max = 4096;
    config.buffered_bytes_max = 8192;
    // The node is down: what fits is durable in the spool when the call
    // returns, and every event after the first refusal is refused too
    // (same size, no room freed meanwhile).
    let client = IngestClient::connect(config.clone()).await.unwrap();
    let events: Vec<_> = (0..1_000).map(event).collect();
    let outcomes = client.try_send_batch(&events).await;
    assert_eq!(outcomes.len(), events.len());
    let taken = outcomes.iter().take_while(|o| o.is_ok()).count() as u64;
    assert!(taken > 10 && taken < 1_000, "taken {taken}");
    for o in &outcomes[taken as usize..] {
        assert!(
            matches!(
                o,
                Err(ClientError::SpoolFull {
                    bytes_max: 8192,
                    ..
                })
            ),
            "{o:?}"
        );
    }
    let m = client.metrics();
    assert_eq!(m.spool_full_refusals, 1_000 - taken);
    assert_eq!(m.spool_depth_events, taken);
    client.abort().await;

    // The node back and a new client on the spool: every taken event
    // arrives once, none of the refused ones.
    let server = start(node_dir.path(), addr, sink.clone()).await;
    let client = IngestClient::connect(config).await.unwrap();
    client.flush().await.unwrap();
    assert_exactly_once(keys(&sink), taken);
    client.close().await.unwrap();
    server.shutdown().await;
}
