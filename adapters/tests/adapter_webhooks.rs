//! Webhook receivers: signatures are verified (401 with the reason, and
//! counted), unreadable bodies get a 400 with the reason and are kept as
//! dead letters, repeated scans are handed on once, a full spool answers
//! 503 so the carrier retries; a copy of a scan that arrives while
//! another request is still handing it off is answered only once the scan
//! is durable; and the example configuration parses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod adapter_support;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use adapter_support::*;
use dropline_adapters::carrier::{AdapterConfig, run_adapter};
use dropline_loadgen::carrier_format::{Journey, JourneyScan, render_webhook, tracking_number};
use dropline_loadgen::carrier_sim::{real_limits, sign, signature_header};
use dropline_operators::model::{Carrier, EventSource, Location, Status, SubStatus};

fn journey(carrier: Carrier, seq: u64, minute: i64) -> Journey {
    Journey {
        tracking_number: tracking_number(carrier, seq),
        scans: vec![JourneyScan {
            status: Status::InTransit,
            sub_status: SubStatus::ArrivalScan,
            occurred_at_ms: START_MS + minute * 60_000,
            utc_offset_minutes: -300,
            location: Location {
                city: Some("ATLANTA".into()),
                region: Some("GA".into()),
                postal_code: Some("30303".into()),
                country: Some("US".into()),
            },
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_payloads_duplicates_and_backpressure() {
    let dir = tempfile::tempdir().unwrap();
    let limits = real_limits();
    let sim = sim_config(1.0, &limits);
    let config = adapter_config(
        dir.path(),
        "http://127.0.0.1:9",
        &limits,
        &sim,
        &Carrier::ALL,
    );
    let sink = Arc::new(TestSink::default());
    let adapter = run_adapter(config, sink.clone()).await.unwrap();
    let http = reqwest::Client::new();
    let post = |carrier: Carrier, body: Vec<u8>, signature: Option<String>| {
        let mut req = http
            .post(format!("{}/webhooks/{carrier}", adapter.base_url()))
            .header("content-type", "application/json")
            .body(body);
        if let Some(s) = signature {
            req = req.header(signature_header(carrier), s);
        }
        req.send()
    };

    for (i, carrier) in Carrier::ALL.into_iter().enumerate() {
        let secret = sim.secrets.get(carrier).clone();
        let body = render_webhook(carrier, &journey(carrier, i as u64, 1));

        // Signed with another secret: 401 with the reason.
        let r = post(carrier, body.clone(), Some(sign(b"wrong secret", &body)))
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{carrier}");
        let reason: serde_json::Value = r.json().await.unwrap();
        assert_eq!(reason["error"], "signature_mismatch");
        // No signature at all.
        let r = post(carrier, body.clone(), None).await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.json::<serde_json::Value>().await.unwrap()["error"],
            "signature_missing"
        );
        // The right signature over a tampered body.
        let mut tampered = body.clone();
        tampered.extend_from_slice(b" ");
        let r = post(carrier, tampered, Some(sign(secret.as_bytes(), &body)))
            .await
            .unwrap();
        assert_eq!(r.status(), 401);

        // Well signed but unreadable: 400 with the reason, dead-lettered.
        let cut = body[..body.len() / 2].to_vec();
        let r = post(carrier, cut.clone(), Some(sign(secret.as_bytes(), &cut)))
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let reason: serde_json::Value = r.json().await.unwrap();
        assert_eq!(reason["error"], "bad_payload");
        assert!(!reason["reason"].as_str().unwrap().is_empty());

        // Good: accepted once, then recognised as a duplicate.
        let r = post(carrier, body.clone(), Some(sign(secret.as_bytes(), &body)))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<serde_json::Value>().await.unwrap()["accepted"], 1);
        let r = post(carrier, body.clone(), Some(sign(secret.as_bytes(), &body)))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let answer: serde_json::Value = r.json().await.unwrap();
        assert_eq!(
            (answer["accepted"].as_u64(), answer["duplicates"].as_u64()),
            (Some(0), Some(1))
        );

        // A full spool: 503 with Retry-After, and the scan is not lost:
        // the carrier's retry after room returns is accepted.
        let next = render_webhook(carrier, &journey(carrier, i as u64, 2));
        sink.full.store(true, Ordering::SeqCst);
        let r = post(carrier, next.clone(), Some(sign(secret.as_bytes(), &next)))
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
        assert!(r.headers().contains_key("retry-after"));
        sink.full.store(false, Ordering::SeqCst);
        // With no room at all the body is not even read: a malformed one
        // gets the same 503, not a 400 (and is not dead-lettered).
        sink.no_room.store(true, Ordering::SeqCst);
        let junk = b"{\"not\": \"a carrier body\"".to_vec();
        let r = post(carrier, junk.clone(), Some(sign(secret.as_bytes(), &junk)))
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
        assert!(r.headers().contains_key("retry-after"));
        sink.no_room.store(false, Ordering::SeqCst);
        let r = post(carrier, next.clone(), Some(sign(secret.as_bytes(), &next)))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<serde_json::Value>().await.unwrap()["accepted"], 1);
    }

    let events = sink.events.lock().unwrap().clone();
    assert_eq!(events.len(), 8, "two scans per carrier, each once");
    assert!(counts(&events).values().all(|n| *n == 1));
    assert!(events.iter().all(|e| e.source == EventSource::Webhook));
    let m = adapter.metrics();
    for carrier in Carrier::ALL {
        let c = m.carrier(carrier);
        assert_eq!(c.signature_failures, 3, "{carrier}");
        assert_eq!(c.bad_payloads, 1);
        assert_eq!(c.refused_full, 2);
        assert_eq!(c.duplicates, 1);
        assert_eq!(c.webhook_events, 2);
        assert_eq!(c.webhooks, 9);
    }
    assert_eq!(m.dead_letters, 4);
    assert_eq!(m.events_in, 8);
    // Numbers first seen in a webhook are tracked from then on.
    assert_eq!(m.shipments, 4);
    let text = adapter.render_prometheus();
    assert!(
        text.contains("dropline_adapter_signature_failures_total{carrier=\"fedex\"} 3"),
        "{text}"
    );
    let scraped = http
        .get(format!("{}/metrics", adapter.base_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(scraped.contains("dropline_adapter_events_in_total 8"));
    adapter.shutdown().await;
}

/// Two webhooks carry the same scan at once. The second must not be
/// answered 200 as a duplicate while the first one's copy is not durable
/// yet: if the first is then refused (or its request dies), nothing durable
/// would back the second's 200. It waits, and hands the scan off itself
/// when the first copy was refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_copy_is_answered_only_once_the_scan_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let limits = real_limits();
    let sim = sim_config(1.0, &limits);
    let carrier = Carrier::Ups;
    let config = adapter_config(dir.path(), "http://127.0.0.1:9", &limits, &sim, &[carrier]);
    let sink = Arc::new(GatedSink::default());
    let adapter = run_adapter(config, sink.clone()).await.unwrap();
    let url = format!("{}/webhooks/{carrier}", adapter.base_url());
    let secret = sim.secrets.get(carrier).clone();
    let http = reqwest::Client::new();
    let post = |body: Vec<u8>| {
        let req = http
            .post(&url)
            .header("content-type", "application/json")
            .header(signature_header(carrier), sign(secret.as_bytes(), &body))
            .body(body);
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            (
                status,
                r.json::<serde_json::Value>().await.unwrap_or_default(),
            )
        }
    };
    let copy_waits = |n: u64| {
        let adapter = &adapter;
        async move {
            // No event to wait on inside the adapter: yield until the
            // counter moves (the select below fails the test if the
            // second request answers first instead).
            while adapter.metrics().carrier(carrier).copy_waits < n {
                tokio::task::yield_now().await;
            }
        }
    };

    for (round, refuse_first) in [(1u64, false), (2, true)] {
        let body = render_webhook(carrier, &journey(carrier, 7, round as i64));
        let held_before = sink.events.lock().unwrap().len();
        sink.hold();
        let first = tokio::spawn(post(body.clone()));
        sink.wait_entered(if refuse_first { 2 } else { 1 }).await;
        let mut second = tokio::spawn(post(body.clone()));
        tokio::select! {
            r = &mut second => panic!(
                "round {round}: the copy was answered {:?} while the first request's scan was not durable",
                r.unwrap()
            ),
            () = copy_waits(round) => {}
        }
        sink.release(refuse_first);
        let (first, second) = (first.await.unwrap(), second.await.unwrap());
        let events = sink.events.lock().unwrap().clone();
        assert_eq!(
            events.len(),
            held_before + 1,
            "round {round}: the scan once"
        );
        if refuse_first {
            assert_eq!(first.0, 503, "round {round}: {first:?}");
            assert_eq!(second.0, 200);
            assert_eq!(
                (
                    second.1["accepted"].as_u64(),
                    second.1["duplicates"].as_u64()
                ),
                (Some(1), Some(0)),
                "round {round}: the copy handed the scan off itself: {second:?}"
            );
        } else {
            assert_eq!(first.0, 200);
            assert_eq!(first.1["accepted"], 1);
            assert_eq!(second.0, 200);
            assert_eq!(
                (
                    second.1["accepted"].as_u64(),
                    second.1["duplicates"].as_u64()
                ),
                (Some(0), Some(1)),
                "round {round}: {second:?}"
            );
        }
    }
    let m = adapter.metrics();
    let c = m.carrier(carrier);
    assert_eq!((c.copy_waits, c.duplicates, c.refused_full), (2, 1, 1));
    assert!(
        adapter
            .render_prometheus()
            .contains("dropline_adapter_copy_waits_total{carrier=\"ups\"} 2")
    );
    adapter.shutdown().await;
}

#[test]
fn the_example_configuration_parses() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/adapter.example.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let config = AdapterConfig::from_toml(&text).unwrap();
    assert!(config.node.is_some());
    for carrier in Carrier::ALL {
        let c = config.carriers.get(carrier).unwrap();
        assert!(!c.limits.is_empty(), "{carrier}");
    }
    assert_eq!(config.carriers.dhl.as_ref().unwrap().limits.len(), 2);
    assert_eq!(
        config.orders,
        dropline_adapters::carrier::OrdersConfig::default(),
        "the example shows the orders feed's defaults"
    );
    // Unknown keys are refused, with the place.
    let err = AdapterConfig::from_toml(&format!("{text}\nsurprise = 1\n")).unwrap_err();
    assert!(err.to_string().contains("surprise"), "{err}");
}
