//! `dropline marketplace-key` makes a key and the node's config entry;
//! `dropline serve` with that entry creates shipments only with the key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Kills the node when the test ends, whatever happens.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn order(marketplace: &str) -> serde_json::Value {
    serde_json::json!({
        "tracking_number": "1Z999AA10123456784",
        "carrier": "ups",
        "order_id": "ORDER-1",
        "marketplace": marketplace,
        "seller": "seller-1",
        "buyer_id": "buyer-1",
        "skus": ["SKU-1"],
        "promised_window": {"from": "2026-09-20T00:00:00Z", "to": "2026-09-25T00:00:00Z"},
        "buyer_locale": "en-US",
        "buyer_time_zone": "UTC",
        "destination_postal_code": "10001",
        "contacts": [{"channel": "email", "address": "b1@example.com", "consent": true}],
    })
}

#[test]
fn a_made_key_creates_shipments_of_its_marketplace_only() {
    let out = Command::new(env!("CARGO_BIN_EXE_dropline"))
        .args(["marketplace-key", "--marketplace", "dropshop"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let key = text
        .lines()
        .find_map(|l| {
            l.trim_start_matches(['#', ' '])
                .strip_prefix("Authorization: Bearer ")
        })
        .unwrap()
        .to_string();
    let entry: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(
        !entry.contains(&key),
        "the config entry holds the key itself"
    );

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let quic = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let http = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\npartitions = 2\nworkers = 1\npin_cores = false\n\
             [quic]\nlisten = \"{quic}\"\n[http]\nlisten = \"{http}\"\n\n{entry}"
        ),
    )
    .unwrap();
    let mut node = Child(
        Command::new(env!("CARGO_BIN_EXE_dropline"))
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for line in BufReader::new(node.0.stdout.take().unwrap()).lines() {
        if line.unwrap() == "ready" {
            break;
        }
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let url = format!("http://{http}/v1/shipments");
        let status = |r: reqwest::Response| r.status().as_u16();
        let none = client
            .post(&url)
            .json(&order("dropshop"))
            .send()
            .await
            .unwrap();
        assert_eq!(status(none), 401);
        let wrong = client
            .post(&url)
            .bearer_auth("not-the-key")
            .json(&order("dropshop"))
            .send()
            .await
            .unwrap();
        assert_eq!(status(wrong), 401);
        let other = client
            .post(&url)
            .bearer_auth(&key)
            .json(&order("cardvault"))
            .send()
            .await
            .unwrap();
        assert_eq!(status(other), 403);
        let ok = client
            .post(&url)
            .bearer_auth(&key)
            .json(&order("dropshop"))
            .send()
            .await
            .unwrap();
        assert_eq!(status(ok), 201);
    });
}
