//! The webhook receivers (`POST /webhooks/{carrier}`) and `GET /metrics`.
//!
//! A carrier retries a webhook until it gets a 2xx, so the answer is the
//! adapter's promise: 200 only once every new scan in it is durable in
//! the spool (or acknowledged by the node); 503 with `Retry-After` when
//! the spool is full (checked before the body is parsed, and again for
//! the scans themselves), so the carrier tries again later; 401 with the
//! reason for a bad signature; 400 with the reason for a body that cannot
//! be read (kept as a dead letter, since a carrier does not resend what
//! was called bad).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dropline_operators::model::{Carrier, EventSource};
use dropline_operators::normalize::normalize;
use serde_json::json;

use super::core::Shared;
use super::metrics::add;
use super::signature::{signature_header, verify};
use super::sink::{EventSink, SinkRefusal};

/// `Retry-After` sent with a 503 when the spool is full, in seconds.
pub const SPOOL_FULL_RETRY_AFTER_S: u64 = 5;

pub(crate) fn router<S: EventSink>(shared: Arc<Shared<S>>) -> Router {
    let limit = shared.config.webhook_body_bytes_max;
    Router::new()
        .route("/webhooks/{carrier}", post(receive::<S>))
        .route("/metrics", get(metrics::<S>))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(shared)
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

async fn receive<S: EventSink>(
    State(shared): State<Arc<Shared<S>>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(carrier) = Carrier::parse(&name) else {
        return answer(StatusCode::NOT_FOUND, json!({"error": "unknown_carrier"}));
    };
    let m = shared.metrics.carrier(carrier);
    add(&m.webhooks, 1);
    let Some(cc) = shared.config.carriers.get(carrier).filter(|c| c.webhooks) else {
        return answer(
            StatusCode::NOT_FOUND,
            json!({"error": "carrier_webhooks_not_configured"}),
        );
    };
    let signature = headers
        .get(signature_header(carrier))
        .map(HeaderValue::as_bytes);
    if let Err(e) = verify(cc.webhook_secret.as_bytes(), &body, signature) {
        add(&m.signature_failures, 1);
        return answer(StatusCode::UNAUTHORIZED, json!({"error": e.reason()}));
    }
    if !shared.sink.has_room() {
        // Full before parsing: the same answer a full spool gives below.
        add(&m.refused_full, 1);
        return spool_full(SinkRefusal::Full);
    }
    let now = shared.clock.now_ms();
    let normalized = match normalize(carrier, &body, now, EventSource::Webhook) {
        Ok(n) => n,
        Err(e) => {
            add(&m.bad_payloads, 1);
            add(&shared.metrics.dead_letters, 1);
            let reason = e.to_string();
            shared
                .state_log
                .dead_letter(carrier, EventSource::Webhook, now, &reason, &body);
            return answer(
                StatusCode::BAD_REQUEST,
                json!({"error": "bad_payload", "reason": reason}),
            );
        }
    };
    add(&m.unknown_codes, normalized.unknown_codes.len() as u64);
    shared.on_webhook(carrier);
    match shared
        .hand_off(carrier, normalized.events, EventSource::Webhook, true)
        .await
    {
        Ok(h) => answer(
            StatusCode::OK,
            json!({"accepted": h.accepted, "duplicates": h.duplicates}),
        ),
        Err(refusal) => {
            add(&m.refused_full, 1);
            spool_full(refusal)
        }
    }
}

/// 503 with `Retry-After`: the carrier sends the webhook again later.
fn spool_full(refusal: SinkRefusal) -> Response {
    let reason = match refusal {
        SinkRefusal::Full => "spool_full".to_string(),
        SinkRefusal::Failed { reason } => reason,
    };
    let mut r = answer(StatusCode::SERVICE_UNAVAILABLE, json!({"error": reason}));
    r.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from(SPOOL_FULL_RETRY_AFTER_S),
    );
    r
}

async fn metrics<S: EventSink>(State(shared): State<Arc<Shared<S>>>) -> Response {
    let text = shared.snapshot().render_prometheus();
    let mut r = (StatusCode::OK, text).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}
