//! Three replicated nodes in one process over real QUIC on 127.0.0.1 with
//! the cluster's mutual TLS: election, appends through `ReplicatedSink`
//! acknowledged and byte-identical on every replica, `not_leader` from a
//! follower with the leader's ingest address, failover when the leader's
//! node stops, catch-up of a restarted node; and the peer endpoint's
//! refusals (a certificate the cluster CA did not sign, a garbage frame).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dropline_adapters::cluster::frame::encode_frame;
use dropline_adapters::cluster::{
    ClusterConfig, ClusterNode, ClusterStatus, NodeSpec, PeerFrameError, ReplicatedSink, Role,
    generate_cluster_certs,
};
use dropline_adapters::ingest::{
    CARRIER_EVENTS_TOPIC, IngestAck, IngestSink, ProducerSeq, SinkError,
};
use dropline_adapters::wire::{ErrorCode, RecordRef};
use futures_util::future::{FutureExt as _, select_all};

const WAIT: Duration = Duration::from_secs(30);
const PRODUCER: u64 = 77;

fn ingest_addr(id: u64) -> String {
    format!("127.0.0.1:{}", 17_000 + id)
}

struct Cluster {
    root: tempfile::TempDir,
    specs: Vec<NodeSpec>,
    partitions: u32,
    replication: usize,
    nodes: Vec<Option<Arc<ClusterNode>>>,
}

fn config(
    root: &Path,
    specs: &[NodeSpec],
    id: u64,
    partitions: u32,
    replication: usize,
) -> ClusterConfig {
    let mut c = ClusterConfig::new(
        id,
        specs.to_vec(),
        partitions,
        root.join(format!("node-{id}")),
        root.join("certs"),
    );
    c.tick = Duration::from_millis(50);
    c.replication = replication;
    c
}

impl Cluster {
    async fn start(n: u64) -> Cluster {
        Cluster::start_with(n, 1, 3).await
    }

    async fn start_with(n: u64, partitions: u32, replication: usize) -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let ids: Vec<u64> = (1..=n).collect();
        generate_cluster_certs(&root.path().join("certs"), &ids, &["127.0.0.1".to_string()])
            .unwrap();
        let sockets: Vec<UdpSocket> = ids
            .iter()
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let specs: Vec<NodeSpec> = ids
            .iter()
            .zip(&sockets)
            .map(|(&id, s)| NodeSpec {
                id,
                peer_addr: s.local_addr().unwrap(),
                ingest_addr: ingest_addr(id),
            })
            .collect();
        let mut nodes = Vec::new();
        for (&id, socket) in ids.iter().zip(sockets) {
            let cfg = config(root.path(), &specs, id, partitions, replication);
            let node = ClusterNode::start_with_socket(cfg, socket).await.unwrap();
            nodes.push(Some(Arc::new(node)));
        }
        Cluster {
            root,
            specs,
            partitions,
            replication,
            nodes,
        }
    }

    fn live(&self) -> Vec<Arc<ClusterNode>> {
        self.nodes.iter().flatten().cloned().collect()
    }

    /// Waits until some live node leads partition 0; returns its id.
    async fn leader(&self) -> u64 {
        self.leader_of(0).await
    }

    /// Waits until some live node leads `partition`; returns its id.
    async fn leader_of(&self, partition: u32) -> u64 {
        let live = self.live();
        let waits = live.iter().map(|n| {
            let n = n.clone();
            async move {
                n.wait_for(WAIT, |s| {
                    s.partition(partition)
                        .is_some_and(|p| p.role == Role::Leader)
                })
                .await
                .map(|s| s.node_id)
            }
            .boxed()
        });
        let (found, _, _) = select_all(waits).await;
        found.expect("no leader elected in time")
    }

    fn node(&self, id: u64) -> Arc<ClusterNode> {
        self.nodes[(id - 1) as usize].clone().expect("node is up")
    }

    async fn stop(&mut self, id: u64) {
        let node = self.nodes[(id - 1) as usize].take().unwrap();
        let node = Arc::try_unwrap(node).expect("no other handle to the node");
        node.shutdown().await;
    }

    async fn restart(&mut self, id: u64) {
        let addr: SocketAddr = self.specs[(id - 1) as usize].peer_addr;
        let socket = UdpSocket::bind(addr).unwrap();
        let cfg = config(
            self.root.path(),
            &self.specs,
            id,
            self.partitions,
            self.replication,
        );
        let node = ClusterNode::start_with_socket(cfg, socket).await.unwrap();
        self.nodes[(id - 1) as usize] = Some(Arc::new(node));
    }

    /// Appends sequence `seq` of the test producer through whichever node
    /// leads, following `not_leader` and retrying transient refusals, until
    /// acknowledged.
    async fn append(&self, seq: u64) -> IngestAck {
        self.append_to(0, seq).await
    }

    async fn append_to(&self, partition: u32, seq: u64) -> IngestAck {
        let deadline = Instant::now() + WAIT;
        let key = format!("parcel-{seq}");
        let value = format!("scan {seq} ").repeat(1 + (seq % 7) as usize);
        let records = [RecordRef {
            key: key.as_bytes(),
            value: value.as_bytes(),
        }];
        let producer = ProducerSeq {
            producer_id: PRODUCER,
            sequence: seq,
        };
        loop {
            assert!(
                Instant::now() < deadline,
                "sequence {seq} not acknowledged in time"
            );
            let leader = self.leader_of(partition).await;
            let sink = ReplicatedSink::new(self.node(leader)).unwrap();
            let result = match sink.append(partition, producer, &records) {
                Ok(durable) => durable.await,
                Err(err) => Err(err),
            };
            match result {
                Ok(ack) => return ack,
                Err(SinkError::NotLeader { .. } | SinkError::Unavailable { .. }) => {
                    // Leadership moved while proposing: wait for the
                    // leader's status to change before asking again.
                    let node = self.node(leader);
                    let _ = node
                        .wait_for(Duration::from_secs(2), |s| {
                            s.partition(partition)
                                .is_none_or(|p| p.role != Role::Leader)
                        })
                        .await;
                }
                Err(other) => panic!("sequence {seq}: {other}"),
            }
        }
    }
}

/// The committed batches of partition 0 on `node`, as stored.
fn committed_batches(node: &ClusterNode, partition: u32, end: u64) -> Vec<Vec<u8>> {
    let p = node
        .log()
        .partition(CARRIER_EVENTS_TOPIC, partition)
        .unwrap();
    let mut out = Vec::new();
    let mut from = 0;
    while from < end {
        let views = p.read(from, 1 << 20).unwrap();
        assert!(!views.is_empty(), "committed data missing at offset {from}");
        for v in views {
            if v.base_offset() >= end {
                return out;
            }
            from = v.last_offset() + 1;
            out.push(v.as_bytes().to_vec());
        }
    }
    out
}

fn committed_offset(s: &ClusterStatus, partition: u32) -> u64 {
    s.partition(partition).map_or(0, |p| p.committed_offset)
}

/// Waits until every live node has applied up to the leader's committed
/// offset, then checks that all hold the same bytes; returns the batch
/// count.
async fn assert_identical(c: &Cluster) -> usize {
    assert_identical_at(c, 0).await
}

/// The same for `partition`, on the live nodes that hold it.
async fn assert_identical_at(c: &Cluster, partition: u32) -> usize {
    let leader = c.node(c.leader_of(partition).await);
    let end = committed_offset(&leader.status(), partition);
    let mut reference: Option<Vec<Vec<u8>>> = None;
    let holders = leader.config().replicas_of(partition);
    let mut checked = 0;
    for n in c.live() {
        if !holders.contains(&n.node_id()) {
            assert!(n.status().partition(partition).is_none());
            continue;
        }
        n.wait_for(WAIT, |s| committed_offset(s, partition) >= end)
            .await
            .unwrap_or_else(|| panic!("node {} did not catch up to offset {end}", n.node_id()));
        let batches = committed_batches(&n, partition, end);
        checked += 1;
        match &reference {
            None => reference = Some(batches),
            Some(r) => assert_eq!(r, &batches, "node {} differs", n.node_id()),
        }
    }
    assert!(
        checked >= 2,
        "partition {partition} checked on {checked} nodes"
    );
    reference.map_or(0, |r| r.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_fail_over_and_catch_up() {
    let mut c = Cluster::start(3).await;
    let first_leader = c.leader().await;

    let mut acks = Vec::new();
    for seq in 0..20 {
        acks.push(c.append(seq).await);
    }
    for w in acks.windows(2) {
        assert!(
            w[1].base_offset > w[0].last_offset,
            "offsets not increasing: {w:?}"
        );
    }
    // A retry of an acknowledged batch gets its original offsets.
    let again = c.append(19).await;
    assert!(again.duplicate);
    assert_eq!(
        (again.base_offset, again.last_offset),
        (acks[19].base_offset, acks[19].last_offset)
    );
    let batches = assert_identical(&c).await;
    assert!(batches >= 20, "{batches} batches committed");

    // A follower refuses with the leader's ingest address.
    let follower = (1..=3).find(|&id| id != first_leader).unwrap();
    let f = c.node(follower);
    f.wait_for(WAIT, |s| {
        s.partition(0).is_some_and(|p| p.leader == first_leader)
    })
    .await
    .expect("follower learns the leader");
    let sink = ReplicatedSink::new(f.clone()).unwrap();
    let record = [RecordRef {
        key: b"k",
        value: b"v",
    }];
    let err = match sink.append(
        0,
        ProducerSeq {
            producer_id: 1,
            sequence: 0,
        },
        &record,
    ) {
        Ok(durable) => durable.await.unwrap_err(),
        Err(err) => err,
    };
    assert_eq!(err.code(), ErrorCode::NotLeader);
    assert_eq!(err.to_string(), ingest_addr(first_leader));
    drop((sink, f));

    // The leader's node stops: another is elected and appends resume.
    let leader_elections: u64 = c.live().iter().map(|n| n.status().elections).sum();
    assert!(leader_elections >= 1);
    c.stop(first_leader).await;
    let second_leader = c.leader().await;
    assert_ne!(second_leader, first_leader);
    // The idempotent producer carried over: the last batch retried at the
    // new leader is recognised, not appended again.
    let again = c.append(19).await;
    assert!(again.duplicate);
    assert_eq!(again.base_offset, acks[19].base_offset);
    for seq in 20..30 {
        let ack = c.append(seq).await;
        assert!(!ack.duplicate);
        assert!(ack.base_offset > acks[19].last_offset);
    }
    assert_identical(&c).await;

    // The stopped node restarts from its directory and catches up.
    c.restart(first_leader).await;
    for seq in 30..35 {
        c.append(seq).await;
    }
    let batches = assert_identical(&c).await;
    assert_eq!(c.live().len(), 3);
    assert!(batches >= 35, "{batches} batches committed");
    let leader = c.node(c.leader().await);
    let st = leader.status();
    let p = st.partition(0).unwrap();
    assert_eq!(p.followers.len(), 2, "{p:?}");

    drop(leader);
    for id in 1..=3 {
        c.stop(id).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_are_placed_on_a_rotation_and_replicated_independently() {
    let mut c = Cluster::start_with(3, 4, 2).await;
    let cfg = c.node(1).config().clone();
    // Two replicas each, on consecutive nodes of the rotation.
    assert_eq!(cfg.replicas_of(0), vec![1, 2]);
    assert_eq!(cfg.replicas_of(1), vec![2, 3]);
    assert_eq!(cfg.replicas_of(2), vec![3, 1]);
    assert_eq!(cfg.replicas_of(3), vec![1, 2]);
    for n in c.live() {
        let hosted: Vec<u32> = (0..4)
            .filter(|&p| cfg.replicas_of(p).contains(&n.node_id()))
            .collect();
        let reported: Vec<u32> = n
            .wait_for(WAIT, |s| s.partitions.len() == hosted.len())
            .await
            .expect("status of every hosted partition")
            .partitions
            .iter()
            .map(|p| p.partition)
            .collect();
        assert_eq!(reported, hosted, "node {}", n.node_id());
    }
    for seq in 0..6 {
        for p in 0..4 {
            c.append_to(p, seq).await;
        }
    }
    for p in 0..4 {
        let batches = assert_identical_at(&c, p).await;
        assert!(batches >= 6, "partition {p}: {batches} batches");
    }
    // A node that holds no replica of partition 1 sends adapters to one
    // that does.
    let sink = ReplicatedSink::new(c.node(1)).unwrap();
    let record = [RecordRef {
        key: b"k",
        value: b"v",
    }];
    let producer = ProducerSeq {
        producer_id: 5,
        sequence: 0,
    };
    let err = match sink.append(1, producer, &record) {
        Ok(durable) => durable.await.unwrap_err(),
        Err(err) => err,
    };
    assert_eq!(err.code(), ErrorCode::NotLeader);
    assert_eq!(err.to_string(), ingest_addr(2));
    drop(sink);
    for id in 1..=3 {
        c.stop(id).await;
    }
}

fn read_pem_certs(path: &Path) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject as _;
    rustls::pki_types::CertificateDer::pem_file_iter(path)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A QUIC client that trusts `ca_dir`'s CA and presents `cert_dir`'s node
/// `id` certificate.
fn client(ca_dir: &Path, cert_dir: &Path, id: u64) -> quinn::Endpoint {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for c in read_pem_certs(&ca_dir.join("ca.pem")) {
        roots.add(c).unwrap();
    }
    let chain = read_pem_certs(&cert_dir.join(format!("node-{id}.pem")));
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(
        cert_dir.join(format!("node-{id}-key.pem")),
    )
    .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    tls.alpn_protocols = vec![b"dropline-peer/1".to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    ep
}

async fn one_node() -> (Cluster, PathBuf) {
    let c = Cluster::start(1).await;
    let certs = c.root.path().join("certs");
    (c, certs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_not_signed_by_the_cluster_ca_is_refused() {
    let (mut c, certs) = one_node().await;
    let node = c.node(1);
    let addr = node.peer_addr().unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    for key in ["ca-key.pem", "node-1-key.pem"] {
        let mode = std::fs::metadata(certs.join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
    let foreign = c.root.path().join("foreign");
    generate_cluster_certs(&foreign, &[1], &["127.0.0.1".to_string()]).unwrap();

    // Control: the cluster's own certificate is accepted.
    let ok = client(&certs, &certs, 1);
    let conn = ok
        .connect(addr, "node-1")
        .unwrap()
        .await
        .expect("own CA accepted");
    conn.close(0u32.into(), b"done");
    ok.wait_idle().await;

    // The same name, signed by another CA: refused.
    let bad = client(&certs, &foreign, 1);
    let refused = async {
        let conn = bad.connect(addr, "node-1").unwrap().await?;
        // TLS 1.3: the client may finish before the server's verdict.
        let mut s = conn.open_uni().await?;
        let _ = s.write_all(b"x").await;
        Err::<(), _>(conn.closed().await)
    }
    .await;
    assert!(refused.is_err());
    let st = node
        .wait_for(WAIT, |s| s.peer.handshakes_refused >= 1)
        .await
        .expect("refusal counted");
    assert_eq!(st.peer.frames_received, 0);
    drop(node);
    c.stop(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_corrupt_frames_are_typed_errors_counted_and_close_the_connection() {
    let (mut c, certs) = one_node().await;
    let node = c.node(1);
    let addr = node.peer_addr().unwrap();
    let ep = client(&certs, &certs, 1);

    let conn = ep.connect(addr, "node-1").unwrap().await.unwrap();
    let mut s = conn.open_uni().await.unwrap();
    s.write_all(b"GARBAGE, NOT A PEER FRAME").await.unwrap();
    let _ = s.finish();
    match conn.closed().await {
        quinn::ConnectionError::ApplicationClosed(close) => {
            let expected = PeerFrameError::BadMagic { got: *b"GARB" };
            assert_eq!(close.error_code, expected.close_code().into());
            assert_eq!(close.reason.as_ref(), expected.to_string().as_bytes());
        }
        other => panic!("expected an application close, got {other}"),
    }
    node.wait_for(WAIT, |s| s.peer.bad_frames >= 1)
        .await
        .expect("bad frame counted");

    // A well-formed frame with one body byte flipped: checksum mismatch.
    let mut m = raft::eraftpb::Message::default();
    m.set_msg_type(raft::eraftpb::MessageType::MsgHeartbeat);
    let mut frame = encode_frame(&[(0, m)]);
    let last = frame.len() - 1;
    frame[last] ^= 1;
    let conn = ep.connect(addr, "node-1").unwrap().await.unwrap();
    let mut s = conn.open_uni().await.unwrap();
    s.write_all(&frame).await.unwrap();
    let _ = s.finish();
    match conn.closed().await {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.error_code, 5u32.into(), "{close:?}");
        }
        other => panic!("expected an application close, got {other}"),
    }
    let st = node
        .wait_for(WAIT, |s| s.peer.bad_frames >= 2)
        .await
        .expect("second bad frame counted");
    assert_eq!(st.peer.frames_received, 0);
    // The node still serves: its single-replica partition elects itself.
    node.wait_for(WAIT, |s| {
        s.partition(0).is_some_and(|p| p.role == Role::Leader)
    })
    .await
    .expect("still running");
    drop(node);
    c.stop(1).await;
}
