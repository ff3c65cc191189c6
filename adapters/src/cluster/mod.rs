//! The networked runtime of a replicated node: the partitions' Raft groups
//! (`dropline_engine::cluster::Replica`) driven by one thread, their
//! messages carried between nodes over QUIC with mutual TLS, and the ingest
//! sink that appends through them.
//!
//! Map: [`tls`] (the cluster CA, node certificates and the TLS
//! configurations that accept only each other), [`frame`] (the peer frame:
//! a batch of Raft messages), [`transport`] (the QUIC endpoint, one
//! long-lived stream per peer, reconnects), [`runtime`] ([`ClusterNode`]:
//! placement, the driver loop, proposals, status), [`sink`]
//! ([`ReplicatedSink`], the ingest `IngestSink` over a node).
//!
//! Not built here: the metadata Raft group, membership changes and
//! snapshots (see docs/ARCHITECTURE.md, "Cluster").

pub mod frame;
pub mod runtime;
pub mod sink;
pub mod tls;
pub mod transport;

pub use frame::{PEER_FRAME_MAGIC, PEER_FRAME_VERSION, PeerFrameError};
pub use runtime::{
    ClusterConfig, ClusterNode, ClusterStatus, DriverStats, FollowerStatus, NodeSpec,
    PartitionStatus, ProposeError, Role, StartError,
};
pub use sink::ReplicatedSink;
pub use tls::{
    PEER_ALPN, PeerTls, PeerTlsError, generate_cluster_certs, generate_cluster_certs_named,
};
pub use transport::PeerMetricsSnapshot;
