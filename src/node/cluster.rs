//! A node of a replicated cluster (`dropline serve --config` with a
//! `[cluster]` section): the partitions' Raft groups
//! (`dropline_adapters::cluster::ClusterNode`), QUIC ingest through
//! `ReplicatedSink` (acknowledged once a majority has a batch durable;
//! followers answer `not_leader` with the leader's address), and a small
//! HTTP edge: `/health`, `/metrics` with the cluster gauges, `/ops/cluster`
//! (a page of the status, for operators) and
//! `/admin/cluster/status` (JSON, read by `dropline cluster status`; it
//! names every node's addresses, so it takes the node's admin token, as
//! the single node's admin API does).
//!
//! The engine, the tracking API and delivery do not run in cluster mode
//! yet: engine workers belong on the partition leaders, reading below the
//! committed offset, with replicated checkpoints (docs/STATUS.md).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use dropline_adapters::cluster::{ClusterConfig, ClusterNode, ClusterStatus, NodeSpec, Role};
use dropline_adapters::http::{AdminToken, refuse_unless_bearer};
use dropline_adapters::ingest::{IngestServerConfig, ServerHandle, TlsSource, serve};
use tokio::sync::oneshot;

use super::config::{ClusterSection, NodeConfig};

/// Path of the status endpoint.
pub(crate) const STATUS_PATH: &str = "/admin/cluster/status";
/// Path of the cluster page: the status as tables, refreshed every second
/// (the admin token goes in the URL's fragment, never to the server).
pub(crate) const PAGE_PATH: &str = "/ops/cluster";

/// A running cluster node.
pub(crate) struct ClusterServe {
    node: Arc<ClusterNode>,
    ingest: ServerHandle,
    http_addr: SocketAddr,
    http_stop: oneshot::Sender<()>,
    http_task: tokio::task::JoinHandle<()>,
}

/// The runtime's configuration from the file's `[cluster]` section.
pub(crate) fn cluster_config(
    config: &NodeConfig,
    section: &ClusterSection,
) -> anyhow::Result<ClusterConfig> {
    if !section.peers.iter().any(|p| p.id == section.node_id) {
        anyhow::bail!(
            "[cluster] node_id {} is not one of [[cluster.peers]]",
            section.node_id
        );
    }
    let nodes = section
        .peers
        .iter()
        .map(|p| NodeSpec {
            id: p.id,
            peer_addr: p.peer_addr,
            ingest_addr: p.ingest_addr.clone(),
        })
        .collect();
    let mut c = ClusterConfig::new(
        section.node_id,
        nodes,
        config.partitions,
        config.data_dir.clone(),
        section.certs_dir.clone(),
    );
    c.replication = section.replication;
    c.preallocate_segments = config.preallocate_segments;
    c.tick = Duration::from_millis(section.tick_ms.max(1));
    Ok(c)
}

impl ClusterServe {
    /// Starts the replicas, the ingest endpoint and the HTTP edge.
    pub(crate) async fn start(
        config: &NodeConfig,
        section: &ClusterSection,
    ) -> anyhow::Result<ClusterServe> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating {}", config.data_dir.display()))?;
        let node = Arc::new(
            ClusterNode::start(cluster_config(config, section)?)
                .await
                .context("starting the cluster node")?,
        );
        tracing::warn!(
            "cluster mode: the engine, tracking API and delivery do not run yet; this node only replicates ingest"
        );
        let mut ingest_config = IngestServerConfig::new(config.quic.listen, &config.data_dir);
        ingest_config.tls = match (&config.quic.cert_pem, &config.quic.key_pem) {
            (Some(cert_pem), Some(key_pem)) => TlsSource::Files {
                cert_pem: cert_pem.clone(),
                key_pem: key_pem.clone(),
            },
            // The node certificate the cluster CA signed: adapters trust
            // every node through the one CA.
            _ => TlsSource::Files {
                cert_pem: section
                    .certs_dir
                    .join(format!("node-{}.pem", section.node_id)),
                key_pem: section
                    .certs_dir
                    .join(format!("node-{}-key.pem", section.node_id)),
            },
        };
        ingest_config.adapters = super::credentials(config)?;
        let sink = dropline_adapters::cluster::ReplicatedSink::new(Arc::clone(&node))
            .context("ingest sink")?;
        let ingest = serve(ingest_config, sink)
            .await
            .context("starting QUIC ingest")?;

        let listener = tokio::net::TcpListener::bind(config.http.listen)
            .await
            .with_context(|| format!("binding HTTP {}", config.http.listen))?;
        let http_addr = listener.local_addr()?;
        let admin_token = AdminToken::from_plain(&super::read_or_create_token(
            &config.data_dir,
            super::ADMIN_TOKEN_FILE,
        )?);
        let state = HttpState {
            admin_token,
            admin_unauthorized: AtomicU64::new(0),
            node: Arc::clone(&node),
            ingest: ingest.metrics_handle(),
            name: section
                .name
                .clone()
                .unwrap_or_else(|| format!("node-{}", section.node_id)),
            peers: section
                .peers
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "id": p.id,
                        "name": p.name.clone().unwrap_or_else(|| format!("node-{}", p.id)),
                        "ingest_addr": p.ingest_addr,
                        "http_addr": p.http_addr.map(|a| a.to_string()),
                    })
                })
                .collect(),
        };
        let app = axum::Router::new()
            .route("/health", axum::routing::get(health))
            .route("/metrics", axum::routing::get(metrics))
            .route(STATUS_PATH, axum::routing::get(status))
            .route(PAGE_PATH, axum::routing::get(page))
            .with_state(Arc::new(state));
        let (http_stop, stopped) = oneshot::channel::<()>();
        let http_task = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(err) = served {
                tracing::error!(%err, "cluster HTTP stopped");
            }
        });
        Ok(ClusterServe {
            node,
            ingest,
            http_addr,
            http_stop,
            http_task,
        })
    }

    /// The QUIC ingest address.
    pub(crate) fn quic_addr(&self) -> SocketAddr {
        self.ingest.local_addr()
    }

    /// The HTTP address.
    pub(crate) fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The ingest certificate's SHA-256.
    pub(crate) fn fingerprint(&self) -> String {
        self.ingest.fingerprint_sha256().to_string()
    }

    /// Stops ingest (acknowledging what is in flight), HTTP, then the
    /// replicas.
    pub(crate) async fn shutdown(self) {
        self.ingest.shutdown().await;
        let _ = self.http_stop.send(());
        let _ = self.http_task.await;
        match Arc::try_unwrap(self.node) {
            Ok(node) => node.shutdown().await,
            Err(_) => tracing::warn!("cluster node still referenced at shutdown"),
        }
    }
}

struct HttpState {
    /// The token `/admin/cluster/status` takes (`<data_dir>/admin.token`).
    admin_token: AdminToken,
    /// Admin requests refused for a missing or wrong token.
    admin_unauthorized: AtomicU64,
    node: Arc<ClusterNode>,
    ingest: Arc<dropline_adapters::ingest::IngestMetrics>,
    name: String,
    /// The configured nodes (id, name, addresses), for the status.
    peers: Vec<serde_json::Value>,
}

async fn page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        include_str!("cluster.html"),
    )
}

async fn health(State(s): State<Arc<HttpState>>) -> impl IntoResponse {
    let status = s.node.status();
    let failed = status.partitions.iter().filter(|p| p.failed).count();
    let body = serde_json::json!({
        "status": if failed == 0 { "ok" } else { "degraded" },
        "node_id": status.node_id,
        "name": s.name,
        "failed_partitions": failed,
    });
    let code = if failed == 0 {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body))
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::PreCandidate => "pre_candidate",
    }
}

/// The status as JSON (the body of [`STATUS_PATH`]).
pub(crate) fn status_json(status: &ClusterStatus, name: &str) -> serde_json::Value {
    let partitions: Vec<serde_json::Value> = status
        .partitions
        .iter()
        .map(|p| {
            let followers: Vec<serde_json::Value> = p
                .followers
                .iter()
                .map(|f| serde_json::json!({"id": f.id, "matched": f.matched, "lag": f.lag}))
                .collect();
            serde_json::json!({
                "partition": p.partition,
                "replicas": p.replicas,
                "role": role_name(p.role),
                "term": p.term,
                "leader": p.leader,
                "commit_index": p.commit,
                "applied_index": p.applied,
                "committed_offset": p.committed_offset,
                "followers": followers,
                "failed": p.failed,
            })
        })
        .collect();
    serde_json::json!({
        "node_id": status.node_id,
        "name": name,
        "elections": status.elections,
        "partitions": partitions,
        "peer": {
            "frames_sent": status.peer.frames_sent,
            "frames_received": status.peer.frames_received,
            "bad_frames": status.peer.bad_frames,
            "handshakes_refused": status.peer.handshakes_refused,
            "link_failures": status.peer.link_failures,
            "dropped_batches": status.peer.dropped_batches,
        },
    })
}

async fn status(
    State(s): State<Arc<HttpState>>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    if let Some(refusal) = refuse_unless_bearer(
        &s.admin_token,
        &headers,
        "send Authorization: Bearer <admin token> (the node's admin.token)",
    ) {
        s.admin_unauthorized.fetch_add(1, Ordering::Relaxed);
        // Kept in this node's own (unreplicated) dead-letters; a failure
        // is logged, never a second error for the client.
        let route = "GET /admin/cluster/status";
        if !dropline_adapters::http::keep_admin_refusal(s.node.log(), route).await {
            tracing::warn!(
                route,
                "could not keep a refused admin request in dead-letters"
            );
        }
        return refusal;
    }
    let mut body = status_json(&s.node.status(), &s.name);
    body["nodes"] = serde_json::Value::Array(s.peers.clone());
    axum::Json(body).into_response()
}

/// Prometheus text of the cluster gauges and the ingest counters.
pub(crate) fn metrics_text(
    status: &ClusterStatus,
    ingest: &dropline_adapters::ingest::IngestMetricsSnapshot,
) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, rows: Vec<(String, u64)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in rows {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let per = |f: &dyn Fn(&dropline_adapters::cluster::PartitionStatus) -> u64| {
        status
            .partitions
            .iter()
            .map(|p| (format!("{{partition=\"{}\"}}", p.partition), f(p)))
            .collect::<Vec<_>>()
    };
    gauge(
        "dropline_cluster_node_id",
        "This node's id.",
        "gauge",
        vec![(String::new(), status.node_id)],
    );
    gauge(
        "dropline_cluster_elections_total",
        "Times a replica of this node became leader.",
        "counter",
        vec![(String::new(), status.elections)],
    );
    gauge(
        "dropline_cluster_partition_leader",
        "Leader node id of each hosted partition as this node knows it (0: none).",
        "gauge",
        per(&|p| p.leader),
    );
    let roles = status
        .partitions
        .iter()
        .flat_map(|p| {
            [
                Role::Leader,
                Role::Follower,
                Role::Candidate,
                Role::PreCandidate,
            ]
            .map(|r| {
                (
                    format!(
                        "{{partition=\"{}\",role=\"{}\"}}",
                        p.partition,
                        role_name(r)
                    ),
                    u64::from(p.role == r),
                )
            })
        })
        .collect();
    gauge(
        "dropline_cluster_partition_role",
        "1 for this replica's role.",
        "gauge",
        roles,
    );
    gauge(
        "dropline_cluster_partition_term",
        "Raft term.",
        "gauge",
        per(&|p| p.term),
    );
    gauge(
        "dropline_cluster_partition_commit_index",
        "Raft commit index known here.",
        "gauge",
        per(&|p| p.commit),
    );
    gauge(
        "dropline_cluster_partition_applied_index",
        "Raft index applied here.",
        "gauge",
        per(&|p| p.applied),
    );
    gauge(
        "dropline_cluster_partition_committed_offset",
        "Log offset after the last applied batch.",
        "gauge",
        per(&|p| p.committed_offset),
    );
    gauge(
        "dropline_cluster_partition_failed",
        "1 when the replica failed and stopped.",
        "gauge",
        per(&|p| u64::from(p.failed)),
    );
    let lags = status
        .partitions
        .iter()
        .flat_map(|p| {
            p.followers.iter().map(move |f| {
                (
                    format!("{{partition=\"{}\",follower=\"{}\"}}", p.partition, f.id),
                    f.lag,
                )
            })
        })
        .collect();
    gauge(
        "dropline_cluster_follower_lag_entries",
        "Entries each follower is behind (on the leader only).",
        "gauge",
        lags,
    );
    gauge(
        "dropline_cluster_peer_link_failures_total",
        "Peer connection attempts or links that failed.",
        "counter",
        vec![(String::new(), status.peer.link_failures)],
    );
    gauge(
        "dropline_ingest_batches_acked_total",
        "Batches acknowledged by this node's ingest.",
        "counter",
        vec![(String::new(), ingest.batches_acked)],
    );
    gauge(
        "dropline_ingest_events_acked_total",
        "Events acknowledged by this node's ingest.",
        "counter",
        vec![(String::new(), ingest.events_acked)],
    );
    let d = status.driver;
    // Microseconds as Prometheus seconds (a float).
    let seconds = |us: u64| format!("{:.6}", us as f64 / 1e6);
    for (name, help, value) in [
        (
            "dropline_cluster_driver_turns_total",
            "Turns of this node's Raft driver thread.",
            d.turns.to_string(),
        ),
        (
            "dropline_cluster_driver_busy_seconds_total",
            "Seconds the driver spent in turns (the rest it waited for input); its rate is the driver's utilisation.",
            seconds(d.busy_us),
        ),
        (
            "dropline_cluster_commits_total",
            "Producer batches acknowledged by this node as leader.",
            d.commits.to_string(),
        ),
        (
            "dropline_cluster_commit_seconds_total",
            "Sum of the time from a batch reaching the driver to its ack; divided by dropline_cluster_commits_total, the mean commit latency.",
            seconds(d.commit_us),
        ),
        (
            "dropline_cluster_group_commits_total",
            "Writes of a replica's unsynced entries to its partition, each covered by one fdatasync.",
            d.syncs_started.to_string(),
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    out
}

async fn metrics(State(s): State<Arc<HttpState>>) -> impl IntoResponse {
    let mut text = metrics_text(&s.node.status(), &s.ingest.snapshot());
    let _ = writeln!(
        text,
        "# HELP dropline_cluster_admin_unauthorized_total Admin requests refused for a missing or wrong token.\n\
         # TYPE dropline_cluster_admin_unauthorized_total counter\n\
         dropline_cluster_admin_unauthorized_total {}",
        s.admin_unauthorized.load(Ordering::Relaxed)
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
