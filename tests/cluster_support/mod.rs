//! Shared pieces of the multi-process cluster tests (`cluster_failover.rs`,
//! `cluster_partition.rs`): `dropline cluster init` and `serve` processes,
//! an ingest client that records every ack, reading a node's cluster
//! status, and the checks on the replicas' logs once the nodes are stopped
//! (every event exactly once, every ack at the offsets it named, replicas
//! byte-identical under `dropline log verify --compare`).
//!
//! Nothing here sleeps to wait: waits are on acks (a watch channel fed by
//! the client's ack observer) and on ready lines, bounded by
//! [`WAIT_DEADLINE`]; status endpoints are polled every [`STATUS_POLL`].
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dropline_adapters::client::{BatchAcked, IngestClientConfig, ServerTrust};
use dropline_log::{Log, LogConfig};
use dropline_operators::model::{Carrier, CarrierEvent, EventSource, Location, Status, SubStatus};

use crate::chaos_support::{Proc, WAIT_DEADLINE};

/// Between two reads of a node's status endpoint (a condition poll).
pub const STATUS_POLL: Duration = Duration::from_millis(20);

/// The status endpoint of a cluster node.
pub const STATUS_PATH: &str = "/admin/cluster/status";
/// The cluster page.
pub const PAGE_PATH: &str = "/ops/cluster";

/// The `dropline` binary under test.
pub fn dropline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dropline"))
}

/// `dropline cluster init --nodes 3 --partitions <partitions> --tick-ms 50
/// --dir <root>` plus `extra` arguments; fails the test if it fails.
pub fn init_cluster(root: &Path, partitions: u32, extra: &[String]) {
    let out = dropline()
        .args(["cluster", "init", "--nodes", "3"])
        .args(["--partitions", &partitions.to_string()])
        .args(["--tick-ms", "50", "--dir"])
        .arg(root)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts `<program> serve --config <config>` (`program` is the `dropline`
/// binary, possibly behind `ip netns exec`) and waits for its ready line;
/// returns the process and its QUIC ingest and HTTP addresses.
pub fn spawn_node(mut program: Command, config: &Path) -> (Proc, SocketAddr, SocketAddr) {
    program
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env("DROPLINE_LOG", "warn,dropline=info,dropline_adapters=info");
    let proc = Proc::spawn(program);
    let mut quic = None;
    let mut http = None;
    proc.wait_line("the node's ready line", |line| {
        if let Some(a) = line.strip_prefix("QUIC ingest") {
            quic = Some(a.trim().parse().unwrap());
        } else if let Some(a) = line.strip_prefix("HTTP") {
            let a = a
                .trim()
                .trim_start_matches("http://")
                .trim_end_matches("/metrics");
            http = Some(a.parse().unwrap());
        }
        (line == "ready").then_some(())
    });
    (proc, quic.unwrap(), http.unwrap())
}

/// The cluster's admin token, as `cluster init` wrote it to `dir` (the
/// init directory or a node's data directory).
pub fn admin_token(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("admin.token"))
        .unwrap()
        .trim()
        .to_string()
}

/// `GET path` from a plain HTTP/1.1 server with a bearer token, as JSON;
/// `None` on any failure (unreachable, not 200, not JSON). Blocking, so
/// that it can run on a thread inside a network namespace.
pub fn get_json(addr: SocketAddr, path: &str, token: &str) -> Option<serde_json::Value> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = Vec::new();
    s.read_to_end(&mut response).ok()?;
    let text = String::from_utf8(response).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    serde_json::from_str(body).ok()
}

/// Partition `p`'s status (null while the node does not list it yet).
pub fn partition(status: &serde_json::Value, p: u32) -> serde_json::Value {
    status["partitions"]
        .as_array()
        .and_then(|ps| ps.iter().find(|x| x["partition"] == p))
        .cloned()
        .unwrap_or_default()
}

/// The leader each of `partitions` partitions names (0: none known).
pub fn leaders(status: &serde_json::Value, partitions: u32) -> Vec<u64> {
    (0..partitions)
        .map(|p| partition(status, p)["leader"].as_u64().unwrap_or(0))
        .collect()
}

/// Partition `p`'s committed offset as the node reports it.
pub fn committed_offset(status: &serde_json::Value, p: u32) -> Option<u64> {
    partition(status, p)["committed_offset"].as_u64()
}

/// Event `i` of a load; `tag` (at most 9 characters) keeps the tracking
/// numbers of two loads apart.
pub fn event(tag: &str, i: u64) -> CarrierEvent {
    CarrierEvent {
        tracking_number: format!("1Z{tag}{i:09}"),
        carrier: Carrier::Ups,
        status: Status::InTransit,
        sub_status: SubStatus::None,
        raw_code: "I".into(),
        raw_text: "Departed".into(),
        occurred_at_ms: 1_790_000_000_000 + i as i64,
        local_time: "2026-09-21T10:00:00".into(),
        utc_offset_minutes: Some(-240),
        location: Location::default(),
        source: EventSource::Synthetic,
        received_at_ms: 1_790_000_000_000,
    }
}

/// Every ack a client received: counts per partition to wait on, and the
/// acks themselves to check against the replicas.
pub struct Acks {
    counts: tokio::sync::watch::Receiver<Vec<u64>>,
    all: Arc<Mutex<Vec<BatchAcked>>>,
}

impl Acks {
    /// Events acknowledged on partition `p` so far.
    pub fn count(&self, p: u32) -> u64 {
        self.counts.borrow()[p as usize]
    }

    /// Events acknowledged so far, all partitions.
    pub fn total(&self) -> u64 {
        self.counts.borrow().iter().sum()
    }

    /// Waits until `n` events of partition `p` are acknowledged; fails
    /// naming `what` after [`WAIT_DEADLINE`].
    pub async fn wait(&self, p: u32, n: u64, what: &str) {
        let mut rx = self.counts.clone();
        tokio::time::timeout(WAIT_DEADLINE, rx.wait_for(|v| v[p as usize] >= n))
            .await
            .unwrap_or_else(|_| panic!("acks did not come: {what}"))
            .unwrap();
    }

    /// Every ack so far.
    pub fn all(&self) -> Vec<BatchAcked> {
        self.all.lock().unwrap().clone()
    }
}

/// A cluster client configuration for the nodes at `addrs` of the cluster
/// made in `root`, tuned to notice a lost node within a couple of seconds,
/// recording its acks.
pub fn client_config(
    addrs: &[SocketAddr],
    root: &Path,
    partitions: u32,
) -> (IngestClientConfig, Acks) {
    let token = std::fs::read_to_string(root.join("adapter.token")).unwrap();
    let mut config = IngestClientConfig::new_cluster(
        addrs,
        ServerTrust::CaCertPem(root.join("certs").join("ca.pem")),
        "default",
        token.trim().as_bytes().to_vec(),
    )
    .unwrap();
    config.partitions = Some(partitions);
    config.batch_records_max = 64;
    config.linger_us = 1_000;
    config.connect_timeout_ms = 1_000;
    config.idle_timeout_ms = 1_500;
    config.backoff_initial_ms = 20;
    config.backoff_max_ms = 300;
    config.buffered_bytes_max = 4 << 20;
    let (counts_tx, counts) = tokio::sync::watch::channel(vec![0u64; partitions as usize]);
    let all = Arc::new(Mutex::new(Vec::new()));
    let keep = all.clone();
    config.ack_observer = Some(Arc::new(move |a: &BatchAcked| {
        keep.lock().unwrap().push(*a);
        counts_tx.send_modify(|v| v[a.partition as usize] += u64::from(a.records));
    }));
    (config, Acks { counts, all })
}

/// A data batch as a replica holds it: last offset, and (producer id,
/// sequence) when a producer wrote it.
pub type BatchAt = (u64, Option<(u64, u64)>);

/// What a stopped node's log holds of `carrier-events`.
pub struct Replica {
    /// Node id, for messages.
    pub id: u64,
    /// The tracking number of every non-control record, in log order.
    pub events: Vec<String>,
    /// Each data batch by (partition, base offset): its last offset and
    /// (producer id, sequence).
    pub batches: HashMap<(u32, u64), BatchAt>,
}

/// Reads node `id`'s stopped log under `data`.
pub fn read_replica(id: u64, data: &Path, partitions: u32) -> Replica {
    let log = Log::open(LogConfig::new(data.join("log"))).unwrap();
    let mut replica = Replica {
        id,
        events: Vec::new(),
        batches: HashMap::new(),
    };
    crate::chaos_support::for_each_carrier_batch(&log, partitions, |p, view| {
        for r in view.records() {
            replica
                .events
                .push(CarrierEvent::decode(r.value).unwrap().tracking_number);
        }
        let producer = view.producer().map(|s| (s.producer_id, s.sequence));
        replica
            .batches
            .insert((p, view.base_offset()), (view.last_offset(), producer));
    });
    replica
}

impl Replica {
    /// Every event of `expected` is here exactly once, and nothing else.
    pub fn assert_exactly_once(&self, expected: &HashSet<String>) {
        let unique: HashSet<&String> = self.events.iter().collect();
        assert_eq!(
            unique.len(),
            self.events.len(),
            "node {}: {} duplicated events",
            self.id,
            self.events.len() - unique.len()
        );
        let missing: Vec<&String> = expected.iter().filter(|e| !unique.contains(e)).collect();
        assert!(
            missing.is_empty(),
            "node {}: {} acknowledged events missing, e.g. {:?}",
            self.id,
            missing.len(),
            missing.first()
        );
        assert_eq!(
            self.events.len(),
            expected.len(),
            "node {}: events that were never sent",
            self.id
        );
    }

    /// Every ack of producer `producer_id` that named offsets names a batch
    /// of this replica: same partition, first and last offset, producer and
    /// sequence (an acknowledged batch was neither lost nor moved).
    pub fn assert_acks_in_place(&self, producer_id: u64, acks: &[BatchAcked]) {
        for a in acks.iter().filter(|a| a.offsets_known) {
            let found = self.batches.get(&(a.partition, a.base_offset));
            assert_eq!(
                found,
                Some(&(a.last_offset, Some((producer_id, a.sequence)))),
                "node {}: the batch acknowledged as {a:?} of producer {producer_id}",
                self.id
            );
        }
    }
}

/// `dropline log verify --compare` finds every replica's log identical to
/// the first one's where they overlap, and whatever one holds beyond the
/// shortest is Raft's own entries only (control batches): stopping the
/// nodes one after another can let the last ones elect a leader, whose
/// empty entry the stopped ones never see. Carrier events are checked on
/// every replica by [`Replica::assert_exactly_once`].
pub fn assert_replicas_identical(datas: &[PathBuf], partitions: u32) {
    for other in &datas[1..] {
        let out = dropline()
            .args(["log", "verify", "--compare"])
            .arg(&datas[0])
            .arg(other)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{} vs {}: {stdout}",
            datas[0].display(),
            other.display()
        );
        assert!(stdout.contains("common prefixes identical"), "{stdout}");
    }
    let logs: Vec<Log> = datas
        .iter()
        .map(|d| Log::open(LogConfig::new(d.join("log"))).unwrap())
        .collect();
    for p in 0..partitions {
        let parts: Vec<_> = logs
            .iter()
            .map(|l| l.partition("carrier-events", p).unwrap())
            .collect();
        let shortest = parts.iter().map(|x| x.durable_offset()).min().unwrap();
        for (data, part) in datas.iter().zip(&parts) {
            let mut offset = shortest;
            while offset < part.durable_offset() {
                for view in part.read(offset, 1 << 20).unwrap() {
                    assert!(
                        view.is_control(),
                        "{} partition {p}: a data batch at offset {} beyond the other replicas' end {shortest}",
                        data.display(),
                        view.base_offset()
                    );
                    offset = view.last_offset() + 1;
                }
            }
        }
    }
}

/// A continuous load of `event(tag, 0..)` through one client until
/// stopped.
pub struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
}

impl Load {
    /// Starts sending on the current runtime.
    pub fn start(client: Arc<dropline_adapters::client::IngestClient>, tag: &'static str) -> Load {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut i = 0u64;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                client.send(&event(tag, i)).await.unwrap();
                i += 1;
            }
            i
        });
        Load { stop, task }
    }

    /// Stops sending; returns how many events were sent (`event(tag, i)`
    /// for `i` below it). A send waits for room in the client's buffer,
    /// so this fails after [`WAIT_DEADLINE`] if nothing is acknowledged
    /// any more (rather than hanging the test).
    pub async fn stop(self, what: &str) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        tokio::time::timeout(WAIT_DEADLINE, self.task)
            .await
            .unwrap_or_else(|_| {
                panic!("{what}: the load could not stop, its client's buffer never drained")
            })
            .unwrap()
    }
}

/// Flushes `client` (bounded by [`WAIT_DEADLINE`]), checks that every
/// event it accepted was acknowledged and none refused, and closes it;
/// returns its final metrics.
pub async fn flush_and_close(
    client: Arc<dropline_adapters::client::IngestClient>,
    sent: u64,
    what: &str,
) -> dropline_adapters::client::ClientMetricsSnapshot {
    tokio::time::timeout(WAIT_DEADLINE, client.flush())
        .await
        .unwrap_or_else(|_| panic!("{what}: flush did not finish"))
        .unwrap();
    let m = client.metrics();
    assert_eq!(
        m.events_acked, sent,
        "{what}: every event sent was acknowledged: {m:?}"
    );
    assert_eq!(m.events_rejected, 0, "{what}: {m:?}");
    match Arc::try_unwrap(client) {
        Ok(c) => c.close().await.unwrap(),
        Err(_) => panic!("{what}: client still shared"),
    }
    m
}

/// The DOM of `url` after headless Chromium ran its scripts for `budget_ms`
/// of virtual time (virtual time does not advance while a fetch is
/// pending, so the page's first polls complete within it). Needs Debian's
/// `chromium` (`.ci/run` installs it); fails loudly without.
pub fn page_dom(url: &str, budget_ms: u32) -> String {
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("chromium is not installed: `apt-get install chromium` (.ci/run installs it)");
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
