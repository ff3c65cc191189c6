//! The simulator's HTTP surface: the SMS and push send endpoints in the
//! providers' shapes, and the admin endpoints the bench and tests use.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::callbacks::{Callback, CallbackQueue};
use super::config::Faults;
use super::state::{Decision, SendRequest, SimChannel, SimState};

/// Header carrying the client's idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// The SMS provider's own name for the same header, also honoured.
pub const SMS_IDEMPOTENCY_HEADER_ALT: &str = "i-twilio-idempotency-token";

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) sim: Arc<SimState>,
    pub(crate) callbacks: CallbackQueue,
}

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/2010-04-01/Accounts/{sid}/Messages.json", post(send_sms))
        .route("/v1/projects/{project}/messages:send", post(send_push))
        .route("/admin/stats", get(stats))
        .route("/admin/messages", get(messages))
        .route("/admin/faults", post(set_faults))
        .route("/admin/inbound", post(inbound))
        .with_state(state)
}

fn idempotency_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get(IDEMPOTENCY_HEADER)
        .or_else(|| headers.get(SMS_IDEMPOTENCY_HEADER_ALT))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn retry_after(ms: u64) -> HeaderValue {
    // Whole seconds, rounded up, as the header's grammar requires.
    HeaderValue::from(ms.div_ceil(1000).max(1))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SmsForm {
    to: String,
    from: String,
    body: String,
    status_callback: Option<String>,
}

async fn send_sms(
    State(app): State<AppState>,
    Path(account): Path<String>,
    headers: HeaderMap,
    Form(form): Form<SmsForm>,
) -> Response {
    if account != app.sim.config.sms_account_sid {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"code": 20404, "message": "account not found", "status": 404})),
        )
            .into_response();
    }
    let decision = app.sim.decide(SendRequest {
        channel: SimChannel::Sms,
        idempotency_key: idempotency_key(&headers),
        sender: form.from.clone(),
        to: form.to.clone(),
        title: String::new(),
        body: form.body.clone(),
        data: BTreeMap::new(),
    });
    match decision {
        Decision::Duplicate { sid } => sms_created(&sid, &form, &account),
        Decision::Error500 => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"code": 20500, "message": "Internal Server Error", "status": 500})),
        )
            .into_response(),
        Decision::Permanent { code, message } => (
            StatusCode::BAD_REQUEST,
            Json(json!({"code": code, "message": message, "status": 400})),
        )
            .into_response(),
        Decision::RateLimited { retry_after_ms } => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry_after(retry_after_ms))],
            Json(json!({"code": 20429, "message": "Too Many Requests", "status": 429})),
        )
            .into_response(),
        Decision::Accepted { sid, delay_ms } => {
            if let Some(url) = &form.status_callback {
                app.callbacks.push(
                    &app.sim,
                    Callback {
                        url: url.clone(),
                        form: vec![
                            ("MessageSid".into(), sid.clone()),
                            ("MessageStatus".into(), "delivered".into()),
                            ("AccountSid".into(), account.clone()),
                            ("From".into(), form.from.clone()),
                            ("To".into(), form.to.clone()),
                        ],
                    },
                );
            }
            if delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            }
            sms_created(&sid, &form, &account)
        }
    }
}

fn sms_created(sid: &str, form: &SmsForm, account: &str) -> Response {
    (
        StatusCode::CREATED,
        Json(json!({
            "sid": sid,
            "account_sid": account,
            "status": "queued",
            "from": form.from,
            "to": form.to,
            "body": form.body,
            "num_segments": "1",
        })),
    )
        .into_response()
}

#[derive(Deserialize)]
struct PushBody {
    message: PushMessage,
}

#[derive(Deserialize)]
struct PushMessage {
    token: String,
    #[serde(default)]
    notification: Option<PushNotification>,
    #[serde(default)]
    data: HashMap<String, String>,
}

#[derive(Deserialize)]
struct PushNotification {
    #[serde(default)]
    title: String,
    #[serde(default)]
    body: String,
}

fn push_error(status: StatusCode, code: u16, name: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": name, "status": name}})),
    )
        .into_response()
}

async fn send_push(
    State(app): State<AppState>,
    Path(project): Path<String>,
    headers: HeaderMap,
    Json(body): Json<PushBody>,
) -> Response {
    if project != app.sim.config.push_project {
        return push_error(StatusCode::NOT_FOUND, 404, "NOT_FOUND");
    }
    let (title, text) = body
        .message
        .notification
        .map(|n| (n.title, n.body))
        .unwrap_or_default();
    let decision = app.sim.decide(SendRequest {
        channel: SimChannel::Push,
        idempotency_key: idempotency_key(&headers),
        sender: project,
        to: body.message.token,
        title,
        body: text,
        data: body.message.data.into_iter().collect(),
    });
    match decision {
        Decision::Duplicate { sid } => Json(json!({"name": sid})).into_response(),
        Decision::Error500 => push_error(StatusCode::INTERNAL_SERVER_ERROR, 500, "INTERNAL"),
        Decision::Permanent { code, message } => {
            let status = StatusCode::from_u16(code as u16).unwrap_or(StatusCode::BAD_REQUEST);
            push_error(status, code as u16, message)
        }
        Decision::RateLimited { retry_after_ms } => {
            let mut r = push_error(StatusCode::TOO_MANY_REQUESTS, 429, "RESOURCE_EXHAUSTED");
            r.headers_mut()
                .insert(header::RETRY_AFTER, retry_after(retry_after_ms));
            r
        }
        Decision::Accepted { sid, delay_ms } => {
            if delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            }
            Json(json!({"name": sid})).into_response()
        }
    }
}

async fn stats(State(app): State<AppState>) -> Response {
    let stats = app.sim.lock().stats.clone();
    Json(stats).into_response()
}

async fn messages(State(app): State<AppState>) -> Response {
    let messages = app.sim.lock().messages.clone();
    Json(messages).into_response()
}

async fn set_faults(State(app): State<AppState>, Json(faults): Json<Faults>) -> Response {
    app.sim.set_faults(faults);
    StatusCode::NO_CONTENT.into_response()
}

/// An inbound SMS to simulate (a buyer replying STOP).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct InboundSms {
    pub(crate) from: String,
    pub(crate) to: String,
    pub(crate) body: String,
}

async fn inbound(State(app): State<AppState>, Json(msg): Json<InboundSms>) -> Response {
    match app.callbacks.post_inbound(&app.sim, &msg).await {
        Ok(status) => Json(json!({"posted": true, "status": status})).into_response(),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            Json(json!({"posted": false, "error": e.to_string()})),
        )
            .into_response(),
    }
}
