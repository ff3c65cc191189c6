//! A node's HTTP edge on 127.0.0.1 port 0 over a fresh log, and helpers to
//! feed it the records the engine would write.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use dropline_adapters::http::{
    ContactSealer, HttpConfig, HttpDeadLetter, HttpHandle, HttpState, serve_http,
};
use dropline_log::{AppendRequest, Log, LogConfig, Record};
use dropline_operators::model::{Carrier, Status, SubStatus, partition_for};
use dropline_operators::ops::text::InlineStr;
use dropline_operators::ops::{
    LastEvent, LocationSummary, ShipmentView, TrackingNumber, ViewChange,
};

pub(crate) const PARTITIONS: u32 = 4;
pub(crate) const EMAIL: &str = "jane.buyer.7731@example.com";
pub(crate) const PHONE: &str = "+15555550147";
pub(crate) const POSTAL: &str = "30301";

pub(crate) struct Node {
    pub(crate) log: Arc<Log>,
    pub(crate) handle: HttpHandle,
    pub(crate) base: String,
    pub(crate) sealer: ContactSealer,
    pub(crate) client: reqwest::Client,
}

pub(crate) fn open_log(dir: &Path) -> Arc<Log> {
    let log = Log::open(LogConfig::new(dir.join("log"))).unwrap();
    dropline_engine::ensure_topics(&log, PARTITIONS).unwrap();
    Arc::new(log)
}

pub(crate) async fn start_with(
    dir: &Path,
    tweak: impl FnOnce(&mut HttpConfig),
    state: impl FnOnce(&mut HttpState),
) -> Node {
    let log = open_log(dir);
    let sealer = ContactSealer::load_or_create(&dir.join("keys")).unwrap();
    let mut config = HttpConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    tweak(&mut config);
    let mut st = HttpState::new(log.clone(), sealer.clone());
    state(&mut st);
    let handle = serve_http(config, st).await.unwrap();
    handle.ready().await;
    let base = format!("http://{}", handle.local_addr());
    Node {
        log,
        handle,
        base,
        sealer,
        client: reqwest::Client::new(),
    }
}

pub(crate) async fn start(dir: &Path) -> Node {
    start_with(dir, |_| {}, |_| {}).await
}

pub(crate) fn order_json(tn: &str, order_id: &str) -> serde_json::Value {
    serde_json::json!({
        "tracking_number": tn,
        "carrier": "ups",
        "order_id": order_id,
        "marketplace": "dropshop",
        "seller": "cards-r-us",
        "buyer_id": "buyer-7731",
        "skus": ["CARD-001", "CARD-002"],
        "promised_window": {"from": "2024-11-20T00:00:00Z", "to": "2024-11-23T00:00:00Z"},
        "buyer_locale": "en-US",
        "buyer_time_zone": "America/New_York",
        "destination_postal_code": POSTAL,
        "contacts": [
            {"channel": "email", "address": EMAIL, "consent": true},
            {"channel": "sms", "address": PHONE, "consent": false}
        ]
    })
}

pub(crate) async fn create(node: &Node, body: &serde_json::Value) -> reqwest::Response {
    node.client
        .post(format!("{}/v1/shipments", node.base))
        .json(body)
        .send()
        .await
        .unwrap()
}

pub(crate) fn view(
    tn: &str,
    status: Status,
    sub: SubStatus,
    event_offset: u64,
    occurred_at_ms: i64,
    city: &str,
) -> ShipmentView {
    ShipmentView {
        tracking_number: TrackingNumber::new(tn).unwrap(),
        change: ViewChange::Scan,
        updated_log_ms: u64::try_from(occurred_at_ms).unwrap() + 60_000,
        carrier: Some(Carrier::Ups),
        status: Some(status),
        sub_status: sub,
        last_event: Some(LastEvent {
            offset: event_offset,
            occurred_at_ms,
            location: Some(LocationSummary {
                city: InlineStr::truncated(city),
                region: InlineStr::truncated("TN"),
                postal_code: InlineStr::truncated("38118"),
                country: InlineStr::truncated("US"),
            }),
        }),
        promised_from_ms: Some(1_732_060_800_000),
        promised_to_ms: Some(1_732_320_000_000),
        estimate_ms: Some(occurred_at_ms + 48 * 3_600_000),
        late: false,
        stale: false,
        open_exception: None,
    }
}

/// Appends a view change like the engine does; returns once it is durable.
pub(crate) fn append_view(log: &Log, v: &ShipmentView) {
    let tn = v.tracking_number.as_str();
    let mut value = Vec::new();
    v.encode(&mut value);
    let part = log
        .partition("shipment-views", partition_for(tn.as_bytes(), PARTITIONS))
        .unwrap();
    part.append(&AppendRequest {
        records: &[Record {
            key: tn.as_bytes(),
            value: &value,
        }],
        producer: None,
    })
    .unwrap();
}

/// Every byte of every file under `dir`.
pub(crate) fn all_file_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.extend(std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

pub(crate) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Waits until the node's view store holds a view of `tn` with `status`.
pub(crate) async fn wait_status(node: &Node, tn: &str, status: Status) {
    node.handle
        .views()
        .wait_until(|v| v.get(tn).and_then(|s| s.view).and_then(|v| v.status) == Some(status))
        .await;
}

/// Waits until the node's view store knows the order of `tn`.
pub(crate) async fn wait_known(node: &Node, tn: &str) {
    node.handle
        .views()
        .wait_until(|v| v.get(tn).is_some())
        .await;
}

pub(crate) const ADMIN_TOKEN: &str = "test-admin-token";

/// Fixed dashboard figures.
pub(crate) struct FixedStats;

impl dropline_adapters::http::StatsSource for FixedStats {
    fn snapshot(&self) -> dropline_adapters::http::StatsSnapshot {
        use dropline_adapters::http::*;
        StatsSnapshot {
            time_ms: 1_732_300_000_000,
            ingest_events_per_s: 12_345.0,
            partition_lag: (0..PARTITIONS)
                .map(|p| PartitionLag {
                    partition: p,
                    lag_records: u64::from(p) * 100,
                })
                .collect(),
            worker_rates: vec![
                WorkerRate {
                    worker: 0,
                    events_per_s: 6000.0,
                },
                WorkerRate {
                    worker: 1,
                    events_per_s: 6345.0,
                },
            ],
            notification_backlog: ["webhook", "email", "sms", "push"]
                .iter()
                .enumerate()
                .map(|(i, c)| ChannelBacklog {
                    channel: (*c).into(),
                    backlog: i as u64 * 10,
                })
                .collect(),
            critical_latency: CriticalLatency {
                p50_ms: 800.0,
                p95_ms: 4200.0,
                slo_ms: 60_000.0,
                within_slo_ratio: 0.991,
            },
            freshness: Freshness {
                active_shipments: 1000,
                stale_over_1h: 12,
                stale_ratio: 0.012,
            },
            carrier_errors: vec![CarrierErrors {
                carrier: "ups".into(),
                error_rate: 0.01,
            }],
            cost_per_update: 0.0042,
            dead_letters_total: 3,
            drop_mode: false,
        }
    }
}

/// Records drop-mode switches.
#[derive(Default)]
pub(crate) struct RecordingAdmin {
    pub(crate) switches: std::sync::Mutex<Vec<bool>>,
}

impl dropline_adapters::http::AdminActions for RecordingAdmin {
    fn set_drop_mode(&self, on: bool) -> Result<u64, dropline_adapters::http::AdminError> {
        let mut s = self.switches.lock().unwrap();
        s.push(on);
        Ok(s.len() as u64 - 1)
    }
    fn drop_mode(&self) -> Option<bool> {
        self.switches.lock().unwrap().last().copied()
    }
}

/// A node with the admin API, fixed stats and a recording admin.
pub(crate) async fn start_admin(dir: &Path) -> (Node, Arc<RecordingAdmin>) {
    let admin = Arc::new(RecordingAdmin::default());
    let a2 = admin.clone();
    let node = start_with(
        dir,
        |c| c.admin_token = Some(dropline_adapters::http::AdminToken::from_plain(ADMIN_TOKEN)),
        move |s| {
            s.stats = Some(Arc::new(FixedStats));
            s.admin = Some(a2);
        },
    )
    .await;
    (node, admin)
}

/// The HTTP dead letters in `log`'s `dead-letters`, in log order.
pub(crate) fn http_dead_letters(log: &Log) -> Vec<HttpDeadLetter> {
    log.partition("dead-letters", 0)
        .unwrap()
        .lookup_key(b"http")
        .unwrap()
        .iter()
        .filter_map(|r| HttpDeadLetter::decode(&r.value))
        .collect()
}
