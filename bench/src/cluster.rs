//! `dropline bench cluster`: a replicated cluster of `dropline serve
//! --config` child processes on loopback (made by `dropline cluster
//! init`), 250-byte events sent through the ingest client holding every
//! node's address, the leader of partition 0 killed with SIGKILL halfway,
//! and every replica's log read back afterwards.
//!
//! Figures: `events_per_s` (all events, failover included, until the last
//! ack), `ack_latency_us_p99`, the same before the kill
//! (`steady_events_per_s`, `steady_ack_latency_us_p99`), the surviving
//! leaders' mean commit latency and their drivers' busiest share of the
//! run (`leader_commit_ms_mean`, `driver_busy_share_max`, from their
//! `/metrics`), `failover_ms` (from the kill, once the
//! process is reaped, to the first acknowledged batch of partition 0 after
//! it), `lost` and `duplicates` (the worst surviving replica), and the
//! single-node durable ingest throughput measured in the same run by the
//! ingest benchmark's own code path ([`crate::ingest::measure`]) as the
//! reference.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dropline_adapters::client::{BatchAcked, IngestClient, IngestClientConfig, ServerTrust};
use dropline_log::{Log, LogConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::ingest::{EVENT_BYTES, IngestBenchArgs, IngestBenchError};
use crate::report::{Report, latency_histogram_us};

/// Time a node may take to print its ready line.
const NODE_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Time the cluster may take to elect leaders, or to acknowledge
/// everything after the failover.
const CLUSTER_WAIT: Duration = Duration::from_secs(120);
/// Between two reads of a node's status endpoint.
const STATUS_POLL: Duration = Duration::from_millis(20);

/// Arguments of `dropline bench cluster`.
#[derive(Debug, Clone)]
pub struct ClusterBenchArgs {
    /// Nodes (child processes).
    pub nodes: u64,
    /// Events to send.
    pub events: u64,
    /// Partitions of `carrier-events`.
    pub partitions: u32,
    /// Records per batch.
    pub batch: u32,
    /// Client linger time, in µs.
    pub linger_us: u64,
    /// Directory for the nodes' data (a fresh subdirectory per run).
    pub dir: PathBuf,
    /// The `dropline` binary the nodes run.
    pub exe: PathBuf,
}

/// Errors of the cluster benchmark.
#[derive(Debug, thiserror::Error)]
pub enum ClusterBenchError {
    /// A child process could not be run or misbehaved.
    #[error("node process: {0}")]
    Child(String),
    /// The cluster did not reach a state in time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// I/O failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The client failed.
    #[error("ingest client: {0}")]
    Client(#[from] dropline_adapters::client::ClientError),
    /// Reading a replica's log failed.
    #[error("log: {0}")]
    Log(#[from] dropline_log::LogError),
    /// The single-node reference failed.
    #[error("single-node reference: {0}")]
    Reference(#[from] IngestBenchError),
    /// A histogram could not be created.
    #[error("histogram: {0}")]
    Histogram(#[from] hdrhistogram::CreationError),
    /// Arguments out of range.
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
}

/// One node's child process.
struct NodeChild {
    id: u64,
    child: Option<Child>,
    data: PathBuf,
    quic: SocketAddr,
    http: SocketAddr,
}

impl Drop for NodeChild {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn_node(
    exe: &Path,
    config: &Path,
    id: u64,
    data: PathBuf,
) -> Result<NodeChild, ClusterBenchError> {
    let mut child = Command::new(exe)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env("DROPLINE_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let out = child
        .stdout
        .take()
        .ok_or(ClusterBenchError::Invalid("no stdout"))?;
    let (tx, rx) = channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let mut node = NodeChild {
        id,
        child: Some(child),
        data,
        quic: SocketAddr::from(([127, 0, 0, 1], 0)),
        http: SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    wait_ready(&rx, &mut node)?;
    Ok(node)
}

fn wait_ready(rx: &Receiver<String>, node: &mut NodeChild) -> Result<(), ClusterBenchError> {
    let deadline = Instant::now() + NODE_READY_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let line = line.trim();
                if let Some(a) = line.strip_prefix("QUIC ingest") {
                    node.quic = a
                        .trim()
                        .parse()
                        .map_err(|_| ClusterBenchError::Child(format!("bad line {line:?}")))?;
                } else if let Some(a) = line.strip_prefix("HTTP") {
                    let a = a
                        .trim()
                        .trim_start_matches("http://")
                        .trim_end_matches("/metrics");
                    node.http = a
                        .parse()
                        .map_err(|_| ClusterBenchError::Child(format!("bad line {line:?}")))?;
                } else if line == "ready" {
                    return Ok(());
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                return Err(ClusterBenchError::Timeout("a node's ready line"));
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(ClusterBenchError::Child(format!(
                    "node {} exited before ready",
                    node.id
                )));
            }
        }
    }
}

/// `GET /admin/cluster/status` of a node with the admin token, as JSON.
async fn status(http: SocketAddr, admin: &str) -> Option<serde_json::Value> {
    let mut stream = tokio::net::TcpStream::connect(http).await.ok()?;
    let request = format!(
        "GET /admin/cluster/status HTTP/1.1\r\nHost: {http}\r\nAuthorization: Bearer {admin}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let (_, body) = text.split_once("\r\n\r\n")?;
    serde_json::from_str(body).ok()
}

/// The unlabelled samples of a node's `/metrics`, by name.
async fn metric_samples(http: SocketAddr) -> Option<std::collections::HashMap<String, f64>> {
    let mut stream = tokio::net::TcpStream::connect(http).await.ok()?;
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).await.ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let (_, body) = text.split_once("\r\n\r\n")?;
    Some(
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (name, value) = l.split_once(' ')?;
                Some((name.to_string(), value.trim().parse().ok()?))
            })
            .collect(),
    )
}

/// The leader of partition `p` as node `http` knows it (0: none).
async fn leader_of(http: SocketAddr, p: u32, admin: &str) -> u64 {
    status(http, admin)
        .await
        .and_then(|s| {
            s["partitions"]
                .as_array()?
                .iter()
                .find(|x| x["partition"] == p)?["leader"]
                .as_u64()
        })
        .unwrap_or(0)
}

async fn wait_leader(
    http: SocketAddr,
    p: u32,
    not: u64,
    admin: &str,
) -> Result<u64, ClusterBenchError> {
    let deadline = Instant::now() + CLUSTER_WAIT;
    loop {
        let l = leader_of(http, p, admin).await;
        if l != 0 && l != not {
            return Ok(l);
        }
        if Instant::now() > deadline {
            return Err(ClusterBenchError::Timeout("a leader"));
        }
        tokio::time::sleep(STATUS_POLL).await;
    }
}

/// Runs the benchmark.
pub fn run(args: &ClusterBenchArgs) -> Result<Report, ClusterBenchError> {
    if args.nodes < 3
        || args.nodes > 9
        || args.events < 2
        || args.batch == 0
        || args.partitions == 0
    {
        return Err(ClusterBenchError::Invalid(
            "nodes 3..=9, events at least 2, batch and partitions positive",
        ));
    }
    let run_dir = args.dir.join(format!("cluster-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(&run_dir)?;
    let result = run_in(args, &run_dir);
    let _ = std::fs::remove_dir_all(&run_dir);
    result
}

struct Driven {
    sent: u64,
    rejected: u64,
    seconds: f64,
    failover_ms: Option<f64>,
    victim: u64,
    p99_us: u64,
    /// Events acknowledged before the kill, the time they took, and the
    /// ack latency p99 until then: the replicated steady state.
    steady_events: u64,
    steady_seconds: f64,
    steady_p99_us: u64,
    /// CPU seconds the nodes and this process (the client) used in the
    /// steady half.
    steady_cpu_s: Option<f64>,
    redirects: u64,
    resent: u64,
    /// Events per acknowledged batch, on average.
    events_per_batch: f64,
    /// Mean time from a batch reaching a leader's driver to its ack, over
    /// the surviving nodes (`/metrics`), in ms.
    commit_ms_mean: Option<f64>,
    /// The busiest surviving driver thread's share of the run spent in
    /// turns.
    driver_busy_share_max: Option<f64>,
    /// Group commits (one fdatasync each) per second, summed over the
    /// surviving nodes: they all share this machine's one disk.
    group_commits_per_s: f64,
}

fn run_in(args: &ClusterBenchArgs, run_dir: &Path) -> Result<Report, ClusterBenchError> {
    let init = Command::new(&args.exe)
        .args(["cluster", "init", "--nodes", &args.nodes.to_string()])
        .args(["--partitions", &args.partitions.to_string()])
        .arg("--dir")
        .arg(run_dir)
        .output()?;
    if !init.status.success() {
        return Err(ClusterBenchError::Child(format!(
            "cluster init: {}",
            String::from_utf8_lossy(&init.stderr)
        )));
    }
    let mut nodes = Vec::new();
    for id in 1..=args.nodes {
        nodes.push(spawn_node(
            &args.exe,
            &run_dir.join(format!("node-{id}.toml")),
            id,
            run_dir.join(format!("node-{id}")),
        )?);
    }
    let token = std::fs::read_to_string(run_dir.join("adapter.token"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let driven = runtime.block_on(drive(args, run_dir, &mut nodes, token.trim()))?;

    // Stop the survivors gracefully, then read every replica.
    for n in &mut nodes {
        if let Some(c) = &mut n.child {
            signal_interrupt(c.id());
            let _ = c.wait();
            n.child = None;
        }
    }
    let (mut lost, mut duplicates) = (0u64, 0u64);
    for n in nodes.iter().filter(|n| n.id != driven.victim) {
        let (l, d) = count(&n.data, args.partitions, driven.sent)?;
        lost = lost.max(l);
        duplicates = duplicates.max(d);
    }

    // The same run's single-node reference: the ingest benchmark's path
    // (node and client in this process, so its CPU time is ours).
    let cpu_before_reference = crate::report::cpu_seconds(None);
    let reference = crate::ingest::measure(&IngestBenchArgs {
        events: args.events,
        adapters: 1,
        batch: args.batch,
        partitions: args.partitions,
        udp_payload_bytes_max: 1452,
        linger_us: args.linger_us,
        dir: run_dir.to_path_buf(),
    })?
    .0;
    let single_cpu_s = cpu_before_reference
        .zip(crate::report::cpu_seconds(None))
        .map(|(a, b)| b - a);
    let single = reference
        .get("events_per_s")
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(0.0);

    let mut report = Report::new("cluster");
    let per_s = driven.sent as f64 / driven.seconds.max(1e-9);
    report
        .set("nodes", args.nodes)
        .set("events", driven.sent)
        .set("partitions", args.partitions)
        .set("event_bytes", EVENT_BYTES as u64)
        .set_f64("events_per_s", per_s, 0)
        .set("ack_latency_us_p99", driven.p99_us)
        .set("lost", lost)
        .set("duplicates", duplicates)
        .set("rejected", driven.rejected)
        .set("killed_node", driven.victim)
        .set("leader_redirects", driven.redirects)
        .set("batches_resent", driven.resent)
        .set_f64("events_per_batch", driven.events_per_batch, 1)
        .set_f64("single_node_events_per_s", single, 0)
        .set_f64("ratio_vs_single_node", per_s / single.max(1.0), 2);
    let steady_per_s = driven.steady_events as f64 / driven.steady_seconds.max(1e-9);
    report
        .set_f64("steady_events_per_s", steady_per_s, 0)
        .set("steady_ack_latency_us_p99", driven.steady_p99_us)
        .set_f64(
            "steady_ratio_vs_single_node",
            steady_per_s / single.max(1.0),
            2,
        );
    // CPU per event, nodes and client together: on a machine whose cores
    // both runs saturate, the throughput ratio cannot exceed the inverse
    // ratio of these.
    let cluster_cpu_us = driven
        .steady_cpu_s
        .map(|s| s * 1e6 / driven.steady_events.max(1) as f64);
    let single_cpu_us = single_cpu_s.map(|s| s * 1e6 / args.events.max(1) as f64);
    if let Some(c) = cluster_cpu_us {
        report.set_f64("steady_cpu_us_per_event", c, 2);
    }
    if let Some(s) = single_cpu_us {
        report.set_f64("single_node_cpu_us_per_event", s, 2);
    }
    if let (Some(c), Some(s)) = (cluster_cpu_us, single_cpu_us) {
        report.set_f64("cpu_ratio_single_over_cluster", s / c.max(1e-9), 2);
    }
    if let Some(ms) = driven.commit_ms_mean {
        report.set_f64("leader_commit_ms_mean", ms, 1);
    }
    if let Some(b) = driven.driver_busy_share_max {
        report.set_f64("driver_busy_share_max", b, 2);
    }
    report.set_f64("group_commits_per_s", driven.group_commits_per_s, 0);
    match driven.failover_ms {
        Some(ms) => report.set_f64("failover_ms", ms, 0),
        None => report.set("failover_ms", serde_json::Value::Null),
    };
    report.note(
        "events_per_s counts the whole run, failover included; steady_* the first half, before the kill; every node and the client share one machine",
    );
    Ok(report)
}

/// SIGINT (a graceful stop) to our own child, through kill(1).
fn signal_interrupt(pid: u32) {
    let _ = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
}

/// (lost, duplicated) events of `0..sent` in a stopped replica's log.
fn count(data: &Path, partitions: u32, sent: u64) -> Result<(u64, u64), ClusterBenchError> {
    let log = Log::open(LogConfig::new(data.join("log")))?;
    let mut seen = vec![0u8; sent as usize];
    for p in 0..partitions {
        let part = log.partition(dropline_adapters::ingest::CARRIER_EVENTS_TOPIC, p)?;
        let mut from = part.start_offset();
        while from < part.durable_offset() {
            let views = part.read(from, 8 * 1024 * 1024)?;
            let Some(last) = views.last() else { break };
            from = last.last_offset() + 1;
            for v in views.iter().filter(|v| !v.is_control()) {
                for r in v.records() {
                    if let Some((_, i)) = crate::ingest::parse_key(r.key)
                        && i < sent
                    {
                        seen[i as usize] = seen[i as usize].saturating_add(1);
                    }
                }
            }
        }
    }
    let lost = seen.iter().filter(|&&n| n == 0).count() as u64;
    let duplicates = seen.iter().map(|&n| u64::from(n.saturating_sub(1))).sum();
    Ok((lost, duplicates))
}

async fn drive(
    args: &ClusterBenchArgs,
    run_dir: &Path,
    nodes: &mut [NodeChild],
    token: &str,
) -> Result<Driven, ClusterBenchError> {
    // The status endpoint takes the admin token `cluster init` wrote.
    let admin = std::fs::read_to_string(run_dir.join("admin.token"))?
        .trim()
        .to_string();
    for p in 0..args.partitions {
        wait_leader(nodes[0].http, p, 0, &admin).await?;
    }
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.quic).collect();
    let mut config = IngestClientConfig::new_cluster(
        &addrs,
        ServerTrust::CaCertPem(run_dir.join("certs").join("ca.pem")),
        "default",
        token.as_bytes().to_vec(),
    )
    .ok_or(ClusterBenchError::Invalid("no nodes"))?;
    config.partitions = Some(args.partitions);
    config.batch_records_max = args.batch;
    config.batch_bytes_max = 4 * 1024 * 1024;
    config.linger_us = args.linger_us;
    config.buffered_bytes_max =
        (u64::from(args.partitions) * 8 * u64::from(args.batch) * EVENT_BYTES as u64).max(8 << 20);
    config.connect_timeout_ms = 1_000;
    config.idle_timeout_ms = 1_500;
    config.backoff_initial_ms = 20;
    config.backoff_max_ms = 300;
    let histogram = Arc::new(Mutex::new(latency_histogram_us()?));
    let acked = Arc::new(AtomicU64::new(0));
    let acked_wake = Arc::new(tokio::sync::Notify::new());
    // Set once the victim is reaped; the first partition-0 ack after it
    // ends the failover.
    let killed_at: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let failover: Arc<Mutex<Option<Duration>>> = Arc::new(Mutex::new(None));
    {
        let (h, acked, wake, killed_at, failover) = (
            histogram.clone(),
            acked.clone(),
            acked_wake.clone(),
            killed_at.clone(),
            failover.clone(),
        );
        config.ack_observer = Some(Arc::new(move |ack: &BatchAcked| {
            if let Ok(mut h) = h.lock() {
                let _ = h.record_n(ack.ack_latency_us.max(1), u64::from(ack.records));
            }
            acked.fetch_add(u64::from(ack.records), Ordering::Relaxed);
            wake.notify_one();
            if ack.partition == 0
                && let (Ok(k), Ok(mut f)) = (killed_at.lock(), failover.lock())
                && let Some(k) = *k
                && f.is_none()
            {
                *f = Some(k.elapsed());
            }
        }));
    }
    let client = Arc::new(IngestClient::connect(config).await?);
    let (_, value_template) = crate::ingest::template();
    let tracking_at = value_template
        .windows(crate::ingest::EVENT_KEY_BYTES)
        .position(|w| w == b"1Z0000000000000000")
        .ok_or(ClusterBenchError::Invalid(
            "template has no inline tracking number",
        ))?;
    let cpu_now = |nodes: &[NodeChild]| -> Option<f64> {
        let mut total = crate::report::cpu_seconds(None)?;
        for n in nodes {
            if let Some(c) = &n.child {
                total += crate::report::cpu_seconds(Some(c.id()))?;
            }
        }
        Some(total)
    };
    let cpu_start = cpu_now(nodes);
    let start = Instant::now();
    let sender = {
        let client = client.clone();
        let events = args.events;
        tokio::spawn(async move {
            let mut value = value_template;
            let mut key = [0u8; crate::ingest::EVENT_KEY_BYTES];
            for i in 0..events {
                crate::ingest::write_key_slice(&mut key, 0, i);
                value[tracking_at..tracking_at + key.len()].copy_from_slice(&key);
                client.send_encoded(&key, &value).await?;
            }
            client.flush().await
        })
    };
    // Halfway: kill partition 0's leader.
    let half = args.events / 2;
    let deadline = Instant::now() + CLUSTER_WAIT;
    while acked.load(Ordering::Relaxed) < half {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ClusterBenchError::Timeout(
                "half of the events acknowledged",
            ));
        }
        let _ = tokio::time::timeout(left, acked_wake.notified()).await;
    }
    let steady_seconds = start.elapsed().as_secs_f64();
    let steady_events = acked.load(Ordering::Relaxed);
    let steady_cpu_s = cpu_start.zip(cpu_now(nodes)).map(|(a, b)| b - a);
    let steady_p99_us = histogram
        .lock()
        .map(|h| h.value_at_quantile(0.99))
        .unwrap_or(0);
    let victim = leader_of(nodes[0].http, 0, &admin).await;
    let victim = if victim == 0 {
        wait_leader(nodes[0].http, 0, 0, &admin).await?
    } else {
        victim
    };
    let n = nodes
        .iter_mut()
        .find(|n| n.id == victim)
        .ok_or(ClusterBenchError::Invalid(
            "leader is not a configured node",
        ))?;
    if let Some(mut c) = n.child.take() {
        c.kill()?;
        c.wait()?;
    }
    if let Ok(mut k) = killed_at.lock() {
        *k = Some(Instant::now());
    }
    tokio::time::timeout(CLUSTER_WAIT, sender)
        .await
        .map_err(|_| ClusterBenchError::Timeout("every event acknowledged"))?
        .map_err(|_| ClusterBenchError::Invalid("sender task panicked"))??;
    let seconds = start.elapsed().as_secs_f64();
    let (mut commits, mut commit_s, mut busy_max, mut group_commits) = (0.0, 0.0, None::<f64>, 0.0);
    for n in nodes.iter().filter(|n| n.child.is_some()) {
        if let Some(m) = metric_samples(n.http).await {
            let get = |k: &str| m.get(k).copied().unwrap_or(0.0);
            commits += get("dropline_cluster_commits_total");
            commit_s += get("dropline_cluster_commit_seconds_total");
            group_commits += get("dropline_cluster_group_commits_total");
            let busy = get("dropline_cluster_driver_busy_seconds_total") / seconds.max(1e-9);
            busy_max = Some(busy_max.map_or(busy, |b| b.max(busy)));
        }
    }
    let m = client.metrics();
    if let Ok(c) = Arc::try_unwrap(client) {
        c.close().await?;
    }
    let p99_us = histogram
        .lock()
        .map(|h| h.value_at_quantile(0.99))
        .unwrap_or(0);
    let failover_ms = failover
        .lock()
        .ok()
        .and_then(|f| *f)
        .map(|d| d.as_secs_f64() * 1000.0);
    Ok(Driven {
        sent: args.events,
        rejected: m.events_rejected,
        seconds,
        failover_ms,
        victim,
        p99_us,
        steady_events,
        steady_seconds,
        steady_p99_us,
        steady_cpu_s,
        redirects: m.leader_redirects,
        resent: m.batches_resent,
        events_per_batch: m.events_acked as f64 / m.batches_acked.max(1) as f64,
        commit_ms_mean: (commits > 0.0).then(|| commit_s * 1000.0 / commits),
        driver_busy_share_max: busy_max,
        group_commits_per_s: group_commits / seconds.max(1e-9),
    })
}
