//! The adapter process (`dropline adapter`, the real binary) killed with
//! SIGKILL while carrier webhooks stream in, and started again: every scan
//! the carrier simulator invented reaches the node's log exactly once (the
//! spool and the adapter's state log make the restart neither lose nor
//! repeat anything, and the carriers' webhook retries cover the gap). The
//! restarted adapter says in its log what it restored; the test prints how
//! long the restart and the catch-up took.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chaos_support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use chaos_support::*;
use dropline_adapters::carrier::NodeConfig;
use dropline_adapters::ingest::{
    AdapterCredential, CARRIER_EVENTS_TOPIC, IngestServerConfig, LogSink, serve_shared,
};
use dropline_loadgen::carrier_sim::{PerCarrier, RateWindow, WebhookTarget, run_carrier_sim};
use dropline_log::{Log, LogConfig};
use dropline_operators::model::{Carrier, CarrierEvent};

const PARTITIONS: u32 = 4;
const SPEEDUP: f64 = 2_000.0;
const ADAPTER: &str = "chaos-adapter";
const TOKEN: &str = "token-of-the-chaos-adapter";
const PUSHING: [Carrier; 2] = [Carrier::Ups, Carrier::Fedex];

/// Every carrier event in the log.
fn log_events(log: &Log) -> Vec<CarrierEvent> {
    let mut out = Vec::new();
    for p in 0..PARTITIONS {
        let part = log.partition(CARRIER_EVENTS_TOPIC, p).unwrap();
        let mut from = part.start_offset();
        while from < part.durable_offset() {
            for v in part.read(from, 1 << 20).unwrap() {
                out.extend(v.records().map(|r| CarrierEvent::decode(r.value).unwrap()));
                from = v.last_offset() + 1;
            }
        }
    }
    out
}

/// Starts `dropline adapter --config path` and waits for `ready`; returns
/// it with its webhook address.
fn start_adapter(config: &Path) -> (Proc, std::net::SocketAddr) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dropline"));
    cmd.args(["adapter", "--config"])
        .arg(config)
        .env("DROPLINE_LOG", "warn,dropline_adapters=info");
    let proc = Proc::spawn(cmd);
    let mut addr = None;
    proc.wait_line("the adapter's ready line", |line| {
        if let Some(url) = line.strip_prefix("webhooks") {
            let url = url.trim().trim_start_matches("http://");
            addr = url.split('/').next().map(|a| a.parse().unwrap());
        }
        (line == "ready").then_some(())
    });
    (proc, addr.expect("the adapter printed its webhook address"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adapter_killed_mid_stream_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // The node: a log and the QUIC ingest endpoint.
    let log = Arc::new(Log::open(LogConfig::new(dir.path().join("log"))).unwrap());
    let sink = LogSink::open(log.clone(), PARTITIONS).unwrap();
    let mut server_config = IngestServerConfig::new("127.0.0.1:0".parse().unwrap(), dir.path());
    server_config.adapters = vec![AdapterCredential::from_token(ADAPTER, TOKEN.as_bytes())];
    let server = serve_shared(server_config, Arc::new(sink)).await.unwrap();

    // The carriers: webhooks from UPS and FedEx.
    let limits = PerCarrier::all(vec![RateWindow {
        requests: 600,
        window_ms: 3_600_000,
    }]);
    let sim_config = sim_config(SPEEDUP, &limits);
    let mut sim = run_carrier_sim(sim_config.clone()).await.unwrap();

    // The adapter's configuration, as an operator writes it.
    let mut config = adapter_config(
        &dir.path().join("adapter-state"),
        &sim.base_url(),
        &sim_config,
        &PUSHING,
        &PUSHING,
    );
    config.node = Some(NodeConfig {
        addr: server.local_addr(),
        server_name: "dropline-node".into(),
        fingerprint_sha256: server.fingerprint_sha256().to_string(),
        adapter: ADAPTER.into(),
        token: TOKEN.into(),
        spool_dir: dir.path().join("adapter-spool"),
        partitions: Some(PARTITIONS),
    });
    let config_path = dir.path().join("adapter.toml");
    std::fs::write(&config_path, toml::to_string(&config).unwrap()).unwrap();
    let (mut adapter, addr) = start_adapter(&config_path);
    // A restart keeps the port, so the carriers' webhook URL stays valid.
    config.listen = addr;
    std::fs::write(&config_path, toml::to_string(&config).unwrap()).unwrap();
    let mut target = WebhookTarget::new(format!("http://{addr}"));
    target.carriers = PUSHING.to_vec();
    target.tick_ms = 5;
    target.retry_initial_ms = 20;
    target.retry_max_ms = 200;
    sim.set_webhook_target(target);
    for carrier in PUSHING {
        sim.register_generated(carrier, 8).unwrap();
    }
    let truth = sim.ground_truth(false);

    // A third of the way, the adapter dies without warning.
    let third = truth.len() / 3;
    eventually("a third of the scans in the log", || {
        covered(&log_events(&log), &truth) >= third
    })
    .await;
    adapter.sigkill();
    let first_stderr = adapter.stderr();
    let restarted = Instant::now();
    let (adapter, _) = start_adapter(&config_path);
    report(
        "adapter SIGKILL",
        "restarted adapter ready",
        restarted.elapsed(),
    );
    // Everything that had happened at the carriers by the restart.
    let happened = sim.ground_truth(true);
    eventually("the scans that happened before the restart", || {
        covered(&log_events(&log), &happened) == happened.len()
    })
    .await;
    report(
        "adapter SIGKILL",
        "caught up with the scans that happened before the restart",
        restarted.elapsed(),
    );
    eventually("every scan in the log", || {
        covered(&log_events(&log), &truth) == truth.len()
    })
    .await;
    report(
        "adapter SIGKILL",
        "every scan in the node's log after the restart",
        restarted.elapsed(),
    );
    assert_exactly_once(&log_events(&log), &truth);
    let stderr = adapter.stderr();
    assert_logged(
        &stderr,
        &[
            "adapter restarted: state and spool restored",
            "state_records=",
        ],
    );
    assert!(
        line_with(&first_stderr, &["adapter restarted"]).is_none(),
        "a first start is no restart:\n{first_stderr}"
    );
    let stats = sim.stats();
    assert!(
        stats.carriers.ups.webhooks_delivered > 0 && stats.carriers.fedex.webhooks_delivered > 0
    );
    drop(adapter);
    server.shutdown().await;
    sim.shutdown().await;
}
