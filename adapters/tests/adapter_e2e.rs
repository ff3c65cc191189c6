//! End to end: carrier simulator → adapter (a child process, configured by
//! an adapter.toml) → QUIC → node (a real log in a temp dir). Every scan
//! the simulator invents reaches the log exactly once, through duplicate
//! and reordered webhooks, an adapter killed with SIGKILL and restarted, a
//! node restart (log reopened) and a forced reconnect.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod adapter_support;
mod common;

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use adapter_support::*;
use common::{TOKEN_A, start};
use dropline_adapters::carrier::{
    AdapterConfig, NodeConfig, ScaledClock, connect_node, run_adapter_with_clock,
};
use dropline_adapters::ingest::{
    CARRIER_EVENTS_TOPIC, DeadLetter, IngestAck, IngestSink, LogSink, ProducerSeq, SinkError,
};
use dropline_adapters::wire::RecordRef;
use dropline_loadgen::carrier_sim::{
    Faults, GroundTruthScan, PerCarrier, RateWindow, WebhookTarget, run_carrier_sim,
};
use dropline_log::{Log, LogConfig};
use dropline_operators::model::{Carrier, CarrierEvent};
use std::io::{BufRead, BufReader};
use tokio::sync::Notify;

const CHILD_ENV: &str = "DROPLINE_E2E_ADAPTER_CONFIG";
const PARTITIONS: u32 = 4;
const SPEEDUP: f64 = 2_000.0;

/// The log sink, telling the test whenever a batch became durable.
struct NotifyingSink {
    inner: LogSink,
    durable: Arc<Notify>,
}

impl IngestSink for NotifyingSink {
    type Durable = Pin<Box<dyn Future<Output = Result<IngestAck, SinkError>> + Send>>;

    fn partitions(&self) -> u32 {
        self.inner.partitions()
    }

    fn append(
        &self,
        partition: u32,
        producer: ProducerSeq,
        records: &[RecordRef<'_>],
    ) -> Result<Self::Durable, SinkError> {
        let durable = self.inner.append(partition, producer, records)?;
        let notify = self.durable.clone();
        Ok(Box::pin(async move {
            let r = durable.await;
            notify.notify_waiters();
            r
        }))
    }

    fn dead_letter(&self, letter: &DeadLetter<'_>) -> Result<(), SinkError> {
        self.inner.dead_letter(letter)
    }
}

fn open_node_sink(dir: &Path, durable: &Arc<Notify>) -> Arc<NotifyingSink> {
    let log = Arc::new(Log::open(LogConfig::new(dir.join("log"))).unwrap());
    Arc::new(NotifyingSink {
        inner: LogSink::open(log, PARTITIONS).unwrap(),
        durable: durable.clone(),
    })
}

/// Every event in the node's `carrier-events`.
fn log_events(sink: &NotifyingSink) -> Vec<CarrierEvent> {
    let log = sink.inner.log();
    let mut out = Vec::new();
    for p in 0..PARTITIONS {
        let part = log.partition(CARRIER_EVENTS_TOPIC, p).unwrap();
        let mut from = part.start_offset();
        loop {
            let views = part.read(from, 1 << 20).unwrap();
            let Some(last) = views.last() else { break };
            from = last.batch().last_offset() + 1;
            for v in &views {
                out.extend(
                    v.batch()
                        .records()
                        .map(|r| CarrierEvent::decode(r.value).unwrap()),
                );
            }
        }
    }
    out
}

/// Waits until at least `share` of the ground truth is in the log.
async fn wait_for_share(
    sink: &NotifyingSink,
    durable: &Notify,
    truth: &[GroundTruthScan],
    share: f64,
) {
    loop {
        let notified = durable.notified();
        let events = log_events(sink);
        let c = counts(&events);
        let have = truth.iter().filter(|t| c.contains_key(*t)).count();
        if have as f64 >= share * truth.len() as f64 {
            return;
        }
        notified.await;
    }
}

struct Child {
    process: std::process::Child,
    addr: String,
}

impl Child {
    /// SIGKILL, then reap.
    fn kill(&mut self) {
        self.process.kill().unwrap();
        self.process.wait().unwrap();
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Starts the adapter as a child process (this test binary, running the
/// ignored `adapter_child` entry) and waits for its readiness line.
async fn spawn_adapter(config_path: &Path, sim_now_ms: i64) -> Child {
    let exe = std::env::current_exe().unwrap();
    let mut process = std::process::Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "adapter_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, config_path)
        .env("DROPLINE_E2E_START_MS", sim_now_ms.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = process.stdout.take().unwrap();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    // Reads the readiness line, then keeps draining so the child never
    // blocks on a full pipe.
    std::thread::spawn(move || {
        let mut ready_tx = Some(ready_tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // The harness may print "test adapter_child ... " on the same line.
            if let Some((_, addr)) = line.split_once("ADAPTER READY ")
                && let Some(tx) = ready_tx.take()
            {
                let _ = tx.send(addr.to_string());
            }
        }
    });
    let addr = ready_rx
        .await
        .expect("the adapter child exited before it was ready");
    Child { process, addr }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scan_reaches_the_log_exactly_once_through_crashes() {
    let node_dir = tempfile::tempdir().unwrap();
    let adapter_dir = tempfile::tempdir().unwrap();
    let durable = Arc::new(Notify::new());

    // The node.
    let sink = open_node_sink(node_dir.path(), &durable);
    let server = start(node_dir.path(), common::loopback(), sink.clone()).await;
    let node_addr = server.local_addr();

    // The carriers: webhooks from UPS and FedEx (duplicated and
    // reordered), polling only for USPS and DHL.
    let limits = PerCarrier::all(vec![RateWindow {
        requests: 600,
        window_ms: 3_600_000,
    }]);
    let mut sim_config = sim_config(SPEEDUP, &limits);
    sim_config.faults = Faults {
        duplicate_webhooks: true,
        out_of_order: true,
        ..Faults::default()
    };
    let mut sim = run_carrier_sim(sim_config.clone()).await.unwrap();
    let mut numbers = Vec::new();
    for carrier in Carrier::ALL {
        for n in sim.register_generated(carrier, 5).unwrap() {
            numbers.push((carrier, n));
        }
    }
    let truth = sim.ground_truth(false);

    // The adapter's configuration file, as an operator would write it.
    let mut config = adapter_config(
        &adapter_dir.path().join("state"),
        &sim.base_url(),
        &limits,
        &sim_config,
        &[Carrier::Ups, Carrier::Fedex],
    );
    config.node = Some(NodeConfig {
        addr: node_addr,
        server_name: "dropline-node".into(),
        fingerprint_sha256: server.fingerprint_sha256().to_string(),
        adapter: "adapter-a".into(),
        token: String::from_utf8(TOKEN_A.to_vec()).unwrap(),
        spool_dir: adapter_dir.path().join("spool"),
        partitions: Some(PARTITIONS),
    });
    let config_path = adapter_dir.path().join("adapter.toml");
    let numbers_path = adapter_dir.path().join("numbers.json");
    std::fs::write(&numbers_path, serde_json::to_vec(&numbers).unwrap()).unwrap();
    std::fs::write(&config_path, toml::to_string(&config).unwrap()).unwrap();

    let mut child = spawn_adapter(&config_path, sim.clock().now_ms()).await;
    // Restarts keep the port, so the carriers' webhook URL stays valid.
    config.listen = child.addr.parse().unwrap();
    std::fs::write(&config_path, toml::to_string(&config).unwrap()).unwrap();
    let mut target = WebhookTarget::new(format!("http://{}", child.addr));
    target.carriers = vec![Carrier::Ups, Carrier::Fedex];
    target.tick_ms = 5;
    sim.set_webhook_target(target);

    // SIGKILL the adapter a quarter of the way, and start it again.
    wait_for_share(&sink, &durable, &truth, 0.25).await;
    child.kill();
    let mut child = spawn_adapter(&config_path, sim.clock().now_ms()).await;

    // Restart the node (the log is closed and reopened) half way.
    wait_for_share(&sink, &durable, &truth, 0.5).await;
    server.shutdown().await;
    drop(sink);
    let sink = open_node_sink(node_dir.path(), &durable);
    let server = start(node_dir.path(), node_addr, sink.clone()).await;

    // Force a reconnect three quarters of the way (server restart, same log).
    wait_for_share(&sink, &durable, &truth, 0.75).await;
    server.shutdown().await;
    let server = start(node_dir.path(), node_addr, sink.clone()).await;

    wait_for_share(&sink, &durable, &truth, 1.0).await;
    let events = log_events(&sink);
    let c = counts(&events);
    let doubled: Vec<(&GroundTruthScan, &usize)> = c.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        doubled.is_empty(),
        "{} scans more than once: {:?}",
        doubled.len(),
        &doubled[..doubled.len().min(3)]
    );
    let truth_set: HashMap<&GroundTruthScan, ()> = truth.iter().map(|t| (t, ())).collect();
    let extra: Vec<&GroundTruthScan> = c.keys().filter(|k| !truth_set.contains_key(k)).collect();
    assert!(
        extra.is_empty(),
        "events that are no scan: {:?}",
        &extra[..extra.len().min(3)]
    );
    assert_eq!(events.len(), truth.len());
    let stats = sim.stats();
    assert!(
        stats.carriers.ups.webhooks_duplicated > 0 && stats.carriers.fedex.webhooks_delivered > 0
    );
    assert!(stats.carriers.usps.served > 0 && stats.carriers.dhl.served > 0);

    child.kill();
    server.shutdown().await;
    sim.shutdown().await;
}

/// The adapter process of the end-to-end test (run by it, not directly).
#[test]
#[ignore = "child process of every_scan_reaches_the_log_exactly_once_through_crashes"]
fn adapter_child() {
    let config_path = std::env::var(CHILD_ENV).expect("run by the end-to-end test");
    let start_ms: i64 = std::env::var("DROPLINE_E2E_START_MS")
        .unwrap()
        .parse()
        .unwrap();
    let config = AdapterConfig::from_toml(&std::fs::read_to_string(&config_path).unwrap()).unwrap();
    let numbers_path = Path::new(&config_path).with_file_name("numbers.json");
    let numbers: Vec<(Carrier, String)> =
        serde_json::from_slice(&std::fs::read(numbers_path).unwrap()).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let sink = Arc::new(connect_node(&config).await.unwrap());
        let clock = Arc::new(ScaledClock::new(start_ms, SPEEDUP));
        let adapter = run_adapter_with_clock(config, sink, clock).await.unwrap();
        // The node's orders would register these; registering again after
        // a restart changes nothing.
        for (carrier, n) in &numbers {
            adapter.register(n, *carrier, true).unwrap();
        }
        println!("ADAPTER READY {}", adapter.addr());
        std::future::pending::<()>().await;
    });
}
