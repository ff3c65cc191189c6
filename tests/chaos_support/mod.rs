//! Shared pieces of the chaos tests: captured logs (of this process and of
//! child processes), waiting on a condition with a generous overall
//! deadline, child processes that are always reaped, and carrier
//! simulator and adapter settings that agree with each other.
//!
//! Why deadlines and not sleeps: a chaos test waits for the system to
//! notice a fault and to recover from it; it polls the evidence (a
//! counter, a log line, the log's contents) and fails with a clear message
//! if it never comes. The deadline only bounds a hung run; the recovery
//! times are measured and printed, never asserted.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use dropline_adapters::carrier::{AdapterConfig, CarrierConfig, RateLimit};
use dropline_loadgen::carrier_sim::{
    CarrierSimConfig, GroundTruthScan, JourneyShape, PerCarrier, RateWindow,
};
use dropline_operators::model::{Carrier, CarrierEvent};

/// The overall bound of any one wait in a chaos test. Generous: a loaded
/// 2-core CI machine must never hit it in a healthy run.
pub const WAIT_DEADLINE: Duration = Duration::from_secs(90);

/// How often a polled condition is checked.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

// ---------------------------------------------------------------------------
// Logs of this process.

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let sink = buffer.clone();
        let filter = tracing_subscriber::EnvFilter::new(
            "warn,dropline_adapters=info,dropline_log=info,dropline_engine=info",
        );
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(move || SharedWriter(sink.clone()))
            .try_init();
        buffer
    })
}

struct SharedWriter(Arc<Mutex<Vec<u8>>>);

impl Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Starts capturing this process's tracing output (idempotent).
pub fn capture_logs() {
    let _ = log_buffer();
}

/// Everything this process logged so far.
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&log_buffer().lock().unwrap()).into_owned()
}

/// The first line of `text` that contains every one of `parts`.
pub fn line_with<'a>(text: &'a str, parts: &[&str]) -> Option<&'a str> {
    text.lines().find(|l| parts.iter().all(|p| l.contains(p)))
}

/// Asserts that a line of `text` contains every one of `parts`, and
/// returns it.
pub fn assert_logged(text: &str, parts: &[&str]) -> String {
    match line_with(text, parts) {
        Some(l) => l.to_string(),
        None => panic!("no log line contains all of {parts:?}; the logs were:\n{text}"),
    }
}

/// Waits until a line this process logged contains every one of `parts`
/// (a log line may follow the effect a test waits on), and returns it.
pub async fn wait_logged(parts: &[&str]) -> String {
    let mut found = None;
    let deadline = Instant::now() + WAIT_DEADLINE;
    while found.is_none() {
        let logs = captured_logs();
        found = line_with(&logs, parts).map(str::to_string);
        if found.is_none() && Instant::now() >= deadline {
            panic!("no log line contains all of {parts:?}; the logs were:\n{logs}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    found.unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Waiting.

/// Polls `cond` until it holds; fails naming `what` after [`WAIT_DEADLINE`].
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT_DEADLINE;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "gave up after {WAIT_DEADLINE:?} waiting for: {what}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// [`eventually`] for code outside a runtime.
pub fn eventually_blocking(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT_DEADLINE;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "gave up after {WAIT_DEADLINE:?} waiting for: {what}"
        );
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Prints a measured recovery time in one greppable shape.
pub fn report(scenario: &str, what: &str, took: Duration) {
    println!(
        "CHAOS {scenario}: {what} in {:.0} ms",
        took.as_secs_f64() * 1000.0
    );
}

// ---------------------------------------------------------------------------
// Child processes.

/// A child process whose stdout lines are handed over as they come and
/// whose stderr is kept; killed and reaped when dropped.
pub struct Proc {
    pub child: Child,
    stdout: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    /// Spawns `cmd` with both outputs piped.
    pub fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let (tx, stdout) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                // Nobody may listen any more: keep draining regardless.
                let _ = tx.send(line);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let keep = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let mut s = keep.lock().unwrap();
                s.push_str(&strip_ansi(&line));
                s.push('\n');
            }
        });
        Proc {
            child,
            stdout,
            stderr,
        }
    }

    /// Waits for a stdout line `pick` accepts and returns what it made of
    /// it; fails if the process exits or the deadline passes first.
    pub fn wait_line<T>(&self, what: &str, mut pick: impl FnMut(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT_DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    if let Some(v) = pick(line.trim()) {
                        return v;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no {what} within {WAIT_DEADLINE:?}; stderr:\n{}",
                        self.stderr()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "the process exited before {what}; stderr:\n{}",
                        self.stderr()
                    )
                }
            }
        }
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGKILL, then reap.
    pub fn sigkill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGINT (a graceful stop), then reap.
    pub fn interrupt(&mut self) -> ExitStatus {
        self.send_interrupt();
        self.child.wait().unwrap()
    }

    /// SIGINT without waiting (several processes stopping at once).
    pub fn send_interrupt(&self) {
        let pid = self.child.id();
        let status = Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Reaps the process.
    pub fn wait(&mut self) -> ExitStatus {
        self.child.wait().unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `line` without terminal colour sequences (`ESC [ ... m`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `dropline serve` on loopback ports chosen by the kernel, with info logs
/// on stderr.
pub struct NodeProc {
    pub proc: Proc,
    pub quic: std::net::SocketAddr,
    pub http: std::net::SocketAddr,
    pub fingerprint: String,
}

/// Starts `dropline serve --data-dir data` and waits for its `ready` line.
/// `quic`/`http`: fixed addresses (a restart keeps them), or port 0.
pub fn start_node(
    data: &std::path::Path,
    quic: std::net::SocketAddr,
    http: std::net::SocketAddr,
) -> NodeProc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dropline"));
    cmd.args(["serve", "--data-dir"])
        .arg(data)
        .arg("--quic-listen")
        .arg(quic.to_string())
        .arg("--http-listen")
        .arg(http.to_string())
        .env(
            "DROPLINE_LOG",
            "warn,dropline=info,dropline_log=info,dropline_engine=info",
        );
    let proc = Proc::spawn(cmd);
    let mut fingerprint = String::new();
    let mut quic_addr = quic;
    let mut http_addr = http;
    proc.wait_line("the node's ready line", |line| {
        if let Some(fp) = line.strip_prefix("TLS sha256") {
            fingerprint = fp.trim().to_string();
        } else if let Some(a) = line.strip_prefix("QUIC ingest") {
            quic_addr = a.trim().parse().unwrap();
        } else if let Some(a) = line.strip_prefix("HTTP") {
            let a = a.trim().trim_start_matches("http://").trim_end_matches('/');
            http_addr = a.parse().unwrap();
        }
        (line == "ready").then_some(())
    });
    NodeProc {
        proc,
        quic: quic_addr,
        http: http_addr,
        fingerprint,
    }
}

/// A free UDP port on loopback (QUIC).
pub fn free_udp() -> std::net::SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A free TCP port on loopback.
pub fn free_tcp() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// `GET http://{http}/metrics` as text.
pub async fn metrics_text(http: std::net::SocketAddr) -> String {
    reqwest::get(format!("http://{http}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of the Prometheus sample whose name and labels are exactly
/// `sample` (e.g. `foo_total{code="x"}`), 0 if absent.
pub fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .filter_map(|l| l.strip_prefix(sample))
        .filter_map(|rest| rest.trim().parse::<f64>().ok())
        .next()
        .unwrap_or(0.0)
}

/// Waits until the node's tracking API shows every one of `numbers` (UPS)
/// at `status` (snake case): the engine has processed their events and
/// the view is served.
pub async fn wait_views(http: std::net::SocketAddr, numbers: &[String], status: &str) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + WAIT_DEADLINE;
    let mut next = 0;
    while next < numbers.len() {
        let url = format!("http://{http}/v1/shipments/ups/{}", numbers[next]);
        let ready = match client.get(&url).send().await {
            Ok(r) if r.status().is_success() => r
                .json::<serde_json::Value>()
                .await
                .is_ok_and(|v| v["status"] == status),
            _ => false,
        };
        if ready {
            next += 1;
            continue;
        }
        assert!(
            Instant::now() < deadline,
            "shipment {} not at {status} within {WAIT_DEADLINE:?} ({next} of {} were)",
            numbers[next],
            numbers.len()
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

// ---------------------------------------------------------------------------
// Carriers.

/// Simulated start of the carrier scenarios.
pub const START_MS: i64 = 1_732_000_000_000;

/// Short journeys: 10 to 12 scans, 5 to 20 simulated minutes apart.
pub fn short_journeys() -> JourneyShape {
    JourneyShape {
        scans_min: 10,
        scans_max: 12,
        scan_gap_ms_min: 5 * 60_000,
        scan_gap_ms_max: 20 * 60_000,
        first_scan_delay_ms_max: 10 * 60_000,
    }
}

/// A simulator on loopback with the given speed and limits.
pub fn sim_config(speedup: f64, limits: &PerCarrier<Vec<RateWindow>>) -> CarrierSimConfig {
    let mut c = CarrierSimConfig::new("127.0.0.1:0".parse().unwrap());
    c.seed = 11;
    c.speedup = speedup;
    c.start_ms = START_MS;
    c.journey = short_journeys();
    c.limits = limits.clone();
    c
}

/// An adapter for `carriers` only, agreeing with the simulator's limits
/// and secrets; `webhooks`: the carriers that push.
pub fn adapter_config(
    state_dir: &std::path::Path,
    sim_url: &str,
    sim: &CarrierSimConfig,
    carriers: &[Carrier],
    webhooks: &[Carrier],
) -> AdapterConfig {
    let mut c = AdapterConfig::new("127.0.0.1:0".parse().unwrap(), state_dir);
    for carrier in Carrier::ALL {
        *c.carriers.get_mut(carrier) = carriers.contains(&carrier).then(|| CarrierConfig {
            base_url: sim_url.to_string(),
            webhooks: webhooks.contains(&carrier),
            webhook_secret: sim.secrets.get(carrier).clone(),
            limits: sim
                .limits
                .get(carrier)
                .iter()
                .map(|w| RateLimit {
                    requests: w.requests,
                    window_ms: w.window_ms,
                })
                .collect(),
            inflight_max: 2,
            api_key: String::new(),
        });
    }
    c.poller.delivered_grace_ms = 30 * 60_000;
    c.poller.first_poll_delay_ms_max = 60_000;
    c.poller.failure_retry_ms = 60_000;
    c
}

/// The ground-truth key of a received event.
pub fn truth_key(e: &CarrierEvent) -> GroundTruthScan {
    GroundTruthScan {
        carrier: e.carrier,
        tracking_number: e.tracking_number.clone(),
        status: e.status,
        sub_status: e.sub_status,
        occurred_at_ms: e.occurred_at_ms,
    }
}

/// How often each scan occurs in `events`.
pub fn counts(events: &[CarrierEvent]) -> HashMap<GroundTruthScan, usize> {
    let mut m = HashMap::new();
    for e in events {
        *m.entry(truth_key(e)).or_insert(0) += 1;
    }
    m
}

/// How many scans of `truth` are in `events`.
pub fn covered(events: &[CarrierEvent], truth: &[GroundTruthScan]) -> usize {
    let c = counts(events);
    truth.iter().filter(|t| c.contains_key(*t)).count()
}

/// Asserts that `events` are exactly the scans of `truth`, each once.
pub fn assert_exactly_once(events: &[CarrierEvent], truth: &[GroundTruthScan]) {
    let c = counts(events);
    let doubled: Vec<_> = c.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        doubled.is_empty(),
        "{} scans handed on more than once, e.g. {:?}",
        doubled.len(),
        &doubled[..doubled.len().min(3)]
    );
    let missing: Vec<_> = truth.iter().filter(|t| !c.contains_key(*t)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} scans lost, e.g. {:?}",
        missing.len(),
        truth.len(),
        &missing[..missing.len().min(3)]
    );
    assert_eq!(events.len(), truth.len(), "events that are no scan");
}

/// Creates one UPS order per tracking number through `POST /v1/shipments`
/// (buyer `buyer-<i>` with a consented email, order `ORDER-<i>`, numbered
/// in the order given), failing the test on any non-success status.
pub async fn create_orders(
    http: std::net::SocketAddr,
    marketplace: &str,
    postal_code: &str,
    tracking_numbers: impl IntoIterator<Item = String>,
) {
    let client = reqwest::Client::new();
    for (i, tracking_number) in tracking_numbers.into_iter().enumerate() {
        let body = serde_json::json!({
            "tracking_number": tracking_number,
            "carrier": "ups",
            "order_id": format!("ORDER-{i}"),
            "marketplace": marketplace,
            "seller": "seller-1",
            "buyer_id": format!("buyer-{i}"),
            "skus": ["SKU-1"],
            "promised_window": {"from": "2026-09-20T00:00:00Z", "to": "2026-09-25T00:00:00Z"},
            "buyer_locale": "en-US",
            "buyer_time_zone": "UTC",
            "destination_postal_code": postal_code,
            "contacts": [{"channel": "email", "address": format!("b{i}@example.com"), "consent": true}],
        });
        let response = client
            .post(format!("http://{http}/v1/shipments"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
    }
}

/// Calls `f(partition, batch)` for every durable data batch (control
/// batches skipped) of `carrier-events` in a stopped node's log.
pub fn for_each_carrier_batch(
    log: &dropline_log::Log,
    partitions: u32,
    mut f: impl FnMut(u32, &dropline_log::BatchView),
) {
    for p in 0..partitions {
        let part = log.partition("carrier-events", p).unwrap();
        let mut offset = part.start_offset();
        while offset < part.durable_offset() {
            for view in part.read(offset, 1 << 20).unwrap() {
                if !view.is_control() {
                    f(p, &view);
                }
                offset = view.last_offset() + 1;
            }
        }
    }
}
