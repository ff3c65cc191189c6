//! The admin API: node status, topics, the drop-mode switch, dashboard
//! figures and forensics, behind a bearer token.
//!
//! Why a bearer token kept hashed: the admin API can switch drop mode for
//! every worker and reads every decision about a parcel; the token is the
//! one secret an operator types, and a leaked config file must not reveal
//! it. A node without a configured token answers 403 on every admin route.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use dropline_log::Log;
use serde::{Deserialize, Serialize};

use super::app::App;
use super::config::AdminToken;
use super::dead_letter::{self, DeadLetterSource};
use super::problem::{Problem, ProblemKind};
use crate::forensics::{self, ForensicsError};

/// Checks the bearer token; `Some` is the refusal to send. A wrong or
/// missing token is counted and kept in `dead-letters` (the route only:
/// the presented token is never stored) before the 401 goes out.
pub(crate) async fn refuse_unless_admin(
    app: &Arc<App>,
    headers: &HeaderMap,
    route: &'static str,
) -> Option<Response> {
    let Some(token) = &app.config.admin_token else {
        return Some(
            Problem::new(ProblemKind::Forbidden, "no admin token is configured").into_response(),
        );
    };
    let refusal = refuse_unless_bearer(token, headers, "send Authorization: Bearer <admin token>");
    if refusal.is_some() {
        app.metrics
            .admin_unauthorized
            .fetch_add(1, Ordering::Relaxed);
        dead_letter::keep(
            app,
            DeadLetterSource::AdminApi,
            Some(ProblemKind::Unauthorized),
            route.as_bytes(),
        )
        .await;
    }
    refusal
}

/// `None` if `headers` carry `Authorization: Bearer <token>`; else the 401
/// problem (with `WWW-Authenticate: Bearer`) whose detail is `hint`.
pub fn refuse_unless_bearer(
    token: &AdminToken,
    headers: &HeaderMap,
    hint: &str,
) -> Option<Response> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if presented.is_some_and(|p| token.verify(p.trim())) {
        return None;
    }
    let mut resp = Problem::new(ProblemKind::Unauthorized, hint).into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    Some(resp)
}

/// One partition's figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionStatus {
    /// Partition number.
    pub partition: u32,
    /// First retained offset.
    pub start_offset: u64,
    /// Offset the next append gets.
    pub next_offset: u64,
    /// Everything below is durable.
    pub durable_offset: u64,
    /// Bytes in segment files.
    pub bytes: u64,
    /// Segments.
    pub segments: u64,
    /// The writer failed for good.
    pub poisoned: bool,
}

/// One topic's figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicStatus {
    /// Topic name.
    pub name: String,
    /// Partition count.
    pub partitions: u32,
    /// Records held (sum of next minus start offsets).
    pub records: u64,
    /// Bytes held.
    pub bytes: u64,
    /// Per-partition figures.
    pub partition_status: Vec<PartitionStatus>,
}

/// Every topic of a log with its figures (`GET /v1/admin/topics`, and the
/// `dropline topics` verb on a stopped node).
pub fn topics_status(log: &Log) -> Vec<TopicStatus> {
    log.topics()
        .into_iter()
        .map(|t| {
            let parts: Vec<PartitionStatus> = t
                .partitions
                .iter()
                .map(|p| PartitionStatus {
                    partition: p.partition,
                    start_offset: p.start_offset,
                    next_offset: p.next_offset,
                    durable_offset: p.durable_offset,
                    bytes: p.bytes,
                    segments: p.segments as u64,
                    poisoned: p.poisoned,
                })
                .collect();
            TopicStatus {
                name: t.name,
                partitions: t.config.partitions,
                records: parts.iter().map(|p| p.next_offset - p.start_offset).sum(),
                bytes: parts.iter().map(|p| p.bytes).sum(),
                partition_status: parts,
            }
        })
        .collect()
}

/// The node's status (`GET /v1/admin/status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// Dropline version.
    pub version: String,
    /// Seconds since the HTTP edge started.
    pub uptime_s: u64,
    /// The data directory.
    pub data_dir: String,
    /// Topics.
    pub topics: u64,
    /// Partitions over all topics.
    pub partitions: u64,
    /// Records over all topics.
    pub records: u64,
    /// Bytes over all topics.
    pub bytes: u64,
    /// Partitions whose writer is poisoned.
    pub poisoned_partitions: u64,
    /// Shipments in the view store.
    pub shipments_tracked: u64,
    /// Whether the view store has caught up with the log.
    pub ready: bool,
    /// Drop mode, if the node reports it.
    pub drop_mode: Option<bool>,
}

pub(crate) fn node_status(app: &App) -> NodeStatus {
    let topics = topics_status(&app.state.log);
    NodeStatus {
        version: env!("CARGO_PKG_VERSION").to_string(),
        uptime_s: app.started.elapsed().as_secs(),
        data_dir: app.state.log.dir().display().to_string(),
        topics: topics.len() as u64,
        partitions: topics.iter().map(|t| u64::from(t.partitions)).sum(),
        records: topics.iter().map(|t| t.records).sum(),
        bytes: topics.iter().map(|t| t.bytes).sum(),
        poisoned_partitions: topics
            .iter()
            .flat_map(|t| &t.partition_status)
            .filter(|p| p.poisoned)
            .count() as u64,
        shipments_tracked: app.views.len() as u64,
        ready: app.views.is_caught_up(),
        drop_mode: app.state.admin.as_ref().and_then(|a| a.drop_mode()),
    }
}

/// `GET /v1/admin/status`.
pub(crate) async fn status(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Some(r) = refuse_unless_admin(&app, &headers, "GET /v1/admin/status").await {
        return r;
    }
    Json(node_status(&app)).into_response()
}

/// `GET /v1/admin/topics`.
pub(crate) async fn topics(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Some(r) = refuse_unless_admin(&app, &headers, "GET /v1/admin/topics").await {
        return r;
    }
    Json(topics_status(&app.state.log)).into_response()
}

/// Body of `POST /v1/admin/drop-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropModeRequest {
    /// On or off.
    pub on: bool,
}

/// Answer of `POST /v1/admin/drop-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropModeResponse {
    /// The state requested.
    pub on: bool,
    /// Offset of the control record in `control`.
    pub control_offset: u64,
}

/// `POST /v1/admin/drop-mode`.
pub(crate) async fn drop_mode(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = refuse_unless_admin(&app, &headers, "POST /v1/admin/drop-mode").await {
        return r;
    }
    let req: DropModeRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return Problem::new(ProblemKind::MalformedBody, e.to_string()).into_response(),
    };
    let Some(admin) = app.state.admin.clone() else {
        return Problem::new(
            ProblemKind::Unavailable,
            "this node has no drop-mode switch",
        )
        .into_response();
    };
    let res = tokio::task::spawn_blocking(move || admin.set_drop_mode(req.on)).await;
    match res {
        Ok(Ok(offset)) => Json(DropModeResponse {
            on: req.on,
            control_offset: offset,
        })
        .into_response(),
        Ok(Err(e)) => Problem::new(ProblemKind::Internal, e.to_string()).into_response(),
        Err(_) => Problem::new(ProblemKind::Internal, "the drop-mode task failed").into_response(),
    }
}

/// `GET /v1/admin/stats`: one dashboard snapshot.
pub(crate) async fn stats(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Some(r) = refuse_unless_admin(&app, &headers, "GET /v1/admin/stats").await {
        return r;
    }
    let Some(src) = app.state.stats.clone() else {
        return Problem::new(
            ProblemKind::Unavailable,
            "this node reports no dashboard figures",
        )
        .into_response();
    };
    match tokio::task::spawn_blocking(move || src.snapshot()).await {
        Ok(s) => {
            let mut resp = Json(s).into_response();
            resp.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            resp
        }
        Err(_) => Problem::new(ProblemKind::Internal, "the stats task failed").into_response(),
    }
}

/// Query of `/v1/forensics/{tracking_number}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ForensicsQuery {
    /// Instant (RFC 3339) or epoch ms; default: now.
    pub(crate) at: Option<String>,
}

/// `GET /v1/forensics/{tracking_number}?at=TIME`: the same JSON as
/// `dropline replay --tracking-number X --json`.
pub(crate) async fn forensics_parcel(
    State(app): State<Arc<App>>,
    Path(tn): Path<String>,
    Query(q): Query<ForensicsQuery>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) =
        refuse_unless_admin(&app, &headers, "GET /v1/forensics/{tracking_number}").await
    {
        return r;
    }
    let at_ms = match q.at.as_deref().map(forensics::parse_time) {
        None => None,
        Some(Some(t)) => Some(t),
        Some(None) => {
            return Problem::invalid("at", "must be an RFC 3339 instant or epoch milliseconds")
                .into_response();
        }
    };
    let log = app.state.log.clone();
    let res = tokio::task::spawn_blocking(move || {
        forensics::replay_parcel(&log, &tn, at_ms, &forensics::ReplayOptions::default())
    })
    .await;
    match res {
        Ok(Ok(h)) => {
            let mut resp = Json(h).into_response();
            resp.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            resp
        }
        Ok(Err(ForensicsError::InvalidTrackingNumber { .. })) => {
            Problem::invalid("tracking_number", "not a valid tracking number").into_response()
        }
        Ok(Err(e)) => Problem::new(ProblemKind::Internal, e.to_string()).into_response(),
        Err(_) => Problem::new(ProblemKind::Internal, "the forensics task failed").into_response(),
    }
}
