//! The node process killed with SIGKILL in the middle of a burst and
//! restarted: every event the client had acknowledged is in the log exactly
//! once, and no notification intent was written twice (the engine replays
//! from its checkpoint and the log's idempotent producer drops the repeats).
//! The restarted node says in its log what recovery checked, and the test
//! prints how long the restart, the drain of the client's spool and the
//! engine's catch-up took (measured, not asserted).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chaos_support;

use std::collections::HashSet;
use std::time::Instant;

use chaos_support::{
    NodeProc, assert_logged, create_orders, free_tcp, free_udp, report, start_node, wait_views,
};
use dropline_adapters::client::{IngestClient, IngestClientConfig, ServerTrust, SpoolConfig};
use dropline_log::{Log, LogConfig};
use dropline_operators::model::{
    Carrier, CarrierEvent, Channel, EventSource, Location, Priority, Status, SubStatus,
    notify_topic,
};
use dropline_operators::ops::NotificationIntent;

const SHIPMENTS: u64 = 120;
const PARTITIONS: u32 = 8;

fn stop_gracefully(mut node: NodeProc) {
    let exit = node.proc.interrupt();
    assert!(exit.success(), "node exited with {exit}");
}

fn tracking(i: u64) -> String {
    format!("1ZCRASH{i:011}")
}

fn scan(i: u64, step: u64) -> CarrierEvent {
    let (status, sub_status, code) = match step {
        0 => (Status::PickedUp, SubStatus::Accepted, "038"),
        1 => (Status::OutForDelivery, SubStatus::OnVehicle, "OT"),
        _ => (Status::Delivered, SubStatus::LeftSafePlace, "KB"),
    };
    CarrierEvent {
        tracking_number: tracking(i),
        carrier: Carrier::Ups,
        status,
        sub_status,
        raw_code: code.into(),
        raw_text: format!("scan {step}"),
        occurred_at_ms: 1_790_000_000_000 + (step * 3_600_000) as i64 + i as i64,
        local_time: "2026-09-21T10:00:00".into(),
        utc_offset_minutes: Some(-240),
        location: Location {
            city: Some(format!("CITY {step}")),
            region: Some("NY".into()),
            postal_code: Some("10001".into()),
            country: Some("US".into()),
        },
        source: EventSource::Synthetic,
        received_at_ms: 1_790_000_000_000,
    }
}

#[test]
fn node_killed_mid_burst_loses_nothing_acked_and_notifies_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("node");
    let spool = dir.path().join("spool");
    let quic = free_udp();
    let http = free_tcp();
    let node = start_node(&data, quic, http);
    let token = std::fs::read_to_string(data.join("adapter.token")).unwrap();
    let fingerprint = node.fingerprint.clone();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut config = IngestClientConfig::new(
        quic,
        ServerTrust::PinnedSha256(fingerprint),
        "default",
        token.trim().as_bytes().to_vec(),
    );
    config.partitions = Some(PARTITIONS);
    config.spool = Some(SpoolConfig { dir: spool });
    config.backoff_max_ms = 200;

    let node = runtime.block_on(async {
        create_orders(http, "crash-market", "10001", (0..SHIPMENTS).map(tracking)).await;
        let client = IngestClient::connect(config.clone()).await.unwrap();
        // First half of the burst, then the node dies without warning.
        for i in 0..SHIPMENTS {
            client.send(&scan(i, 0)).await.unwrap();
            client.send(&scan(i, 1)).await.unwrap();
        }
        let mut node = node;
        node.proc.sigkill();
        // Events keep being accepted into the spool while the node is down.
        for i in 0..SHIPMENTS / 2 {
            client.send(&scan(i, 2)).await.unwrap();
        }
        let restarted = Instant::now();
        let node = start_node(&data, quic, http);
        report("node SIGKILL", "restarted node ready", restarted.elapsed());
        for i in SHIPMENTS / 2..SHIPMENTS {
            client.send(&scan(i, 2)).await.unwrap();
        }
        client.flush().await.unwrap();
        report(
            "node SIGKILL",
            "every spooled event acknowledged after the restart",
            restarted.elapsed(),
        );
        let m = client.metrics();
        assert_eq!(m.events_acked, SHIPMENTS * 3, "{m:?}");
        assert_eq!(m.spool_depth_events, 0);
        client.close().await.unwrap();
        let numbers: Vec<String> = (0..SHIPMENTS).map(tracking).collect();
        wait_views(http, &numbers, "delivered").await;
        report(
            "node SIGKILL",
            "engine caught up after the restart",
            restarted.elapsed(),
        );
        node
    });
    // The restarted node says what its recovery checked.
    assert_logged(
        &node.proc.stderr(),
        &[
            "log recovered: every active segment checked batch by batch",
            "partitions=",
        ],
    );
    stop_gracefully(node);

    let log = Log::open(LogConfig::new(data.join("log"))).unwrap();
    // Every acknowledged event exactly once.
    let mut seen = HashSet::new();
    let mut events = 0u64;
    chaos_support::for_each_carrier_batch(&log, PARTITIONS, |_, view| {
        for r in view.records() {
            let e = CarrierEvent::decode(r.value).unwrap();
            assert!(
                seen.insert((e.tracking_number.clone(), e.status)),
                "duplicate event {} {}",
                e.tracking_number,
                e.status
            );
            events += 1;
        }
    });
    assert_eq!(
        events,
        SHIPMENTS * 3,
        "every acknowledged event is in the log"
    );

    // No notification intent id appears twice in any notify topic.
    let mut ids = HashSet::new();
    let mut intents = 0u64;
    for channel in Channel::ALL {
        for priority in Priority::ALL {
            let topic = notify_topic(channel, priority);
            for p in 0..PARTITIONS {
                let Ok(part) = log.partition(&topic, p) else {
                    continue;
                };
                let mut offset = part.start_offset();
                while offset < part.durable_offset() {
                    for view in part.read(offset, 1 << 20).unwrap() {
                        for r in view.records() {
                            let intent = NotificationIntent::decode(r.value).unwrap();
                            assert!(ids.insert(intent.id), "intent {} written twice", intent.id);
                            intents += 1;
                        }
                        offset = view.last_offset() + 1;
                    }
                }
            }
        }
    }
    assert!(
        intents > 0,
        "the engine produced notifications before and after the crash"
    );
}
