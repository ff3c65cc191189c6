//! A network partition isolating a leader, with real processes on real
//! QUIC + TLS: three `dropline serve` nodes, each in its own network
//! namespace (a "host" of `netns_support`, made by `dropline cluster init
//! --hosts`), and two clients:
//!
//! - the majority-side client, in the test's own namespace, knowing every
//!   node, sending a steady load;
//! - the minority-side client, started inside the cut-off host right after
//!   the cut and knowing only that node, sending its own load.
//!
//! The leader of partition 0 is cut off (its switch port down). Checked:
//! the majority elects a new leader and acknowledges 1,000 more events on
//! every partition; the cut-off node steps down, its committed offsets do
//! not move, and the minority-side client gets no ack at all while it is
//! cut off. Then 10 % UDP loss and a 2 Mbit/s rate limit (a queue of up to
//! 100 ms) on the new leader's link, and 2,000 more events per partition
//! must still be acknowledged (the limit is checked to have held packets
//! back). Then everything heals: both clients flush
//! (every event either sent is acknowledged; the minority-side client
//! follows a redirect to the new leader), and the replicas converge (same
//! commit index and committed offset on every node for every partition).
//! Finally, the stopped nodes' logs: every event of both loads exactly once
//! on every replica, every ack naming a batch of that producer and
//! sequence at those offsets on every replica (the cut node's uncommitted
//! proposals were cut, never kept), and `dropline log verify --compare`
//! finds the replicas byte-identical.
//!
//! The cut-off node's status is read from inside its namespace, where its
//! HTTP port stays reachable. Nothing sleeps to wait: waits are on acks and
//! on status polls, each bounded by a deadline; times are printed, never
//! asserted. Every child process is killed when the test ends, however it
//! ends (`Proc` kills on drop, before the namespaces are removed).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chaos_support;
mod cluster_support;
mod netns_support;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use chaos_support::{Proc, eventually_blocking, report};
use cluster_support::{
    Load, STATUS_PATH, admin_token, assert_replicas_identical, client_config, committed_offset,
    event, flush_and_close, get_json, init_cluster, leaders, partition, read_replica, spawn_node,
};
use dropline_adapters::client::IngestClient;
use netns_support::Net;
use serde_json::Value;

const PARTITIONS: u32 = 2;
/// Tracking numbers of the majority-side load.
const MAJORITY: &str = "NETMAJOR";
/// Tracking numbers of the minority-side load.
const MINORITY: &str = "NETMINOR";
const SCENARIO: &str = "cluster network partition";

/// One node, in host `host` of the harness.
struct Node {
    id: u64,
    host: usize,
    quic: SocketAddr,
    http: SocketAddr,
    data: PathBuf,
    proc: Proc,
}

/// A node's cluster status, read from inside its own namespace (so it is
/// readable while the host is cut off).
fn status(net: &Net, node: &Node) -> Option<Value> {
    let http = node.http;
    let token = admin_token(&node.data);
    net.in_host(node.host, move || get_json(http, STATUS_PATH, &token))
}

/// Every node's status, or `None` if one does not answer.
fn statuses(net: &Net, nodes: &[Node]) -> Option<Vec<Value>> {
    nodes.iter().map(|n| status(net, n)).collect()
}

/// Polls `f` until it gives a value; fails naming `what` after the chaos
/// tests' deadline.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let mut found = None;
    eventually_blocking(what, || {
        found = f();
        found.is_some()
    });
    found.unwrap()
}

#[test]
fn a_partition_cutting_off_the_leader_stops_its_acks_loses_nothing_and_converges() {
    // Declared first, dropped last: the nodes are killed before their
    // namespaces go.
    let Some(net) = netns_support::require(3) else {
        return;
    };
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let hosts: Vec<String> = (0..3).map(|i| net.host_ip(i).to_string()).collect();
    init_cluster(root, PARTITIONS, &["--hosts".to_string(), hosts.join(",")]);
    let mut nodes: Vec<Node> = (0..3)
        .map(|host| {
            let id = host as u64 + 1;
            let program = net.command(host, env!("CARGO_BIN_EXE_dropline"));
            let (proc, quic, http) = spawn_node(program, &root.join(format!("node-{id}.toml")));
            assert_eq!(
                quic.ip(),
                net.host_ip(host),
                "node {id} listens on its host"
            );
            Node {
                id,
                host,
                quic,
                http,
                data: root.join(format!("node-{id}")),
                proc,
            }
        })
        .collect();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _entered = runtime.enter();

    let first_leaders = wait_for("every node agrees on a leader of every partition", || {
        let s = statuses(&net, &nodes)?;
        let l = leaders(&s[0], PARTITIONS);
        (l.iter().all(|&x| x != 0) && s.iter().all(|x| leaders(x, PARTITIONS) == l)).then_some(l)
    });

    // The majority-side client, in the test's namespace, knows every node.
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.quic).collect();
    let (config, acks) = client_config(&addrs, root, PARTITIONS);
    let client = Arc::new(runtime.block_on(IngestClient::connect(config)).unwrap());
    let producer = client.producer_id();
    let load = Load::start(client.clone(), MAJORITY);
    for p in 0..PARTITIONS {
        runtime.block_on(acks.wait(p, 1_000, "before the cut"));
    }

    // Cut the leader of partition 0 off.
    let victim = first_leaders[0];
    let cut_host = (victim - 1) as usize;
    let cut = Instant::now();
    net.isolate(cut_host);

    // The minority-side client: inside the cut-off host (its socket lives
    // there), knowing only that node, sending from right after the cut.
    let (config, minority_acks) = client_config(&[nodes[cut_host].quic], root, PARTITIONS);
    let minority = Arc::new(
        net.in_host(cut_host, || runtime.block_on(IngestClient::connect(config)))
            .unwrap(),
    );
    let minority_producer = minority.producer_id();
    let minority_load = Load::start(minority.clone(), MINORITY);

    // The majority elects a new leader of partition 0.
    let survivor = (0..3).find(|&h| h != cut_host).unwrap();
    let new_leader = wait_for("the majority elects a new leader of partition 0", || {
        let l = partition(&status(&net, &nodes[survivor])?, 0)["leader"].as_u64()?;
        (l != 0 && l != victim).then_some(l)
    });
    report(SCENARIO, "majority elected a new leader", cut.elapsed());
    // The cut-off node notices it lost its quorum (check-quorum) and stops
    // leading; what it had committed then is all it ever commits while cut.
    let frozen: Vec<u64> = wait_for("the cut-off node steps down", || {
        let s = status(&net, &nodes[cut_host])?;
        (0..PARTITIONS)
            .all(|p| partition(&s, p)["role"] != "leader")
            .then(|| {
                (0..PARTITIONS)
                    .map(|p| committed_offset(&s, p).unwrap())
                    .collect()
            })
    });
    report(SCENARIO, "cut-off leader stepped down", cut.elapsed());

    // The majority side goes on acknowledging, on every partition.
    let before: Vec<u64> = (0..PARTITIONS).map(|p| acks.count(p)).collect();
    for p in 0..PARTITIONS {
        runtime.block_on(acks.wait(p, before[p as usize] + 1_000, "on the majority side"));
    }
    report(
        SCENARIO,
        "1,000 more events per partition acknowledged by the majority",
        cut.elapsed(),
    );

    // Loss and a slow link on the new leader's host: acks still advance.
    let slow_host = (new_leader - 1) as usize;
    net.set_loss(slow_host, 10, None);
    net.set_rate(slow_host, Some((2_000, 100)));
    let faults = Instant::now();
    let before: Vec<u64> = (0..PARTITIONS).map(|p| acks.count(p)).collect();
    for p in 0..PARTITIONS {
        runtime.block_on(acks.wait(
            p,
            before[p as usize] + 2_000,
            "with loss and a rate limit on the new leader's link",
        ));
    }
    report(
        SCENARIO,
        "2,000 more events per partition acknowledged with 10 % loss and 2 Mbit/s",
        faults.elapsed(),
    );
    // The limit did hold traffic back (tbf counts what had to wait).
    let stats = net.link_stats(slow_host);
    let overlimits: u64 = stats
        .split("overlimits ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(overlimits > 0, "the rate limit never bit: {stats}");

    // All this while, the cut-off side acknowledged nothing.
    let cut_status = status(&net, &nodes[cut_host]).expect("the cut-off node answers in its host");
    let majority_status = status(&net, &nodes[survivor]).unwrap();
    for p in 0..PARTITIONS {
        assert_eq!(
            committed_offset(&cut_status, p),
            Some(frozen[p as usize]),
            "partition {p}: the cut-off node committed while cut off: {cut_status}"
        );
        assert_ne!(partition(&cut_status, p)["role"], "leader", "{cut_status}");
        assert!(
            committed_offset(&majority_status, p).unwrap() > frozen[p as usize],
            "partition {p}: the majority did not commit past the cut-off node: {majority_status}"
        );
    }
    let cut_metrics = minority.metrics();
    assert_eq!(
        minority_acks.total(),
        0,
        "the cut-off node acknowledged events: {cut_metrics:?}"
    );
    assert!(
        cut_metrics.events_accepted > 0 && cut_metrics.connects > 0,
        "the minority-side client sent nothing to the cut-off node: {cut_metrics:?}"
    );

    // Heal everything.
    net.set_loss(slow_host, 0, None);
    net.set_rate(slow_host, None);
    net.heal(cut_host);
    let healed = Instant::now();
    let sent = runtime.block_on(load.stop("majority-side load"));
    let minority_sent = runtime.block_on(minority_load.stop("minority-side load"));
    let m = runtime.block_on(flush_and_close(client, sent, "majority-side client"));
    println!("majority-side client: {m:?}");
    let mm = runtime.block_on(flush_and_close(
        minority,
        minority_sent,
        "minority-side client",
    ));
    println!("minority-side client: {mm:?}");
    assert!(
        mm.leader_redirects >= 1,
        "the minority-side client's events were acknowledged without a redirect from the cut-off node: {mm:?}"
    );
    report(
        SCENARIO,
        "healed: every event of both clients acknowledged",
        healed.elapsed(),
    );

    // The replicas converge: same commit index and committed offset on
    // every node, each having applied what it committed.
    wait_for("the replicas converge after healing", || {
        let s = statuses(&net, &nodes)?;
        (0..PARTITIONS)
            .all(|p| {
                let first = partition(&s[0], p);
                s.iter().map(|x| partition(x, p)).all(|x| {
                    !first.is_null()
                        && x["committed_offset"] == first["committed_offset"]
                        && x["commit_index"] == first["commit_index"]
                        && x["applied_index"] == x["commit_index"]
                })
            })
            .then_some(())
    });
    report(SCENARIO, "replicas converged", healed.elapsed());

    // Stop every node (all at once, so the last ones running do not elect
    // a new leader), then read each replica's log offline.
    for n in &nodes {
        n.proc.send_interrupt();
    }
    for n in &mut nodes {
        let exit = n.proc.wait();
        assert!(exit.success(), "node {} exited with {exit}", n.id);
    }
    let expected: HashSet<String> = (0..sent)
        .map(|i| event(MAJORITY, i).tracking_number)
        .chain((0..minority_sent).map(|i| event(MINORITY, i).tracking_number))
        .collect();
    let (acked, minority_acked) = (acks.all(), minority_acks.all());
    for n in &nodes {
        let replica = read_replica(n.id, &n.data, PARTITIONS);
        replica.assert_exactly_once(&expected);
        replica.assert_acks_in_place(producer, &acked);
        replica.assert_acks_in_place(minority_producer, &minority_acked);
    }
    let datas: Vec<PathBuf> = nodes.iter().map(|n| n.data.clone()).collect();
    assert_replicas_identical(&datas, PARTITIONS);
    println!(
        "{sent} + {minority_sent} events, {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
}
