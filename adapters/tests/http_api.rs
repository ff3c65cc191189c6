//! The tracking API against a running server on a free port: creation
//! idempotency, ETag and 304, SSE delivery, no personal data in public
//! responses or at rest, rate limiting.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http_support;

use dropline_adapters::http::{
    AdminToken, ContactSealer, DEAD_LETTER_SEAL_CONTEXT, RateLimit, ShipmentKey,
};
use dropline_operators::model::{Channel, ShipmentOrder, Status, SubStatus, partition_for};
use http_support::*;

#[tokio::test]
async fn creation_is_idempotent_and_validated() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let body = order_json("1Z999AA10123456784", "ORD-1");

    // Eight concurrent identical creations: one append, one 201.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (c, url, b) = (
            node.client.clone(),
            format!("{}/v1/shipments", node.base),
            body.clone(),
        );
        tasks.push(tokio::spawn(async move {
            c.post(url).json(&b).send().await.unwrap()
        }));
    }
    let mut created = 0;
    let mut offsets = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        let status = r.status().as_u16();
        let v: serde_json::Value = r.json().await.unwrap();
        assert!(status == 201 || status == 200, "{status} {v}");
        if status == 201 {
            created += 1;
            assert_eq!(v["created"], true);
        } else {
            assert_eq!(v["created"], false);
        }
        offsets.push(v["offset"].as_u64().unwrap());
        assert_eq!(v["tracking_url"], "/track/ups/1Z999AA10123456784");
        assert_eq!(v["order_token"].as_str().unwrap().len(), 32);
    }
    assert_eq!(created, 1);
    assert!(offsets.iter().all(|o| *o == offsets[0]));
    let p = partition_for(b"1Z999AA10123456784", PARTITIONS);
    let recs = node
        .log
        .partition("orders", p)
        .unwrap()
        .lookup_key(b"1Z999AA10123456784")
        .unwrap();
    assert_eq!(recs.len(), 1);

    // The stored order has its addresses sealed; the sealer opens them.
    let stored = ShipmentOrder::decode(&recs[0].value).unwrap();
    assert!(
        stored
            .contacts
            .iter()
            .all(|c| ContactSealer::is_sealed(&c.address))
    );
    assert_eq!(
        node.sealer
            .open(Channel::Email, &stored.contacts[0].address)
            .unwrap(),
        EMAIL
    );
    assert_eq!(
        node.sealer
            .open(Channel::Sms, &stored.contacts[1].address)
            .unwrap(),
        PHONE
    );

    // A repeat after the fact: 200 with the same offset.
    let r = create(&node, &body).await;
    assert_eq!(r.status().as_u16(), 200);

    // Same keys, different data: 409.
    let mut changed = body.clone();
    changed["skus"] = serde_json::json!(["OTHER"]);
    let r = create(&node, &changed).await;
    assert_eq!(r.status().as_u16(), 409);
    assert_eq!(r.headers()["content-type"], "application/problem+json");

    // Invalid field: typed 400, kept sealed in dead-letters.
    let mut bad = order_json("1Z999AA10123456785", "ORD-2");
    bad["buyer_time_zone"] = serde_json::json!("Mars/Olympus");
    let r = create(&node, &bad).await;
    assert_eq!(r.status().as_u16(), 400);
    let p: serde_json::Value = r.json().await.unwrap();
    assert_eq!(p["type"], "/problems/invalid-field");
    assert_eq!(p["field"], "buyer_time_zone");
    assert_eq!(p["status"], 400);
    let r = node
        .client
        .post(format!("{}/v1/shipments", node.base))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let p: serde_json::Value = r.json().await.unwrap();
    assert_eq!(p["type"], "/problems/malformed-body");

    let letters = http_dead_letters(&node.log);
    // The conflict, the invalid field and the malformed body.
    assert_eq!(letters.len(), 3, "{letters:?}");
    let invalid = letters.iter().find(|l| l.code == 2).unwrap();
    let opened = node
        .sealer
        .open_bytes(DEAD_LETTER_SEAL_CONTEXT, &invalid.payload)
        .unwrap();
    let back: serde_json::Value = serde_json::from_slice(&opened).unwrap();
    assert_eq!(back, bad);

    // Nothing in the log's files reveals the email or phone number.
    let bytes = all_file_bytes(&dir.path().join("log"));
    assert!(!contains(&bytes, EMAIL.as_bytes()), "email found at rest");
    assert!(!contains(&bytes, PHONE.as_bytes()), "phone found at rest");
    assert!(
        contains(&bytes, b"1Z999AA10123456784"),
        "sanity: the grep sees the log"
    );

    let metrics = node
        .client
        .get(format!("{}/metrics", node.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("dropline_http_creations_total{outcome=\"created\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("dropline_http_dead_letters_total 3"),
        "{metrics}"
    );
}

#[tokio::test]
async fn shipment_creation_needs_the_marketplace_key() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(
        dir.path(),
        |c| {
            c.shipment_keys = Some(vec![
                ShipmentKey {
                    marketplace: "dropshop".into(),
                    token: AdminToken::from_plain("key-of-dropshop"),
                },
                ShipmentKey {
                    marketplace: "cardvault".into(),
                    token: AdminToken::from_plain("key-of-cardvault"),
                },
            ])
        },
        |_| {},
    )
    .await;
    let url = format!("{}/v1/shipments", node.base);
    let body = order_json("1Z999AA10123456784", "ORDER-1");
    let post = |key: Option<&'static str>| {
        let mut r = node.client.post(&url).json(&body);
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        r.send()
    };

    // No key, an unknown key: 401 with a Bearer challenge.
    for key in [None, Some("key-of-nobody")] {
        let r = post(key).await.unwrap();
        assert_eq!(r.status().as_u16(), 401, "{key:?}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let p: serde_json::Value = r.json().await.unwrap();
        assert_eq!(p["type"], "/problems/unauthorized");
    }
    // Another marketplace's key: 403, and nothing created.
    let r = post(Some("key-of-cardvault")).await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let p: serde_json::Value = r.json().await.unwrap();
    assert_eq!(p["type"], "/problems/not-permitted");
    assert!(p["detail"].as_str().unwrap().contains("cardvault"), "{p}");
    let orders = node.log.partition("orders", 0).unwrap().next_offset()
        + (1..PARTITIONS)
            .map(|i| node.log.partition("orders", i).unwrap().next_offset())
            .sum::<u64>();
    assert_eq!(orders, 0, "a refused creation reached the orders topic");
    // The marketplace's own key: created.
    let r = post(Some("key-of-dropshop")).await.unwrap();
    assert_eq!(r.status().as_u16(), 201);

    // Refusals are counted and kept, sealed, in dead-letters.
    let metrics = node
        .client
        .get(format!("{}/metrics", node.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "dropline_http_creations_total{outcome=\"unauthorized\"} 2",
        "dropline_http_creations_total{outcome=\"not_permitted\"} 1",
        "dropline_http_creations_total{outcome=\"created\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in {metrics}");
    }
    let codes: Vec<u16> = http_dead_letters(&node.log)
        .iter()
        .map(|l| l.code)
        .collect();
    assert_eq!(codes, vec![4, 4, 5]);
    // The node without keys still takes creations as before (the other
    // tests), and the contacts of refused bodies are not readable at rest.
    let bytes = all_file_bytes(&dir.path().join("log"));
    assert!(!contains(&bytes, EMAIL.as_bytes()), "email found at rest");
}

#[tokio::test]
async fn etag_and_304_and_access_levels() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let tn = "1Z999AA10123456790";
    let created: serde_json::Value = create(&node, &order_json(tn, "ORD-9"))
        .await
        .json()
        .await
        .unwrap();
    let token = created["order_token"].as_str().unwrap().to_string();
    append_view(
        &node.log,
        &view(
            tn,
            Status::InTransit,
            SubStatus::ArrivalScan,
            3,
            1_732_100_000_000,
            "Memphis",
        ),
    );
    wait_status(&node, tn, Status::InTransit).await;
    let url = format!("{}/v1/shipments/ups/{tn}", node.base);
    let r = node.client.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert!(
        r.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age=5")
    );
    let first: (String, serde_json::Value) = (etag, r.json().await.unwrap());
    let (etag, public) = first;
    assert_eq!(public["access"], "public");
    assert!(public.get("timeline").is_none());
    let text = public.to_string();
    for secret in [EMAIL, PHONE, "buyer-7731", "ORD-9", "Memphis", POSTAL] {
        assert!(
            !text.contains(secret),
            "public response reveals {secret}: {text}"
        );
    }

    let r = node
        .client
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 304);
    assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
    assert!(r.bytes().await.unwrap().is_empty());

    // The full view needs the postal code or the token.
    for q in [format!("postal_code={POSTAL}"), format!("token={token}")] {
        let r = node.client.get(format!("{url}?{q}")).send().await.unwrap();
        let full_tag = r.headers()["etag"].to_str().unwrap().to_string();
        assert_ne!(full_tag, etag);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["access"], "full");
        assert_eq!(v["timeline"][0]["location"]["city"], "Memphis");
        let text = v.to_string();
        assert!(!text.contains(EMAIL) && !text.contains(PHONE));
    }
    let r = node
        .client
        .get(format!("{url}?postal_code=99999"))
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["access"], "public");
    let r = node
        .client
        .get(format!("{url}?token=00112233445566778899aabbccddeeff"))
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["access"], "public");

    // A change gives a new ETag: the old one no longer matches.
    append_view(
        &node.log,
        &view(
            tn,
            Status::OutForDelivery,
            SubStatus::OnVehicle,
            4,
            1_732_200_000_000,
            "Atlanta",
        ),
    );
    wait_status(&node, tn, Status::OutForDelivery).await;
    let r = node
        .client
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_ne!(r.headers()["etag"].to_str().unwrap(), etag);

    // Unknown parcel or wrong carrier: 404 problem.
    let r = node
        .client
        .get(format!("{}/v1/shipments/ups/1Z000000000000000", node.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = node
        .client
        .get(format!("{}/v1/shipments/fedex/{tn}", node.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
}

/// Reads SSE `shipment` events from a streaming response.
struct SseReader {
    resp: reqwest::Response,
    buf: String,
}

impl SseReader {
    async fn next_event(&mut self) -> serde_json::Value {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                if block.lines().any(|l| l == "event: shipment") {
                    let data: String = block
                        .lines()
                        .filter_map(|l| {
                            l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:"))
                        })
                        .collect();
                    return serde_json::from_str(&data).unwrap();
                }
                continue;
            }
            let chunk = self.resp.chunk().await.unwrap().expect("the stream ended");
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

#[tokio::test]
async fn sse_delivers_view_changes() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let tn = "9400100000000000000001";
    create(&node, &order_json(tn, "ORD-SSE")).await;
    append_view(
        &node.log,
        &view(
            tn,
            Status::PickedUp,
            SubStatus::Accepted,
            1,
            1_732_000_000_000,
            "Louisville",
        ),
    );
    // The shipment must be known before a stream can open.
    wait_status(&node, tn, Status::PickedUp).await;
    let resp = node
        .client
        .get(format!(
            "{}/v1/shipments/ups/{tn}/events?postal_code={POSTAL}",
            node.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut sse = SseReader {
        resp,
        buf: String::new(),
    };
    let first = sse.next_event().await;
    assert_eq!(first["status"], "picked_up");
    assert_eq!(first["access"], "full");

    append_view(
        &node.log,
        &view(
            tn,
            Status::OutForDelivery,
            SubStatus::OnVehicle,
            2,
            1_732_100_000_000,
            "Atlanta",
        ),
    );
    let next = sse.next_event().await;
    assert_eq!(next["status"], "out_for_delivery");
    assert_eq!(next["timeline"].as_array().unwrap().len(), 2);
    assert_eq!(next["timeline"][1]["location"]["city"], "Atlanta");

    let metrics = node
        .client
        .get(format!("{}/metrics", node.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("dropline_http_sse_streams 1"), "{metrics}");
}

#[tokio::test]
async fn rate_limit_answers_429() {
    let dir = tempfile::tempdir().unwrap();
    let node = start_with(
        dir.path(),
        |c| {
            c.rate_limit = Some(RateLimit {
                requests_per_s: 1,
                burst_requests: 3,
                clients_max: 100,
            });
        },
        |_| {},
    )
    .await;
    let url = format!("{}/v1/shipments/ups/1Z999AA10123456999", node.base);
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let r = node.client.get(&url).send().await.unwrap();
        statuses.push(r.status().as_u16());
        if r.status().as_u16() == 429 {
            assert!(r.headers().contains_key("retry-after"));
            let p: serde_json::Value = r.json().await.unwrap();
            assert_eq!(p["type"], "/problems/rate-limited");
        }
    }
    // Unknown parcel: 404 until the bucket is empty, then 429.
    assert_eq!(&statuses[..3], &[404, 404, 404]);
    assert!(statuses.contains(&429), "{statuses:?}");
    // Creation and health checks are not behind the tracking rate limit.
    let r = node
        .client
        .get(format!("{}/healthz", node.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let metrics = node
        .client
        .get(format!("{}/metrics", node.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !metrics.contains("dropline_http_rate_limited_total 0"),
        "{metrics}"
    );
}

/// A part of the node that cannot make progress makes `/readyz` answer
/// 503 with its reason, and ready again once it can.
#[tokio::test]
async fn readyz_reports_a_stuck_part_of_the_node_and_recovers() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use dropline_adapters::http::ReadinessSource;

    struct Blocked(AtomicBool);
    impl ReadinessSource for Blocked {
        fn not_ready(&self) -> Option<String> {
            self.0
                .load(Ordering::SeqCst)
                .then(|| "the engine's outputs wait for disk space".to_string())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let blocked = Arc::new(Blocked(AtomicBool::new(true)));
    let source = blocked.clone();
    let node = start_with(dir.path(), |_| {}, move |s| s.readiness = vec![source]).await;
    let readyz = || async {
        let r = node
            .client
            .get(format!("{}/readyz", node.base))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(
        readyz().await,
        (
            503,
            "not ready: the engine's outputs wait for disk space\n".to_string()
        )
    );
    blocked.0.store(false, Ordering::SeqCst);
    assert_eq!(readyz().await, (200, "ready\n".to_string()));
}
