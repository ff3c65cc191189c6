//! Three `dropline serve --config` processes on loopback (made by `dropline
//! cluster init`), a client holding all three addresses sending a
//! continuous load, and the leader of partition 0 killed with SIGKILL: a new
//! leader is elected and acknowledged writes resume on that partition;
//! every event the client sent is acknowledged and present exactly once on
//! every replica; the killed node, restarted, catches up, and `dropline log
//! verify --compare` finds the replicas' logs byte-identical.
//!
//! Nothing here sleeps to wait: the test waits on acks (a watch channel fed
//! by the client's ack observer), on the nodes' ready lines and on their
//! status endpoint, each bounded by a deadline. Times are printed, never
//! asserted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chaos_support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chaos_support::{Proc, WAIT_DEADLINE, report};
use dropline_adapters::client::{IngestClient, IngestClientConfig, ServerTrust};
use dropline_log::{Log, LogConfig};
use dropline_operators::model::{Carrier, CarrierEvent, EventSource, Location, Status, SubStatus};

const NODES: u64 = 3;
const PARTITIONS: u32 = 2;
/// Between two reads of a node's status endpoint (a condition poll).
const STATUS_POLL: Duration = Duration::from_millis(20);

struct ClusterNodeProc {
    id: u64,
    config: PathBuf,
    data: PathBuf,
    proc: Option<Proc>,
    quic: SocketAddr,
    http: SocketAddr,
}

fn dropline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dropline"))
}

/// Starts `dropline serve --config` and waits for its ready line.
fn spawn_node(config: &Path) -> (Proc, SocketAddr, SocketAddr) {
    let mut cmd = dropline();
    cmd.arg("serve")
        .arg("--config")
        .arg(config)
        .env("DROPLINE_LOG", "warn,dropline=info,dropline_adapters=info");
    let proc = Proc::spawn(cmd);
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

async fn status(http: SocketAddr) -> Option<serde_json::Value> {
    let response = reqwest::get(format!("http://{http}/admin/cluster/status"))
        .await
        .ok()?;
    response.json().await.ok()
}

/// Partition `p`'s status (null while the node does not list it yet).
fn partition(status: &serde_json::Value, p: u32) -> serde_json::Value {
    status["partitions"]
        .as_array()
        .and_then(|ps| ps.iter().find(|x| x["partition"] == p))
        .cloned()
        .unwrap_or_default()
}

/// Waits until node `http` knows a leader of every partition, none of
/// them `not`; returns the leaders.
async fn wait_leaders(http: SocketAddr, not: u64) -> Vec<u64> {
    let deadline = Instant::now() + WAIT_DEADLINE;
    loop {
        if let Some(s) = status(http).await {
            let leaders: Vec<u64> = (0..PARTITIONS)
                .map(|p| partition(&s, p)["leader"].as_u64().unwrap_or(0))
                .collect();
            if leaders.iter().all(|&l| l != 0 && l != not) {
                return leaders;
            }
        }
        assert!(Instant::now() < deadline, "no leaders at {http}");
        // The status endpoint has no long poll: read it again shortly.
        tokio::time::sleep(STATUS_POLL).await;
    }
}

/// Waits until the restarted node `b` has applied what leader `a`
/// committed, on every partition.
async fn wait_caught_up(a: SocketAddr, b: SocketAddr) {
    let deadline = Instant::now() + WAIT_DEADLINE;
    loop {
        if let (Some(x), Some(y)) = (status(a).await, status(b).await)
            && (0..PARTITIONS).all(|p| {
                let (x, y) = (partition(&x, p), partition(&y, p));
                !x.is_null()
                    && x["committed_offset"] == y["committed_offset"]
                    && x["commit_index"] == y["applied_index"]
            })
        {
            return;
        }
        assert!(Instant::now() < deadline, "{b} did not catch up with {a}");
        tokio::time::sleep(STATUS_POLL).await;
    }
}

fn event(i: u64) -> CarrierEvent {
    CarrierEvent {
        tracking_number: format!("1ZCLUSTER{i:09}"),
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

/// Every non-control record of `carrier-events` in a stopped node's log.
fn events_in(data: &Path) -> Vec<String> {
    let log = Log::open(LogConfig::new(data.join("log"))).unwrap();
    let mut out = Vec::new();
    for p in 0..PARTITIONS {
        let part = log.partition("carrier-events", p).unwrap();
        let mut offset = part.start_offset();
        while offset < part.durable_offset() {
            for view in part.read(offset, 1 << 20).unwrap() {
                if !view.is_control() {
                    for r in view.records() {
                        out.push(CarrierEvent::decode(r.value).unwrap().tracking_number);
                    }
                }
                offset = view.last_offset() + 1;
            }
        }
    }
    out
}

#[test]
fn leader_killed_under_load_loses_nothing_and_the_restarted_node_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let out = dropline()
        .args(["cluster", "init", "--nodes", "3", "--partitions", "2"])
        .args(["--tick-ms", "50", "--dir"])
        .arg(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut nodes: Vec<ClusterNodeProc> = (1..=NODES)
        .map(|id| {
            let config = root.join(format!("node-{id}.toml"));
            let (proc, quic, http) = spawn_node(&config);
            ClusterNodeProc {
                id,
                config,
                data: root.join(format!("node-{id}")),
                proc: Some(proc),
                quic,
                http,
            }
        })
        .collect();
    let token = std::fs::read_to_string(root.join("adapter.token")).unwrap();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sent = runtime.block_on(async {
        let leaders = wait_leaders(nodes[0].http, 0).await;
        let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.quic).collect();
        let mut config = IngestClientConfig::new_cluster(
            &addrs,
            ServerTrust::CaCertPem(root.join("certs").join("ca.pem")),
            "default",
            token.trim().as_bytes().to_vec(),
        )
        .unwrap();
        config.partitions = Some(PARTITIONS);
        config.batch_records_max = 64;
        config.linger_us = 1_000;
        config.connect_timeout_ms = 1_000;
        config.idle_timeout_ms = 1_500;
        config.backoff_initial_ms = 20;
        config.backoff_max_ms = 300;
        config.buffered_bytes_max = 4 << 20;
        // Acked events per partition, for waiting on acks.
        let (acks_tx, mut acks_rx) = tokio::sync::watch::channel(vec![0u64; PARTITIONS as usize]);
        let acks_tx = Arc::new(acks_tx);
        let observer_tx = acks_tx.clone();
        config.ack_observer = Some(Arc::new(move |a| {
            observer_tx.send_modify(|v| v[a.partition as usize] += u64::from(a.records));
        }));
        let client = Arc::new(IngestClient::connect(config).await.unwrap());

        // A continuous load until told to stop.
        let stop = Arc::new(AtomicBool::new(false));
        let load = {
            let (client, stop) = (client.clone(), stop.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    client.send(&event(i)).await.unwrap();
                    i += 1;
                }
                i
            })
        };
        let wait_acks = |rx: &mut tokio::sync::watch::Receiver<Vec<u64>>, p: usize, n: u64| {
            let mut rx = rx.clone();
            async move {
                tokio::time::timeout(WAIT_DEADLINE, rx.wait_for(|v| v[p] >= n))
                    .await
                    .expect("acks did not come")
                    .unwrap();
            }
        };
        wait_acks(&mut acks_rx, 0, 2_000).await;

        // Kill the leader of partition 0 without warning.
        let victim = leaders[0];
        let acked_before = acks_rx.borrow()[0];
        let killed = Instant::now();
        nodes[(victim - 1) as usize]
            .proc
            .as_mut()
            .unwrap()
            .sigkill();
        nodes[(victim - 1) as usize].proc = None;
        let survivor = nodes.iter().find(|n| n.id != victim).unwrap().http;
        let new_leaders = wait_leaders(survivor, victim).await;
        report(
            "cluster leader SIGKILL",
            "new leader elected",
            killed.elapsed(),
        );
        assert_ne!(new_leaders[0], victim);
        // Writes to partition 0 are acknowledged again.
        wait_acks(&mut acks_rx, 0, acked_before + 1_000).await;
        report(
            "cluster leader SIGKILL",
            "1,000 more events acknowledged on partition 0",
            killed.elapsed(),
        );
        stop.store(true, Ordering::Relaxed);
        let sent = load.await.unwrap();
        tokio::time::timeout(WAIT_DEADLINE, client.flush())
            .await
            .expect("flush did not finish")
            .unwrap();
        let m = client.metrics();
        assert_eq!(
            m.events_acked, sent,
            "every event sent was acknowledged: {m:?}"
        );
        assert_eq!(m.events_rejected, 0, "{m:?}");
        assert!(m.leader_redirects >= 1 || m.connect_failures >= 1, "{m:?}");
        println!("client after failover: {m:?}");
        match Arc::try_unwrap(client) {
            Ok(c) => c.close().await.unwrap(),
            Err(_) => panic!("client still shared"),
        }

        // The killed node comes back and catches up with the leader.
        let restarted = Instant::now();
        let n = &mut nodes[(victim - 1) as usize];
        let (proc, quic, http) = spawn_node(&n.config);
        (n.proc, n.quic, n.http) = (Some(proc), quic, http);
        let leader_http = nodes[(new_leaders[0] - 1) as usize].http;
        let restarted_http = nodes[(victim - 1) as usize].http;
        wait_caught_up(leader_http, restarted_http).await;
        report(
            "cluster leader SIGKILL",
            "restarted node caught up",
            restarted.elapsed(),
        );
        sent
    });

    // Stop every node, then read each replica's log offline.
    for n in &mut nodes {
        let exit = n.proc.as_mut().unwrap().interrupt();
        assert!(exit.success(), "node {} exited with {exit}", n.id);
    }
    for n in &nodes {
        let events = events_in(&n.data);
        let unique: HashSet<&String> = events.iter().collect();
        assert_eq!(
            unique.len(),
            events.len(),
            "node {}: {} duplicated events",
            n.id,
            events.len() - unique.len()
        );
        for i in 0..sent {
            assert!(
                unique.contains(&event(i).tracking_number),
                "node {}: acknowledged event {i} missing",
                n.id
            );
        }
        assert_eq!(events.len() as u64, sent, "node {}", n.id);
    }
    for n in &nodes[1..] {
        let out = dropline()
            .args(["log", "verify", "--compare"])
            .arg(&nodes[0].data)
            .arg(&n.data)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "node 1 vs {}: {stdout}", n.id);
        assert!(stdout.contains("common prefixes identical"), "{stdout}");
        for line in stdout.lines().filter(|l| l.contains("carrier-events")) {
            assert!(line.contains("both end at offset"), "{line}");
        }
    }
}
