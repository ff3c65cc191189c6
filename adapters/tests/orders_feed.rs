//! The orders feed across processes' boundaries: a shipment created with
//! `POST /v1/shipments` on a node (real log, real HTTP edge, real QUIC
//! ingest on 127.0.0.1 free ports) reaches a running adapter over its QUIC
//! connection, the adapter polls the carrier simulator for it, and its
//! scans land in the node's log. The adapter stopped and started again
//! resumes from its cursor: a shipment created while it was down is
//! tracked, and what it had already learned is not sent again. A wrong
//! token and a bad cursor are refused with typed errors. Contacts never
//! cross the wire nor reach the adapter's disk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod adapter_support;
mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use adapter_support::{adapter_config, sim_config};
use common::TOKEN_A;
use dropline_adapters::carrier::{
    AdapterConfig, AdapterHandle, ClientSink, NodeConfig, ScaledClock, connect_node,
    run_adapter_with_clock,
};
use dropline_adapters::client::{ClientError, IngestClientConfig, ServerTrust, follow_orders};
use dropline_adapters::http::{ContactSealer, HttpConfig, HttpHandle, HttpState, serve_http};
use dropline_adapters::ingest::{CARRIER_EVENTS_TOPIC, LogSink, ServerHandle};
use dropline_adapters::wire::{ErrorCode, FollowFrame, OrdersFrame};
use dropline_loadgen::carrier_sim::{CarrierSimHandle, PerCarrier, RateWindow, run_carrier_sim};
use dropline_log::{Log, LogConfig};
use dropline_operators::model::{Carrier, CarrierEvent, partition_for};

const PARTITIONS: u32 = 4;
const SPEEDUP: f64 = 2_000.0;
const EMAIL: &str = "jane.buyer.7731@example.com";
const PHONE: &str = "+15555550147";

/// A node: one log, the QUIC ingest (with the orders feed) and the HTTP
/// edge over it.
struct Node {
    log: Arc<Log>,
    ingest: ServerHandle,
    http: HttpHandle,
    client: reqwest::Client,
}

async fn start_node(dir: &Path) -> Node {
    let log = Arc::new(Log::open(LogConfig::new(dir.join("log"))).unwrap());
    dropline_engine::ensure_topics(&log, PARTITIONS).unwrap();
    let sink = LogSink::open(log.clone(), PARTITIONS).unwrap();
    let ingest = common::start(dir, common::loopback(), Arc::new(sink)).await;
    let sealer = ContactSealer::load_or_create(&dir.join("keys")).unwrap();
    let config = HttpConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    let http = serve_http(config, HttpState::new(log.clone(), sealer))
        .await
        .unwrap();
    http.ready().await;
    Node {
        log,
        ingest,
        http,
        client: reqwest::Client::new(),
    }
}

impl Node {
    /// Creates a shipment through the public API, as a storefront does.
    async fn create(&self, carrier: Carrier, tn: &str, order_id: &str, drop: bool) {
        let body = serde_json::json!({
            "tracking_number": tn,
            "carrier": carrier.as_str(),
            "order_id": order_id,
            "marketplace": "dropshop",
            "seller": "cards-r-us",
            "buyer_id": "buyer-7731",
            "skus": ["CARD-001"],
            "promised_window": {"from": "2024-11-20T00:00:00Z", "to": "2024-11-23T00:00:00Z"},
            "buyer_locale": "en-US",
            "buyer_time_zone": "America/New_York",
            "destination_postal_code": "30301",
            "drop": drop,
            "contacts": [
                {"channel": "email", "address": EMAIL, "consent": true},
                {"channel": "sms", "address": PHONE, "consent": true}
            ]
        });
        let r = self
            .client
            .post(format!("http://{}/v1/shipments", self.http.local_addr()))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }

    /// Waits, on the log's own durability signal, until an event of `tn`
    /// is in `carrier-events`; returns the events of `tn` found.
    async fn wait_for_scans(&self, tn: &str) -> Vec<CarrierEvent> {
        let p = partition_for(tn.as_bytes(), PARTITIONS);
        let part = self.log.partition(CARRIER_EVENTS_TOPIC, p).unwrap();
        let mut next = part.start_offset();
        let mut found = Vec::new();
        loop {
            for v in part.read(next, 1 << 20).unwrap() {
                for r in v.records() {
                    if r.key == tn.as_bytes() {
                        found.push(CarrierEvent::decode(r.value).unwrap());
                    }
                }
                next = v.last_offset() + 1;
            }
            if !found.is_empty() {
                return found;
            }
            part.data_ready(next).await.unwrap();
        }
    }

    fn client_config(&self, token: &[u8]) -> IngestClientConfig {
        IngestClientConfig::new(
            self.ingest.local_addr(),
            ServerTrust::PinnedSha256(self.ingest.fingerprint_sha256().to_string()),
            "adapter-a",
            token.to_vec(),
        )
    }

    async fn stop(self) {
        self.http.shutdown().await.unwrap();
        self.ingest.shutdown().await;
    }
}

fn limits() -> PerCarrier<Vec<RateWindow>> {
    PerCarrier::all(vec![RateWindow {
        requests: 600,
        window_ms: 3_600_000,
    }])
}

/// An adapter that polls the simulator for UPS and FedEx only (no
/// webhooks: every scan it hands on, it polled for), following `node`.
fn config_for(node: &Node, sim: &CarrierSimHandle, dir: &Path) -> AdapterConfig {
    let sim_config = sim_config(SPEEDUP, &limits());
    let mut config = adapter_config(
        &dir.join("state"),
        &sim.base_url(),
        &limits(),
        &sim_config,
        &[],
    );
    *config.carriers.get_mut(Carrier::Usps) = None;
    *config.carriers.get_mut(Carrier::Dhl) = None;
    config.poller.first_poll_delay_ms_max = 1_000;
    config.node = Some(NodeConfig {
        addr: node.ingest.local_addr(),
        server_name: "dropline-node".into(),
        fingerprint_sha256: node.ingest.fingerprint_sha256().to_string(),
        adapter: "adapter-a".into(),
        token: String::from_utf8(TOKEN_A.to_vec()).unwrap(),
        spool_dir: dir.join("spool"),
        partitions: Some(PARTITIONS),
    });
    config
}

async fn start_adapter(
    config: &AdapterConfig,
    sim: &CarrierSimHandle,
) -> (AdapterHandle<ClientSink>, Arc<ClientSink>) {
    let sink = Arc::new(connect_node(config).await.unwrap());
    let clock = Arc::new(ScaledClock::new(sim.clock().now_ms(), SPEEDUP));
    let adapter = run_adapter_with_clock(config.clone(), sink.clone(), clock)
        .await
        .unwrap();
    (adapter, sink)
}

async fn stop_adapter(adapter: AdapterHandle<ClientSink>, sink: Arc<ClientSink>) {
    adapter.shutdown().await;
    let sink = Arc::into_inner(sink).expect("the adapter let go of its sink");
    sink.client().flush().await.unwrap();
    sink.abort().await;
}

/// Whether any file under `dir` contains `needle`.
fn any_file_contains(dir: &Path, needle: &[u8]) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if let Some(p) = any_file_contains(&path, needle) {
                return Some(p);
            }
        } else {
            let bytes = std::fs::read(&path).unwrap();
            if bytes.windows(needle.len()).any(|w| w == needle) {
                return Some(path);
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_shipment_is_polled_and_a_restart_resumes_from_the_cursor() {
    let node_dir = tempfile::tempdir().unwrap();
    let adapter_dir = tempfile::tempdir().unwrap();
    let node = start_node(node_dir.path()).await;
    let sim = run_carrier_sim(sim_config(SPEEDUP, &limits()))
        .await
        .unwrap();
    // The carrier knows the parcels from their labels.
    let first = sim.register_generated(Carrier::Ups, 1).unwrap().remove(0);
    let second = sim.register_generated(Carrier::Fedex, 1).unwrap().remove(0);
    // A USPS parcel: this adapter does not poll USPS, so the node must not
    // send it (the adapter never hears of it).
    let other = sim.register_generated(Carrier::Usps, 1).unwrap().remove(0);

    let config = config_for(&node, &sim, adapter_dir.path());
    let (adapter, sink) = start_adapter(&config, &sim).await;

    // Created through the API after the adapter started: the adapter
    // learns it from the feed, polls the simulator, the scans land.
    node.create(Carrier::Usps, &other, "ORDER-0", false).await;
    node.create(Carrier::Ups, &first, "ORDER-1", true).await;
    let scans = node.wait_for_scans(&first).await;
    assert!(scans.iter().all(|e| e.carrier == Carrier::Ups));
    let m = adapter.metrics();
    assert_eq!(m.orders.learned, 1, "{:?}", m.orders);
    assert_eq!(
        m.orders.entries, 1,
        "the USPS order is not sent: {:?}",
        m.orders
    );
    assert!(m.carrier(Carrier::Ups).requests > 0, "it polled for it");
    assert_eq!(m.orders.skipped.iter().map(|(_, n)| n).sum::<u64>(), 0);
    assert_eq!(adapter.active_shipments(Carrier::Ups), 1);

    // Stopped; a shipment is created while it is down.
    stop_adapter(adapter, sink).await;
    assert!(
        adapter_dir.path().join("state/orders-cursor").exists(),
        "the cursor is saved at shutdown"
    );
    node.create(Carrier::Fedex, &second, "ORDER-2", false).await;

    // Started again: it resumes from its cursor. The shipment created
    // while it was down is tracked; the first one is not sent again (it
    // is known from the adapter's own state).
    let (adapter, sink) = start_adapter(&config, &sim).await;
    let scans = node.wait_for_scans(&second).await;
    assert!(scans.iter().all(|e| e.carrier == Carrier::Fedex));
    let m = adapter.metrics();
    assert_eq!(m.orders.entries, 1, "only the new order: {:?}", m.orders);
    assert_eq!(m.orders.learned, 1, "{:?}", m.orders);
    assert_eq!(m.shipments, 2, "the first is restored from the state log");
    assert_eq!(adapter.active_shipments(Carrier::Usps), 0);
    let text = adapter.render_prometheus();
    assert!(
        text.contains("dropline_adapter_orders_learned_total 1"),
        "{text}"
    );
    assert!(
        text.contains("dropline_adapter_orders_cursor_lag_records"),
        "{text}"
    );

    // No contact, sealed or not, reached the adapter's disk.
    stop_adapter(adapter, sink).await;
    for needle in [EMAIL.as_bytes(), PHONE.as_bytes(), b"dl1."] {
        assert_eq!(
            any_file_contains(adapter_dir.path(), needle),
            None,
            "{:?} found on the adapter's disk",
            String::from_utf8_lossy(needle)
        );
    }
    let ingest = node.ingest.metrics();
    assert_eq!(ingest.follow_entries_sent, 2);
    assert_eq!(ingest.follow_streams_opened, 2);
    node.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_carry_no_contacts_and_bad_follows_get_typed_errors() {
    let node_dir = tempfile::tempdir().unwrap();
    let node = start_node(node_dir.path()).await;
    node.create(Carrier::Ups, "1Z999AA10123456784", "ORDER-1", true)
        .await;
    node.create(Carrier::Dhl, "7777777770", "ORDER-2", false)
        .await;
    let all = FollowFrame {
        carriers_mask: 0b1111,
        entries_max: 16,
        cursor: Vec::new(),
    };

    // Exactly what crosses the wire: no contact, sealed or in the clear,
    // no buyer id, no postal code; only number, carrier, drop, window.
    let mut stream = follow_orders(&node.client_config(TOKEN_A), &all)
        .await
        .unwrap();
    let mut got: Vec<OrdersFrame> = Vec::new();
    while got.iter().map(|f| f.entries.len()).sum::<usize>() < 2 {
        let frame = stream
            .next()
            .await
            .unwrap()
            .expect("the node keeps the stream open");
        let body = stream.last_frame_body().to_vec();
        for needle in [
            EMAIL.as_bytes(),
            PHONE.as_bytes(),
            b"dl1.",
            b"buyer-7731",
            b"30301",
            b"ORDER-",
        ] {
            assert!(
                !body.windows(needle.len()).any(|w| w == needle),
                "{:?} crossed the wire",
                String::from_utf8_lossy(needle)
            );
        }
        got.push(frame);
    }
    let mut entries: Vec<(String, u8, bool)> = got
        .iter()
        .flat_map(|f| f.entries.iter())
        .map(|e| (e.tracking_number.clone(), e.carrier, e.drop))
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        vec![
            ("1Z999AA10123456784".to_string(), Carrier::Ups as u8, true),
            ("7777777770".to_string(), Carrier::Dhl as u8, false),
        ]
    );
    let window = &got[0].entries[0];
    assert_eq!(window.promised_from_ms, 1_732_060_800_000);
    assert_eq!(window.promised_to_ms, 1_732_320_000_000);
    stream.close();

    // A cursor at the end gets nothing old: the next frame is a new order.
    let mut cursor = vec![0u64; PARTITIONS as usize];
    for f in &got {
        cursor[f.partition as usize] = f.next_offset;
    }
    let resume = FollowFrame {
        cursor,
        ..all.clone()
    };
    let mut stream = follow_orders(&node.client_config(TOKEN_A), &resume)
        .await
        .unwrap();
    node.create(Carrier::Fedex, "123456789012", "ORDER-3", false)
        .await;
    let frame = stream.next().await.unwrap().unwrap();
    assert_eq!(frame.entries.len(), 1);
    assert_eq!(frame.entries[0].tracking_number, "123456789012");
    stream.close();

    // A wrong token: refused at the Hello, typed.
    match follow_orders(&node.client_config(b"not-the-token"), &all).await {
        Err(ClientError::Refused { code, .. }) => {
            assert_eq!(code, ErrorCode::Unauthenticated.as_u16())
        }
        other => panic!("expected unauthenticated, got {other:?}"),
    }
    // A cursor for another topic, and one beyond the end.
    for cursor in [vec![0u64; 3], vec![u64::MAX / 2; PARTITIONS as usize]] {
        let bad = FollowFrame {
            cursor,
            ..all.clone()
        };
        let mut stream = follow_orders(&node.client_config(TOKEN_A), &bad)
            .await
            .unwrap();
        match stream.next().await {
            Err(ClientError::Refused { code, .. }) => {
                assert_eq!(code, ErrorCode::CursorMismatch.as_u16())
            }
            other => panic!("expected cursor_mismatch, got {other:?}"),
        }
    }
    // A carrier mask naming no known carrier: a malformed body.
    let bad = FollowFrame {
        carriers_mask: 1 << 7,
        ..all.clone()
    };
    let mut stream = follow_orders(&node.client_config(TOKEN_A), &bad)
        .await
        .unwrap();
    match stream.next().await {
        Err(ClientError::Refused { code, .. }) => {
            assert_eq!(code, ErrorCode::MalformedBody.as_u16())
        }
        other => panic!("expected malformed_body, got {other:?}"),
    }
    let m = node.ingest.metrics();
    assert_eq!(m.errors_with(ErrorCode::Unauthenticated), 1);
    assert_eq!(m.errors_with(ErrorCode::CursorMismatch), 2);
    assert_eq!(m.errors_with(ErrorCode::MalformedBody), 1);
    node.stop().await;
}
