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
mod cluster_support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use chaos_support::{Proc, WAIT_DEADLINE, metrics_text, report};
use cluster_support::{
    Load, STATUS_POLL, assert_replicas_identical, client_config, dropline, event, flush_and_close,
    init_cluster, partition, read_replica, spawn_node,
};
use dropline_adapters::client::IngestClient;
use dropline_adapters::http::{DEAD_LETTERS_TOPIC, HTTP_DEAD_LETTER_KEY, HttpDeadLetter};
use dropline_log::{Log, LogConfig};

const NODES: u64 = 3;
const PARTITIONS: u32 = 2;
/// Tracking numbers of this test's load.
const TAG: &str = "CLUSTER";

struct ClusterNodeProc {
    id: u64,
    config: PathBuf,
    data: PathBuf,
    proc: Option<Proc>,
    quic: SocketAddr,
    http: SocketAddr,
}

async fn status(http: SocketAddr, token: &str) -> Option<serde_json::Value> {
    let response = reqwest::Client::new()
        .get(format!("http://{http}{}", cluster_support::STATUS_PATH))
        .bearer_auth(token)
        .send()
        .await
        .ok()?;
    response.json().await.ok()
}

/// Waits until node `http` knows a leader of every partition, none of
/// them `not`; returns the leaders.
async fn wait_leaders(http: SocketAddr, not: u64, token: &str) -> Vec<u64> {
    let deadline = Instant::now() + WAIT_DEADLINE;
    loop {
        if let Some(s) = status(http, token).await {
            let leaders = cluster_support::leaders(&s, PARTITIONS);
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
async fn wait_caught_up(a: SocketAddr, b: SocketAddr, token: &str) {
    let deadline = Instant::now() + WAIT_DEADLINE;
    loop {
        if let (Some(x), Some(y)) = (status(a, token).await, status(b, token).await)
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

#[test]
fn leader_killed_under_load_loses_nothing_and_the_restarted_node_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    init_cluster(root, PARTITIONS, &[]);
    let token = cluster_support::admin_token(root);
    let mut nodes: Vec<ClusterNodeProc> = (1..=NODES)
        .map(|id| {
            let config = root.join(format!("node-{id}.toml"));
            let (proc, quic, http) = spawn_node(dropline(), &config);
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

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (sent, acks, producer_id) = runtime.block_on(async {
        let leaders = wait_leaders(nodes[0].http, 0, &token).await;
        // The status names every node's addresses: it takes the admin
        // token, and refusals are counted.
        let url = format!("http://{}{}", nodes[0].http, cluster_support::STATUS_PATH);
        let http = reqwest::Client::new();
        for attempt in [http.get(&url), http.get(&url).bearer_auth("not-the-token")] {
            let r = attempt.send().await.unwrap();
            assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED);
            assert_eq!(r.headers()["www-authenticate"], "Bearer");
        }
        let metrics = metrics_text(nodes[0].http).await;
        assert!(
            metrics.contains("dropline_cluster_admin_unauthorized_total 2"),
            "{metrics}"
        );
        // The cluster page shows every partition's leader as the status
        // has it, and asks for the token without one.
        let page = format!("http://{}{}", nodes[0].http, cluster_support::PAGE_PATH);
        let dom = tokio::task::block_in_place(|| {
            cluster_support::page_dom(&format!("{page}#token={token}"), 3_000)
        });
        for (p, leader) in leaders.iter().enumerate() {
            let row = dom
                .split("<tr ")
                .find(|r| r.starts_with(&format!("data-partition=\"{p}\"")))
                .unwrap_or_else(|| panic!("partition {p} missing: {dom}"));
            assert!(
                row.contains(&format!("data-leader=\"{leader}\"")),
                "partition {p} should show leader {leader}: {row}"
            );
        }
        assert!(
            !dom.contains("data-polls=\"0\""),
            "the page never polled: {dom}"
        );
        let dom = tokio::task::block_in_place(|| cluster_support::page_dom(&page, 3_000));
        assert!(
            dom.contains("id=\"auth\" style=\"display: block;\""),
            "{dom}"
        );
        let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.quic).collect();
        let (config, acks) = client_config(&addrs, root, PARTITIONS);
        let client = Arc::new(IngestClient::connect(config).await.unwrap());
        let producer_id = client.producer_id();
        let load = Load::start(client.clone(), TAG);
        acks.wait(0, 2_000, "before the kill").await;
        // The leader of partition 0 counts its commits and their latency.
        let p0_leader = nodes[(leaders[0] - 1) as usize].http;
        let metrics = metrics_text(p0_leader).await;
        let value = |name: &str| -> f64 {
            metrics
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or_else(|| panic!("{name} missing: {metrics}"))
        };
        assert!(value("dropline_cluster_commits_total") > 0.0);
        assert!(value("dropline_cluster_commit_seconds_total") > 0.0);
        assert!(value("dropline_cluster_group_commits_total") > 0.0);
        assert!(value("dropline_cluster_driver_turns_total") > 0.0);

        // Kill the leader of partition 0 without warning.
        let victim = leaders[0];
        let acked_before = acks.count(0);
        let killed = Instant::now();
        nodes[(victim - 1) as usize]
            .proc
            .as_mut()
            .unwrap()
            .sigkill();
        nodes[(victim - 1) as usize].proc = None;
        let survivor = nodes.iter().find(|n| n.id != victim).unwrap().http;
        let new_leaders = wait_leaders(survivor, victim, &token).await;
        report(
            "cluster leader SIGKILL",
            "new leader elected",
            killed.elapsed(),
        );
        assert_ne!(new_leaders[0], victim);
        // Writes to partition 0 are acknowledged again.
        acks.wait(0, acked_before + 1_000, "after the new leader")
            .await;
        report(
            "cluster leader SIGKILL",
            "1,000 more events acknowledged on partition 0",
            killed.elapsed(),
        );
        let sent = load.stop("load").await;
        let m = flush_and_close(client, sent, "client").await;
        assert!(m.leader_redirects >= 1 || m.connect_failures >= 1, "{m:?}");
        println!("client after failover: {m:?}");

        // The killed node comes back and catches up with the leader.
        let restarted = Instant::now();
        let n = &mut nodes[(victim - 1) as usize];
        let (proc, quic, http) = spawn_node(dropline(), &n.config);
        (n.proc, n.quic, n.http) = (Some(proc), quic, http);
        let leader_http = nodes[(new_leaders[0] - 1) as usize].http;
        let restarted_http = nodes[(victim - 1) as usize].http;
        wait_caught_up(leader_http, restarted_http, &token).await;
        report(
            "cluster leader SIGKILL",
            "restarted node caught up",
            restarted.elapsed(),
        );
        (sent, acks.all(), producer_id)
    });

    // Stop every node (all at once, so the last ones running do not elect
    // a new leader), then read each replica's log offline.
    for n in &nodes {
        n.proc.as_ref().unwrap().send_interrupt();
    }
    for n in &mut nodes {
        let exit = n.proc.as_mut().unwrap().wait();
        assert!(exit.success(), "node {} exited with {exit}", n.id);
    }
    let expected: HashSet<String> = (0..sent).map(|i| event(TAG, i).tracking_number).collect();
    for n in &nodes {
        let replica = read_replica(n.id, &n.data, PARTITIONS);
        replica.assert_exactly_once(&expected);
        replica.assert_acks_in_place(producer_id, &acks);
    }
    let datas: Vec<PathBuf> = nodes.iter().map(|n| n.data.clone()).collect();
    assert_replicas_identical(&datas, PARTITIONS);
    // The refused status requests are kept in node 0's dead-letters, with
    // the route and never the token: the two above, and those of the page
    // opened without a token (it polls every second).
    let log = Log::open(LogConfig::new(nodes[0].data.join("log"))).unwrap();
    let refused: Vec<HttpDeadLetter> = log
        .partition(DEAD_LETTERS_TOPIC, 0)
        .unwrap()
        .lookup_key(HTTP_DEAD_LETTER_KEY)
        .unwrap()
        .iter()
        .filter_map(|r| HttpDeadLetter::decode(&r.value))
        .collect();
    assert!(refused.len() >= 2, "{refused:?}");
    for letter in &refused {
        assert_eq!((letter.code, letter.route.as_str()), (4, "admin API"));
        assert_eq!(letter.payload, b"GET /admin/cluster/status");
    }
}
