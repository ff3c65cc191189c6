//! The provider simulator enforces a sender's limit with 429 and
//! `Retry-After`, keeps one message per idempotency key, and its audit
//! never observes the limit exceeded, whether clients are polite or not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dropline_loadgen::provider_sim::{ProviderSimConfig, run_provider_sim};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_at_a_long_code_is_refused_with_429_and_never_exceeds_the_limit() {
    let sim = run_provider_sim(ProviderSimConfig::local()).await.unwrap();
    let url = format!(
        "{}/2010-04-01/Accounts/ACdropline/Messages.json",
        sim.base_url()
    );
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            client
                .post(&url)
                .header("Idempotency-Key", format!("k{i}"))
                .form(&[
                    ("To", "+15551230000"),
                    ("From", "+15550000001"),
                    ("Body", "hi"),
                ])
                .send()
                .await
                .unwrap()
        }));
    }
    let mut created = 0;
    let mut limited = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status().as_u16() {
            201 => created += 1,
            429 => {
                limited += 1;
                let retry_after: u64 = r.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(retry_after >= 1);
            }
            s => panic!("unexpected status {s}"),
        }
    }
    // A long code: one message per second, a burst of one.
    assert_eq!((created, limited), (1, 19));

    // The same key again is recorded as a duplicate, not sent again.
    let accepted_key = sim.messages()[0].idempotency_key.clone().unwrap();
    let r = client
        .post(&url)
        .header("Idempotency-Key", &accepted_key)
        .form(&[
            ("To", "+15551230000"),
            ("From", "+15550000001"),
            ("Body", "hi"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["sid"], sim.messages()[0].sid.as_str());

    // A short code takes a hundred at once.
    let mut short = 0;
    for i in 0..150 {
        let r = client
            .post(&url)
            .header("Idempotency-Key", format!("s{i}"))
            .form(&[("To", "+15551230000"), ("From", "55501"), ("Body", "hi")])
            .send()
            .await
            .unwrap();
        if r.status().as_u16() == 201 {
            short += 1;
        }
    }
    assert!((100..=110).contains(&short), "{short}");

    let stats = sim.stats();
    assert_eq!(stats.accepted, 1 + short);
    assert_eq!(stats.duplicates, 1);
    assert_eq!(stats.violations, 0);
    assert_eq!(stats.per_sender["+15550000001"].rejected_429, 19);
    // The admin endpoint reports the same.
    let admin: serde_json::Value = client
        .get(format!("{}/admin/stats", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(admin["violations"], 0);
    assert_eq!(admin["duplicates"], 1);
    sim.shutdown().await;
}
