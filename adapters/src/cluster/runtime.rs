//! [`ClusterNode`]: the replicas of many partitions (one Raft group per
//! partition) on one node, driven by one thread, talking to peers through
//! [`super::transport`].
//!
//! One turn of the driver: wait for input or the next tick; take every
//! queued input (peer messages, proposals, link failures); tick every
//! replica when the tick is due (every `tick` with ±25 % jitter drawn per
//! node, so the nodes' election timers drift apart as in the simulation);
//! for every replica, `ready` (new entries into its unsynced tail), the
//! completion of a finished fdatasync (the messages that waited for it),
//! and the start of the next one: the tail is written to the partition as
//! one group commit, the partition's syncer runs the fdatasync, and a task
//! wakes the driver when it completes, so the turn never waits for a disk
//! (see [`drive_group`]); send each peer all its messages of the turn as
//! one frame; complete the proposers whose batches committed.
//!
//! Placement is static: by default partition `p` is replicated on `R`
//! consecutive nodes of the configured order starting at node `p mod n`
//! (the first R nodes of a rotation). Raft ids are the node ids.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dropline_engine::cluster::{
    PartitionReplicaLog, Proposal, Replica, ReplicaConfig, ReplicaStorage, StateFile,
};
use dropline_log::{Log, LogConfig, Record, TopicConfig};
use raft::StateRole;
use raft::eraftpb::{Message, MessageType};
use tokio::sync::{oneshot, watch};

use super::tls::PeerTls;
use super::transport::{PeerMetricsSnapshot, PeerSender, Transport, TransportError};
use crate::ingest::{CARRIER_EVENTS_TOPIC, DEAD_LETTERS_PARTITIONS, DEAD_LETTERS_TOPIC, IngestAck};

/// One node of the cluster as every node's configuration names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// Node id (non-zero, unique): also its Raft id in every group.
    pub id: u64,
    /// Address of its peer endpoint (QUIC, mutual TLS).
    pub peer_addr: SocketAddr,
    /// Address adapters reach its ingest server at (`host:port`): what a
    /// follower answers `not_leader` with.
    pub ingest_addr: String,
}

/// A node's cluster configuration.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// This node's id (one of `nodes`).
    pub node_id: u64,
    /// Every node, in placement order.
    pub nodes: Vec<NodeSpec>,
    /// Partitions of the `carrier-events` topic.
    pub partitions: u32,
    /// Replicas per partition (clamped to the node count).
    pub replication: usize,
    /// Explicit placement: node ids per partition, overriding the rotation.
    pub placement: Option<Vec<Vec<u64>>>,
    /// Data directory: `log/` (the partition log) and `raft/` (state files).
    pub dir: PathBuf,
    /// Directory made by [`super::generate_cluster_certs`].
    pub certs_dir: PathBuf,
    /// Raft tick (default 100 ms); elections after 10 ticks.
    pub tick: Duration,
    /// Zero-fill segments ahead of appends (`LogConfig::preallocate_segments`).
    pub preallocate_segments: bool,
}

impl ClusterConfig {
    /// A configuration with defaults: replication 3, 100 ms ticks, rotation
    /// placement.
    pub fn new(
        node_id: u64,
        nodes: Vec<NodeSpec>,
        partitions: u32,
        dir: PathBuf,
        certs_dir: PathBuf,
    ) -> ClusterConfig {
        ClusterConfig {
            node_id,
            nodes,
            partitions,
            replication: 3,
            placement: None,
            dir,
            certs_dir,
            tick: Duration::from_millis(100),
            preallocate_segments: false,
        }
    }

    /// The node ids holding partition `p`.
    pub fn replicas_of(&self, p: u32) -> Vec<u64> {
        if let Some(pl) = &self.placement {
            return pl.get(p as usize).cloned().unwrap_or_default();
        }
        let n = self.nodes.len();
        if n == 0 {
            return Vec::new();
        }
        let r = self.replication.clamp(1, n);
        (0..r)
            .map(|k| self.nodes[(p as usize + k) % n].id)
            .collect()
    }

    fn ingest_addr_of(&self, id: u64) -> Option<String> {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .map(|n| n.ingest_addr.clone())
    }
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is inconsistent.
    #[error("cluster configuration: {0}")]
    Config(String),
    /// The log could not be opened.
    #[error("log: {0}")]
    Log(#[from] dropline_log::LogError),
    /// A replica could not be opened.
    #[error("replica: {0}")]
    Replica(#[from] dropline_engine::cluster::ClusterError),
    /// The transport could not start.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The certificates could not be loaded.
    #[error(transparent)]
    Tls(#[from] super::tls::PeerTlsError),
    /// The driver thread could not be started.
    #[error("driver thread: {0}")]
    Thread(std::io::Error),
}

/// Why a proposal was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// This node does not lead the partition.
    #[error("not the leader (leader {leader}, ingest address {leader_ingest_addr:?})")]
    NotLeader {
        /// The leader this node knows (0: none).
        leader: u64,
        /// Its ingest address, when known.
        leader_ingest_addr: Option<String>,
    },
    /// The partition does not exist.
    #[error("partition {partition} out of range")]
    UnknownPartition {
        /// The partition.
        partition: u32,
    },
    /// Older than the producer window the log remembers (appended long
    /// ago).
    #[error("stale producer sequence")]
    Stale,
    /// Raft refused the proposal for now (backpressure, sequence gap,
    /// leader transfer); retry later.
    #[error("refused: {0}")]
    Refused(&'static str),
    /// The replica failed (I/O); the node stops serving the partition.
    #[error("storage: {0}")]
    Storage(String),
    /// The node is stopping.
    #[error("the node is stopping")]
    Stopped,
}

/// A replica's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Leads its term.
    Leader,
    /// Follows.
    Follower,
    /// Campaigning.
    Candidate,
    /// Asking for pre-votes.
    PreCandidate,
}

/// One follower's progress as its leader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerStatus {
    /// Node id.
    pub id: u64,
    /// Highest Raft index known replicated there.
    pub matched: u64,
    /// Entries behind the leader's last index.
    pub lag: u64,
}

/// One hosted partition's replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionStatus {
    /// The partition.
    pub partition: u32,
    /// Node ids holding it.
    pub replicas: Vec<u64>,
    /// This replica's role.
    pub role: Role,
    /// Current term.
    pub term: u64,
    /// Leader known (0: none).
    pub leader: u64,
    /// Raft commit index known here.
    pub commit: u64,
    /// Index applied here (committed and durable here).
    pub applied: u64,
    /// Offset after the last applied batch.
    pub committed_offset: u64,
    /// Followers' progress (leader only).
    pub followers: Vec<FollowerStatus>,
    /// The replica failed and stopped; see the node's log output.
    pub failed: bool,
}

/// A node's cluster status, for metrics and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterStatus {
    /// This node.
    pub node_id: u64,
    /// Hosted partitions.
    pub partitions: Vec<PartitionStatus>,
    /// Times a replica of this node became leader.
    pub elections: u64,
    /// Peer transport counters (copied each turn).
    pub peer: PeerMetricsSnapshot,
    /// The driver's own counters.
    pub driver: DriverStats,
}

/// Counters of a node's driver thread, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Turns run.
    pub turns: u64,
    /// Time spent in turns (the rest is waiting for input), in µs.
    pub busy_us: u64,
    /// Producer batches acknowledged here as leader.
    pub commits: u64,
    /// Sum over those of the time from the proposal reaching the driver to
    /// its ack, in µs (with `commits`, the mean commit latency).
    pub commit_us: u64,
    /// Group-commit writes started (each one fdatasync on the partition's
    /// syncer).
    pub syncs_started: u64,
}

impl ClusterStatus {
    /// The status of `partition`, if hosted here.
    pub fn partition(&self, partition: u32) -> Option<&PartitionStatus> {
        self.partitions.iter().find(|p| p.partition == partition)
    }
}

type Reply = oneshot::Sender<Result<IngestAck, ProposeError>>;

/// What the driver thread receives.
pub(crate) enum Input {
    /// Messages from a peer frame.
    Messages(Vec<(u32, Message)>),
    /// A peer's link lost messages.
    Unreachable { peer: u64 },
    /// A batch to replicate.
    Propose {
        partition: u32,
        producer: dropline_log::ProducerSeq,
        /// Encoded by the proposer ([`dropline_log::encode_unplaced_batch`]).
        batch: Vec<u8>,
        /// The log time stamped on it.
        stamp_ms: u64,
        reply: Reply,
    },
    /// A partition's pending fdatasync completed (or failed).
    Synced,
    /// Stop.
    Stop,
}

/// A replicated node: its replicas, driver and transport. Stop it with
/// [`ClusterNode::shutdown`]; dropping it only stops the driver (the
/// transport's tasks end with the tokio runtime, the log with its last
/// handle).
pub struct ClusterNode {
    config: Arc<ClusterConfig>,
    log: Arc<Log>,
    to_driver: std::sync::mpsc::Sender<Input>,
    driver: Option<std::thread::JoinHandle<()>>,
    transport: Option<Transport>,
    status: watch::Receiver<ClusterStatus>,
    leaders: Arc<Mutex<HashMap<u32, u64>>>,
}

impl std::fmt::Debug for ClusterNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterNode")
            .field("node_id", &self.config.node_id)
            .finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl ClusterNode {
    /// Starts the node: binds the peer endpoint on `config`'s address for
    /// this node. Must run inside a tokio runtime.
    pub async fn start(config: ClusterConfig) -> Result<ClusterNode, StartError> {
        let me = config
            .nodes
            .iter()
            .find(|n| n.id == config.node_id)
            .ok_or_else(|| {
                StartError::Config(format!("node {} is not in nodes", config.node_id))
            })?;
        let socket = std::net::UdpSocket::bind(me.peer_addr)
            .map_err(|e| StartError::Transport(TransportError::Io(e)))?;
        ClusterNode::start_with_socket(config, socket).await
    }

    /// Starts the node on an already bound UDP socket (tests bind port 0
    /// first, then configure the addresses they got).
    pub async fn start_with_socket(
        config: ClusterConfig,
        socket: std::net::UdpSocket,
    ) -> Result<ClusterNode, StartError> {
        if config.node_id == 0 || config.nodes.iter().any(|n| n.id == 0) {
            return Err(StartError::Config("node ids must be non-zero".into()));
        }
        if config.partitions == 0 {
            return Err(StartError::Config("partitions must be at least 1".into()));
        }
        let tls = PeerTls::load(&config.certs_dir, config.node_id)?;
        let mut log_config = LogConfig::new(config.dir.join("log"));
        log_config.preallocate_segments = config.preallocate_segments;
        let log = Arc::new(Log::open(log_config)?);
        let existing = log
            .topics()
            .into_iter()
            .find(|t| t.name == CARRIER_EVENTS_TOPIC)
            .map(|t| t.config.partitions);
        match existing {
            Some(n) if n != config.partitions => {
                return Err(StartError::Config(format!(
                    "the log has {n} partitions of {CARRIER_EVENTS_TOPIC}, the configuration {}",
                    config.partitions
                )));
            }
            Some(_) => {}
            None => log.create_topic(CARRIER_EVENTS_TOPIC, TopicConfig::new(config.partitions))?,
        }
        if !log.topics().iter().any(|t| t.name == DEAD_LETTERS_TOPIC) {
            log.create_topic(
                DEAD_LETTERS_TOPIC,
                TopicConfig::new(DEAD_LETTERS_PARTITIONS),
            )?;
        }
        let raft_dir = config.dir.join("raft");
        std::fs::create_dir_all(&raft_dir)
            .map_err(|e| StartError::Config(format!("{}: {e}", raft_dir.display())))?;
        let mut groups = Vec::new();
        for p in 0..config.partitions {
            let voters = config.replicas_of(p);
            if !voters.contains(&config.node_id) {
                continue;
            }
            let part = log.partition(CARRIER_EVENTS_TOPIC, p)?;
            let storage = ReplicaStorage::open(
                PartitionReplicaLog::open(part)?,
                StateFile::new(raft_dir.join(format!("{CARRIER_EVENTS_TOPIC}-{p}.raft"))),
                voters.clone(),
            )?;
            let replica = Replica::new(ReplicaConfig::new(config.node_id), storage)?;
            groups.push(Group {
                partition: p,
                voters,
                replica: Some(replica),
                was_leader: false,
                watched: None,
                waiters: HashMap::new(),
            });
        }
        let peers: Vec<(u64, SocketAddr)> = config
            .nodes
            .iter()
            .filter(|n| n.id != config.node_id)
            .map(|n| (n.id, n.peer_addr))
            .collect();
        let (to_driver, inputs) = std::sync::mpsc::channel();
        let transport = Transport::start(socket, &tls, &peers, to_driver.clone())?;
        let config = Arc::new(config);
        let initial = ClusterStatus {
            node_id: config.node_id,
            ..ClusterStatus::default()
        };
        let (status_tx, status) = watch::channel(initial);
        let leaders = Arc::new(Mutex::new(HashMap::new()));
        let mut driver = Driver {
            config: config.clone(),
            groups,
            inputs,
            peers: transport.sender(),
            metrics: transport.metrics.clone(),
            status: status_tx,
            leaders: leaders.clone(),
            elections: 0,
            stats: DriverStats::default(),
            rng: config.node_id.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ now_ms(),
            wake: to_driver.clone(),
            runtime: tokio::runtime::Handle::current(),
        };
        let driver = std::thread::Builder::new()
            .name(format!("cluster-driver-{}", config.node_id))
            .spawn(move || driver.run())
            .map_err(StartError::Thread)?;
        Ok(ClusterNode {
            config,
            log,
            to_driver,
            driver: Some(driver),
            transport: Some(transport),
            status,
            leaders,
        })
    }

    /// This node's id.
    pub fn node_id(&self) -> u64 {
        self.config.node_id
    }

    /// The configuration.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The node's log (the replicated partitions are `carrier-events`).
    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// The peer endpoint's local address.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.transport.as_ref().and_then(|t| t.local_addr())
    }

    /// The leader of `partition` this node knows: `Some(id)`, or `None`
    /// while unknown or when this node holds no replica of it.
    pub fn leader_of(&self, partition: u32) -> Option<u64> {
        let leaders = self.leaders.lock().ok()?;
        leaders.get(&partition).copied().filter(|&l| l != 0)
    }

    /// The ingest address of node `id`.
    pub fn ingest_addr_of(&self, id: u64) -> Option<String> {
        self.config.ingest_addr_of(id)
    }

    /// The latest status (updated by the driver when it changes).
    pub fn status(&self) -> ClusterStatus {
        self.status.borrow().clone()
    }

    /// Waits until `cond` holds for the status, or `timeout` passes;
    /// returns the status that satisfied it.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut cond: impl FnMut(&ClusterStatus) -> bool,
    ) -> Option<ClusterStatus> {
        let mut rx = self.status.clone();
        let waited = tokio::time::timeout(timeout, async {
            loop {
                {
                    let s = rx.borrow_and_update();
                    if cond(&s) {
                        return Some(s.clone());
                    }
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await;
        waited.ok().flatten()
    }

    /// Replicates one producer batch of `partition`; completes once a
    /// majority holds it durably (and this node has applied it), or with
    /// the reason it will not. A retry of a batch already in the log (also
    /// one written under an earlier leader) is answered with its original
    /// offsets, `duplicate` set, and not appended twice.
    pub fn propose(
        &self,
        partition: u32,
        producer: dropline_log::ProducerSeq,
        records: &[Record<'_>],
    ) -> impl std::future::Future<Output = Result<IngestAck, ProposeError>> + Send + 'static {
        let stamp_ms = now_ms();
        let encoded = dropline_log::encode_unplaced_batch(
            &dropline_log::AppendRequest {
                records,
                producer: Some(producer),
            },
            false,
            stamp_ms,
        );
        let (reply, rx) = oneshot::channel();
        let sent = match encoded {
            Ok(batch) => self
                .to_driver
                .send(Input::Propose {
                    partition,
                    producer,
                    batch,
                    stamp_ms,
                    reply,
                })
                .map_err(|_| ProposeError::Stopped),
            Err(e) => Err(ProposeError::Refused(match e {
                dropline_log::LogError::EmptyBatch => "empty batch",
                dropline_log::LogError::KeyTooLarge { .. } => "a key exceeds the log's limit",
                dropline_log::LogError::RecordTooLarge { .. } => "a record exceeds the log's limit",
                dropline_log::LogError::BatchTooLarge { .. } => "the batch exceeds the log's limit",
                _ => "the batch cannot be encoded",
            })),
        };
        async move {
            sent?;
            rx.await.unwrap_or(Err(ProposeError::Stopped))
        }
    }

    /// Stops the driver (waiting proposers get [`ProposeError::Stopped`]),
    /// closes the peer connections and the log.
    pub async fn shutdown(mut self) {
        let _ = self.to_driver.send(Input::Stop);
        if let Some(d) = self.driver.take() {
            let _ = tokio::task::spawn_blocking(move || d.join()).await;
        }
        if let Some(t) = self.transport.take() {
            t.shutdown().await;
        }
        let log = self.log.clone();
        drop(self);
        // Closed when this was the last handle (a sink still holding the
        // node keeps it open until dropped).
        if let Ok(log) = Arc::try_unwrap(log)
            && let Err(err) = log.close()
        {
            tracing::warn!(%err, "closing the cluster node's log");
        }
    }
}

impl Drop for ClusterNode {
    fn drop(&mut self) {
        let _ = self.to_driver.send(Input::Stop);
    }
}

struct Group {
    partition: u32,
    voters: Vec<u64>,
    /// `None` once the replica failed.
    replica: Option<Replica>,
    was_leader: bool,
    /// The durable offset a wake-up task waits for (see [`Driver::turn`]).
    watched: Option<u64>,
    /// Proposers waiting per producer batch.
    waiters: HashMap<dropline_log::ProducerSeq, Waiting>,
}

/// The proposers of one producer batch.
struct Waiting {
    /// The log time stamped on the batch (the leader's clock), in ms.
    stamp_ms: u64,
    /// When the first proposal reached the driver.
    since: Instant,
    replies: Vec<Reply>,
}

struct Driver {
    config: Arc<ClusterConfig>,
    groups: Vec<Group>,
    inputs: std::sync::mpsc::Receiver<Input>,
    peers: PeerSender,
    metrics: Arc<super::transport::PeerMetrics>,
    status: watch::Sender<ClusterStatus>,
    leaders: Arc<Mutex<HashMap<u32, u64>>>,
    elections: u64,
    stats: DriverStats,
    rng: u64,
    /// For the wake-up tasks of pending fdatasyncs.
    wake: std::sync::mpsc::Sender<Input>,
    runtime: tokio::runtime::Handle,
}

impl Driver {
    fn next_tick(&mut self) -> Duration {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        // 75 % to 125 % of the configured tick.
        let base = self.config.tick.as_micros() as u64;
        Duration::from_micros(base * 3 / 4 + z % (base / 2).max(1))
    }

    fn group_index(&self, partition: u32) -> Option<usize> {
        self.groups.iter().position(|g| g.partition == partition)
    }

    fn not_leader(&self, leader: u64) -> ProposeError {
        ProposeError::NotLeader {
            leader,
            leader_ingest_addr: if leader == 0 {
                None
            } else {
                self.config.ingest_addr_of(leader)
            },
        }
    }

    fn run(&mut self) {
        let mut next_tick = Instant::now() + self.next_tick();
        let mut stopping = false;
        while !stopping {
            let wait = next_tick.saturating_duration_since(Instant::now());
            let mut inputs = Vec::new();
            match self.inputs.recv_timeout(wait) {
                Ok(i) => inputs.push(i),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
            while let Ok(i) = self.inputs.try_recv() {
                inputs.push(i);
            }
            for i in inputs {
                match i {
                    Input::Stop => stopping = true,
                    other => self.handle(other),
                }
            }
            if Instant::now() >= next_tick {
                for g in &mut self.groups {
                    if let Some(r) = g.replica.as_mut() {
                        r.tick();
                    }
                }
                next_tick = Instant::now() + self.next_tick();
            }
            let started = Instant::now();
            self.turn();
            self.stats.turns += 1;
            self.stats.busy_us += started.elapsed().as_micros() as u64;
        }
        for g in &mut self.groups {
            for (_, w) in g.waiters.drain() {
                for r in w.replies {
                    let _ = r.send(Err(ProposeError::Stopped));
                }
            }
        }
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Messages(msgs) => {
                for (group, m) in msgs {
                    // Only messages for this node, and never a proposal:
                    // followers do not forward them, so one arriving from
                    // the network would bypass the leader's checks.
                    if m.to != self.config.node_id || m.get_msg_type() == MessageType::MsgPropose {
                        continue;
                    }
                    let Some(i) = self.group_index(group) else {
                        continue;
                    };
                    let g = &mut self.groups[i];
                    if let Some(r) = g.replica.as_mut()
                        && let Err(err) = r.step(m)
                    {
                        tracing::error!(partition = g.partition, %err, "replica failed on step");
                        fail_group(g, &err.to_string());
                    }
                }
            }
            Input::Unreachable { peer } => {
                for g in &mut self.groups {
                    if g.voters.contains(&peer)
                        && let Some(r) = g.replica.as_mut()
                    {
                        r.report_unreachable(peer);
                    }
                }
            }
            Input::Propose {
                partition,
                producer,
                batch,
                stamp_ms,
                reply,
            } => self.propose(partition, producer, batch, stamp_ms, reply),
            // The turn that follows polls every pending sync.
            Input::Synced | Input::Stop => {}
        }
    }

    fn propose(
        &mut self,
        partition: u32,
        producer: dropline_log::ProducerSeq,
        batch: Vec<u8>,
        stamp_ms: u64,
        reply: Reply,
    ) {
        if partition >= self.config.partitions {
            let _ = reply.send(Err(ProposeError::UnknownPartition { partition }));
            return;
        }
        let Some(i) = self.group_index(partition) else {
            // Not hosted here: send the adapter to a node that holds it.
            let first = self
                .config
                .replicas_of(partition)
                .first()
                .copied()
                .unwrap_or(0);
            let _ = reply.send(Err(self.not_leader(first)));
            return;
        };
        let now = stamp_ms;
        let g = &mut self.groups[i];
        let Some(r) = g.replica.as_mut() else {
            let _ = reply.send(Err(ProposeError::Storage("the replica failed".into())));
            return;
        };
        match r.propose_batch(batch) {
            Ok(Proposal::Proposed { .. }) | Ok(Proposal::Pending) => {
                g.waiters
                    .entry(producer)
                    .or_insert_with(|| Waiting {
                        stamp_ms: now,
                        since: Instant::now(),
                        replies: Vec::new(),
                    })
                    .replies
                    .push(reply);
            }
            Ok(Proposal::AlreadyCommitted(ack)) => {
                let _ = reply.send(Ok(IngestAck {
                    base_offset: ack.base_offset,
                    last_offset: ack.last_offset,
                    log_time_ms: ack.log_time_ms,
                    duplicate: true,
                }));
            }
            Ok(Proposal::NotLeader { leader }) => {
                let err = self.not_leader(leader);
                let _ = reply.send(Err(err));
            }
            Ok(Proposal::Stale) => {
                let _ = reply.send(Err(ProposeError::Stale));
            }
            Ok(Proposal::Refused { reason }) => {
                let _ = reply.send(Err(ProposeError::Refused(reason)));
            }
            Err(err) => {
                tracing::error!(partition, %err, "replica failed on propose");
                let _ = reply.send(Err(ProposeError::Storage(err.to_string())));
                fail_group(g, &err.to_string());
            }
        }
    }

    fn turn(&mut self) {
        let mut outbox: HashMap<u64, Vec<(u32, Message)>> = HashMap::new();
        for g in &mut self.groups {
            if let Err(err) = drive_group(
                g,
                &mut outbox,
                &self.wake,
                &self.runtime,
                &mut self.stats.syncs_started,
            ) {
                tracing::error!(partition = g.partition, %err, "replica failed");
                fail_group(g, &err.to_string());
            }
        }
        let mut unreachable = Vec::new();
        for (peer, batch) in outbox {
            if !self.peers.send(peer, batch) {
                unreachable.push(peer);
            }
        }
        for peer in unreachable {
            self.handle(Input::Unreachable { peer });
        }
        let mut not_leader = Vec::new();
        for g in &mut self.groups {
            let Some(r) = g.replica.as_mut() else {
                continue;
            };
            for ack in r.take_acks() {
                if let Some(w) = g.waiters.remove(&ack.producer) {
                    self.stats.commits += 1;
                    self.stats.commit_us += w.since.elapsed().as_micros() as u64;
                    for reply in w.replies {
                        let _ = reply.send(Ok(IngestAck {
                            base_offset: ack.base_offset,
                            last_offset: ack.last_offset,
                            log_time_ms: w.stamp_ms,
                            duplicate: false,
                        }));
                    }
                }
            }
            let leader = r.is_leader();
            if leader && !g.was_leader {
                self.elections += 1;
            }
            g.was_leader = leader;
            if !leader && !g.waiters.is_empty() {
                not_leader.push((g.partition, r.leader()));
            }
        }
        for (partition, leader) in not_leader {
            let err = self.not_leader(leader);
            if let Some(i) = self.group_index(partition) {
                for (_, w) in self.groups[i].waiters.drain() {
                    for reply in w.replies {
                        let _ = reply.send(Err(err.clone()));
                    }
                }
            }
        }
        self.publish();
    }

    fn publish(&mut self) {
        let mut partitions = Vec::with_capacity(self.groups.len());
        let mut leaders = HashMap::new();
        for g in &self.groups {
            let st = match &g.replica {
                Some(r) => {
                    let last = r.last_index();
                    PartitionStatus {
                        partition: g.partition,
                        replicas: g.voters.clone(),
                        role: match r.role() {
                            StateRole::Leader => Role::Leader,
                            StateRole::Follower => Role::Follower,
                            StateRole::Candidate => Role::Candidate,
                            StateRole::PreCandidate => Role::PreCandidate,
                        },
                        term: r.term(),
                        leader: r.leader(),
                        commit: r.commit_index(),
                        applied: r.applied_index(),
                        committed_offset: r.committed_offset(),
                        followers: r
                            .follower_matches()
                            .into_iter()
                            .map(|(id, matched)| FollowerStatus {
                                id,
                                matched,
                                lag: last.saturating_sub(matched),
                            })
                            .collect(),
                        failed: false,
                    }
                }
                None => PartitionStatus {
                    partition: g.partition,
                    replicas: g.voters.clone(),
                    role: Role::Follower,
                    term: 0,
                    leader: 0,
                    commit: 0,
                    applied: 0,
                    committed_offset: 0,
                    followers: Vec::new(),
                    failed: true,
                },
            };
            leaders.insert(g.partition, st.leader);
            partitions.push(st);
        }
        if let Ok(mut l) = self.leaders.lock() {
            *l = leaders;
        }
        let status = ClusterStatus {
            node_id: self.config.node_id,
            partitions,
            elections: self.elections,
            peer: self.metrics.snapshot(),
            driver: self.stats,
        };
        self.status.send_if_modified(|s| {
            if *s == status {
                false
            } else {
                *s = status;
                true
            }
        });
    }
}

/// One group's part of a turn: Raft's ready (messages to send at once; new
/// entries into the unsynced tail), completion of a finished fdatasync
/// (the messages that waited for it, and the ready after it), and the start
/// of the next one: the tail is written to the partition, whose syncer runs
/// the fdatasync while the driver goes on; a task wakes the driver when it
/// completes. So a replica's fdatasync overlaps its peers' round trips and
/// the other partitions' work, instead of holding up the whole turn.
fn drive_group(
    g: &mut Group,
    outbox: &mut HashMap<u64, Vec<(u32, Message)>>,
    wake: &std::sync::mpsc::Sender<Input>,
    runtime: &tokio::runtime::Handle,
    syncs_started: &mut u64,
) -> Result<(), dropline_engine::cluster::ClusterError> {
    let Some(r) = g.replica.as_mut() else {
        return Ok(());
    };
    route(outbox, g.partition, r.ready()?);
    loop {
        route(outbox, g.partition, r.poll_sync()?);
        if !r.needs_sync() {
            return Ok(());
        }
        // Nothing written to wait for (a ready without entries): the next
        // poll completes it at once.
        let Some(target) = r.start_sync()? else {
            continue;
        };
        if g.watched != Some(target) {
            *syncs_started += 1;
            g.watched = Some(target);
            let durable = r.storage().log().partition().data_ready(target - 1);
            let wake = wake.clone();
            runtime.spawn(async move {
                let _ = durable.await;
                let _ = wake.send(Input::Synced);
            });
        }
        return Ok(());
    }
}

fn route(outbox: &mut HashMap<u64, Vec<(u32, Message)>>, group: u32, msgs: Vec<Message>) {
    for m in msgs {
        outbox.entry(m.to).or_default().push((group, m));
    }
}

/// A replica that failed stops: its waiters are answered, and the node
/// no longer takes part in that partition's group until restarted.
fn fail_group(g: &mut Group, err: &str) {
    g.replica = None;
    for (_, w) in g.waiters.drain() {
        for reply in w.replies {
            let _ = reply.send(Err(ProposeError::Storage(err.to_string())));
        }
    }
}
