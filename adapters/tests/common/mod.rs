//! Shared helpers of the ingest integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;

use dropline_adapters::client::{IngestClientConfig, ServerTrust};
use dropline_adapters::ingest::{
    AdapterCredential, IngestError, IngestServerConfig, IngestSink, ServerHandle, serve_shared,
};
use dropline_operators::model::{Carrier, CarrierEvent, EventSource, Location, Status, SubStatus};

pub const TOKEN_A: &[u8] = b"token-of-adapter-a";
pub const TOKEN_B: &[u8] = b"token-of-adapter-b";

pub fn event(i: u64) -> CarrierEvent {
    CarrierEvent {
        tracking_number: format!("1Z{i:016}"),
        carrier: Carrier::Ups,
        status: Status::InTransit,
        sub_status: SubStatus::None,
        raw_code: "I".into(),
        raw_text: "Departed from facility".into(),
        occurred_at_ms: 1_700_000_000_000 + i as i64,
        local_time: "2023-11-14T17:13:20".into(),
        utc_offset_minutes: Some(-300),
        location: Location {
            city: Some("Louisville".into()),
            region: Some("KY".into()),
            postal_code: Some("40201".into()),
            country: Some("US".into()),
        },
        source: EventSource::Synthetic,
        received_at_ms: 1_700_000_000_500,
    }
}

pub fn server_config(dir: &std::path::Path, listen: SocketAddr) -> IngestServerConfig {
    let mut config = IngestServerConfig::new(listen, dir);
    config.adapters = vec![
        AdapterCredential::from_token("adapter-a", TOKEN_A),
        AdapterCredential::from_token("adapter-b", TOKEN_B),
    ];
    config
}

/// Starts a server. When restarting on a fixed port, the previous
/// endpoint's socket is released by its driver task shortly after the
/// handle is gone; binding is retried, yielding to that task, until then.
pub async fn start<S: IngestSink>(
    dir: &std::path::Path,
    listen: SocketAddr,
    sink: Arc<S>,
) -> ServerHandle {
    let mut attempts = 0u32;
    loop {
        match serve_shared(server_config(dir, listen), sink.clone()).await {
            Ok(handle) => return handle,
            Err(IngestError::Bind { source, .. })
                if source.kind() == std::io::ErrorKind::AddrInUse && attempts < 100_000 =>
            {
                attempts += 1;
                tokio::task::yield_now().await;
            }
            Err(err) => panic!("{err}"),
        }
    }
}

pub fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

pub fn client_config(server: &ServerHandle, adapter: &str, token: &[u8]) -> IngestClientConfig {
    let mut c = IngestClientConfig::new(
        server.local_addr(),
        ServerTrust::PinnedSha256(server.fingerprint_sha256().to_string()),
        adapter,
        token,
    );
    c.batch_records_max = 64;
    c.linger_us = 500;
    c.backoff_initial_ms = 5;
    c.backoff_max_ms = 100;
    c
}

/// Tracking-number index of every record, asserting each appears once.
pub fn assert_exactly_once(keys: impl IntoIterator<Item = Vec<u8>>, expected: u64) {
    let mut seen = vec![0u32; expected as usize];
    for key in keys {
        let text = std::str::from_utf8(&key).unwrap();
        let i: usize = text[2..].parse().unwrap();
        assert!(i < seen.len(), "unexpected key {text}");
        seen[i] += 1;
    }
    let missing: Vec<usize> = seen
        .iter()
        .enumerate()
        .filter(|(_, n)| **n == 0)
        .map(|(i, _)| i)
        .collect();
    let doubled: Vec<usize> = seen
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 1)
        .map(|(i, _)| i)
        .collect();
    assert!(
        missing.is_empty(),
        "{} events missing, first {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(
        doubled.is_empty(),
        "{} events duplicated, first {:?}",
        doubled.len(),
        &doubled[..doubled.len().min(5)]
    );
}
