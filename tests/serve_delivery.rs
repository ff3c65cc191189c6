//! `dropline serve` with a `[delivery]` section runs the delivery worker
//! next to the engine: a shipment created through the API and an
//! out-for-delivery scan sent over QUIC become a signed marketplace webhook
//! (to the endpoint configured for the marketplace, not the order's), an
//! email over SMTP, an SMS and a push through provider simulators; the
//! node's `/metrics` then carries the delivery series and the dashboard's
//! stats carry the delivery panels (backlog, critical latency, cost).
//!
//! Everything listens on 127.0.0.1 port 0. The test waits on events: the
//! node's readiness line, the receivers' counts, and the worker's
//! `delivered` log lines (after which its metrics are recorded).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use dropline_adapters::client::{IngestClient, IngestClientConfig, ServerTrust};
use dropline_loadgen::provider_sim::{ProviderSimConfig, run_provider_sim};
use dropline_loadgen::sinks::{SmtpSink, WebhookSink, WebhookSinkConfig};
use dropline_operators::model::{Carrier, CarrierEvent, EventSource, Location, Status, SubStatus};
use tokio::sync::mpsc;

const PARTITIONS: u32 = 2;
const WEBHOOK_SECRET: &str = "serve-delivery-test-secret";
const MARKETPLACE: &str = "serve-market";
const TRACKING: &str = "1ZSERVE00000000001";
/// The worker's log line for an accepted message (target and message).
const DELIVERED_LINE: &str = "dropline_adapters::delivery::worker: delivered";
/// Seconds after which the test stops waiting and fails with what it has
/// seen (a guard against a hang, not a performance bound).
const HANG_GUARD_S: u64 = 120;

/// A running `dropline serve`.
struct Serve {
    child: Child,
    quic: SocketAddr,
    http: SocketAddr,
    fingerprint: String,
    /// Channels of the worker's `delivered` lines, as they come.
    delivered: mpsc::UnboundedReceiver<String>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn field<'a>(line: &'a str, label: &str) -> Option<&'a str> {
    line.trim().strip_prefix(label).map(str::trim)
}

/// Starts `dropline serve` and reads its banner up to `ready`.
fn start_serve(config: &Path, data: &Path) -> Serve {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dropline"))
        .arg("serve")
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .args([
            "--quic-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .env(
            "DROPLINE_LOG",
            "warn,dropline_adapters::delivery::worker=debug",
        )
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, delivered) = mpsc::unbounded_channel();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if line.contains(DELIVERED_LINE) {
                let channel = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("channel="))
                    .unwrap_or("")
                    .trim_matches('"')
                    .to_string();
                let _ = tx.send(channel);
            } else {
                eprintln!("node: {line}");
            }
        }
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut quic, mut http, mut fingerprint) = (None, None, String::new());
    loop {
        let line = lines.next().expect("node exited before ready").unwrap();
        if let Some(addr) = field(&line, "QUIC ingest") {
            quic = Some(addr.parse().unwrap());
        } else if let Some(fp) = field(&line, "TLS sha256") {
            fingerprint = fp.to_string();
        } else if let Some(url) = field(&line, "HTTP") {
            let addr = url.trim_start_matches("http://").trim_end_matches('/');
            http = Some(addr.parse().unwrap());
        } else if let Some(channels) = field(&line, "delivery") {
            assert_eq!(channels, "webhook, email, sms, push", "{line}");
        } else if line.trim() == "ready" {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Serve {
        child,
        quic: quic.expect("no QUIC address printed"),
        http: http.expect("no HTTP address printed"),
        fingerprint,
        delivered,
    }
}

fn out_for_delivery() -> CarrierEvent {
    CarrierEvent {
        tracking_number: TRACKING.into(),
        carrier: Carrier::Ups,
        status: Status::OutForDelivery,
        sub_status: SubStatus::OnVehicle,
        raw_code: "OT".into(),
        raw_text: "out for delivery".into(),
        occurred_at_ms: 1_790_000_000_000,
        local_time: "2026-09-21T08:00:00".into(),
        utc_offset_minutes: Some(-240),
        location: Location {
            city: Some("NEW YORK".into()),
            region: Some("NY".into()),
            postal_code: Some("10001".into()),
            country: Some("US".into()),
        },
        source: EventSource::Synthetic,
        received_at_ms: 1_790_000_000_000,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_a_delivery_section_delivers_and_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    // One simulator per provider: each receives exactly one message, so
    // waiting for "at least one" is exact.
    let sms_provider = run_provider_sim(ProviderSimConfig::local()).await.unwrap();
    let push_provider = run_provider_sim(ProviderSimConfig::local()).await.unwrap();
    let smtp = SmtpSink::start().expect("the SMTP server (python3-aiosmtpd) must be installed");
    let hooks = WebhookSink::start(WebhookSinkConfig {
        secret: WEBHOOK_SECRET.as_bytes().to_vec(),
        tolerance_s: 300,
        fail_every: 0,
        fail_status: 503,
    })
    .await
    .unwrap();
    let endpoint = format!("{}/hooks/{MARKETPLACE}", hooks.base_url());

    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            r#"
partitions = {PARTITIONS}
workers = 1
pin_cores = false
tick_interval_ms = 100

[delivery]
callbacks_listen = "127.0.0.1:0"
consolidation_window_ms = 200

[delivery.webhook]
secret = "{WEBHOOK_SECRET}"

[delivery.webhook.marketplaces.{MARKETPLACE}]
endpoint = "{endpoint}"

[delivery.email]
host = "127.0.0.1"
port = {smtp_port}
from = "Dropline <notify@dropline.test>"

[delivery.sms]
base_url = "{sms_url}"
account_sid = "{sid}"
auth_token = "test"

[[delivery.sms.senders]]
number = "55501"
kind = "short_code"

[delivery.push]
base_url = "{push_url}"
project = "{project}"
bearer_token = "test"
"#,
            smtp_port = smtp.port(),
            sms_url = sms_provider.base_url(),
            sid = sms_provider.config().sms_account_sid,
            push_url = push_provider.base_url(),
            project = push_provider.config().push_project,
        ),
    )
    .unwrap();
    let mut node = start_serve(&config, &dir.path().join("data"));
    let client = reqwest::Client::new();

    // The order names a webhook contact of its own; the marketplace's
    // configured endpoint wins.
    let response = client
        .post(format!("http://{}/v1/shipments", node.http))
        .json(&serde_json::json!({
            "tracking_number": TRACKING,
            "carrier": "ups",
            "order_id": "ORDER-SERVE-1",
            "marketplace": MARKETPLACE,
            "seller": "seller-1",
            "buyer_id": "buyer-1",
            "skus": ["SKU-1"],
            "promised_window": {"from": "2026-09-20T00:00:00Z", "to": "2026-09-25T00:00:00Z"},
            "buyer_locale": "en-US",
            "buyer_time_zone": "UTC",
            "destination_postal_code": "10001",
            "contacts": [
                {"channel": "webhook", "address": "http://127.0.0.1:9/not-this-one", "consent": true},
                {"channel": "email", "address": "buyer1@example.test", "consent": true},
                {"channel": "sms", "address": "+15550001111", "consent": true},
                {"channel": "push", "address": "push-token-1", "consent": true},
            ],
        }))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());

    let token = std::fs::read_to_string(dir.path().join("data").join("adapter.token")).unwrap();
    let mut ingest = IngestClientConfig::new(
        node.quic,
        ServerTrust::PinnedSha256(node.fingerprint.clone()),
        "default",
        token.trim().as_bytes().to_vec(),
    );
    ingest.partitions = Some(PARTITIONS);
    let sender = IngestClient::connect(ingest).await.unwrap();
    sender.send(&out_for_delivery()).await.unwrap();
    sender.flush().await.unwrap();
    sender.close().await.unwrap();

    // Out for delivery is critical on every channel: one message each.
    let all_delivered = async {
        let mut channels = BTreeSet::new();
        while channels.len() < 4 {
            let channel = node.delivered.recv().await.expect("the node exited");
            channels.insert(channel);
        }
        hooks.wait_delivered(1).await;
        smtp.wait_delivered(1).await;
        sms_provider.wait_accepted(1).await;
        push_provider.wait_accepted(1).await;
        channels
    };
    let channels =
        tokio::time::timeout(std::time::Duration::from_secs(HANG_GUARD_S), all_delivered)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "not delivered: webhooks {:?}, emails {}, sms {:?}, push {:?}",
                    hooks.stats(),
                    smtp.received().len(),
                    sms_provider.stats(),
                    push_provider.stats()
                )
            });
    assert_eq!(
        channels.into_iter().collect::<Vec<_>>(),
        ["email", "push", "sms", "webhook"]
    );
    let received = hooks.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, format!("/hooks/{MARKETPLACE}"));
    assert_eq!(hooks.stats().bad_signature, 0);
    let mails = smtp.received();
    assert_eq!(mails[0].to, vec!["buyer1@example.test".to_string()]);
    assert!(
        mails[0]
            .list_unsubscribe
            .contains("/delivery/unsubscribe?token=")
    );
    assert_eq!(sms_provider.messages()[0].to, "+15550001111");
    assert_eq!(push_provider.messages()[0].to, "push-token-1");

    // The node's /metrics carries the delivery series.
    let metrics = client
        .get(format!("http://{}/metrics", node.http))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "dropline_delivery_messages_accepted_total{channel=\"webhook\"} 1",
        "dropline_delivery_messages_accepted_total{channel=\"email\"} 1",
        "dropline_delivery_messages_accepted_total{channel=\"sms\"} 1",
        "dropline_delivery_messages_accepted_total{channel=\"push\"} 1",
        "dropline_delivery_critical_delivered_total{channel=\"sms\"} 1",
        "dropline_delivery_critical_latency_seconds_count 4",
        "dropline_delivery_dead_lettered_total{channel=\"sms\"} 0",
        "dropline_delivery_send_failures_total{channel=\"push\"} 0",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    for series in [
        "dropline_delivery_backlog_records{channel=\"sms\",priority=\"critical\"}",
        "dropline_delivery_retries_total{channel=\"email\"}",
        "dropline_delivery_rate_limit_waits_total{channel=\"sms\"}",
        "dropline_delivery_rate_limit_wait_ms_total{channel=\"sms\"}",
        "dropline_delivery_cost_micro_total{channel=\"sms\"}",
        "dropline_delivery_latency_seconds_bucket{channel=\"push\",le=\"+Inf\"} 1",
    ] {
        assert!(metrics.contains(series), "missing {series:?} in\n{metrics}");
    }

    // The dashboard's stats carry the delivery panels.
    let admin = std::fs::read_to_string(dir.path().join("data").join("admin.token")).unwrap();
    let stats: serde_json::Value = client
        .get(format!("http://{}/v1/admin/stats", node.http))
        .bearer_auth(admin.trim())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let backlog: Vec<&str> = stats["notification_backlog"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["channel"].as_str().unwrap())
        .collect();
    assert_eq!(backlog, ["webhook", "email", "sms", "push"], "{stats}");
    let critical = &stats["critical_latency"];
    assert!(critical["p50_ms"].as_f64().unwrap() > 0.0, "{stats}");
    assert!(critical["p95_ms"].as_f64().unwrap() > 0.0, "{stats}");
    assert_eq!(critical["slo_ms"].as_f64(), Some(60_000.0), "{stats}");
    // Four updates, one of them an SMS at the default 0.0079 and an email
    // at 0.0001: (0.0079 + 0.0001) / 4.
    let cost = stats["cost_per_update"].as_f64().unwrap();
    assert!((cost - 0.002).abs() < 1e-9, "{stats}");
    assert_eq!(stats["dead_letters_total"].as_u64(), Some(0), "{stats}");

    let status = Command::new("kill")
        .args(["-INT", &node.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = node.child.wait().unwrap();
    assert!(exit.success(), "node exited with {exit}");
}
