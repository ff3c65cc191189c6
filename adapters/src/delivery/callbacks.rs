//! The node's HTTP endpoints for delivery: inbound SMS (STOP replies),
//! SMS delivery receipts, and email unsubscribe links (a GET from a person
//! or the one-click POST of RFC 8058).
//!
//! Served under `/delivery` on the node's delivery callbacks listener
//! (`[delivery] callbacks_listen`), apart from the admin API. Opt-outs are
//! appended to the log (fsync) before the answer, so an acknowledged STOP
//! is never forgotten.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dropline_operators::model::Channel;
use serde::Deserialize;

use super::metrics::DeliveryMetrics;
use super::opt_out::OptOutStore;

/// Path of the inbound SMS webhook.
pub const SMS_INBOUND_PATH: &str = "/delivery/sms/inbound";
/// Path of the SMS status callback.
pub const SMS_STATUS_PATH: &str = "/delivery/sms/status";
/// Path of unsubscribe links.
pub const UNSUBSCRIBE_PATH: &str = "/delivery/unsubscribe";

#[derive(Clone)]
struct CallbackState {
    opt_outs: Arc<OptOutStore>,
    metrics: Arc<DeliveryMetrics>,
}

/// The delivery callback routes.
pub fn delivery_router(opt_outs: Arc<OptOutStore>, metrics: Arc<DeliveryMetrics>) -> Router {
    Router::new()
        .route(SMS_INBOUND_PATH, post(sms_inbound))
        .route(SMS_STATUS_PATH, post(sms_status))
        .route(UNSUBSCRIBE_PATH, get(unsubscribe).post(unsubscribe))
        .with_state(CallbackState { opt_outs, metrics })
}

/// Whether an inbound text opts its sender out.
pub fn is_stop_word(body: &str) -> bool {
    matches!(
        body.trim().to_ascii_uppercase().as_str(),
        "STOP" | "STOPALL" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT"
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InboundForm {
    from: String,
    #[serde(default)]
    body: String,
}

async fn sms_inbound(State(s): State<CallbackState>, Form(f): Form<InboundForm>) -> Response {
    if is_stop_word(&f.body) {
        let store = s.opt_outs.clone();
        let from = f.from.clone();
        let r =
            tokio::task::spawn_blocking(move || store.opt_out_contact(Channel::Sms, &from, "stop"))
                .await;
        match r {
            Ok(Ok(())) => {
                s.metrics.opt_outs.fetch_add(1, Ordering::Relaxed);
            }
            _ => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
        }
    }
    (
        [(axum::http::header::CONTENT_TYPE, "text/xml")],
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>",
    )
        .into_response()
}

async fn sms_status(State(s): State<CallbackState>) -> Response {
    s.metrics.receipts.fetch_add(1, Ordering::Relaxed);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct UnsubscribeQuery {
    token: String,
}

async fn unsubscribe(
    State(s): State<CallbackState>,
    Query(q): Query<UnsubscribeQuery>,
) -> Response {
    if q.token.len() != 64 || !q.token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return (StatusCode::BAD_REQUEST, "bad token").into_response();
    }
    let store = s.opt_outs.clone();
    let token = q.token.to_ascii_lowercase();
    match tokio::task::spawn_blocking(move || store.opt_out_token(&token, "unsubscribe")).await {
        Ok(Ok(())) => {
            s.metrics.opt_outs.fetch_add(1, Ordering::Relaxed);
            (
                StatusCode::OK,
                "You are unsubscribed from shipment notifications.\n",
            )
                .into_response()
        }
        _ => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}
