//! Push through a provider API shaped like FCM's HTTP v1:
//! `POST /v1/projects/{project}/messages:send` with
//! `{"message":{"token", "notification":{"title","body"}, "data":{...}}}`.
//!
//! The project's quota (600k messages a minute) is a token bucket here.
//! The idempotency key goes in a header and in `data.dropline_key`, so a
//! receiving app can drop a repeat too.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::super::notification::Message;
use super::super::scheduler::SendOutcome;
use super::super::token_bucket::{Rate, TokenBucket};
use super::render::render;
use super::{IDEMPOTENCY_HEADER, classify, http_client};

/// Push provider settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PushConfig {
    /// Provider base URL.
    pub base_url: String,
    /// Project id.
    pub project: String,
    /// Bearer token.
    pub bearer_token: String,
    /// The project's limit.
    pub rate: Rate,
    /// Whole-request timeout, ms.
    pub timeout_ms: u64,
}

/// Sends pushes.
#[derive(Debug)]
pub struct PushSender {
    config: PushConfig,
    client: reqwest::Client,
    bucket: Mutex<TokenBucket>,
    url: String,
}

impl PushSender {
    /// A sender with `config`.
    pub fn new(config: PushConfig, now_ms: u64) -> PushSender {
        PushSender {
            url: format!(
                "{}/v1/projects/{}/messages:send",
                config.base_url.trim_end_matches('/'),
                config.project
            ),
            client: http_client(config.timeout_ms),
            bucket: Mutex::new(TokenBucket::new(config.rate, now_ms)),
            config,
        }
    }

    /// A token, or ms to wait.
    pub fn try_acquire(&self, now_ms: u64) -> Result<usize, u64> {
        self.bucket
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .try_take(now_ms)
            .map(|()| 0)
    }

    /// The provider answered 429.
    pub fn on_rate_limited(&self, now_ms: u64) {
        self.bucket
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(now_ms);
    }

    /// Sends `m`.
    pub async fn send(&self, m: &Message) -> SendOutcome {
        let r = render(m);
        let mut data = BTreeMap::new();
        data.insert("dropline_key".to_string(), m.idempotency_key());
        if let Some(first) = m.members.first() {
            data.insert("order_id".into(), first.notification.order_id.clone());
            data.insert("status".into(), first.notification.status.as_str().into());
            data.insert(
                "tracking_number".into(),
                first.notification.tracking_number.clone(),
            );
        }
        data.insert("updates".into(), m.members.len().to_string());
        let body = json!({
            "message": {
                "token": m.address(),
                "notification": {"title": r.title, "body": r.body},
                "data": data,
            }
        });
        let result = self
            .client
            .post(&self.url)
            .bearer_auth(&self.config.bearer_token)
            .header(IDEMPOTENCY_HEADER, m.idempotency_key())
            .json(&body)
            .send()
            .await;
        classify(result).await
    }
}
