//! The carrier simulator speaks each carrier's polling dialect (what it
//! answers normalizes back to its ground truth), enforces and counts rate
//! limits, injects faults, and pushes signed webhooks for every scan.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use dropline_loadgen::carrier_sim::{
    CarrierSimConfig, Faults, GroundTruthScan, WebhookTarget, run_carrier_sim, sign,
    signature_header,
};
use dropline_operators::model::{Carrier, EventSource};
use dropline_operators::normalize::normalize;
use serde_json::json;

fn loopback() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A simulator where every journey has already happened.
fn finished_config(per_carrier: u32) -> CarrierSimConfig {
    let mut c = CarrierSimConfig::new(loopback());
    c.seed = 42;
    c.shipments_per_carrier = per_carrier;
    c.start_ms = 1_732_000_000_000;
    // A real millisecond is over eleven simulated days: every scan is
    // visible at once, and no limit binds.
    c.speedup = 1e9;
    c
}

fn key(carrier: Carrier, e: &dropline_operators::model::CarrierEvent) -> GroundTruthScan {
    GroundTruthScan {
        carrier,
        tracking_number: e.tracking_number.clone(),
        status: e.status,
        sub_status: e.sub_status,
        occurred_at_ms: e.occurred_at_ms,
    }
}

async fn poll(
    http: &reqwest::Client,
    base: &str,
    carrier: Carrier,
    numbers: &[String],
) -> reqwest::Response {
    match carrier {
        Carrier::Ups => {
            http.get(format!("{base}/api/track/v1/details/{}", numbers[0]))
                .send()
                .await
        }
        Carrier::Usps => {
            http.get(format!("{base}/tracking/v3/tracking/{}", numbers[0]))
                .send()
                .await
        }
        Carrier::Dhl => {
            http.get(format!(
                "{base}/track/shipments?trackingNumber={}",
                numbers[0]
            ))
            .send()
            .await
        }
        Carrier::Fedex => {
            let info: Vec<_> = numbers
                .iter()
                .map(|n| json!({"trackingNumberInfo": {"trackingNumber": n}}))
                .collect();
            http.post(format!("{base}/track/v1/trackingnumbers"))
                .json(&json!({"includeDetailedScans": true, "trackingInfo": info}))
                .send()
                .await
        }
    }
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_answers_normalize_to_the_ground_truth() {
    let sim = run_carrier_sim(finished_config(35)).await.unwrap();
    let http = reqwest::Client::new();
    let base = sim.base_url();
    let truth: HashSet<GroundTruthScan> = sim.ground_truth(true).into_iter().collect();
    assert_eq!(
        truth.len(),
        sim.ground_truth(false).len(),
        "every scan is visible"
    );
    let mut seen = HashSet::new();
    for carrier in Carrier::ALL {
        let numbers = sim.tracking_numbers(carrier);
        assert_eq!(numbers.len(), 35);
        let chunks: Vec<Vec<String>> = match carrier {
            Carrier::Fedex => numbers.chunks(30).map(<[String]>::to_vec).collect(),
            _ => numbers.iter().map(|n| vec![n.clone()]).collect(),
        };
        for chunk in chunks {
            let r = poll(&http, &base, carrier, &chunk).await;
            assert_eq!(r.status(), StatusCode::OK, "{carrier}");
            let body = r.bytes().await.unwrap();
            let out = normalize(carrier, &body, 0, EventSource::Poll).unwrap();
            assert!(
                out.unknown_codes.is_empty(),
                "{carrier}: {:?}",
                out.unknown_codes
            );
            for e in &out.events {
                assert!(
                    seen.insert(key(carrier, e)),
                    "{carrier}: one event per scan"
                );
            }
        }
    }
    assert_eq!(seen, truth);
    // Journeys have 10 to 20 scans.
    assert!(truth.len() >= 4 * 35 * 10 && truth.len() <= 4 * 35 * 20);

    // FedEx refuses more than 30 numbers.
    let numbers = sim.tracking_numbers(Carrier::Fedex);
    let r = poll(&http, &base, Carrier::Fedex, &numbers[..31]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Unknown numbers are the carrier's not-found answers.
    let r = poll(
        &http,
        &base,
        Carrier::Usps,
        &["9400100000000000000000".to_string()],
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = poll(&http, &base, Carrier::Dhl, &["0000000000".to_string()]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let stats: serde_json::Value = http
        .get(format!("{base}/admin/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["carriers"]["fedex"]["requests"], 3);
    assert_eq!(stats["carriers"]["fedex"]["bad_requests"], 1);
    assert_eq!(stats["carriers"]["ups"]["served"], 35);
    assert_eq!(stats["scans_total"].as_u64().unwrap(), truth.len() as u64);
    let scans: Vec<GroundTruthScan> = http
        .get(format!("{base}/admin/scans?visible=true"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(scans.len(), truth.len());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_enforced_and_counted_and_faults_apply() {
    let mut config = CarrierSimConfig::new(loopback());
    config.shipments_per_carrier = 2;
    let sim = run_carrier_sim(config).await.unwrap();
    let http = reqwest::Client::new();
    let base = sim.base_url();
    let dhl = sim.tracking_numbers(Carrier::Dhl);
    // Real time, real DHL limit (1 per 5 s): the second call at once is
    // refused and counted as a violation.
    let first = poll(&http, &base, Carrier::Dhl, &dhl).await;
    assert_ne!(first.status(), StatusCode::TOO_MANY_REQUESTS);
    let second = poll(&http, &base, Carrier::Dhl, &dhl).await;
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = second.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&retry_after), "{retry_after}");
    let stats = sim.stats();
    assert_eq!(stats.carriers.dhl.requests, 2);
    assert_eq!(stats.carriers.dhl.violations, 1);
    assert_eq!(stats.carriers.dhl.rate_limited, 1);

    // Faults on command, through the admin call.
    let faults = Faults {
        outage: vec![Carrier::Ups],
        storm_429: vec![Carrier::Fedex],
        ..Faults::default()
    };
    let r = http
        .post(format!("{base}/admin/faults"))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(sim.faults(), faults);
    let ups = sim.tracking_numbers(Carrier::Ups);
    assert_eq!(
        poll(&http, &base, Carrier::Ups, &ups).await.status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    let fedex = sim.tracking_numbers(Carrier::Fedex);
    let r = poll(&http, &base, Carrier::Fedex, &fedex).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    let stats = sim.stats();
    assert_eq!(stats.carriers.ups.outage_503, 1);
    assert_eq!(stats.carriers.fedex.storm_429, 1);
    assert_eq!(
        stats.carriers.fedex.violations, 0,
        "a storm is not a violation"
    );

    // Malformed answers: every answer is cut short.
    sim.set_faults(Faults {
        malformed_every: 1,
        ..Faults::default()
    });
    let usps = sim.tracking_numbers(Carrier::Usps);
    let r = poll(&http, &base, Carrier::Usps, &usps).await;
    let body = r.bytes().await.unwrap();
    assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());

    // Registration through the admin call, given and generated numbers.
    let r: serde_json::Value = http
        .post(format!("{base}/admin/register"))
        .json(
            &json!({"carrier": "usps", "tracking_numbers": ["9400111899223197428490"], "count": 3}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["tracking_numbers"].as_array().unwrap().len(), 4);
    assert_eq!(sim.tracking_numbers(Carrier::Usps).len(), 6);
    sim.shutdown().await;
}

/// A webhook received: its carrier and body.
type Pushed = (Carrier, Vec<u8>);

#[derive(Clone, Default)]
struct Received {
    bodies: Arc<Mutex<Vec<Pushed>>>,
    bad_signatures: Arc<Mutex<u32>>,
    notify: Arc<tokio::sync::Notify>,
}

async fn receive(
    State(r): State<Received>,
    Path(carrier): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let carrier = Carrier::parse(&carrier).unwrap();
    let secret = CarrierSimConfig::new(loopback())
        .secrets
        .get(carrier)
        .clone();
    let sig = headers
        .get(signature_header(carrier))
        .and_then(|v| v.to_str().ok());
    if sig != Some(sign(secret.as_bytes(), &body).as_str()) {
        *r.bad_signatures.lock().unwrap() += 1;
        return StatusCode::UNAUTHORIZED;
    }
    r.bodies.lock().unwrap().push((carrier, body.to_vec()));
    r.notify.notify_waiters();
    StatusCode::OK
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scan_is_pushed_signed_and_duplicates_on_command() {
    let received = Received::default();
    let app = axum::Router::new()
        .route("/webhooks/{carrier}", post(receive))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind(loopback()).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let mut config = finished_config(3);
    let mut target = WebhookTarget::new(url);
    target.tick_ms = 5;
    config.webhook = Some(target);
    config.faults.duplicate_webhooks = true;
    let sim = run_carrier_sim(config).await.unwrap();
    let truth: Vec<GroundTruthScan> = sim.ground_truth(false);
    // Duplicates on: every scan arrives twice.
    let expected = 2 * truth.len();
    loop {
        let notified = received.notify.notified();
        if received.bodies.lock().unwrap().len() >= expected {
            break;
        }
        notified.await;
    }
    assert_eq!(*received.bad_signatures.lock().unwrap(), 0);
    let mut counts = std::collections::HashMap::new();
    for (carrier, body) in received.bodies.lock().unwrap().iter() {
        let out = normalize(*carrier, body, 0, EventSource::Webhook).unwrap();
        assert_eq!(out.events.len(), 1, "one scan per webhook");
        *counts.entry(key(*carrier, &out.events[0])).or_insert(0) += 1;
    }
    assert_eq!(counts.len(), truth.len());
    assert!(counts.values().all(|n| *n == 2));
    let stats = sim.stats();
    let delivered: u64 = Carrier::ALL
        .iter()
        .map(|c| stats.carriers.get(*c).webhooks_delivered)
        .sum();
    assert_eq!(delivered, expected as u64);
    sim.shutdown().await;
}
